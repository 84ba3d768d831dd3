"""Languages of the emails: gettext catalogs, dates and numbers in the reader's locale, and text
direction, for the Jinja2 templates and the few strings built in Python (subjects).

Catalogs: the source strings are the English text in ``templates/email/`` (and the ``gettext``
calls of ``subjects.py``), extracted with Babel (``babel.cfg``); one ``.po`` file per language
under ``digest/locale/<lang>/LC_MESSAGES/digest.po``. The ``.po`` files are the only form kept:
each is compiled with Babel when a process first needs that language (a few milliseconds, then
cached). So a clean clone, an editable install and a wheel (which packages ``digest/locale``
as data) behave alike, there is no build step to forget and no binary ``.mo`` that can drift
from its ``.po``. ``templates/README.md`` says how to extract and update catalogs.

Language codes are BCP 47 / POSIX locale names Babel knows (``fr``, ``pt-BR``, ``pt_BR``); a
language without a catalog of its own uses its base language's catalog (``pt-BR`` -> ``pt``),
else the English source strings, while dates, numbers and text direction still follow the locale.

Templates reach the current language through their render context: a ``lang`` variable (a
``Language`` or a code), else ``language`` (a code), else ``digest.language``, else English. So
one Jinja2 environment serves every list, whatever its language (see ``install``).
"""

from __future__ import annotations

import functools
import gettext as gettext_module
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import babel
import babel.dates
import babel.lists
import babel.numbers
import jinja2
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po
from jinja2.runtime import Context

from .errors import InvalidInput
from .plaintext import display_width, wrap

DOMAIN = "digest"
LOCALE_DIR = Path(__file__).parent / "locale"
SOURCE_LANGUAGE = "en"  # the language of the msgids in the templates


@dataclass(frozen=True)
class Language:
    """One language as the templates use it: translations plus Babel's locale data."""

    code: str  # normalised POSIX form: "fr", "pt_BR"
    locale: babel.Locale
    translations: gettext_module.NullTranslations

    @property
    def tag(self) -> str:
        """The BCP 47 tag for ``lang`` attributes: ``pt-BR``."""
        return self.code.replace("_", "-")

    @property
    def direction(self) -> str:
        """``rtl`` for right-to-left scripts (Arabic, Hebrew, ...), else ``ltr``."""
        return "rtl" if self.locale.text_direction == "rtl" else "ltr"

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.translations.ngettext(singular, plural, n)

    def number(self, value: float) -> str:
        """A number with the locale's digits grouping: 1,234 / 1 234 / 1.234."""
        return babel.numbers.format_decimal(value, locale=self.locale)

    def format_date(self, value: date | datetime, format: str = "long") -> str:
        """``format``: a Babel width (short, medium, long, full) or a CLDR pattern."""
        return babel.dates.format_date(value, format=format, locale=self.locale)

    def skeleton(self, value: date | datetime, skeleton: str) -> str:
        """A date or time from a CLDR skeleton (``MMMd`` -> "21 janv."), in the value's own
        time zone (digest datetimes are already in the list's zone)."""
        if isinstance(value, datetime):
            return babel.dates.format_skeleton(
                skeleton, value, tzinfo=value.tzinfo, locale=self.locale
            )
        return babel.dates.format_skeleton(skeleton, value, locale=self.locale)

    def short_date(self, value: date | datetime) -> str:
        """Day and abbreviated month, for subjects: "Jan 21", "21 janv.", "21 Jan"."""
        return self.skeleton(value, "MMMd")

    def when(self, value: datetime) -> str:
        """A story's publication time in a byline: "Jan 20, 2:30 PM", "20 janv., 14:30"
        (CLDR has no date-and-time skeletons: the locale's own pattern joins the two)."""
        day = self.skeleton(value, "MMMd")
        clock = babel.dates.format_time(
            value, format="short", tzinfo=value.tzinfo, locale=self.locale
        )
        joiner = str(self.locale.datetime_formats["short"])
        return joiner.replace("{1}", day).replace("{0}", clock)

    def period(self, first: date, last: date) -> str:
        """The days an issue covers: "Monday, January 20, 2025" for one day, else an interval
        ("20 – 26 janv. 2025") in the locale's own form."""
        if first == last:
            return self.format_date(first, "full")
        return babel.dates.format_interval(first, last, "yMMMd", locale=self.locale)

    def join(self, items: list[str]) -> str:
        """ "A, B and C" / "A, B et C"."""
        return babel.lists.format_list(items, locale=self.locale) if items else ""


def normalise_code(code: str) -> str:
    """``pt-br`` -> ``pt_BR``; raises ``InvalidInput`` for a code Babel does not know."""
    raw = (code or "").strip().replace("-", "_")
    try:
        locale = babel.Locale.parse(raw)
    except (ValueError, TypeError, babel.UnknownLocaleError):
        raise InvalidInput(
            f"unknown language {code!r}: use a language code such as "
            f"{', '.join(available_languages())}"
        ) from None
    return str(locale)


def available_languages() -> tuple[str, ...]:
    """The languages with a catalog (English, the source language, always)."""
    shipped = sorted(
        p.parent.parent.name for p in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po") if p.is_file()
    )
    return (SOURCE_LANGUAGE, *[c for c in shipped if c != SOURCE_LANGUAGE])


