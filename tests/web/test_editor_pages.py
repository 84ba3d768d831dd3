"""The editor's issue pages (list of issues; one issue date with note, pin, drop, size, approval),
the tags page (rename, merge, hide, rules, apply) and the feeds page's full-text switch: the
same library calls, checks and messages as ``digest issues``, ``digest tags`` and ``digest feeds
add --full-text``; who may use them; CSRF; markup from feeds and editors shown as text; a sent
issue refused. Flask's test client on a real SQLite file."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from markupsafe import escape
from test_admin_pages import PASSWORD, XSS, follow, login, text

from digest import users
from digest.articles import tagstore
from digest.audience.lists import LookChanges, edit_list, get_list
from digest.delivery import ledger
from digest.delivery.publish import build_digest
from digest.ingest.feeds import get_feed
from digest.issues.approval import ApprovalStatus, approval_of
from digest.issues.edits import edits_for

DAY = datetime(2025, 1, 20, 6, 0, tzinfo=UTC)
ISSUE = date(2025, 1, 21)
PAGE = "/editor/issues/world/2025-01-21/"


@pytest.fixture
def staff(db, web_clock):
    users.add_user(db, "ed", PASSWORD, "editor", now=web_clock.now)
    users.add_user(db, "ada", PASSWORD, "admin", now=web_clock.now)


@pytest.fixture
def world(newsroom):
    return newsroom.add_list(tags=("Haiti", "Kenya"), title="World Desk")


@pytest.fixture
def stories(newsroom, world):
    """Article ids by name: two Kenya stories, a Haiti one with markup in its title, and an old
    Kenya story outside the issue's period."""
    return {
        "kenya": newsroom.add_article("Kenya story", DAY, tags=["Kenya"]),
        "kenya2": newsroom.add_article(
            "Second Kenya story", DAY + timedelta(hours=1), tags=["Kenya"]
        ),  # fmt: skip
        "haiti": newsroom.add_article(f"Haiti {XSS}", DAY + timedelta(hours=2), tags=["Haiti"]),
        "old": newsroom.add_article("Old Kenya story", DAY - timedelta(days=6), tags=["Kenya"]),
        "sport": newsroom.add_article("Sport story", DAY, tags=["Sport"]),
    }


@pytest.fixture
def app(make_web_app):
    return make_web_app("[ingest]\nallow_private_addresses = true\n")


@pytest.fixture
def editor(app, staff):
    client = app.test_client()
    client.csrf = login(client, "ed")
    return client


@pytest.fixture
def admin(app, staff):
    client = app.test_client()
    client.csrf = login(client, "ada")
    return client


def post(client, path, **form):
    return client.post(path, data={"csrf_token": client.csrf, **form})


# --- the issue pages ------------------------------------------------------------------------------


def test_the_issues_page_lists_next_and_built_issues(editor, db, app, world, stories, newsroom):
    newsroom.subscribe(world, "ann@example.com")
    config = app.extensions["digest"].config
    built = build_digest(db, config, world, "daily", ISSUE, now=DAY + timedelta(days=1))
    page = text(editor.get("/editor/issues/"))
    # The next daily issue (after the clock's 2025-01-21 07:00 UTC) and the one built.
    assert 'href="/editor/issues/world/2025-01-22/">2025-01-22 daily</a>' in page
    assert 'href="/editor/issues/world/2025-01-21/">2025-01-21 daily</a>' in page
    assert 'href="/editor/issues/world/2025-01-27/">2025-01-27 weekly</a>' in page
    assert "built, nothing queued" not in page and "sending: 0 sent, 1 to go" in page
    subject = db.execute("SELECT subject FROM variants WHERE digest_id = ?", [built.id])
    assert str(escape(subject.fetchone()[0])) in page
    assert XSS not in page  # the subject leads with the Haiti story's title
    # The editor's start page links each recent digest to its issue page.
    assert 'href="/editor/issues/world/2025-01-21/">2025-01-21</a>' in text(editor.get("/editor/"))


