"""Tag rules benchmark: what applying rules at ingest costs per article, against work ingest
already does on the same article, and the ingest rate that implies.

    .venv/bin/python bench/tagrules.py [--articles 2000] [--repeat 5] [--json]

Articles: a title of 8 words and ~2 KB of text (300 words) in three paragraphs (English with some French
and accented names; a rule keyword in about a third of them). Rules: 20 and 50 of a realistic
mix (60% title keywords, 30% text keywords, 10% regexes on the URL or text), and 200 for
scale. Per round, in this order and on the same articles:
- reference: ``sanitize.clean_html`` + ``html_to_text`` of the article (ingest pays it);
- ``RuleSet.apply`` with 0, 20, 50 and 200 rules (building ``ArticleFields`` included);
- ``excerpts.strip_boilerplate`` and ``leadimage.content_image``, which ingest would add too;
- a real JSON Lines ingest of the same articles (``ingest_sources``, fresh database), for the
  cost of one article's whole ingest.
Reported: the median over rounds of each per-article cost, its ratio to the reference, and the
implied ingest-rate ratio ingest / (ingest + added cost), assuming the added work runs serially
(at ingest it would run on the render worker thread beside the writes, so this is a floor).
Both sides are measured in the same rounds on the same articles, so load from other processes
on a shared machine moves them alike. ``--words 105`` gives bench/ingest.py's article size.
Target (issue 13): ingest with 50 rules at >= 80% of the rate without rules.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from digest.articles.excerpts import strip_boilerplate  # noqa: E402
from digest.articles.leadimage import content_image  # noqa: E402
from digest.articles.sanitize import clean_html, html_to_text  # noqa: E402
from digest.articles.tagrules import ArticleFields, Rule, RuleField, RuleSet  # noqa: E402
from digest.config import load_config  # noqa: E402
from digest.ingest.pipeline import ingest_sources  # noqa: E402
from digest.store import open_db  # noqa: E402

NOW = datetime(2025, 1, 24, 12, 0, tzinfo=UTC)
WORDS = [
    "harvest",
    "rains",
    "clinic",
    "vaccine",
    "market",
    "school",
    "water",
    "bridge",
    "festival",
    "music",
    "river",
    "coast",
    "border",
    "grain",
    "solar",
    "road",
    "council",
    "farmers",
    "volunteers",
    "season",
    "forecast",
    "workshop",
    "radio",
    "island",
    "survey",
    "cooperative",
    "drought",
    "coral",
    "library",
    "carnival",
    "nurses",
    "the",
    "of",
    "and",
    "in",
    "to",
    "a",
    "with",
    "for",
    "on",
    "by",
    "at",
    "from",
    "the",
    "the",
    "of",
    "and",
    "élection",
    "été",
    "année",
    "déjà",
    "très",
    "Jacmel",
    "Nairobi",
    "Kisumu",
    "Gonaïves",
]
KEYWORDS = [
    "Kenya", "Haïti", "Uganda", "Tanzania", "Rwanda", "Ethiopia", "Somalia", "Sudan", "Congo",
    "Nigeria", "Ghana", "Senegal", "Mali", "Niger", "Chad", "Cameroon", "Gabon", "Angola",
    "Zambia", "Malawi", "Mozambique", "Zimbabwe", "Botswana", "Namibia", "Lesotho", "Eswatini",
    "Madagascar", "Mauritius", "Comoros", "Seychelles", "Djibouti", "Eritrea", "cholera",
    "measles", "malaria", "floods", "hurricane", "earthquake", "police", "parliament", "budget",
    "coral reef", "climate change", "drought relief", "vaccine rollout", "Port-au-Prince",
    "solar power", "elections", "Cap-Haïtien", "Jacmel*",
]  # fmt: skip
REGEXES = [
    (RuleField.URL, r"/sports?/"),
    (RuleField.TEXT, r"\bvaccination campaigns?\b"),
    (RuleField.URL, r"/2025/01/1\d\d$"),
    (RuleField.TEXT, r"(cyclone|hurricane|storm) (season|warning)"),
    (RuleField.URL, r"/(opinion|analysis)/"),
]


def make_articles(n: int, size: int = 300) -> list[dict]:
    rnd = random.Random(13)
    out = []
    third = size // 3
    for i in range(n):
        words = [rnd.choice(WORDS) for _ in range(size)]
        if i % 3 == 0:
            words.insert(rnd.randrange(size), rnd.choice(KEYWORDS).rstrip("*"))
        title = " ".join(words[:8]).capitalize()
        paragraphs = [
            " ".join(words[k : k + third]).capitalize() + "." for k in (0, third, 2 * third)
        ]
        out.append(
            {
                "id": f"rules-{i}",
                "title": title,
                "url": f"https://news.example.org/2025/01/{'sport/' if i % 5 == 0 else ''}{i}",
                "published": (NOW - timedelta(minutes=7 * i)).isoformat(),
                "author": "Example desk",
                "content": "".join(f"<p>{p}</p>" for p in paragraphs),
                "tags": [],
            }
        )
    return out


def make_rules(n: int) -> list[Rule]:
    rules = []
    for i in range(n):
        if i % 10 == 9:
            fld, pattern = REGEXES[(i // 10) % len(REGEXES)]
            rules.append(Rule(f"R{i}", pattern, field=fld, regex=True))
            continue
        keyword = KEYWORDS[i % len(KEYWORDS)] + (f"{i}" if i >= len(KEYWORDS) else "")
        fld = RuleField.TITLE if i % 10 < 6 else RuleField.TEXT
        rules.append(Rule(keyword.rstrip("*").title(), keyword, field=fld))
    return rules


def per_article(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--words", type=int, default=300, help="words of text per article")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = parser.parse_args()
    n = args.articles
    items = make_articles(n, args.words)
    html = [a["content"] for a in items]
    texts = [html_to_text(clean_html(h)) for h in html]
    fields = [(a["title"], t, a["url"], a["author"]) for a, t in zip(items, texts, strict=True)]
    source = "https://news.example.org/feed.jsonl"

    compile_ms = {}
    rulesets = {}
    for count in (0, 20, 50, 200):
        start = time.perf_counter()
        rulesets[count] = RuleSet(make_rules(count))
        compile_ms[count] = (time.perf_counter() - start) * 1e3
    tagged = {
        count: sum(
            1
            for title, text, url, author in fields
            if rs.apply(ArticleFields(title, text, url, author, source))
        )
        for count, rs in rulesets.items()
    }

    def apply_all(rs: RuleSet) -> Callable[[], object]:
        def run() -> None:
            for title, text, url, author in fields:
                rs.apply(ArticleFields(title, text, url, author, source))

        return run

    def reference() -> None:
        for h in html:
            html_to_text(clean_html(h))

    cleaned = [clean_html(h) for h in html]

    def excerpts() -> None:
        for h in cleaned:
            strip_boilerplate(h)

    def images() -> None:
        for h in html:
            content_image(h, "https://news.example.org/")

    config = load_config(None, env={})
    rounds: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "rules.jsonl"
        path.write_text("".join(json.dumps(a) + "\n" for a in items), encoding="utf-8")
        for r in range(args.repeat):
            timings = {"reference": per_article(reference, n)}
            for count, rs in rulesets.items():
                timings[f"rules {count}"] = per_article(apply_all(rs), n)
            timings["excerpts"] = per_article(excerpts, n)
            timings["images"] = per_article(images, n)
            db = open_db(Path(d) / f"ingest-{r}.db", create=True)
            timings["ingest"] = per_article(
                lambda db=db: ingest_sources(db, [str(path)], config=config, now=NOW), n
            )
            db.close()
            for k, v in timings.items():
                rounds.setdefault(k, []).append(v)

    med = {k: statistics.median(v) for k, v in rounds.items()}
    ref, ingest = med["reference"], med["ingest"]
    rows = []

    def row(what: str, key: str, target: str = "", ok: bool | None = None) -> None:
        cost = med[key]
        added = key not in ("reference", "ingest")
        implied = ingest / (ingest + cost) if added else None
        rows.append(
            {
                "measure": what,
                "us_per_article": round(cost, 2),
                "range": [round(min(rounds[key]), 2), round(max(rounds[key]), 2)],
                "vs_reference": round(cost / ref, 3),
                "implied_ingest_rate": None if implied is None else round(implied, 3),
                "target": target,
                "result": None if ok is None else "PASS" if ok else "FAIL",
            }
        )

    row("reference: clean_html + html_to_text", "reference")
    row(f"whole JSON Lines ingest ({1e6 / ingest:,.0f} articles/s)", "ingest")
    for count in (0, 20, 50, 200):
        key = f"rules {count}"
        label = f"RuleSet.apply, {count} rules ({compile_ms[count]:.0f} ms to build, tags {tagged[count]:,})"
        if count == 50:
            implied = ingest / (ingest + med[key])
            row(label, key, ">= 80% ingest rate", implied >= 0.8)
        else:
            row(label, key)
    row("excerpts.strip_boilerplate (sanitised content)", "excerpts")
    row("leadimage.content_image (raw content)", "images")

    if args.json:
        settings = {"articles": n, "repeat": args.repeat, "words": args.words}
        print(json.dumps({"benchmark": "tagrules", "settings": settings, "rows": rows}))
        return
    header = (
        "what",
        "µs/article (range)",
        "× reference",
        "implied ingest rate",
        "target",
        "result",
    )
    table = [
        (
            r["measure"],
            f"{r['us_per_article']:.2f} ({r['range'][0]:.2f}–{r['range'][1]:.2f})",
            f"{r['vs_reference']:.2f}",
            "" if r["implied_ingest_rate"] is None else f"{r['implied_ingest_rate']:.0%}",
            r["target"],
            r["result"] or "",
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in [header, *table]) for i in range(len(header))]
    print(
        f"tag rules benchmark: {n:,} articles (~{sum(map(len, texts)) // n:,} characters of text"
        f" each), median of {args.repeat} rounds"
    )
    for line in [header, tuple("-" * w for w in widths), *table]:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
