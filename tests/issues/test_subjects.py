"""Subjects: content first, at most 60 characters where possible, patterns per list, never
empty, translated."""

from __future__ import annotations

from dataclasses import replace

import pytest
from email_samples import demo_sections, env, sections, settings, story, view

from digest.i18n import get_language
from digest.issues.compose import digest_subject
from digest.subjects import SubjectFacts, SubjectPatternError, check_pattern, fill_subject

EN = get_language("en")


def facts(**kw) -> SubjectFacts:
    values = {
        "top": "Port-au-Prince markets reopen as fuel deliveries resume",
        "tags": ("Haiti", "Kenya", "Economy", "Health", "Climate", "Technology"),
        "date": "Jan 21",
        "list_title": "Morning Briefing",
        "site": "Example News Desk",
        "frequency": "Daily digest",
        "count": 34,
    }
    values.update(kw)
    return SubjectFacts(**values)


def test_the_default_leads_with_the_top_story_then_the_date():
    subject = fill_subject("{top} — {date}", facts(), EN)
    assert subject == "Port-au-Prince markets reopen as fuel deliveries… — Jan 21"
    assert len(subject) <= 60


def test_a_long_title_is_cut_on_a_word_with_an_ellipsis():
    title = "A very long headline about the regional elections that runs on and on and on"
    subject = fill_subject("{top} — {date}", facts(top=title), EN)
    assert len(subject) <= 60 and subject.endswith("… — Jan 21")
    assert subject.startswith("A very long headline about") and " an… " not in subject


def test_section_names_shrink_to_fit_and_lead_when_there_is_no_story_title():
    subject = fill_subject("{tags} — {date}", facts(), EN)
    assert len(subject) <= 60
    assert subject.startswith("Haiti, Kenya") and "more" in subject and subject.endswith("Jan 21")
    assert fill_subject("{top} — {date}", facts(top=""), EN).startswith("Haiti, Kenya")


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("{list}: {top}", "Morning Briefing: Port-au-Prince markets reopen as fuel…"),
        ("{{ site }} — {{ frequency }}, {{ date }}", "Example News Desk — Daily digest, Jan 21"),
        ("{count} stories · {date}", "34 stories · Jan 21"),
    ],
)
def test_patterns_per_list_with_placeholders(pattern, expected):
    assert fill_subject(check_pattern(pattern), facts(), EN) == expected


def test_an_unknown_placeholder_is_a_clear_error():
    with pytest.raises(SubjectPatternError, match=r"unknown placeholder \{headline\}.*\{top\}"):
        check_pattern("{headline} — {date}")


def test_never_empty():
    empty = facts(top="", tags=(), date="", list_title="Morning Briefing")
    assert fill_subject("{top}", empty, EN) == "Morning Briefing"
    assert fill_subject("{top} {tags}", facts(top="", tags=(), date="", list_title=""), EN)
    assert fill_subject("   ", facts(), EN) == "Morning Briefing — Jan 21"


def test_fixed_text_longer_than_the_limit_is_kept_whole():
    pattern = "A fixed subject line that an editor wrote and that is far longer than sixty"
    assert fill_subject(pattern, facts(), EN) == pattern


def test_the_demo_subjects_lead_with_content_in_each_language():
    demo_view, demo = demo_sections()
    english = digest_subject(env(), demo_view, demo, settings("en"))
    assert not english.startswith(("Example News Desk", "Morning Briefing"))
    assert english.endswith("— Jan 21") and len(english) <= 60
    french = digest_subject(env(), view("fr"), demo, settings("fr"))
    assert french.endswith("— 21 janv.") and len(french) <= 60
    titled = digest_subject(
        env(), view("en"), demo, settings("en", subject_pattern="{list} · {date}")
    )
    assert titled == "World Desk · Jan 21"


def test_a_variant_without_a_title_still_gets_a_subject():
    untitled = sections([1])
    untitled[0] = replace(untitled[0], articles=(replace(story(1), title=""),))
    assert digest_subject(env(), view("en"), untitled, settings("en")) == "Region 0 — Jan 21"