def test_one_issue_shows_its_stories_with_ids_and_escapes_markup(editor, stories):
    page = text(editor.get(PAGE))
    assert "the issue of 2025-01-21" in page and "not yet: below is what it would hold" in page
    for name in ("kenya", "kenya2", "haiti"):
        assert f'name="article_id" value="{stories[name]}"' in page
    assert str(escape(f"Haiti {XSS}")) in page and XSS not in page
    assert "Old Kenya story" not in page  # not in this issue's period
    assert "weekly: no issue that day (weekly issues are on mondays)" in page
    assert 'href="/editor/preview?list=world&amp;frequency=daily&amp;date=2025-01-21"' in page
    assert "Measured when the issue is built" in page


def test_note_pin_drop_and_clear_with_the_clis_messages(editor, db, world, stories):
    page = follow(editor, post(editor, PAGE + "note", note=f"Elections <b>ahead</b> {XSS}"))
    assert "note set" in page and "not built yet: its build applies this" in page
    assert str(escape(f"Elections <b>ahead</b> {XSS}")) in page and XSS not in page
    page = follow(editor, post(editor, PAGE + "article", article_id=stories["old"], action="pin"))
    assert f"article {stories['old']} pinned" in page
    assert "Old Kenya story" in page and ">pinned</span>" in page
    page = follow(editor, post(editor, PAGE + "article", article_id=stories["kenya"],
                               action="drop"))  # fmt: skip
    assert f"article {stories['kenya']} dropped" in page and "<s>Kenya story</s>" in page
    page = follow(editor, post(editor, PAGE + "article", article_id=stories["kenya"],
                               action="clear"))  # fmt: skip
    assert f"article {stories['kenya']} cleared" in page and "<s>Kenya story</s>" not in page
    edits = edits_for(db, world.id, ISSUE)
    assert edits.pinned == (stories["old"],) and edits.dropped == frozenset()
    assert edits.note == f"Elections <b>ahead</b> {XSS}"
    # Who edited is recorded with the editor's name.
    by = {r[0] for r in db.execute("SELECT edited_by FROM issue_edits")}
    assert by == {"ed (web)"}
    page = follow(editor, post(editor, PAGE + "note", note=""))
    assert "note removed" in page and edits_for(db, world.id, ISSUE).note is None


def test_an_edit_to_a_built_issue_renders_it_again(editor, db, app, world, stories, newsroom):
    newsroom.subscribe(world, "ann@example.com")
    config = app.extensions["digest"].config
    build_digest(db, config, world, "daily", ISSUE, now=DAY + timedelta(days=1))
    page = follow(editor, post(editor, PAGE + "article", article_id=stories["haiti"],
                               action="drop"))  # fmt: skip
    assert "rendered again: world/daily/2025-01-21, 2 articles, 1 variants" in page
    # The size of each variant against the budget.
    assert "every topic" in page and "KB of 90.0 KB" in page and "2 shown" in page


def test_bad_edits_are_refused_with_the_clis_reasons(editor, db, world, stories):
    cases = [
        ({"article_id": "abc", "action": "pin"}, "article id &#39;abc&#39;: expected a number"),
        ({"article_id": "1" * 40, "action": "pin"}, "expected a number"),
        ({"article_id": "999", "action": "pin"}, "no article with id 999"),
        ({"article_id": str(stories["sport"]), "action": "pin"},
         "has none of the tags of list &#39;world&#39;"),
        ({"article_id": str(stories["kenya"]), "action": "star"}, "unknown issue edit"),
    ]  # fmt: skip
    for form, message in cases:
        page = follow(editor, post(editor, PAGE + "article", **form))
        assert "Not changed: " in page and message in page, form
    page = follow(editor, post(editor, PAGE + "note", note="x" * 2001))
    assert "the note is 2001 characters; keep it under 2000" in page
    assert db.execute("SELECT count(*) FROM issue_edits").fetchone()[0] == 0
    # An unknown list or a malformed date is an error page, not a redirect.
    assert editor.post("/editor/issues/nope/2025-01-21/note",
                       data={"csrf_token": editor.csrf, "note": "x"}).status_code == 404  # fmt: skip
    response = post(editor, "/editor/issues/world/21-01-2025/note", note="x")
    assert response.status_code == 400 and "expected the issue date as YYYY-MM-DD" in text(response)
    assert editor.get("/editor/issues/world/yesterday/").status_code == 400
    # Approving in a list without approval mode: the library's reason.
    page = follow(editor, post(editor, PAGE + "approve"))
    assert "Not approved: list &#39;world&#39; is not in approval mode" in page


