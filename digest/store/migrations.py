"""The schema: versioned migrations (sqlite-utils ``Migrations``), one function per schema
version, applied by ``store.open_db``.

Schema overview (each later step reads what the previous one stored):
- articles, tags, article_tags, articles_fts, article_urls: what ingestion stored (article_urls:
  the other URLs of an article, to recognise one story across pages and feeds);
- tag_aliases, tag_rules: old tag names and Atom terms, and editors' tag rules;
- feeds: registered feed URLs and their polling state;
- full_text_pages: the linked pages fetched for summary-only feeds (``ingest.fulltext``);
- lists (private: hidden from the home page and the archive), subscribers, subscriptions,
  status_events, suppressions: who gets what;
- digests, digest_articles, variants: built digests and their rendered message templates (a
  private list's digest has a ``web_key``: its web version is shown only to links with it);
- deliveries: the delivery ledger, one row per (digest, subscriber);
- schedule_events, schedule_state: what the scheduler (``digest run``) skipped, and its last tick;
- source_states: what each ingested file or URL looked like, to skip unchanged re-ingests;
- instance: this database's random identifier (in every Message-ID);
- staff_sessions: logged-in staff sessions of ``digest serve`` (written by ``users``);
- notices: the outbox of transactional emails such as confirmations (``delivery.notices``);
- bounce_events: bounces, complaints and provider events about subscribers (``feedback.events``).

Addresses are compared by ``identity`` (the whole address lower-cased, m018): subscribers,
status_events and suppressions carry it; ``email`` is the address as first entered.

Never edit a migration that has shipped; add a new one.
"""

from __future__ import annotations

import logging
import re
import secrets
import sqlite3
from datetime import UTC, datetime

from sqlite_utils import Database, Migrations

from ..addresses import folded_identity, identity_key
from .identity_merge import merge_case_variants

log = logging.getLogger("digest.store")

migrations = Migrations("digest")


