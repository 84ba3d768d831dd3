"""The store the bounce fixtures were written against, made through the library: list
``world-news`` (id 1, From digest@news.example.org) whose daily digest of 2025-01-21 went to
subscribers 1..40, subscriber N by delivery N + 84 (a filler list's digest took deliveries
1..84). So every fixture's VERP token (signed with ``test-secret``), returned Message-ID and
List-Unsubscribe link names a real delivery and subscriber, as in production."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from sqlite_utils import Database

from digest.audience.lists import MailingList, create_list
from digest.audience.subscriptions import add_subscription
from digest.delivery import ledger
from digest.issues.periods import issue_for
from digest.issues.render import RenderReport
from digest.issues.store import fill_variant, insert_digest, insert_variants, stored_variants
from digest.issues.template import (
    build_template,
    html_placeholder,
    new_placeholder_key,
    text_placeholder,
)
from digest.store import transaction

SECRET = b"test-secret"
STAMP = datetime(2025, 1, 1, tzinfo=UTC)
BUILT = datetime(2025, 1, 21, 4, 0, tzinfo=UTC)
DELIVERY_OFFSET = 84

# Subscriber id -> address, as the fixtures name them (the others are fillers).
NAMED = {
    17: "alice@example.com",
    18: "bruno@example.net",
    19: "chen@example.com",
    20: "bob@example.net",
    21: "dora@example.de",
    22: "carol@contoso.example",
    23: "dave@corp.example",
    24: "erin@gmail.com",
    25: "gus@gmail.com",
    26: "frank@yahoo.com",
    27: "hana@yahoo.com",
    28: "ivan@example.ru",
    29: "pia@example.com",  # behind a gateway that hides the recipient (verp-hidden-recipient)
    30: "jo@alumni.example.edu",  # forwards to j.smith@internal.example.com (verp-forwarded-dsn)
    31: "kim@aol.com",
    32: "lee@hotmail.com",
    33: "mia@corp.example",
    34: "nils@example.se",
    35: "olga@example.org",
    36: "pat@example.com",
    40: "old@example.org",
}
COUNT = 40


def address(subscriber_id: int) -> str:
    return NAMED.get(subscriber_id, f"reader{subscriber_id}@example.com")


def queue_digest(
    db: Database, mlist: MailingList, label: str, emails: list[str], *, frequency: str = "daily"
) -> int:
    """A built digest of ``mlist`` for ``label`` with one variant, queued for ``emails`` (each
    subscribed to the tag ``label``, so this digest is theirs alone). Returns its id."""
    for email in emails:
        add_subscription(db, mlist, email, confirmed=True, tags=[label], frequency=frequency,
                         source="fixture", now=STAMP)  # fmt: skip
    key = new_placeholder_key()
    template = build_template(
        [("From", mlist.from_addr), ("Subject", f"{mlist.title} {label}"),
         ("Date", "Tue, 21 Jan 2025 07:00:00 +0000")],
        f"Hello {text_placeholder('NAME', key)}\n\nUnsubscribe: "
        f"{text_placeholder('UNSUBSCRIBE_URL', key)}\n",
        f"<p>Hello {html_placeholder('NAME', key)}</p>"
        f'<p><a href="{html_placeholder("UNSUBSCRIBE_URL", key)}">Unsubscribe</a></p>',
        boundary_seed=f"{mlist.slug}-{label}",
        key=key,
    )  # fmt: skip
    period = issue_for(mlist, frequency, date.fromisoformat(label))
    with transaction(db):
        digest_id = insert_digest(db, mlist, period, [], now=BUILT)
        insert_variants(db, digest_id, [""])
        variant_id = stored_variants(db, digest_id)[""][0]
        fill_variant(db, variant_id, subject=f"{mlist.title} {label}", template=template,
                     article_count=1, cut_count=0, report=RenderReport())  # fmt: skip
        ledger.enqueue(db, digest_id, list_id=mlist.id, frequency=frequency,
                       variant_of_tags={json.dumps([label]): variant_id}, now=BUILT)  # fmt: skip
    return digest_id


def build_world(db: Database) -> int:
    """The fixtures' store (see the module docstring). Returns the world-news digest's id."""
    world = create_list(db, "world-news", title="World News",
                        from_addr="World News <digest@news.example.org>", now=STAMP)  # fmt: skip
    for n in range(1, COUNT + 1):
        add_subscription(db, world, address(n), confirmed=True, source="fixture", now=STAMP)
    filler = create_list(db, "filler", title="Filler", from_addr="f@news.example.org", now=STAMP)
    queue_digest(db, filler, "2025-01-20", [f"filler{n}@example.com" for n in range(84)])
    digest_id = queue_digest(db, world, "2025-01-21", [address(n) for n in range(1, COUNT + 1)])
    rows = db.execute(
        "SELECT id, subscriber_id FROM deliveries WHERE digest_id = ?", [digest_id]
    ).fetchall()
    assert all(d == s + DELIVERY_OFFSET for d, s in rows) and len(rows) == COUNT, rows[:3]
    assert world.id == 1
    return digest_id
