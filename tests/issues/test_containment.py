"""A failure belongs to the smallest thing that failed: a variant that cannot be rendered fails
only its own deliveries (recorded with the reason), an issue that cannot be built fails alone,
and `digest run` keeps ticking and logs each failure once."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from conftest import SmtpHandler

from digest.config import load_config, parse_smtp_url
from digest.delivery import publish
from digest.delivery.publish import build_digest, build_due
from digest.delivery.transports import SmtpTransport
from digest.scheduler import tick as tick_module
from digest.scheduler.runner import run
from digest.scheduler.tick import tick

NOW = datetime(2025, 1, 21, 4, 0, tzinfo=UTC)
ISSUE = date(2025, 1, 21)
TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def _breaking_templates(tmp_path: Path) -> Path:
    """An editor's digest.html that fails (ZeroDivisionError) for any variant with a Kenya
    section: a data-dependent failure, not a broken template."""
    folder = tmp_path / "mytemplates" / "email"
    folder.mkdir(parents=True)
    text = (TEMPLATES / "email" / "digest.html").read_text(encoding="utf-8")
    trap = (
        '{% for s in sections %}{% if s.name == "Kenya" %}'
        "{{ (sections|length) // 0 }}{% endif %}{% endfor %}\n"
    )
    text = text.replace("{% block content %}\n", "{% block content %}\n" + trap, 1)
    (folder / "digest.html").write_text(text, encoding="utf-8")
    config_file = tmp_path / "digest.toml"
    config_file.write_text('templates_dir = "mytemplates"\n', encoding="utf-8")
    return config_file


def _newsroom(newsroom):
    world = newsroom.add_list()
    newsroom.add_article("Haiti story", datetime(2025, 1, 20, 9, tzinfo=UTC), tags=["Haiti"])
    newsroom.add_article("Kenya story", datetime(2025, 1, 20, 10, tzinfo=UTC), tags=["Kenya"])
    newsroom.subscribe(world, "haiti@example.com", tags=["Haiti"])
    newsroom.subscribe(world, "kenya@example.com", tags=["Kenya"])
    newsroom.subscribe(world, "both@example.com")
    return world


def test_a_variant_that_cannot_render_fails_only_its_deliveries(db, newsroom, tmp_path):
    world = _newsroom(newsroom)
    config = load_config(_breaking_templates(tmp_path), env={})
    built = build_digest(db, config, world, "daily", ISSUE, now=NOW)
    by_key = {v.tags_key: v for v in built.variants}
    assert by_key["haiti"].error is None and not by_key["haiti"].empty
    for key in ("kenya", ""):  # both variants have a Kenya section
        assert by_key[key].error and "ZeroDivisionError" in by_key[key].error
    rows = dict(db.execute("SELECT email, status FROM deliveries").fetchall())
    assert rows == {
        "haiti@example.com": "queued",
        "kenya@example.com": "failed",
        "both@example.com": "failed",
    }
    reply = db.execute("SELECT reply FROM deliveries WHERE email = 'kenya@example.com'").fetchone()[
        0
    ]
    assert reply.startswith("not rendered (ZeroDivisionError")


def test_the_cli_names_the_failed_variant(run, newsroom, db, tmp_path):
    _newsroom(newsroom)
    _breaking_templates(tmp_path)
    result = run("build", "--date", "2025-01-21", "--force")
    assert result.exit_code == 0, result.output
    assert "failed: variant kenya not rendered (ZeroDivisionError" in result.output
    assert "Traceback" not in result.output


def test_one_list_that_cannot_be_built_does_not_stop_the_others(db, newsroom, monkeypatch):
    _newsroom(newsroom)
    other = newsroom.add_list("science", tags=("Haiti",), title="Science Desk")
    newsroom.subscribe(other, "sci@example.com")
    real = publish.build_digest

    def fails_for_world(db, config, mlist, *args, **kwargs):
        if mlist.slug == "world":
            raise KeyError("a bug that only world's data triggers")
        return real(db, config, mlist, *args, **kwargs)

    monkeypatch.setattr(publish, "build_digest", fails_for_world)
    failures: list[publish.BuildFailure] = []
    built = build_due(db, load_config(None, env={}), now=NOW + timedelta(minutes=1),
                      failures=failures)  # fmt: skip
    assert [b.mailing_list.slug for b in built] == ["science"]
    assert failures == [
        publish.BuildFailure("world", "daily", 'KeyError: "a bug that only world\'s data triggers"')
    ]


def test_the_scheduler_keeps_going_and_logs_a_repeated_failure_once(
    db, db_path, newsroom, smtp_server, monkeypatch, caplog
):
    _newsroom(newsroom)
    other = newsroom.add_list("science", tags=("Haiti",), title="Science Desk")
    newsroom.subscribe(other, "sci@example.com")
    real = tick_module.build_digest

    def fails_for_world(db, config, mlist, *args, **kwargs):
        if mlist.slug == "world":
            raise RuntimeError("boom")
        return real(db, config, mlist, *args, **kwargs)

    monkeypatch.setattr(tick_module, "build_digest", fails_for_world)
    server = smtp_server(SmtpHandler())
    transport = SmtpTransport([parse_smtp_url(server.url())], timeout=5)
    config = load_config(None, env={})
    at = datetime(2025, 1, 21, 7, 1, tzinfo=UTC)
    logged: set[str] = set()
    with caplog.at_level(logging.ERROR, logger="digest.scheduler"):
        first = tick(db, config, now=at, secret=b"s", transport=transport, logged=logged)
        second = tick(db, config, now=at + timedelta(minutes=1), secret=b"s",
                      transport=transport, logged=logged)  # fmt: skip
    assert first.errors == ["building world/daily/2025-01-21 failed: RuntimeError: boom"]
    assert second.errors == first.errors  # tried again...
    failed_lines = [r for r in caplog.records if "failed: RuntimeError: boom" in r.getMessage()]
    assert len(failed_lines) == 1  # ...but logged once
    assert [b.mailing_list.slug for b in first.built] == ["science"]
    assert server.handler.recipients() == ["sci@example.com"]


def test_run_survives_a_tick_that_raises(db_path, newsroom, monkeypatch):
    newsroom.add_list()
    calls = []

    def exploding_tick(*args, **kwargs):
        calls.append(1)
        if len(calls) >= 3:
            stop.set()
        raise ValueError("unexpected")

    import digest.scheduler.runner as runner

    monkeypatch.setattr(runner, "tick", exploding_tick)
    stop = threading.Event()
    run(db_path, load_config(None, env={}), secret=b"s", stop_event=stop, tick_seconds=0.05,
        clock=lambda: NOW)  # fmt: skip
    assert len(calls) >= 3  # it kept ticking
