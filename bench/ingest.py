"""Ingestion benchmark: prints a table with the issue's targets and PASS/FAIL per row.

    .venv/bin/python bench/ingest.py [--entries 5000] [--repeat 3] [--json]

Writes a 5,000-entry RSS 2.0 file and a JSON Lines file of the same articles (three short
paragraphs of HTML, two tags, a date each) into a temporary directory, then measures with fresh
databases each time (median of --repeat runs, with the range over the runs beside it; the two
sides of each ratio are timed in the same round, one after the other):
- feedparser.parse() of the RSS file alone, with its default settings, vs. `digest`'s whole
  ingest of the same file (read + parse + sanitise + store); target >= 80% of feedparser's rate;
- JSON Lines ingestion rate; target >= 30,000 articles/s (beside it, for reference, the rate of
  its database writes alone, with every entry parsed and sanitised before the clock starts);
- first ingest vs. re-ingest of the unchanged source (RSS and JSON Lines); target >= 2x faster;
- JSON Lines ingestion with 50 tag rules stored (30 title keywords, 15 text keywords, 5 regexes;
  about a third of the articles match one) vs. without rules, each into a fresh database in the
  same round; target (issue 13) >= 80% of the rate without rules. The rules are compiled once
  per process (as in `digest ingest` or a `digest fetch` of many feeds): compiling is in the
  first round's time.
- sanitising (`clean_html`) one 1 MB entry of nested markup (a block that never closes, 12,500
  deep) vs. one of the same markup closed at every step (flat); target: nested costs <= 3x flat.
  Beside it, for reference, 1 MB of paragraphs that each leave a bold element open.
An ingest is `ingest_sources`, the library call behind `digest ingest`.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import feedparser  # noqa: E402

from digest.articles.sanitize import clean_html  # noqa: E402
from digest.articles.tagrules import RuleField  # noqa: E402
from digest.articles.tagstore import add_rule  # noqa: E402
from digest.articles.writes import BATCH_SIZE, _prepare, _render_all, _write  # noqa: E402
from digest.config import load_config  # noqa: E402
from digest.ingest.pipeline import ingest_sources  # noqa: E402
from digest.ingest.sources import parse_bytes  # noqa: E402
from digest.store import open_db  # noqa: E402
from digest.store.bulk import background_checkpoints  # noqa: E402

NOW = datetime(2025, 1, 24, 12, 0, tzinfo=UTC)
MAX_TEXT = load_config(None, env={}).ingest.max_text_bytes
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
]
TAGS = ["Haiti", "Kenya", "Climate", "Health", "Technology", "Culture"]


def articles(n: int) -> list[dict]:
    rnd = random.Random(2025)
    out = []
    for i in range(n):
        title = " ".join(rnd.choice(WORDS) for _ in range(7)).capitalize() + f" ({i})"
        body = "".join(
            f"<p>{' '.join(rnd.choice(WORDS) for _ in range(35)).capitalize()}.</p>"
            for _ in range(3)
        )
        out.append(
            {
                "id": f"bench-{i}",
                "title": title,
                "url": f"https://news.example.org/2025/01/{i}",
                "published": NOW - timedelta(minutes=7 * i),
                "tags": rnd.sample(TAGS, 2),
                "author": "Example desk",
                "content": body,
            }
        )
    return out


def write_rss(path: Path, items: list[dict]) -> None:
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        "<title>Bench</title><link>https://news.example.org/</link><description>b</description>"
    ]
    for a in items:
        cats = "".join(f"<category>{t}</category>" for t in a["tags"])
        parts.append(
            f'<item><guid isPermaLink="false">{a["id"]}</guid><title>{escape(a["title"])}</title>'
            f"<link>{a['url']}</link><pubDate>{format_datetime(a['published'])}</pubDate>"
            f"<author>desk@example.org (Example desk)</author>{cats}"
            f"<description>{escape(a['content'])}</description></item>\n"
        )
    parts.append("</channel></rss>\n")
    path.write_text("".join(parts), encoding="utf-8")


def write_jsonl(path: Path, items: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for a in items:
            f.write(json.dumps({**a, "published": a["published"].isoformat()}) + "\n")


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ingest_once(db, path: Path, config, *, fresh: bool = False) -> None:
    (report,) = ingest_sources(db, [str(path)], config=config, now=NOW)
    if not report.ok or report.total == 0 or (fresh and report.new != report.total):
        raise SystemExit(f"benchmark ingest went wrong: {report}")


@dataclass
class Rounds:
    """Per-round seconds of the first ingest, the re-ingest and the baseline (if any)."""

    first: list[float] = field(default_factory=list)
    again: list[float] = field(default_factory=list)
    base: list[float] = field(default_factory=list)
    count: int = 0


def first_and_again(tmp: Path, path: Path, config, repeat: int, baseline=None) -> Rounds:
    """First-ingest and re-ingest times (and of ``baseline``, timed in the same rounds so that
    load on a shared machine hits both alike)."""
    out = Rounds()
    for r in range(repeat):
        if baseline is not None:
            out.base.append(timed(baseline))
        # One database per source and round: bench.xml and bench.jsonl share a stem, and with
        # f"{path.stem}-{r}.db" the JSON Lines rounds updated the RSS rounds' 5,000 articles.
        db = open_db(tmp / f"{path.name}-{r}.db", create=True)
        out.first.append(timed(lambda db=db: ingest_once(db, path, config, fresh=True)))
        out.again.append(timed(lambda db=db: ingest_once(db, path, config)))
        out.count = db.execute("SELECT count(*) FROM articles").fetchone()[0]
        db.close()
    return out


def writes_alone(tmp: Path, path: Path, repeat: int) -> list[float]:
    """Seconds of the database writes of a JSON Lines ingest alone: every batch is parsed,
    keyed and sanitised before the clock starts, then written batch by batch as an ingest
    writes it (lookups, INSERTs with FTS5 indexing, tags, commits, WAL checkpoints). The rate an ingest could
    reach if everything else were free."""
    parsed = parse_bytes(path.read_bytes(), str(path))
    items = list(parsed.items)
    out = []
    for r in range(repeat):
        batches = []
        for start in range(0, len(items), BATCH_SIZE):
            batch = _prepare(items[start : start + BATCH_SIZE], tags=(), since=None, base_url=None)
            batches.append(_render_all(batch, max_text_bytes=MAX_TEXT, base_url=None))
        db = open_db(tmp / f"writes-alone-{r}.db", create=True)
        start_at = time.perf_counter()
        with background_checkpoints(db) as checkpoint:  # as ingest_source does
            for batch in batches:
                _write(db, batch, source=str(path), now=NOW, max_text_bytes=MAX_TEXT, base_url=None)
                checkpoint()
        out.append(time.perf_counter() - start_at)
        db.close()
    return out


# Two title keywords are words of the articles (each in ~20% of titles); the rest, as in a real
# newsroom's rules, are names and phrases most articles do not have.
RULE_KEYWORDS = [
    "carnival", "library", "Kenya", "Haïti", "Uganda", "Tanzania", "Rwanda", "Ethiopia",
    "Somalia", "Sudan", "Congo", "Nigeria", "Ghana", "Senegal", "cholera", "measles", "malaria",
    "floods", "hurricane", "police", "parliament", "budget", "coral reef", "climate change",
    "drought relief", "vaccine rollout", "Port-au-Prince", "solar power", "elections",
    "Cap-Haïtien", "Jacmel*", "Mombasa", "Kisumu", "Gonaïves", "Les Cayes", "Eldoret",
    "Nakuru", "Pétion-Ville", "Hinche", "Jérémie", "Garissa", "Lamu", "Malindi", "Thika",
    "Kitale",
]  # fmt: skip
RULE_REGEXES = [
    (RuleField.URL, r"/2025/01/1\d\d$"),
    (RuleField.TEXT, r"(cyclone|hurricane|storm) (season|warning)"),
    (RuleField.TITLE, r"\(\d*7\)$"),
    (RuleField.URL, r"/(opinion|analysis)/"),
    (RuleField.TEXT, r"solar (pumps?|panels?)"),
]


def add_rules(db, count: int) -> None:
    """``count`` tag rules: 60% title keywords, 30% text keywords, 10% regexes."""
    keywords = iter(RULE_KEYWORDS)
    for i in range(count):
        if i % 10 == 9:
            field, pattern = RULE_REGEXES[(i // 10) % len(RULE_REGEXES)]
            add_rule(db, f"R{i}", pattern, field=field, regex=True, now=NOW)
            continue
        keyword = next(keywords)
        field = RuleField.TITLE if i % 10 < 6 else RuleField.TEXT
        add_rule(db, keyword.rstrip("*").title(), keyword, field=field, now=NOW)


def with_rules(tmp: Path, path: Path, config, repeat: int, count: int = 50) -> Rounds:
    """Ingest times without (``base``) and with ``count`` stored rules (``first``), each into a
    fresh database, alternating which goes first; ``count`` is the articles the rules tagged."""
    out = Rounds()
    for r in range(repeat):
        plain = open_db(tmp / f"no-rules-{r}.db", create=True)
        ruled = open_db(tmp / f"rules-{r}.db", create=True)
        add_rules(ruled, count)
        order = [(plain, out.base), (ruled, out.first)]
        for db, times in order if r % 2 == 0 else reversed(order):
            times.append(timed(lambda db=db: ingest_once(db, path, config, fresh=True)))
        out.count = ruled.execute(
            "SELECT count(DISTINCT article_id) FROM article_tags WHERE origin = 'rule'"
        ).fetchone()[0]
        plain.close()
        ruled.close()
    return out


SANITISE_BYTES = 1_000_000
_UNIT = '<div class="story"><p>Some words of the story, <em>here</em> and there.</p>'
NESTED_DEPTH = SANITISE_BYTES // len(_UNIT + "</div>")


def sanitise_inputs() -> dict[str, str]:
    """1 MB each: the same units closed at every step (flat) or all left open (nested), and
    paragraphs that each leave a different bold element open."""
    k = NESTED_DEPTH
    unclosed = "".join(f"<p><b id=b{i}>Some words of the story." for i in range(k * 2))
    return {
        "flat": (_UNIT + "</div>") * k,
        "nested": _UNIT * k + "</div>" * k,
        "unclosed": unclosed[:SANITISE_BYTES],
    }


def sanitise_rounds(repeat: int) -> dict[str, list[float]]:
    inputs = sanitise_inputs()
    out: dict[str, list[float]] = {name: [] for name in inputs}
    for _ in range(repeat):
        for name, fragment in inputs.items():  # the sides of each ratio in the same round
            out[name].append(timed(lambda fragment=fragment: clean_html(fragment)))
    return out


def spread(values: list[float], fmt: str) -> str:
    return f"{fmt.format(min(values))}–{fmt.format(max(values))}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = parser.parse_args()
    config = load_config(None, env={})
    n = args.entries
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        items = articles(n)
        rss, jsonl = tmp / "bench.xml", tmp / "bench.jsonl"
        write_rss(rss, items)
        write_jsonl(jsonl, items)
        data = rss.read_bytes()

        rss = first_and_again(
            tmp, rss, config, args.repeat, baseline=lambda: feedparser.parse(data)
        )
        jl = first_and_again(tmp, jsonl, config, args.repeat)
        writes = writes_alone(tmp, jsonl, args.repeat)
        ruled = with_rules(tmp, jsonl, config, args.repeat)
    sanitise = sanitise_rounds(args.repeat)
    assert rss.count == jl.count == n, (rss.count, jl.count)
    med = statistics.median

    rows = []
    key_rows = set()  # shown in bench/run.py's summary besides the rows with a target

    def row(name: str, value: str, target: str, ok: bool | None, key: bool = False) -> None:
        rows.append((name, value, target, "" if ok is None else "PASS" if ok else "FAIL"))
        if key:
            key_rows.add(name)

    fp, rss_first = med(rss.base), med(rss.first)
    row(
        "feedparser.parse() alone, RSS",
        f"{n / fp:,.0f} entries/s ({fp:.2f} s, runs {spread(rss.base, '{:.2f}')} s)",
        "",
        None,
        True,
    )
    row(
        "digest ingest, same RSS file",
        f"{n / rss_first:,.0f} entries/s ({rss_first:.2f} s, runs {spread(rss.first, '{:.2f}')} s)",
        "",
        None,
        True,
    )
    ratios = [b / f for b, f in zip(rss.base, rss.first, strict=True)]
    ratio = med(ratios)
    row(
        "  ingest rate / feedparser rate",
        f"{ratio:.0%} (runs {spread(ratios, '{:.0%}')})",
        ">= 80%",
        ratio >= 0.8,
    )
    jl_first = med(jl.first)
    jl_rate = n / jl_first
    rates = [n / t for t in jl.first]
    row(
        "JSON Lines ingest",
        f"{jl_rate:,.0f} articles/s ({jl_first:.2f} s, runs {spread(rates, '{:,.0f}')}/s)",
        ">= 30,000/s",
        jl_rate >= 30_000,
    )
    w_rates = [n / t for t in writes]
    row(
        "  its database writes alone (parsed beforehand)",
        f"{n / med(writes):,.0f} articles/s ({med(writes):.2f} s, runs"
        f" {spread(w_rates, '{:,.0f}')}/s)",
        "",
        None,
        True,
    )
    for label, r in (("RSS", rss), ("JSON Lines", jl)):
        row(
            f"{label}: first ingest",
            f"{med(r.first):.2f} s (runs {spread(r.first, '{:.2f}')})",
            "",
            None,
        )
        row(
            f"{label}: unchanged re-ingest",
            f"{med(r.again):.3f} s (runs {spread(r.again, '{:.3f}')})",
            "",
            None,
        )
        speedups = [f / a for f, a in zip(r.first, r.again, strict=True)]
        speedup = med(speedups)
        row(
            f"  {label} re-ingest speed-up",
            f"{speedup:.1f}x (runs {spread(speedups, '{:.1f}')}x)",
            ">= 2x",
            speedup >= 2,
        )

    base_rate, ruled_rate = n / med(ruled.base), n / med(ruled.first)
    row(
        "JSON Lines ingest with 50 tag rules",
        f"{ruled_rate:,.0f} articles/s (without rules {base_rate:,.0f}/s; rules tagged"
        f" {ruled.count:,} articles)",
        "",
        None,
        True,
    )
    rule_ratios = [b / f for b, f in zip(ruled.base, ruled.first, strict=True)]
    rule_ratio = med(rule_ratios)
    row(
        "  rate with 50 rules / without",
        f"{rule_ratio:.0%} (runs {spread(rule_ratios, '{:.0%}')})",
        ">= 80%",
        rule_ratio >= 0.8,
    )
    flat = sanitise["flat"]
    row(
        "sanitise 1 MB entry, flat markup",
        f"{med(flat):.3f} s (runs {spread(flat, '{:.3f}')})",
        "",
        None,
    )
    for name, label in (
        ("nested", f"nested {NESTED_DEPTH:,} deep"),
        ("unclosed", "unclosed <b> per <p>"),
    ):
        times = sanitise[name]
        row(
            f"sanitise 1 MB entry, {label}",
            f"{med(times):.3f} s (runs {spread(times, '{:.3f}')})",
            "",
            None,
        )
        ratios = [t / f for t, f in zip(times, flat, strict=True)]
        row(
            f"  {name} / flat",
            f"{med(ratios):.2f}x (runs {spread(ratios, '{:.2f}')}x)",
            "<= 3x" if name == "nested" else "",
            med(ratios) <= 3 if name == "nested" else None,
            key=name == "nested",
        )

    if args.json:
        results = [
            {
                "measure": m.strip(),
                "value": v,
                "target": t,
                "result": r or None,
                "key": m in key_rows,
            }
            for m, v, t, r in rows
        ]
        settings = {"entries": n, "repeat": args.repeat}
        print(json.dumps({"benchmark": "ingest", "settings": settings, "rows": results}))
        return
    widths = [
        max(len(r[i]) for r in [("what", "measured", "target", "result"), *rows]) for i in range(4)
    ]
    header = ("what", "measured", "target", "result")
    print(f"ingest benchmark: {n:,} entries, median of {args.repeat} runs, fresh database each run")
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
