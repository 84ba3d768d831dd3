"""The HTML budget always holds: the planner's order of degradation on made-up sizes, then real
renders from 1 to 400 sections of 1 to 10 stories, measured as the recipient's message."""

from __future__ import annotations

import functools
import re
import time

import pytest
from email_samples import (
    KEY,
    encoded_html_size,
    env,
    five_hundred,
    received,
    sections,
    settings,
    view,
)

from digest.issues import budget
from digest.issues.compose import BudgetError, render_digest_email, render_digest_web

BUDGET = 90_000


def _costs(counts, *, full=900, short=500, header=300, more=250, entry=110):
    return [
        budget.SectionCost(
            header=header,
            stories=tuple(budget.StoryCost(full, short) for _ in range(n)),
            more_row=more,
            fold_entry=entry,
        )
        for n in counts
    ]


def test_everything_shown_when_it_fits():
    plan = budget.plan(_costs([3, 2]), fixed=5_000, fold_block=400, limit=20_000)
    assert plan.fits and plan.size == 5_000 + 2 * 300 + 5 * 900
    assert [(s.shown, s.full, s.folded) for s in plan.sections] == [(3, 3, False), (2, 2, False)]


def test_excerpts_shorten_first_from_the_last_ranks():
    costs = _costs([3, 3])
    whole = 5_000 + 2 * 300 + 6 * 900
    plan = budget.plan(costs, fixed=5_000, fold_block=400, limit=whole - 400)
    assert plan.fits and plan.shortened == 1
    # The second section's last story went short first; nothing dropped, nothing folded.
    assert [(s.shown, s.full) for s in plan.sections] == [(3, 3), (3, 2)]


def test_then_stories_go_evenly_and_every_section_keeps_its_first_story_in_full():
    plan = budget.plan(_costs([10, 10, 10]), fixed=5_000, fold_block=400, limit=12_000)
    assert plan.fits and plan.folded == 0
    shown = [s.shown for s in plan.sections]
    assert max(shown) - min(shown) <= 1 and min(shown) >= 1
    assert all(s.full >= 1 for s in plan.sections)  # the first story keeps its full excerpt


def test_then_whole_sections_fold_from_the_end_and_never_get_a_more_row():
    plan = budget.plan(_costs([3] * 200), fixed=6_000, fold_block=400, limit=90_000)
    assert plan.fits and 0 < plan.folded < 200
    folded = [s.folded for s in plan.sections]
    first_folded = folded.index(True)
    assert all(folded[first_folded:]) and not any(folded[:first_folded])
    assert all(s.shown == 0 for s in plan.sections if s.folded)
    assert all(s.shown >= 1 and s.full >= 1 for s in plan.sections if not s.folded)
    # Left-over room went back to stories of the sections still shown.
    assert 90_000 - plan.size < 900


def test_the_fold_block_names_fewer_sections_when_even_it_is_too_long():
    plan = budget.plan(_costs([1] * 2_000, entry=200), fixed=6_000, fold_block=400, limit=90_000)
    assert plan.fits and plan.folded > 1_500
    assert 0 < plan.listed_folds < plan.folded


def test_a_plan_that_cannot_fit_says_so():
    plan = budget.plan(_costs([1]), fixed=95_000, fold_block=400, limit=90_000)
    assert not plan.fits


def test_sections_without_stories_are_never_shown():
    plan = budget.plan(_costs([0, 2]), fixed=1_000, fold_block=400, limit=50_000)
    assert plan.sections[0].folded and plan.sections[0].shown == 0 and plan.listed_folds == 0
    assert plan.size == 1_000 + 300 + 2 * 900


def test_planning_4000_stories_is_fast():
    costs = _costs([10] * 400)
    started = time.perf_counter()
    plan = budget.plan(costs, fixed=6_000, fold_block=400, limit=90_000)
    assert plan.fits
    assert time.perf_counter() - started < 2  # quadratic would take minutes


