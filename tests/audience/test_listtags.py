"""Lists and tags stay coherent: `lists edit --tags` says who would be left following only tags
the list no longer covers and can move them to every tag; the subscribe and preferences pages
offer only tags that are used and not hidden."""

from __future__ import annotations

from datetime import UTC, datetime

from conftest import WEB_SECRET

from digest.articles import tagstore
from digest.audience.lists import get_list
from digest.audience.listtags import offered_tags
from digest.audience.subscriptions import find_subscription, subscriber_history
from digest.tokens import make_token

DAY = datetime(2025, 1, 20, 8, 0, tzinfo=UTC)


def test_editing_tags_warns_about_orphaned_subscribers(run, db, newsroom):
    mlist = newsroom.add_list("world", tags=("Haiti", "Kenya", "Asia"))
    newsroom.subscribe(mlist, "ann@example.com", tags=["Asia"])
    newsroom.subscribe(mlist, "bob@example.com", tags=["Asia", "Kenya"])
    newsroom.subscribe(mlist, "cy@example.com", tags=["Asia"], status="pending")
    newsroom.subscribe(mlist, "dee@example.com", tags=["Asia"], status="unsubscribed")
    newsroom.subscribe(mlist, "eve@example.com")  # every tag
    edited = run("lists", "edit", "world", "--tags", "Haiti,Kenya")
    assert edited.exit_code == 0
    assert edited.output.splitlines()[-1] == (
        "warning: 2 subscribers follow only tags the list no longer covers (Asia) and will get"
        " nothing; --move-orphans-to-all gives them every tag"
    )
    assert find_subscription(db, get_list(db, "world"), "ann@example.com").tags == ("asia",)

    moved = run("lists", "edit", "world", "--move-orphans-to-all")
    # The list no longer names Asia, and no article has it: the key is all that is known.
    assert moved.output.splitlines()[-1] == (
        "moved 2 subscribers who followed only tags the list no longer covers (asia) to every tag"
    )
    world = get_list(db, "world")
    assert find_subscription(db, world, "ann@example.com").tags == ()
    assert find_subscription(db, world, "cy@example.com").tags == ()
    assert find_subscription(db, world, "bob@example.com").tags == ("kenya", "asia")
    assert find_subscription(db, world, "dee@example.com").tags == ("asia",)  # not live
    event = subscriber_history(db, "ann@example.com").events[-1]
    assert event.reason == "moved to every tag: the list no longer covers asia"
    assert event.source == "cli"
    # Nobody is left: no warning.
    assert "warning" not in run("lists", "edit", "world", "--tags", "Kenya,Haiti").output


def test_moving_orphans_in_the_same_edit(run, db, newsroom):
    mlist = newsroom.add_list("world", tags=("Haiti", "Asia"))
    newsroom.subscribe(mlist, "ann@example.com", tags=["Asia"])
    result = run("lists", "edit", "world", "--tags", "Haiti", "--move-orphans-to-all")
    assert result.output.splitlines()[-1].startswith("moved 1 subscriber who followed only")
    assert find_subscription(db, get_list(db, "world"), "ann@example.com").tags == ()


def test_a_list_covering_every_tag_orphans_nobody(run, newsroom):
    mlist = newsroom.add_list("world", tags=("Haiti", "Asia"))
    newsroom.subscribe(mlist, "ann@example.com", tags=["Asia"])
    assert "warning" not in run("lists", "edit", "world", "--tags", "").output


def test_offered_tags_leave_out_hidden_and_unused_tags(db, newsroom):
    mlist = newsroom.add_list("world", tags=("Kenya", "Haiti", "Featured", "Asia"))
    newsroom.add_article("One", DAY, tags=["Haiti", "Featured", "Kenya"])
    tagstore.set_hidden(db, "Featured", True)
    assert offered_tags(db, mlist) == [("kenya", "Kenya"), ("haiti", "Haiti")]
    every = newsroom.add_list("all", tags=())
    assert offered_tags(db, every) == []


def test_the_subscribe_and_preferences_pages_offer_only_those(web_app, web_clock, db, newsroom):
    mlist = newsroom.add_list("world", tags=("Kenya", "Haiti", "Featured", "Asia"))
    newsroom.add_article("One", DAY, tags=["Haiti", "Featured", "Kenya"])
    tagstore.set_hidden(db, "Featured", True)
    client = web_app.test_client()
    html = client.get("/subscribe/world").get_data(as_text=True)
    assert 'value="kenya" checked' in html and 'value="haiti" checked' in html
    assert 'value="featured"' not in html and 'value="asia"' not in html

    sid = newsroom.subscribe(mlist, "ann@example.com", tags=["Kenya"])
    url = f"/p/{make_token(WEB_SECRET, 'preferences', sid, mlist.id, now=web_clock.now)}"
    page = client.get(url).get_data(as_text=True)
    assert 'value="kenya" checked' in page and 'value="haiti">' in page
    assert 'value="featured"' not in page and 'value="asia"' not in page
    csrf = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    # A hidden or unused tag cannot be chosen by posting it anyway.
    refused = client.post(url, data={"csrf_token": csrf, "action": "save", "tag": ["featured"],
                                     "frequency": "daily"})  # fmt: skip
    assert refused.status_code == 400
    assert "unknown topic 'featured'" in refused.get_data(as_text=True)
    # Ticking every offered topic is every tag of the list, Asia included once it is used.
    client.post(url, data={"csrf_token": csrf, "action": "save", "tag": ["kenya", "haiti"],
                           "frequency": "daily"})  # fmt: skip
    assert find_subscription(db, get_list(db, "world"), "ann@example.com").tags == ()
