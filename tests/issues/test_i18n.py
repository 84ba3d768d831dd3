"""Languages: every catalog complete, a French digest and confirmation email entirely French,
dates and numbers by Babel, right-to-left direction, catalogs compiled from the .po files."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from email_samples import demo_sections, env, received, sections, settings, view

from digest import i18n
from digest.errors import InvalidInput
from digest.issues.compose import render_digest_email, render_digest_web
from digest.subjects import confirmation_subject

ROOT = Path(__file__).parents[2]
SHIPPED = ("fr", "es", "pt", "sw")
_FORMAT = re.compile(r"%\(\w+\)[sd]|\{\w+\}")


def test_the_promised_languages_are_shipped():
    assert set(i18n.available_languages()) >= {"en", *SHIPPED}


@pytest.mark.parametrize("code", SHIPPED)
def test_every_catalog_is_complete_and_keeps_the_placeholders(code):
    source = i18n.extract_catalog(ROOT)
    source_ids = {m.id for m in source if m.id}
    assert len(source_ids) >= 15  # the templates really were read
    with i18n.catalog_path(code).open("rb") as f:
        catalog = read_po(f, locale=code)
    problems = []
    ids = {m.id for m in catalog if m.id}
    problems += [f"missing: {mid!r}" for mid in source_ids - ids]
    problems += [f"obsolete: {mid!r}" for mid in ids - source_ids]
    for message in catalog:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy:
            problems.append(f"fuzzy: {message.id!r}")
        if len(strings) != catalog.num_plurals and isinstance(message.id, tuple):
            problems.append(f"needs {catalog.num_plurals} plural forms: {message.id!r}")
        singular = message.id[0] if isinstance(message.id, tuple) else message.id
        wanted = sorted(set(_FORMAT.findall(singular)))
        for text in strings:
            if not text:
                problems.append(f"untranslated: {message.id!r}")
            elif sorted(set(_FORMAT.findall(text))) != wanted:
                problems.append(f"placeholders differ: {message.id!r} -> {text!r}")
    assert problems == [], "\n".join(problems)


def _english_fragments() -> set[str]:
    """Every piece of English the templates can print: each source message cut at its
    placeholders, plus English month and day names, which only a bug would leave in."""
    fragments = set()
    for message in i18n.extract_catalog(ROOT):
        if not message.id:
            continue
        for text in message.id if isinstance(message.id, tuple) else (message.id,):
            fragments.update(p.strip(" .,:;—") for p in _FORMAT.split(text))
    fragments |= {"January", "Monday", "Tuesday", "digest", "stories", "story", "Jan 20"}
    return {f for f in fragments if len(f) >= 4 and re.search("[A-Za-z]{3}", f)}


def _visible(html: str) -> str:
    """What a reader can see or hear of an HTML email: the title, the body's text, and the
    alt, title and aria-label attributes (not CSS, comments or URLs)."""
    head, _, body = html.partition("</head>")
    title = re.search(r"<title>(.*?)</title>", head, re.S)
    body = re.sub(r"<!--.*?-->", " ", body, flags=re.S)
    said = re.findall(r'\s(?:alt|title|aria-label)="([^"]*)"', body)
    text = re.sub(r"<[^>]+>", " ", body)
    return " ".join([title.group(1) if title else "", *said, text])


def _english_left(text: str, *, allowed: set[str]) -> list[str]:
    left = []
    for fragment in sorted(_english_fragments()):
        for m in re.finditer(re.escape(fragment), text):
            around = text[max(m.start() - 60, 0) : m.end() + 60]
            if not any(a in around for a in allowed):
                left.append(f"{fragment!r} in …{around}…")
    return left


def test_a_french_digest_is_entirely_french():
    demo_view, demo = demo_sections()
    french = view("fr", title="Le Matin", description=None)
    # Content (titles, tag names, URLs, names) is the editors'; everything else must be French.
    mixed = demo + sections([1] * 30, start=900)  # enough to fold sections ("More in" block)
    rendered = render_digest_email(env(), french, mixed, settings("fr", budget=40_000))
    assert rendered.report.folded_count > 0 and rendered.report.cut_count > 0
    msg = received(rendered)
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    content = {a.title for s in mixed for a in s.articles} | {"Example News Desk"}
    content |= {a.excerpt[:40] for s in mixed for a in s.articles}
    leftovers = []
    for where, body in (("subject", rendered.subject), ("html", html), ("text", text)):
        visible = _visible(body) if where == "html" else body
        visible = re.sub(r"https?://\S+", " ", visible)
        leftovers += [f"{where}: {x}" for x in _english_left(visible, allowed=content)]
    assert leftovers == [], "\n".join(leftovers)
    assert 'lang="fr"' in html and "Résumé quotidien" in html and "lundi 20 janvier 2025" in html
    assert "Aussi dans\u00a0:" in html and "Se désabonner" in text
    assert re.search(r"\d+ autres? articles? dans \w+</a>", html)


def test_a_french_confirmation_email_is_entirely_french():
    environment = env()
    context = {
        "site": "Example News Desk",
        "list_title": "Le Matin",
        "list_description": None,
        "email": "ann@example.org",
        "confirm_url": "https://news.example.com/c/tok",
        "days": 7,
        "language": "fr",
    }
    text = environment.get_template("email/confirm.txt").render(context)
    html = environment.get_template("email/confirm.html").render(context)
    allowed = {"Example News Desk", "ann@example.org"}
    left = _english_left(_visible(html), allowed=allowed) + _english_left(text, allowed=allowed)
    assert left == [], "\n".join(left)
    assert "Confirmez votre abonnement à Le Matin" in text
    subject = confirmation_subject("Le Matin", i18n.get_language("fr"))
    assert subject == "Confirmez votre abonnement à Le Matin"
    assert "valable 7 jours" in text and 'lang="fr"' in html
    # Without a language the confirmation stays English, as before.
    del context["language"]
    assert "Confirm your subscription" in environment.get_template("email/confirm.txt").render(
        context
    )


def test_dates_and_numbers_follow_the_locale():
    when = datetime(2025, 1, 20, 14, 30, tzinfo=UTC)
    assert i18n.get_language("fr").when(when) == "20 janv. 14:30"
    assert i18n.get_language("en").when(when) == "Jan 20, 2:30\u202fPM"
    assert i18n.get_language("es").short_date(when) == "20 ene"
    assert i18n.get_language("sw").period(date(2025, 1, 20), date(2025, 1, 20)) == (
        "Jumatatu, 20 Januari 2025"
    )
    assert i18n.get_language("fr").number(12345) == "12\u202f345"
    assert i18n.get_language("pt").join(["A", "B", "C"]) == "A, B e C"


def test_plural_forms_come_from_the_catalog():
    fr = i18n.get_language("fr")
    one = fr.ngettext("%(count)s more %(name)s story", "%(count)s more %(name)s stories", 1)
    many = fr.ngettext("%(count)s more %(name)s story", "%(count)s more %(name)s stories", 4)
    assert one % {"count": 1, "name": "Kenya"} == "1 autre article dans Kenya"
    assert many % {"count": 4, "name": "Kenya"} == "4 autres articles dans Kenya"


def test_regional_codes_fall_back_to_the_base_catalog_and_unknown_codes_are_refused():
    assert i18n.get_language("pt-BR").gettext("Unsubscribe") == "Cancelar a inscrição"
    assert i18n.get_language("pt-BR").tag == "pt-BR"
    assert i18n.get_language("de").gettext("Unsubscribe") == "Unsubscribe"  # no catalog yet
    with pytest.raises(InvalidInput, match="unknown language 'xx-nope'.*fr"):
        i18n.get_language("xx-nope")


def test_right_to_left_languages_set_dir_everywhere():
    rendered = render_digest_email(env(), view("ar"), sections([2, 1]), settings("ar"))
    assert '<html lang="ar" dir="rtl"' in rendered.html
    assert 'aria-roledescription="email" aria-label="' in rendered.html
    assert re.search(r'role="article"[^>]*lang="ar" dir="rtl"', rendered.html)
    assert "يناير" in rendered.html  # the dates are Arabic even before a catalog exists
    web = render_digest_web(env(), view("ar"), sections([2]), settings("ar"))
    assert 'dir="rtl"' in web
    ltr = render_digest_email(env(), view("sw"), sections([1]), settings("sw"))
    assert '<html lang="sw" xmlns' in ltr.html and 'dir="ltr"' in ltr.html


def test_catalogs_compile_from_the_po_files_and_leave_fuzzy_entries_out(tmp_path, monkeypatch):
    po = tmp_path / "xx" / "LC_MESSAGES" / "digest.po"
    po.parent.mkdir(parents=True)
    po.write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        'msgid "Unsubscribe"\nmsgstr "Weg"\n\n#, fuzzy\nmsgid "Daily digest"\nmsgstr "Täglich?"\n',
        encoding="utf-8",
    )
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    i18n.compiled_translations.cache_clear()
    try:
        translations = i18n.compiled_translations("xx")
        assert translations.gettext("Unsubscribe") == "Weg"
        assert translations.gettext("Daily digest") == "Daily digest"
    finally:
        i18n.compiled_translations.cache_clear()