@pytest.mark.parametrize("sections_count", [1, 10, 50, 120, 200, 400])
@pytest.mark.parametrize("per_section", [1, 3, 10, "1..10"])
def test_every_message_is_under_the_budget(sections_count, per_section):
    counts = (
        [1 + i % 10 for i in range(sections_count)]
        if per_section == "1..10"
        else [per_section] * sections_count
    )
    given = sections(counts)
    rendered = render_digest_email(env(), view("en"), given, settings("en", budget=BUDGET))
    msg = received(rendered)
    assert encoded_html_size(msg) <= BUDGET
    report = rendered.report
    assert report.article_count == sum(counts)
    assert report.shown_count + report.cut_count == sum(counts)
    html = msg.get_body(("html",)).get_content()
    shown_sections = [s for s in rendered.sections if s.articles]
    folded = [s for s in rendered.sections if not s.articles]
    # At least one story of every section not folded, and sections fold only from the end.
    assert shown_sections and rendered.sections[: len(shown_sections)] == shown_sections
    if folded:
        assert "More in:" in html
        assert all(not s.articles for s in rendered.sections[len(shown_sections) :])
    # Never a "more" row for a section with nothing shown; each row links to the first story
    # not shown, on the web version.
    rows = re.findall(r'<a href="([^"]+)"[^>]*>(\d+) more (Region \d+) stor(?:y|ies)</a>', html)
    by_name = {s.name: s for s in rendered.sections}
    assert {name for _, _, name in rows} == {s.name for s in shown_sections if s.cut}
    for url, count, name in rows:
        section = by_name[name]
        assert int(count) == section.cut
        full = next(g for g in given if g.name == name)
        first_not_shown = full.articles[len(section.articles)]
        assert url == f"{view().web_url}#story-{first_not_shown.id}"
    # Nothing is wasted: a message that cut anything is close to the budget.
    if report.cut_count:
        assert encoded_html_size(msg) > BUDGET * 0.85


def test_more_links_land_on_a_story_of_the_web_version():
    given = sections([30, 30])
    rendered = render_digest_email(env(), view("en"), given, settings("en", budget=30_000))
    web = render_digest_web(env(), view("en"), given, settings("en"))
    anchors = re.findall(r'#(story-\d+)"[^>]*>\d+ more', rendered.html)
    assert len(anchors) == 2
    for anchor in anchors:
        assert f'id="{anchor}"' in web
    folded = render_digest_email(
        env(), view("en"), sections([1] * 60), settings("en", budget=20_000)
    )
    folded_web = render_digest_web(env(), view("en"), sections([1] * 60), settings("en"))
    tags = re.findall(r'href="[^"]+#(tag-[\w-]+)"', folded.html)
    assert tags and all(f'id="{t}"' in folded_web for t in tags)


def test_500_articles_with_images_fit_and_count_the_images():
    given = five_hundred()
    with_images = sections([50] * 10, image=True)
    plain = render_digest_email(env(), view("en"), given, settings("en", budget=BUDGET))
    pictured = render_digest_email(env(), view("en"), with_images, settings("en", budget=BUDGET))
    for rendered in (plain, pictured):
        assert encoded_html_size(received(rendered)) <= BUDGET
    assert pictured.report.shown_count < plain.report.shown_count  # images cost room
    assert pictured.html.count("<img") == pictured.report.shown_count
    assert "img.example.org" not in pictured.text


def test_fixed_parts_over_the_budget_raise_instead_of_queueing():
    with pytest.raises(BudgetError, match="cannot fit the HTML budget of 3000 bytes"):
        render_digest_email(env(), view("en"), sections([2]), settings("en", budget=3_000))


def test_a_japanese_digest_shows_half_as_many_again_once_parts_may_be_base64():
    import email
    import email.policy

    from email_samples import story

    from digest.issues import transfer
    from digest.issues.render import Section

    text = "東京で大雪、交通機関に乱れ。気象庁によると今夜から積雪のおそれがあります。" * 4
    japanese = [
        Section(f"t{i}", f"地域{i}", tuple(story(i * 40 + j, title=text[:30], excerpt=text)
                                          for j in range(40)), 40)
        for i in range(5)
    ]  # fmt: skip
    qp = render_digest_email(env(), view("ja"), japanese, settings("ja", budget=BUDGET))
    best = render_digest_email(
        env(),
        view("ja"),
        japanese,
        settings("ja", budget=BUDGET, size_of=functools.partial(transfer.best_size, key=KEY)),
    )
    # The markup and inline styles are ASCII (base64 costs them 1.37x), so not the text's 2.3x.
    assert best.report.shown_count > 1.4 * qp.report.shown_count
    # The base64 message, filled for a recipient as the sender would, is under the budget.
    template = transfer.multipart_alternative(
        b"Subject: x\r\n", best.text, best.html, boundary="b", key=KEY
    )
    assert template.count(f"%%DIGEST_{KEY}_HTML64_".encode()) >= 3
    data = transfer.PLACEHOLDER_BYTES.sub(
        lambda m: transfer.base64_value(
            "https://news.example.com/u/" + "t" * 60, html_part=m.group(2) == b"HTML64"
        ),
        template,
    )
    assert b"%%DIGEST_" not in data
    msg = email.message_from_bytes(data, policy=email.policy.default)
    part = msg.get_body(("html",))
    assert part["Content-Transfer-Encoding"] == "base64"
    assert len(part.as_bytes(policy=email.policy.SMTP).split(b"\r\n\r\n", 1)[1]) <= BUDGET