@migrations()
def m001_articles(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE articles (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,          -- guid/id, else canonical URL, else content hash
            canonical_url TEXT,                -- normalised URL, for matching across sources
            url TEXT,
            title TEXT NOT NULL,
            author TEXT,
            published_at TEXT NOT NULL,        -- UTC ISO 8601 (timeutil.to_iso)
            summary TEXT,                      -- sanitised HTML
            content_html TEXT,                 -- sanitised HTML
            text TEXT,                         -- plain text of the content
            content_hash TEXT NOT NULL,        -- hash of title+content, to detect updates
            source TEXT NOT NULL,              -- where it was first ingested from
            note TEXT,                         -- e.g. 'text truncated from 2.1 MB to 200 KB'
            ingested_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX idx_articles_canonical_url ON articles(canonical_url)")
    db.execute("CREATE INDEX idx_articles_published_at ON articles(published_at)")
    db.execute("CREATE INDEX idx_articles_ingested_at ON articles(ingested_at)")
    db.execute(
        """
        CREATE TABLE tags (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,          -- tag_key(name): trimmed, case-folded, spaces collapsed
            name TEXT NOT NULL                 -- display name, as first seen
        )
        """
    )
    db.execute(
        """
        CREATE TABLE article_tags (
            article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
            tag_id INTEGER NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
            PRIMARY KEY (article_id, tag_id)
        )
        """
    )
    db.execute("CREATE INDEX idx_article_tags_tag ON article_tags(tag_id)")
    db.table("articles").enable_fts(["title", "summary", "text"], create_triggers=True)
    db.execute(
        """
        CREATE TABLE feeds (
            id INTEGER PRIMARY KEY,
            url TEXT NOT NULL UNIQUE,
            tags TEXT NOT NULL DEFAULT '[]',   -- JSON list of tag display names added to entries
            etag TEXT,
            last_modified TEXT,
            last_fetched_at TEXT,
            last_success_at TEXT,
            last_error TEXT,
            last_error_at TEXT,
            created_at TEXT NOT NULL
        )
        """
    )


@migrations()
def m002_subscribers(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE lists (
            id INTEGER PRIMARY KEY,
            slug TEXT NOT NULL UNIQUE,
            title TEXT NOT NULL,
            from_addr TEXT NOT NULL,           -- 'Name <addr@domain>'
            reply_to TEXT,
            tags TEXT NOT NULL DEFAULT '[]',   -- JSON list of tag display names, in section order; [] = all
            timezone TEXT NOT NULL DEFAULT 'UTC',
            send_time TEXT NOT NULL DEFAULT '07:00',
            weekly_day TEXT NOT NULL DEFAULT 'monday',
            description TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            deleted_at TEXT                    -- set by `lists delete` when sent digests keep it for the archive
        )
        """
    )
    db.execute(
        """
        CREATE TABLE subscribers (
            id INTEGER PRIMARY KEY,
            email TEXT NOT NULL UNIQUE,        -- normalised with email-validator
            name TEXT,
            created_at TEXT NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE subscriptions (
            id INTEGER PRIMARY KEY,
            subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
            list_id INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
            frequency TEXT NOT NULL CHECK (frequency IN ('daily', 'weekly')),
            tags TEXT NOT NULL DEFAULT '[]',   -- JSON list of tag keys; [] = all of the list's tags
            status TEXT NOT NULL CHECK (status IN
                ('pending', 'active', 'unsubscribed', 'bounced', 'complained')),
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            confirmed_at TEXT,
            UNIQUE (subscriber_id, list_id)
        )
        """
    )
    db.execute("CREATE INDEX idx_subscriptions_list ON subscriptions(list_id, status, frequency)")
    db.execute(
        """
        CREATE TABLE status_events (
            id INTEGER PRIMARY KEY,
            email TEXT NOT NULL,
            list_slug TEXT,                    -- NULL: applies to every list (e.g. suppression)
            old_status TEXT,
            new_status TEXT NOT NULL,
            source TEXT NOT NULL,              -- cli | import | sync | web | bounce
            reason TEXT,
            at TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX idx_status_events_email ON status_events(email)")
    db.execute(
        """
        CREATE TABLE suppressions (
            email TEXT PRIMARY KEY,            -- normalised address
            reason TEXT,
            source TEXT NOT NULL,
            created_at TEXT NOT NULL
        )
        """
    )


@migrations()
def m003_digests(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE digests (
            id INTEGER PRIMARY KEY,
            list_id INTEGER NOT NULL REFERENCES lists(id),
            frequency TEXT NOT NULL CHECK (frequency IN ('daily', 'weekly')),
            period_start TEXT NOT NULL,        -- UTC instant of the local period start
            period_end TEXT NOT NULL,          -- UTC instant, exclusive
            period_label TEXT NOT NULL,        -- issue date: local date it is sent, YYYY-MM-DD
            built_at TEXT NOT NULL,
            UNIQUE (list_id, frequency, period_start)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE digest_articles (
            digest_id INTEGER NOT NULL REFERENCES digests(id) ON DELETE CASCADE,
            article_id INTEGER NOT NULL REFERENCES articles(id),
            position INTEGER NOT NULL,
            PRIMARY KEY (digest_id, article_id)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE variants (
            id INTEGER PRIMARY KEY,
            digest_id INTEGER NOT NULL REFERENCES digests(id) ON DELETE CASCADE,
            tags_key TEXT NOT NULL,            -- sorted tag keys joined by ',' ; '' = all tags
            subject TEXT NOT NULL,
            template BLOB,                     -- encoded message with placeholders (messages.py); NULL = empty variant
            article_count INTEGER NOT NULL,
            cut_count INTEGER NOT NULL DEFAULT 0,
            html_size INTEGER NOT NULL DEFAULT 0,
            style_size INTEGER NOT NULL DEFAULT 0,
            report TEXT NOT NULL DEFAULT '{}', -- JSON: sections, counts, links...
            UNIQUE (digest_id, tags_key)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY,
            digest_id INTEGER NOT NULL REFERENCES digests(id),
            variant_id INTEGER NOT NULL REFERENCES variants(id),
            subscriber_id INTEGER NOT NULL,    -- no FK: the ledger outlives `subscribers remove`
            email TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN
                ('queued', 'sent', 'deferred', 'failed', 'skipped')),
            attempts INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT,                  -- set while a sender has claimed it
            lease_until TEXT,
            next_attempt_at TEXT,              -- NULL = now
            message_id TEXT,
            relay TEXT,
            reply TEXT,                        -- last server reply or error
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            sent_at TEXT,
            UNIQUE (digest_id, subscriber_id)
        )
        """
    )
    db.execute("CREATE INDEX idx_deliveries_due ON deliveries(status, next_attempt_at)")


@migrations()
def m004_ledger(db: Database) -> None:
    # Claiming scans only the deliveries still owed, in id order, however many were sent before.
    db.execute(
        "CREATE INDEX idx_deliveries_pending ON deliveries(id)"
        " WHERE status IN ('queued', 'deferred')"
    )
    # `digest deliveries`: counts per digest and status without reading the rows.
    db.execute("CREATE INDEX idx_deliveries_digest_status ON deliveries(digest_id, status)")
    # The hourly rate limit counts what was sent in the last hour, across runs and processes.
    db.execute(
        "CREATE INDEX idx_deliveries_sent_at ON deliveries(sent_at) WHERE sent_at IS NOT NULL"
    )


@migrations()
def m005_web_users(db: Database) -> None:
    # Editor and admin accounts for `digest serve`. Subscribers never log in (they use signed
    # links), so this table is only for staff.
    db.execute(
        """
        CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            role TEXT NOT NULL CHECK (role IN ('editor', 'admin')),
            password_hash TEXT NOT NULL,       -- werkzeug scrypt hash, never the password
            created_at TEXT NOT NULL,
            last_login_at TEXT
        )
        """
    )


@migrations()
def m006_scheduler(db: Database) -> None:
    # What `digest run` decided without building anything: issues skipped because they were
    # too late to send ("never a flood of stale digests"). One row per issue, so a skip is
    # logged once however many ticks see it.
    db.execute(
        """
        CREATE TABLE schedule_events (
            id INTEGER PRIMARY KEY,
            list_id INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
            frequency TEXT NOT NULL CHECK (frequency IN ('daily', 'weekly')),
            period_label TEXT NOT NULL,        -- issue date, as digests.period_label
            kind TEXT NOT NULL CHECK (kind IN ('skipped')),
            detail TEXT NOT NULL,              -- why, for `digest status` and the log
            at TEXT NOT NULL,
            UNIQUE (list_id, frequency, period_label, kind)
        )
        """
    )
    # Scheduler bookkeeping: last_tick_at (the `now` of the latest tick) bounds the search for
    # issues missed while no scheduler was running.
    db.execute(
        """
        CREATE TABLE schedule_state (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )
        """
    )


@migrations()
def m007_perf(db: Database) -> None:
    # What each file or URL source looked like when it was last ingested: a hash of its bytes
    # and the ingest options, the articles it maps to and a hash of their stored state. A
    # re-ingest of the same bytes whose articles are still as stored is recognised without
    # parsing the source again (feedparser is most of an RSS ingest's time).
    db.execute(
        """
        CREATE TABLE source_states (
            source TEXT PRIMARY KEY,           -- as the user named it (path or URL)
            fingerprint TEXT NOT NULL,         -- sha256 of the bytes + ingest options
            kind TEXT NOT NULL,
            article_ids TEXT NOT NULL,         -- JSON list of the article ids of its entries
            state TEXT NOT NULL,               -- sha256 of those articles' content hashes and tags
            unchanged INTEGER NOT NULL,        -- entries stored (reported as unchanged next time)
            skipped INTEGER NOT NULL,          -- entries before --since
            ingested_at TEXT NOT NULL
        )
        """
    )


@migrations()
def m008_audience(db: Database) -> None:
    # Building a digest groups a list's active subscriptions of one frequency by tag set; with
    # the tags in the index that is an index-only scan in tag order, not a sort of every row.
    db.execute(
        "CREATE INDEX idx_subscriptions_audience ON subscriptions(list_id, frequency, status, tags)"
    )


@migrations()
def m009_instance(db: Database) -> None:
    # A random identifier made once per database (store/instance.py): it goes into every
    # Message-ID, so two installations, or a database rebuilt from scratch, never reuse one.
    db.execute("CREATE TABLE instance (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO instance (key, value) VALUES ('id', ?)", [secrets.token_hex(5)])


@migrations()
def m010_contain_web_sessions(db: Database) -> None:
    # Staff sessions of `digest serve`, kept on the server so that logging out (or removing the
    # account, or changing its password) ends a session for every copy of its cookie. The
    # cookie holds a random token; only its SHA-256 is stored, so a copy of the database does
    # not let anyone log in.
    db.execute(
        """
        CREATE TABLE staff_sessions (
            token_hash TEXT PRIMARY KEY,       -- sha256 hex of the cookie's session token
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            auth_stamp TEXT NOT NULL,          -- users.User.auth_stamp at login (password hash)
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL           -- created_at + [web] session_hours
        )
        """
    )
    db.execute("CREATE INDEX idx_staff_sessions_user ON staff_sessions(user_id)")
    db.execute("CREATE INDEX idx_staff_sessions_expires ON staff_sessions(expires_at)")


@migrations()
def m011_contain_web_notices(db: Database) -> None:
    # The outbox of transactional emails (confirmation links). A subscribe form only writes a
    # row here, so every outcome answers at the same speed; `digest serve`'s worker thread,
    # `digest run` and `digest send` send them, retrying when the relay fails. The message is
    # made at send time from the row (its link token issued at created_at), so no token is
    # stored.
    db.execute(
        """
        CREATE TABLE notices (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('confirm')),
            subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
            list_id INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
            status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN
                ('queued', 'sent', 'failed', 'skipped')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,     -- queued: not before this
            lease_until TEXT,                  -- set while a sender holds it
            reply TEXT,                        -- last server reply or error
            created_at TEXT NOT NULL,          -- the request; the link token is issued at this time
            updated_at TEXT NOT NULL,
            sent_at TEXT
        )
        """
    )
    db.execute("CREATE INDEX idx_notices_due ON notices(next_attempt_at) WHERE status = 'queued'")
    db.execute("CREATE INDEX idx_notices_subscriber ON notices(subscriber_id, list_id, kind)")
    db.execute("CREATE INDEX idx_notices_list ON notices(list_id)")


@migrations()
def m012_email_wiring_list_settings(db: Database) -> None:
    # How a list's emails look and read (audience/lists.py checks every value when it is set):
    # its language, lead images, brand, subject pattern and default intro; and its editors'
    # approval workflow (issues/approval.py).
    for column in (
        "language TEXT NOT NULL DEFAULT 'en'",  # BCP 47 / POSIX code Babel knows (i18n)
        "images TEXT NOT NULL DEFAULT 'none' CHECK (images IN ('none', 'lead', 'thumbnails'))",
        "logo_url TEXT",  # absolute http(s)
        "logo_width INTEGER",  # px as shown (scaled to fit the sheet)
        "logo_height INTEGER",
        "accent TEXT",  # hex colour with 4.5:1 contrast on white
        "footer_text TEXT",
        "postal_address TEXT",  # CAN-SPAM: a physical postal address
        "subject_pattern TEXT",  # NULL: templates/email/subject.txt
        "intro TEXT",  # shown at the top of every issue without a note
        "approval INTEGER NOT NULL DEFAULT 0",  # 1: issues wait for an editor's approval
        "approval_lead_minutes INTEGER NOT NULL DEFAULT 120",  # built this long before sending
        "approval_deadline_minutes INTEGER NOT NULL DEFAULT 60",  # approval accepted until
        "editors TEXT NOT NULL DEFAULT '[]'",  # JSON list of addresses told an issue awaits
    ):
        db.execute(f"ALTER TABLE lists ADD COLUMN {column}")


@migrations()
def m013_email_wiring_issue_edits(db: Database) -> None:
    # What editors did to an issue before it went out (issues/edits.py): an intro note, pinned
    # and dropped articles. Keyed by list and issue date: an edit applies to every issue of the
    # list dated that day (daily, and weekly on the weekly day). article_id 0 for a note.
    db.execute(
        """
        CREATE TABLE issue_edits (
            id INTEGER PRIMARY KEY,
            list_id INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
            issue_date TEXT NOT NULL,          -- YYYY-MM-DD, as digests.period_label
            kind TEXT NOT NULL CHECK (kind IN ('note', 'pin', 'drop')),
            article_id INTEGER NOT NULL DEFAULT 0,
            text TEXT,                         -- the note
            edited_by TEXT NOT NULL,           -- staff user name, or 'cli'
            at TEXT NOT NULL,
            UNIQUE (list_id, issue_date, kind, article_id)
        )
        """
    )
    # Which edits a stored digest was rendered with (a hash): a build that finds them changed
    # re-renders the digest's variants in place (deliveries already sent stay sent).
    db.execute("ALTER TABLE digests ADD COLUMN edits_hash TEXT NOT NULL DEFAULT ''")
    # The approval of each issue of a list in approval mode (issues/approval.py).
    db.execute(
        """
        CREATE TABLE issue_approvals (
            id INTEGER PRIMARY KEY,
            list_id INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
            frequency TEXT NOT NULL CHECK (frequency IN ('daily', 'weekly')),
            period_label TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('awaiting', 'approved', 'skipped')),
            requested_at TEXT NOT NULL,        -- when the draft was built
            notified_at TEXT,                  -- when the editors were told (NULL: not yet)
            notify_error TEXT,                 -- why telling them failed (retried next tick)
            decided_at TEXT,
            decided_by TEXT,
            detail TEXT,                       -- why it was skipped
            released_at TEXT,                  -- when its deliveries were queued
            UNIQUE (list_id, frequency, period_label)
        )
        """
    )


@migrations()
def m014_tags_wiring_tags(db: Database) -> None:
    # Where each article's tag came from: the entry itself ('source': its categories, or the
    # feed-level categories of a feed whose entries have none), the ingest or feed's --tag
    # ('feed'), or an editor's tag rule ('rule'). `digest tags apply` changes only rule rows.
    db.execute(
        "ALTER TABLE article_tags ADD COLUMN origin TEXT NOT NULL DEFAULT 'source'"
        " CHECK (origin IN ('source', 'feed', 'rule'))"
    )
    # `digest tags apply` reads every rule-given tag; most rows are not.
    db.execute(
        "CREATE INDEX idx_article_tags_rule ON article_tags(article_id, tag_id)"
        " WHERE origin = 'rule'"
    )
    # A hidden tag (`digest tags hide`, e.g. 'Featured') stays on its articles but is never a
    # section and never offered to subscribers.
    db.execute("ALTER TABLE tags ADD COLUMN hidden INTEGER NOT NULL DEFAULT 0")
    db.execute(
        """
        CREATE TABLE tag_aliases (
            alias_key TEXT PRIMARY KEY,        -- a tag key that now means another tag: an old
                                               -- name (rename, merge) or an Atom term whose
                                               -- label is the tag's name
            tag_id INTEGER NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
            created_at TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX idx_tag_aliases_tag ON tag_aliases(tag_id)")
    db.execute(
        """
        CREATE TABLE tag_rules (
            id INTEGER PRIMARY KEY,
            tag_id INTEGER NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
            pattern TEXT NOT NULL,             -- a keyword, or an RE2 regex when regex = 1
            field TEXT NOT NULL CHECK (field IN ('title', 'text', 'url', 'author', 'source')),
            feed_url TEXT NOT NULL DEFAULT '', -- only articles ingested from this feed; '' = any
            regex INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            UNIQUE (tag_id, pattern, field, feed_url, regex)
        )
        """
    )
    # One lead image per article (articles/leadimage.py): an absolute http(s) URL, its size in
    # pixels when the source gave it, and its alt text.
    for column, kind in (
        ("image_url", "TEXT"),
        ("image_width", "INTEGER"),
        ("image_height", "INTEGER"),
        ("image_alt", "TEXT"),
    ):
        db.execute(f"ALTER TABLE articles ADD COLUMN {column} {kind}")
    # The title of the last section of a list that covers every tag, which holds the articles
    # without a tag; NULL = "More stories".
    db.execute("ALTER TABLE lists ADD COLUMN untagged_title TEXT")


@migrations()
def m015_bounces_wiring_bounce_events(db: Database) -> None:
    # Bounces, complaints and provider events about subscribers (feedback/events.py writes it):
    # what `bounces process` read from a mailbox and what the webhooks received. The bounce
    # policy counts soft bounces from here; `digest deliveries` counts them per digest.
    db.execute(
        """
        CREATE TABLE bounce_events (
            id INTEGER PRIMARY KEY,
            email TEXT NOT NULL,               -- the subscriber's normalised address
            subscriber_id INTEGER,             -- no FK: the record outlives `subscribers remove`
            delivery_id INTEGER,               -- the delivery it is about, when identified
            kind TEXT NOT NULL CHECK (kind IN ('hard', 'soft', 'complaint', 'delivery')),
            source TEXT NOT NULL,              -- bounce-mailbox | webhook:ses | webhook:postmark ...
            status TEXT,                       -- RFC 3463 code, e.g. 5.1.1
            diagnostic TEXT NOT NULL DEFAULT '', -- the server's or provider's words, one line
            identified_by TEXT NOT NULL,       -- verp | list-unsubscribe | message-id | address ...
            message_key TEXT,                  -- which message: reports about one count once
            event_key TEXT NOT NULL UNIQUE,    -- provider event id or mailbox:<Message-ID|sha256>
            occurred_at TEXT NOT NULL,         -- UTC ISO 8601
            received_at TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX idx_bounce_events_email ON bounce_events(email, occurred_at)")
    db.execute(
        "CREATE INDEX idx_bounce_events_delivery ON bounce_events(delivery_id)"
        " WHERE delivery_id IS NOT NULL"
    )
    db.execute("CREATE INDEX idx_bounce_events_received ON bounce_events(received_at)")
    # A list's own bounce address (`lists edit --bounce-address`): the envelope sender of its
    # digests, before [bounces] address. NULL: the installation's, else the list's From.
    db.execute("ALTER TABLE lists ADD COLUMN bounce_address TEXT")


@migrations()
def m016_web_admin_private_lists(db: Database) -> None:
    # A private list is not on the home page and has no public archive index or Atom feed; its
    # subscribe form (and embedded forms) still work, and the web version of each issue stays
    # reachable at the address its emails link to (marked noindex).
    db.execute("ALTER TABLE lists ADD COLUMN private INTEGER NOT NULL DEFAULT 0")


@migrations()
def m017_pages_wiring_urls_and_full_text(db: Database) -> None:
    # Other URLs of a stored article (articles/writes.py): the address a page was fetched from,
    # where its redirects led, its <link rel=canonical> and og:url, when they differ from the
    # article's own canonical_url. A story ingested as a page and the same story arriving in a
    # feed (in either order) are matched through them.
    db.execute(
        """
        CREATE TABLE article_urls (
            url TEXT PRIMARY KEY,              -- canonical form (articles.urls.canonical_url)
            article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE
        )
        """
    )
    db.execute("CREATE INDEX idx_article_urls_article ON article_urls(article_id)")
    # Full text for summary-only feeds (ingest/fulltext.py): each linked page's last fetch, so
    # that a page is fetched again only with a conditional GET and a failure is not retried
    # forever.
    db.execute(
        """
        CREATE TABLE full_text_pages (
            url TEXT PRIMARY KEY,              -- the entry's link, as fetched
            final_url TEXT,                    -- after redirects
            etag TEXT,                         -- validators for the next conditional GET
            last_modified TEXT,
            status TEXT NOT NULL CHECK (status IN ('extracted', 'kept_summary', 'failed')),
            content_html TEXT,                 -- extracted article, raw (sanitised when stored)
            author TEXT,
            canonical_url TEXT,                -- the page's own canonical URL, if any
            words INTEGER,                     -- of the extracted text
            error TEXT,                        -- why the last attempt failed
            attempts INTEGER NOT NULL DEFAULT 0,  -- failures in a row for this entry version
            entry_hash TEXT NOT NULL,          -- articles.content_hash of the entry it was for
            fetched_at TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX idx_full_text_pages_fetched ON full_text_pages(fetched_at)")
    # `digest feeds add --full-text`: fetch the linked page of summary-only entries; how many
    # of the feed's entries were left with their summary because that failed, at the last poll.
    db.execute("ALTER TABLE feeds ADD COLUMN full_text INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE feeds ADD COLUMN full_text_failed INTEGER NOT NULL DEFAULT 0")


@migrations()
def m018_subscribers_identity_merge(db: Database) -> None:
    # One identity per mailbox: ``identity`` is the whole normalised address lower-cased
    # (addresses.identity_key), the key of every comparison (subscribers, history,
    # suppressions); ``email`` stays the address as first entered, for display and sending.
    # Subscribers that differed only in letter case are merged (identity_merge); each merge is
    # logged once here and recorded in the address's history.
    #
    # ``identity`` is a virtual column computed by SQLite: ``lower(email)`` folds ASCII letters
    # exactly as identity_key does, so only an address with other characters stores its
    # identity (``folded``, addresses.folded_identity). Nothing is duplicated for the usual
    # address, and a row written without ``folded`` still gets an ASCII address right.
    db.conn.create_function("digest_identity", 1, identity_key, deterministic=True)
    db.conn.create_function("digest_folded", 1, folded_identity, deterministic=True)
    for table in ("subscribers", "status_events", "bounce_events"):
        db.execute(f"ALTER TABLE {table} ADD COLUMN folded TEXT")  # identity if not ASCII
        db.execute(f"UPDATE {table} SET folded = digest_folded(email) WHERE email GLOB '*[^ -~]*'")
        db.execute(
            f"ALTER TABLE {table} ADD COLUMN identity TEXT"
            " GENERATED ALWAYS AS (coalesce(folded, lower(email))) VIRTUAL"
        )
    # Suppressions keyed by identity. ``email`` is the address as suppressed, for display; it is
    # NULL when the person had their data deleted: then only a one-way hash of the identity is
    # kept (``sha256:...``, audience.suppressions.erased_key), enough to never mail it again.
    db.execute(
        """
        CREATE TABLE suppressions_by_identity (
            identity TEXT PRIMARY KEY,         -- identity_key(email), or sha256:<hex> once erased
            email TEXT,                        -- as suppressed; NULL once erased
            reason TEXT,
            source TEXT NOT NULL,
            created_at TEXT NOT NULL
        )
        """
    )
    # Of two spellings suppressed, the first suppression is kept.
    db.execute(
        "INSERT OR IGNORE INTO suppressions_by_identity (identity, email, reason, source,"
        " created_at) SELECT digest_identity(email), email, reason, source, created_at"
        " FROM suppressions ORDER BY created_at, email"
    )
    db.execute("DROP TABLE suppressions")
    db.execute("ALTER TABLE suppressions_by_identity RENAME TO suppressions")
    merged = merge_case_variants(db, now=datetime.now(UTC))
    db.execute("CREATE UNIQUE INDEX idx_subscribers_identity ON subscribers(identity)")
    db.execute("CREATE INDEX idx_status_events_identity ON status_events(identity)")
    db.execute("DROP INDEX idx_status_events_email")
    # Bounce reports about an address are found in any letter case too (the bounce policy's
    # soft-bounce count, a subscriber's admin page).
    db.execute("CREATE INDEX idx_bounce_events_identity ON bounce_events(identity, occurred_at)")
    db.execute("DROP INDEX idx_bounce_events_email")
    if merged:
        # The migration runs once, inside whichever command first opens the upgraded database
        # (`digest init` after an upgrade, `digest run`, `digest serve` ...): a warning reaches
        # its stderr or log; the history keeps the details for `digest subscribers show`.
        spellings = sum(len(m.merged) for m in merged)
        log.warning(
            "merged %d subscriber address(es) that differed from another only in letter case"
            " into %d subscriber(s); each keeps its first-entered address, the most restrictive"
            " status per list and the combined history (`digest subscribers show ADDRESS`):",
            spellings + len(merged),
            len(merged),
        )
        for m in merged[:MERGE_LOG_LINES]:
            log.warning("  %s", m.describe())
        if len(merged) > MERGE_LOG_LINES:
            log.warning("  ... and %d more", len(merged) - MERGE_LOG_LINES)


MERGE_LOG_LINES = 50


def widen_check(db: Database, table: str, column: str, values: list[str]) -> None:
    """Allow more ``values`` in ``table``'s ``CHECK (column IN (...))``. SQLite cannot alter a
    constraint; its documented way to loosen one without copying the table is to edit the
    table's SQL in the schema and bump ``schema_version`` (https://sqlite.org/lang_altertable.html,
    "making other kinds of table schema changes"). Every stored row satisfied the narrower
    check, so it satisfies the wider one. Run inside the migration's transaction."""
    (sql,) = db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [table]
    ).fetchone()
    pattern = re.compile(rf"(CHECK\s*\(\s*{column}\s+IN\s*\()([^)]*)(\))", re.IGNORECASE)
    match = pattern.search(sql)
    if match is None:
        raise RuntimeError(f"no CHECK ({column} IN (...)) in table {table}")
    present = set(re.findall(r"'([^']*)'", match.group(2)))
    added = "".join(f", '{v}'" for v in values if v not in present)
    if not added:
        return
    new_sql = sql[: match.end(2)] + added + sql[match.end(2) :]
    (version,) = db.execute("PRAGMA schema_version").fetchone()
    db.execute("PRAGMA writable_schema = ON")
    try:
        db.execute(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?", [new_sql, table]
        )
        db.execute(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        db.execute("PRAGMA writable_schema = OFF")


@migrations()
def m019_subscribers_identity_lifecycle(db: Database) -> None:
    # A pending subscription that is never confirmed expires ([subscribers] pending_expire_days).
    widen_check(db, "subscriptions", "status", ["expired"])
    # When the subscription last became pending: expiry counts from here.
    db.execute("ALTER TABLE subscriptions ADD COLUMN pending_since TEXT")
    db.execute("UPDATE subscriptions SET pending_since = updated_at WHERE status = 'pending'")
    # When a confirmation email was last queued (NULL: never asked, e.g. added with --no-email),
    # and how many reminders went out (`digest subscribers remind`, at most
    # [subscribers] max_reminders).
    db.execute("ALTER TABLE subscriptions ADD COLUMN asked_at TEXT")
    db.execute("ALTER TABLE subscriptions ADD COLUMN reminders INTEGER NOT NULL DEFAULT 0")
    # Choices from a subscribe form by someone already subscribed or unsubscribed, applied when
    # they follow that confirmation link: JSON {"name", "tags", "frequency", "at"}.
    db.execute("ALTER TABLE subscriptions ADD COLUMN requested TEXT")
    # The scheduler's expiry pass reads only the pending subscriptions, oldest first.
    db.execute(
        "CREATE INDEX idx_subscriptions_pending ON subscriptions(pending_since)"
        " WHERE status = 'pending'"
    )
    # What a list offers: daily, weekly or both, and what a new subscriber gets by default.
    db.execute("ALTER TABLE lists ADD COLUMN frequencies TEXT NOT NULL DEFAULT 'daily,weekly'")
    db.execute("ALTER TABLE lists ADD COLUMN default_frequency TEXT NOT NULL DEFAULT 'daily'")
    # Reminders of a pending confirmation, and the optional welcome email after one.
    widen_check(db, "notices", "kind", ["remind", "welcome"])


@migrations(transactional=False)
def m020_subscribers_identity_rebuild(db: Database) -> None:
    # Since m018 the identity is the unique key of a subscriber; the UNIQUE constraint on
    # ``email`` (the address as entered) only costs a second index on every insert, so the
    # table is rebuilt without it. Outside the usual migration transaction: SQLite changes a
    # table's constraints only by copying it, which needs foreign keys off (or dropping the old
    # table would delete every subscription and queued email through ON DELETE CASCADE), and
    # that pragma cannot change inside a transaction. The copy itself is one transaction; run
    # again after a crash before it was recorded, it finds nothing left to do.
    rebuild_without_unique(db, "subscribers", "email")


@migrations()
def m021_private_issue_keys(db: Database) -> None:
    # A private list's issue is shown on the web only to links that carry its random key (the
    # emails' "view in your browser" and "N more" links). Issues built before have none and
    # stay at their plain address, which their emails link to.
    db.execute("ALTER TABLE digests ADD COLUMN web_key TEXT")


def rebuild_without_unique(db: Database, table: str, column: str) -> None:
    """Copy ``table`` into a table whose SQL is the same but for ``UNIQUE`` on ``column``,
    keeping every column (added ones too), row, index and trigger: SQLite's documented
    procedure (https://sqlite.org/lang_altertable.html#otheralter), foreign keys off meanwhile
    and checked before committing. The tables that reference ``table`` name it, so they
    reference the copy once it has the name; nothing else changes."""
    conn = db.conn
    (enforced,) = conn.execute("PRAGMA foreign_keys").fetchone()
    conn.execute("PRAGMA foreign_keys = OFF")  # a no-op inside a transaction: this is outside
    try:
        # The schema is read under the write lock: a second process that opened the database
        # at the same time finds the table rebuilt and does nothing.
        conn.execute("BEGIN IMMEDIATE")
        try:
            _rebuild(conn, table, column)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.execute(f"PRAGMA foreign_keys = {'ON' if enforced else 'OFF'}")


def _rebuild(conn: sqlite3.Connection, table: str, column: str) -> None:
    (sql,) = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [table]
    ).fetchone()
    pattern = re.compile(rf"(\b{column}\s+TEXT\s+NOT\s+NULL)\s+UNIQUE\b", re.IGNORECASE)
    if not pattern.search(sql):
        return  # done already
    new_table = f"{table}_rebuilt"
    new_sql = pattern.sub(r"\1", sql, count=1)
    new_sql = re.sub(rf'^CREATE TABLE\s+"?{table}"?', f"CREATE TABLE {new_table}", new_sql)
    # Generated columns (``identity``) are computed by the copy, never copied.
    names = ", ".join(r[1] for r in conn.execute(f"PRAGMA table_xinfo({table})") if r[6] == 0)
    others = [
        r[0]
        for r in conn.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND type IN ('index', 'trigger')"
            " AND sql IS NOT NULL",
            [table],
        )
    ]
    conn.execute(new_sql)
    conn.execute(f"INSERT INTO {new_table} ({names}) SELECT {names} FROM {table}")
    conn.execute(f"DROP TABLE {table}")
    conn.execute(f"ALTER TABLE {new_table} RENAME TO {table}")
    for statement in others:
        conn.execute(statement)
    problems = conn.execute("PRAGMA foreign_key_check").fetchall()
    if problems:
        raise RuntimeError(f"rebuilding {table} would break foreign keys: {problems[:5]}")