def test_an_issue_awaiting_approval_is_approved_from_its_page(editor, db, app, world, newsroom):
    mlist = edit_list(db, "world", look=LookChanges(approval=True, approval_lead="2h", editors="ed@example.com"),
                      now=newsroom.STAMP)  # fmt: skip
    newsroom.add_article("Kenya story", DAY, tags=["Kenya"])
    newsroom.subscribe(mlist, "ann@example.com")
    config = app.extensions["digest"].config
    held = build_digest(db, config, mlist, "daily", date(2025, 1, 22),
                        now=datetime(2025, 1, 22, 5, 0, tzinfo=UTC))  # fmt: skip
    assert held.awaiting_approval
    page = text(editor.get("/editor/issues/world/2025-01-22/"))
    assert "awaiting approval" in page and "Approve the daily issue" in page
    page = follow(editor, post(editor, "/editor/issues/world/2025-01-22/approve",
                               frequency="daily"))  # fmt: skip
    assert "approved world/daily/2025-01-22" in page
    found = approval_of(db, mlist.id, "daily", "2025-01-22")
    assert found is not None and found.status is ApprovalStatus.APPROVED
    assert found.decided_by == "ed (web)"
    assert "Approve the daily issue" not in page and "approved by ed (web)" in page
    # Approving again: the library says why not.
    page = follow(editor, post(editor, "/editor/issues/world/2025-01-22/approve"))
    assert "no issue of &#39;world&#39; dated 2025-01-22 awaits approval" in page
    response = post(editor, "/editor/issues/world/2025-01-22/approve", frequency="hourly")
    assert "frequency &#39;hourly&#39;: choose daily or weekly" in follow(editor, response)


def test_a_sent_issue_is_shown_but_can_no_longer_be_shaped(
    editor, db, app, world, stories, newsroom
):
    newsroom.subscribe(world, "ann@example.com")
    config = app.extensions["digest"].config
    built = build_digest(db, config, world, "daily", ISSUE, now=DAY + timedelta(days=1))
    (delivery,) = ledger.claim(db, "t", now=DAY + timedelta(days=1), lease_seconds=60, limit=10)
    ledger.record_sent(db, delivery.id, reply="250 ok", relay=None, message_id="<m@x>",
                       now=DAY + timedelta(days=1))  # fmt: skip
    page = text(editor.get(PAGE))
    assert "sent to 1" in page and "it can no longer be changed" in page
    assert 'action="/editor/issues/world/2025-01-21/article"' not in page
    assert "<textarea" not in page
    before = db.execute("SELECT template FROM variants WHERE digest_id = ?", [built.id]).fetchall()
    for path, form in (("note", {"note": "late"}),
                       ("article", {"article_id": stories["kenya"], "action": "drop"})):  # fmt: skip
        page = follow(editor, post(editor, PAGE + path, **form))
        assert "Not changed: world/daily/2025-01-21 was sent (1 deliveries accepted)" in page
    assert db.execute("SELECT count(*) FROM issue_edits").fetchone()[0] == 0
    after = db.execute("SELECT template FROM variants WHERE digest_id = ?", [built.id]).fetchall()
    assert after == before


# --- the tags page --------------------------------------------------------------------------------


def test_the_tags_page_shows_every_tag_and_the_untagged_count(editor, db, world, newsroom):
    newsroom.add_article("Kenya story", DAY, tags=["Kenya"])
    newsroom.add_article("Haiti story", DAY - timedelta(days=3), tags=["Haiti", XSS])
    newsroom.add_article("No tag at all", DAY)
    page = text(editor.get("/editor/tags/"))
    assert "1 article without a tag: they only reach lists that cover every tag" in page
    assert str(escape(XSS)) in page and XSS not in page
    assert "2025-01-17" in page and "2025-01-20" in page
    assert ">world</td>" in page  # the list covering Kenya and Haiti
    found = text(editor.get("/editor/tags/?q=ken"))
    assert "Kenya" in found and "Haiti" not in found.split("<table")[1].split("</table>")[0]


