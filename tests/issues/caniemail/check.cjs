// Reads an HTML email on stdin and prints caniemail's verdict for the clients named in argv
// (globs such as "gmail.*") as JSON: {"errors": [...], "warnings": [...]}. Test-only helper of
// tests/test_caniemail.py.
const { doIUseEmail } = require("@jsx-email/doiuse-email");

let html = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { html += chunk; });
process.stdin.on("end", () => {
  const result = doIUseEmail(html, { emailClients: process.argv.slice(2) });
  process.stdout.write(JSON.stringify({
    errors: result.errors || [],
    warnings: result.warnings || [],
  }));
});