def catalog_path(code: str) -> Path:
    return LOCALE_DIR / code / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.lru_cache(maxsize=64)
def compiled_translations(code: str) -> gettext_module.NullTranslations:
    """The catalog of ``code`` (or of its base language), compiled from its ``.po`` with
    Babel; English source strings when there is none. Fuzzy entries are left out, as
    ``msgfmt`` does, so a half-done translation never reaches a reader."""
    for candidate in (code, code.split("_")[0]):
        path = catalog_path(candidate)
        if path.is_file():
            with path.open("rb") as f:
                catalog = read_po(f, locale=candidate, domain=DOMAIN)
            buffer = io.BytesIO()
            write_mo(buffer, catalog, use_fuzzy=False)
            buffer.seek(0)
            return gettext_module.GNUTranslations(buffer)
    return gettext_module.NullTranslations()


@functools.lru_cache(maxsize=64)
def get_language(code: str | None) -> Language:
    """The ``Language`` for a code (``None`` or empty: English). Raises ``InvalidInput`` for
    a code Babel does not know."""
    normalised = normalise_code(code) if code else SOURCE_LANGUAGE
    return Language(
        code=normalised,
        locale=babel.Locale.parse(normalised),
        translations=compiled_translations(normalised),
    )


def context_language(context: Context | Mapping[str, Any]) -> Language:
    """The language a template is rendered in (see the module docstring)."""
    value = context.get("lang")
    if isinstance(value, Language):
        return value
    if isinstance(value, str) and value:
        return get_language(value)
    code = context.get("language")
    if isinstance(code, str) and code:
        return get_language(code)
    view = context.get("digest")
    code = getattr(view, "language", None)
    return get_language(code if isinstance(code, str) and code else None)


def _context_call(name: str) -> Callable[..., Any]:
    """A template global or filter that calls ``Language.<name>`` of the current language."""

    @jinja2.pass_context
    def call(context: Context, *args: Any, **kwargs: Any) -> Any:
        return getattr(context_language(context), name)(*args, **kwargs)

    call.__name__ = name
    return call


@jinja2.pass_context
def _gettext(context: Context, message: str) -> str:
    return context_language(context).gettext(message)


@jinja2.pass_context
def _ngettext(context: Context, singular: str, plural: str, n: int) -> str:
    return context_language(context).ngettext(singular, plural, n)


@jinja2.pass_context
def _current_language(context: Context) -> Language:
    return context_language(context)


def install(env: jinja2.Environment) -> None:
    """Add gettext to ``env``: ``{% trans %}``, ``_()``, ``gettext()``, ``ngettext()`` in the
    language of each render's context; filters ``number``, ``date``, ``when`` (a byline time),
    ``short_date``, ``wrap`` (plain text by display width) and ``display_width``; the globals
    ``current_language()`` (``issues.render`` adds ``subject_line(pattern)``).

    New-style gettext (Jinja2's ``newstyle``): translated strings are formatted by Jinja
    (``%(name)s``) and their variables autoescaped in HTML. Whitespace inside ``{% trans %}`` is
    trimmed, so templates can wrap long sentences (the extraction in ``babel.cfg`` trims too)."""
    env.add_extension("jinja2.ext.i18n")
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_callables(  # type: ignore[attr-defined]
        _gettext, _ngettext, newstyle=True
    )
    env.globals["current_language"] = _current_language
    env.filters["number"] = _context_call("number")
    env.filters["date"] = _context_call("format_date")
    env.filters["when"] = _context_call("when")
    env.filters["short_date"] = _context_call("short_date")
    env.filters["wrap"] = wrap
    env.filters["display_width"] = display_width


def period_text(first: date, last: date, code: str | None) -> str:
    """``DigestView.period_text`` in the list's language (for ``digests.digest_view``)."""
    return get_language(code).period(first, last)


# ---------------------------------------------------------------- maintaining the catalogs


def extract_catalog(root: Path) -> Catalog:
    """Every translatable string in the source tree at ``root``, where ``babel.cfg`` says."""
    with (root / "babel.cfg").open(encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f)
    catalog = Catalog(domain=DOMAIN, project="digest", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
        str(root), method_map, options_map, comment_tags=("Translators:",), strip_comment_tags=True
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def update_catalogs(root: Path) -> list[Path]:
    """Write ``digest/locale/digest.pot`` from the sources and merge it into every ``.po``
    (new strings come in untranslated, fuzzy guesses are marked fuzzy): what a maintainer runs
    after changing a template's text. Returns the files written."""
    template = extract_catalog(root)
    written = [LOCALE_DIR / f"{DOMAIN}.pot"]
    with written[0].open("wb") as f:
        write_po(f, template, width=100, omit_header=False, sort_output=False)
    for code in available_languages()[1:]:
        path = catalog_path(code)
        with path.open("rb") as f:
            catalog = read_po(f, locale=code, domain=DOMAIN)
        catalog.update(template, update_header_comment=False)
        with path.open("wb") as f:
            write_po(f, catalog, width=100, ignore_obsolete=True)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m digest.i18n update``: refresh the .pot and the .po files from the sources."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if args != ["update"]:
        print("usage: python -m digest.i18n update   (run from the source tree's root)")
        return 2
    for path in update_catalogs(Path.cwd()):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
