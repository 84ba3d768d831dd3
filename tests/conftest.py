"""Shared fixtures: real SQLite files in tmp_path, a CLI runner bound to them."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import cli
from digest.store import open_db


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "digest.db"


@pytest.fixture
def db(db_path: Path):
    database = open_db(db_path)
    yield database
    database.close()


@pytest.fixture
def run(db_path: Path, tmp_path: Path, monkeypatch):
    """Run the CLI against this test's database: ``run("ingest", "feed.xml")``.
    Returns click's Result; the working directory is tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    monkeypatch.delenv("DIGEST_BASE_URL", raising=False)
    monkeypatch.delenv("DIGEST_SMTP_URL", raising=False)
    monkeypatch.setenv("DIGEST_SECRET", "test-secret")
    runner = CliRunner()

    def _run(*args: str, input: str | None = None):
        return runner.invoke(
            cli, ["--db", str(db_path), *args], input=input, catch_exceptions=False
        )

    return _run


# ---- digests area: rows inserted directly into the schema (ingest/subscribers APIs are
# written in parallel; the lead may switch these to the real functions after merging).


class Newsroom:
    """Insert lists, tagged articles and subscriptions straight into a real SQLite store."""

    STAMP = "2025-01-01T00:00:00.000000+00:00"

    def __init__(self, database):
        self.db = database
        self._n = 0

    def add_list(self, slug="world", *, tags=("Haiti", "Kenya"), timezone="UTC", **extra):
        import json

        row = {
            "slug": slug,
            "title": extra.pop("title", "World Desk"),
            "from_addr": extra.pop("from_addr", "World Desk <news@news.example.com>"),
            "reply_to": extra.pop("reply_to", None),
            "tags": json.dumps(list(tags), ensure_ascii=False),
            "timezone": timezone,
            "send_time": extra.pop("send_time", "07:00"),
            "weekly_day": extra.pop("weekly_day", "monday"),
            "description": extra.pop("description", None),
            "created_at": self.STAMP,
            "updated_at": self.STAMP,
        }
        assert not extra, extra
        self.db["lists"].insert(row)
        from digest.lists import get_list

        return get_list(self.db, slug)

    def tag_id(self, name):
        from digest.store import tag_key

        key = tag_key(name)
        row = self.db.execute("SELECT id FROM tags WHERE key = ?", [key]).fetchone()
        if row:
            return row[0]
        return self.db["tags"].insert({"key": key, "name": name}).last_pk

    def add_article(self, title, published, *, tags=(), ingested=None, summary=None, url=None):
        """``published``/``ingested``: aware datetimes (ingested defaults to published)."""
        from digest.timeutil import to_iso

        self._n += 1
        n = self._n
        article_id = (
            self.db["articles"]
            .insert(
                {
                    "key": f"article-{n}",
                    "canonical_url": url or f"https://example.org/a/{n}",
                    "url": url or f"https://example.org/a/{n}",
                    "title": title,
                    "author": None,
                    "published_at": to_iso(published),
                    "summary": summary if summary is not None else f"<p>Summary of {title}.</p>",
                    "content_html": None,
                    "text": f"Text of {title}.",
                    "content_hash": f"h{n}",
                    "source": "test",
                    "ingested_at": to_iso(ingested or published),
                    "updated_at": to_iso(ingested or published),
                }
            )
            .last_pk
        )
        for name in tags:
            self.db["article_tags"].insert({"article_id": article_id, "tag_id": self.tag_id(name)})
        return article_id

    def subscribe(self, mlist, email, *, tags=(), frequency="daily", status="active", name=None):
        import json

        from digest.store import tag_key

        row = self.db.execute("SELECT id FROM subscribers WHERE email = ?", [email]).fetchone()
        sub_id = (
            row[0]
            if row
            else self.db["subscribers"]
            .insert({"email": email, "name": name, "created_at": self.STAMP})
            .last_pk
        )
        self.db["subscriptions"].insert(
            {
                "subscriber_id": sub_id,
                "list_id": mlist.id,
                "frequency": frequency,
                "tags": json.dumps([tag_key(t) for t in tags], ensure_ascii=False),
                "status": status,
                "created_at": self.STAMP,
                "updated_at": self.STAMP,
            }
        )
        return sub_id


@pytest.fixture
def newsroom(db):
    return Newsroom(db)