def test_rename_merge_hide_and_show_with_the_clis_messages(editor, db, world, newsroom):
    newsroom.add_article("One", DAY, tags=["Haiti"])
    newsroom.add_article("Two", DAY, tags=["Haïti"])
    newsroom.add_article("Three", DAY, tags=["Featured", "Kenya"])
    page = follow(editor, post(editor, "/editor/tags/merge", into="Haiti", other="Haïti"))
    assert "merged Haïti (1 article) into Haiti: now 2 articles" in page
    assert "later articles tagged &#39;Haïti&#39; land in Haiti" in page
    page = follow(editor, post(editor, "/editor/tags/rename", old="Kenya", new="Kenya News"))
    assert "renamed Kenya to Kenya News" in page and "lists: world" in page
    assert get_list(db, "world").tags == ("Haiti", "Kenya News")
    page = follow(editor, post(editor, "/editor/tags/hide", tag="Featured", hidden="1"))
    assert "hid Featured: never a section, never offered to subscribers" in page
    assert tagstore.find_tag(db, "Featured").hidden
    page = follow(editor, post(editor, "/editor/tags/hide", tag="Featured", hidden="0"))
    assert "Featured is shown again" in page and not tagstore.find_tag(db, "Featured").hidden
    # Refusals: the library's reasons, nothing changed.
    page = follow(editor, post(editor, "/editor/tags/rename", old="Haiti", new="Featured"))
    assert "Not renamed: tag &#39;Featured&#39; exists already" in page
    page = follow(editor, post(editor, "/editor/tags/rename", old="Nowhere", new="X"))
    assert "Not renamed: no tag &#39;Nowhere&#39;" in page
    page = follow(editor, post(editor, "/editor/tags/merge", into="Haiti", other="Haiti"))
    assert "Not merged: &#39;Haiti&#39; is the tag &#39;Haiti&#39; itself" in page
    page = follow(editor, post(editor, "/editor/tags/hide", tag=XSS, hidden="1"))
    assert "Not changed: no tag" in page and XSS not in page


def test_rules_add_remove_and_apply(editor, db, world, newsroom):
    newsroom.add_article("Jacmel harbour reopens", DAY)
    newsroom.add_article("Measles cases fall", DAY)
    page = follow(editor, post(editor, "/editor/tags/rules/add", tag="Haiti", match="Jacmel"))
    assert "added rule 1  Haiti &lt;- title keyword &#39;Jacmel&#39;" in page
    page = follow(editor, post(editor, "/editor/tags/rules/add", tag="Health",
                               match="^measles", regex="yes", field="title"))  # fmt: skip
    assert "added rule 2  Health &lt;- title regex &#39;^measles&#39;" in page
    for form, message in (
        ({"tag": "X", "match": "(?<=a)b", "regex": "yes"}, "Rule not added: "),
        ({"tag": "X", "match": "x", "field": "body"}, "unknown rule field &#39;body&#39;"),
        ({"tag": "Haiti", "match": "Jacmel"}, "Rule not added: "),  # the same rule twice
    ):
        assert message in follow(editor, post(editor, "/editor/tags/rules/add", **form)), form
    assert len(tagstore.list_rules(db)) == 2
    page = follow(editor, post(editor, "/editor/tags/apply", dry_run="yes"))
    assert "dry run: 2 articles checked: 2 gain a tag (Haiti 1, Health 1)" in page
    assert "1 article" not in page or "without a tag" in page
    page = follow(editor, post(editor, "/editor/tags/apply"))
    assert "2 articles checked: 2 gain a tag (Haiti 1, Health 1); 0 unchanged" in page
    assert "without a tag" not in page
    page = follow(editor, post(editor, "/editor/tags/apply", since="nonsense"))
    assert "Not applied: cannot read &#39;nonsense&#39; as a date" in page
    page = follow(editor, post(editor, "/editor/tags/rules/remove", rule_id="2"))
    assert "removed rule 2  Health" in page
    page = follow(editor, post(editor, "/editor/tags/rules/remove", rule_id="2"))
    assert "Rule not removed: no tag rule 2" in page
    page = follow(editor, post(editor, "/editor/tags/rules/remove", rule_id="two"))
    assert "Rule not removed: rule id &#39;two&#39;: expected a number" in page
    page = follow(editor, post(editor, "/editor/tags/apply"))
    assert "2 articles checked: 1 lose one (Health 1); 1 unchanged" in page


# --- the feeds page: full text --------------------------------------------------------------------


def test_a_feed_is_added_with_full_text_and_switched_off_and_on(admin, db):
    url = "http://127.0.0.1:9/summaries.xml"
    page = follow(admin, post(admin, "/admin/feeds/add", url=url, tags="World", full_text="yes"))
    assert f"added: {url} [World] full text" in page and get_feed(db, url).full_text
    page = follow(admin, post(admin, "/admin/feeds/full-text", url=url, on="0"))
    assert f"full text off: {url} [World]" in page and not get_feed(db, url).full_text
    assert "Full text on</button>" in page
    # Adding it again without the box ticked leaves the switch as it is (like the CLI).
    post(admin, "/admin/feeds/full-text", url=url, on="1")
    page = follow(admin, post(admin, "/admin/feeds/add", url=url, tags="Kenya"))
    assert f"already registered, tags merged: {url} [World, Kenya] full text" in page
    assert admin.post("/admin/feeds/full-text", data={"csrf_token": admin.csrf,
                      "url": "http://127.0.0.1:9/other.xml", "on": "1"}).status_code == 404  # fmt: skip


# --- who may, and CSRF ----------------------------------------------------------------------------

EDITOR_GETS = ["/editor/issues/", PAGE, "/editor/tags/"]
EDITOR_POSTS = [
    PAGE + "note",
    PAGE + "article",
    PAGE + "approve",
    "/editor/tags/rename",
    "/editor/tags/merge",
    "/editor/tags/hide",
    "/editor/tags/rules/add",
    "/editor/tags/rules/remove",
    "/editor/tags/apply",
]


def state(db):
    return [
        db.execute(f"SELECT count(*), group_concat(x) FROM (SELECT {cols} AS x FROM {table})")
        .fetchone()
        for table, cols in (("issue_edits", "kind || text"), ("tags", "name || hidden"),
                            ("tag_rules", "pattern"), ("article_tags", "origin"),
                            ("issue_approvals", "status"), ("lists", "tags"))
    ]  # fmt: skip


@pytest.mark.parametrize("path", EDITOR_GETS)
def test_editor_pages_need_a_login(app, world, stories, path):
    response = app.test_client().get(path)
    assert response.status_code == 302 and "/login?next=" in response.location


@pytest.mark.parametrize("path", EDITOR_POSTS)
def test_editor_actions_need_the_csrf_token_and_a_login(app, editor, db, world, stories, path):
    before = state(db)
    data = {"note": "x", "article_id": str(stories["old"]), "action": "pin", "old": "Kenya",
            "new": "K", "into": "Kenya", "other": "Haiti", "tag": "Kenya", "hidden": "1",
            "match": "x", "rule_id": "1"}  # fmt: skip
    for token in (None, "forged-token"):
        form = dict(data) if token is None else {**data, "csrf_token": token}
        response = editor.post(path, data=form)
        assert response.status_code == 400
        assert "This form has expired or was not sent from this site" in text(response)
    visitor = app.test_client()
    visitor.get("/login")
    response = visitor.post(path, data=data)
    assert response.status_code in (302, 400)
    assert state(db) == before


def test_editors_have_the_issue_and_tag_pages_in_their_navigation(editor, admin, world):
    for client in (editor, admin):
        page = text(client.get("/editor/tags/"))
        assert 'href="/editor/issues/">Issues</a>' in page
        assert 'href="/editor/tags/" aria-current="page">Tags</a>' in page
    assert 'href="/admin/feeds/"' not in text(editor.get("/editor/issues/"))
