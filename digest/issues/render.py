"""Rendering a digest variant: Jinja2 templates (``templates/email/``) -> HTML with its CSS inlined
by premailer -> fitted under the Gmail clipping budget; plus the plain-text part and the subject.

Everything here runs once per variant, never per recipient: the recipient's name and links are
placeholders (``template.html_placeholder``/``text_placeholder``, with the variant's random key)
filled into the encoded message
later by ``messages.Assembler``. Templates are looked up in ``[templates_dir]`` first, then the
packaged ``digest/templates``, then the source tree's ``templates/``, so editors can override
any single file.
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2

from .. import i18n, links
from ..audience.branding import LeadImage
from ..config import Config, DigestSettings
from ..errors import ConfigError, DigestError
from ..subjects import subject_line
from .template import encode_body, html_placeholder, text_placeholder

PACKAGE_TEMPLATES = Path(__file__).parent.parent / "templates"
SOURCE_TEMPLATES = Path(__file__).parent.parent.parent / "templates"
DEFAULT_SUBJECT = DigestSettings().subject
STYLE_LIMIT = 16_384  # Gmail ignores a <style> block larger than this
# Room kept under the budget for what replaces each placeholder in the HTML part: a signed URL on
# base_url (~60 characters after it) or a name, HTML-escaped and quoted-printable encoded.
PLACEHOLDER_ROOM = 240
# "N more <Tag> stories" rows are small; this estimate is checked by re-measuring anyway.
MORE_ROW_ESTIMATE = 400

_MARKER = re.compile(r"<!--digest-article:(\d+)-->(.*?)<!--/digest-article-->", re.S)
_MARKER_TAGS = re.compile(r"<!--/?digest-article(?::\d+)?-->\n?")
_STYLE = re.compile(r"<style\b[^>]*>(.*?)</style>", re.S | re.I)
_LINK = re.compile(r"<a\s[^>]*href=", re.I)
_PLACEHOLDER = re.compile(r"%%DIGEST_[0-9a-f]{16}_(?:HTML|TEXT)_[A-Z_]+%%")


@dataclass(frozen=True)
class ArticleView:
    """One article as the templates see it: plain-text excerpt, absolute URL or None."""

    id: int
    title: str
    url: str | None
    author: str | None
    published_at: datetime  # in the list's timezone
    excerpt: str
    summary_html: str  # sanitised; only the web version shows it
    image: LeadImage | None = None  # shown when the list shows images; never in plain text

    @property
    def byline(self) -> str:
        when = f"{self.published_at.day} {self.published_at:%b %H:%M}"
        return f"{self.author} · {when}" if self.author else when


@dataclass(frozen=True)
class Section:
    key: str  # tag key; '' for the untagged section of a list covering every tag
    name: str  # display name
    articles: tuple[ArticleView, ...]  # shown, newest first
    total: int  # articles of this tag in the variant, shown or not
    more_url: str | None = None

    @property
    def cut(self) -> int:
        return self.total - len(self.articles)

    @property
    def anchor(self) -> str:
        return "tag-" + self.key.replace(" ", "-")


@dataclass
class DigestView:
    """What a variant's templates are rendered with (besides the sections)."""

    site: str
    language: str
    list_title: str
    list_slug: str
    list_description: str | None
    frequency: str
    issue_date: datetime | Any  # a date
    period_text: str
    base_url: str
    web_url: str
    archive_url: str
    # The variant's placeholder key (template.new_placeholder_key); '' for the web version,
    # which has no personal parts.
    placeholder_key: str = ""
    # A private list's issue key (digests.web_key): every link to the web version carries it.
    web_key: str | None = None


@dataclass(frozen=True)
class SectionCount:
    key: str
    name: str
    articles: int  # in the variant
    shown: int  # in the message
    folded: bool = False  # only named in the "More in" block

    @property
    def cut(self) -> int:
        return self.articles - self.shown


@dataclass
class RenderReport:
    """What rendering one variant produced, stored with it (``variants.report``) and shown by
    ``digest build`` and the previews."""

    subject: str = ""
    sections: list[SectionCount] = field(default_factory=list)
    article_count: int = 0
    shown_count: int = 0
    cut_count: int = 0
    html_size: int = 0
    html_budget: int = 0
    placeholder_room: int = 0
    style_size: int = 0
    links: int = 0
    warnings: list[str] = field(default_factory=list)
    tags_key: str = ""
    language: str = ""
    folded_count: int = 0  # sections folded into "More in"
    shortened_count: int = 0  # stories shown with a shortened excerpt
    attempts: int = 0  # renders it took to fit the budget
    error: str = ""  # why the variant could not be rendered; its deliveries failed

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RenderReport:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["sections"] = [SectionCount(**s) for s in data.get("sections", [])]
        return cls(**values)


@dataclass
class RenderedEmail:
    subject: str
    html: str  # inlined, with placeholders
    text: str  # with placeholders
    sections: list[Section]
    report: RenderReport = field(default_factory=RenderReport)

    @property
    def article_count(self) -> int:
        return sum(len(s.articles) for s in self.sections)

    @property
    def cut_count(self) -> int:
        return sum(s.cut for s in self.sections)


def template_environment(config: Config) -> jinja2.Environment:
    """Jinja2 environment over the override, packaged and source template folders; HTML
    templates are autoescaped, ``.txt`` templates (subject, plain-text part) are not."""
    paths = []
    if config.templates_dir is not None:
        if not config.templates_dir.is_dir():
            raise ConfigError(f"templates_dir {config.templates_dir} is not a directory")
        paths.append(str(config.templates_dir))
    paths += [str(p) for p in (PACKAGE_TEMPLATES, SOURCE_TEMPLATES) if p.is_dir()]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(paths),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "htm", "xml"), default_for_string=False
        ),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["wrap"] = wrap
    env.globals["html_placeholder"] = _html_placeholder
    env.globals["text_placeholder"] = _text_placeholder
    i18n.install(env)  # {% trans %}, _(), dates and numbers in the list's language; CJK wrapping
    env.globals["subject_line"] = subject_line
    return env


@jinja2.pass_context
def _html_placeholder(context: jinja2.runtime.Context, field: str) -> str:
    """``{{ html_placeholder('UNSUBSCRIBE_URL') }}`` in a template: the placeholder with the key
    of the variant being rendered (``digest.placeholder_key``)."""
    return html_placeholder(field, context["digest"].placeholder_key)


@jinja2.pass_context
def _text_placeholder(context: jinja2.runtime.Context, field: str) -> str:
    return text_placeholder(field, context["digest"].placeholder_key)


def wrap(text: str, width: int = 78, indent: str = "", subsequent: str | None = None) -> str:
    """Wrap at ``width`` columns without breaking words or URLs (a long URL keeps its line)."""
    return textwrap.fill(
        " ".join(str(text).split()),
        width=width,
        initial_indent=indent,
        subsequent_indent=indent if subsequent is None else subsequent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def excerpt(text: str, words: int) -> str:
    """The first ``words`` words of ``text``, cut on a word boundary, with an ellipsis if cut."""
    parts = text.split()
    if len(parts) <= words:
        return " ".join(parts)
    return " ".join(parts[:words]).rstrip(".,;:–—-") + "…"


def inline_css(html: str) -> str:
    """premailer, offline: media queries and ``!important`` rules (dark mode, narrow screens)
    stay in the ``<style>`` block; everything else moves into ``style`` attributes."""
    # Imported here: commands that never render (most of the CLI) start ~0.2 s sooner.
    import premailer  # noqa: PLC0415

    try:
        out = premailer.Premailer(
            html,
            strip_important=False,
            allow_network=False,
            allow_loading_external_files=False,
            disable_validation=True,
            disable_link_rewrites=True,
            cssutils_logging_level=50,
        ).transform()
    except (premailer.premailer.ExternalNotFoundError, ValueError) as e:
        raise DigestError(f"email template: cannot inline CSS ({e})") from None
    return out


def encoded_size(html: str, key: str | None = None) -> int:
    """Size in bytes of the HTML part as sent (quoted-printable, CRLF, the placeholders of
    ``key`` on lines of their own)."""
    return len(encode_body(html, key))


def style_size(html: str) -> int:
    return sum(len(m.group(1).encode("utf-8")) for m in _STYLE.finditer(html))


def count_links(html: str) -> int:
    return len(_LINK.findall(html))


def placeholder_room(html: str) -> int:
    return PLACEHOLDER_ROOM * len(_PLACEHOLDER.findall(html))


def render_subject(
    env: jinja2.Environment, config: Config, view: DigestView, sections: list[Section]
) -> str:
    # The untagged section ('') is not a topic: named only when it is all there is.
    names = [s.name for s in sections if s.key] or [s.name for s in sections]
    tags = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    values = {
        "site": view.site,
        "list": view.list_title,
        "frequency": view.frequency,
        "date": f"{view.issue_date.day} {view.issue_date:%b %Y}",
        "tags": tags,
        "count": sum(len(s.articles) for s in sections),
    }
    configured = config.digest.subject
    try:
        if configured != DEFAULT_SUBJECT:
            template = env.from_string(configured)
        else:
            template = env.get_template("email/subject.txt")
        subject = template.render(values)
    except jinja2.TemplateError as e:
        raise ConfigError(f"digest subject template: {e}") from None
    return " ".join(subject.split())


def _render(env: jinja2.Environment, name: str, **context: Any) -> str:
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateNotFound as e:
        raise ConfigError(f"template {e.name} not found in the templates folders") from None
    except jinja2.TemplateError as e:
        lineno = getattr(e, "lineno", None)
        where = f" line {lineno}" if lineno else ""
        raise ConfigError(f"template {name}{where}: {e}") from None


def _preheader(sections: Iterable[Section]) -> str:
    titles = [a.title for s in sections for a in s.articles[:1]]
    return " · ".join(titles)[:180]


def _html(
    env: jinja2.Environment,
    view: DigestView,
    sections: list[Section],
    subject: str,
    *,
    personal: bool,
) -> str:
    return _render(
        env,
        "email/digest.html",
        digest=view,
        sections=sections,
        subject=subject,
        preheader=_preheader(sections),
        personal=personal,
    )


def render_email(
    env: jinja2.Environment,
    config: Config,
    view: DigestView,
    sections: list[Section],
    *,
    budget: int | None = None,
) -> RenderedEmail:
    """Render and inline one variant. When its encoded HTML part (plus room for the personal
    values) passes ``budget``, keep the newest articles of every section, cut the rest, and end
    each shortened section with a link to its part of the web version."""
    budget = config.digest.html_budget if budget is None else budget
    subject = render_subject(env, config, view, sections)
    full = inline_css(_html(env, view, sections, subject, personal=True))
    html = _MARKER_TAGS.sub("", full)
    size = encoded_size(html, view.placeholder_key or None)
    shown = sections
    if size + placeholder_room(html) > budget:
        shown = _fit(env, view, sections, subject, full, budget)
        html = _MARKER_TAGS.sub("", inline_css(_html(env, view, shown, subject, personal=True)))
        size = encoded_size(html, view.placeholder_key or None)
        # The allocation used measured article sizes; re-measure and trim until it really fits.
        while size + placeholder_room(html) > budget and any(s.articles for s in shown):
            longest = max(range(len(shown)), key=lambda i: len(shown[i].articles))
            s = shown[longest]
            shown[longest] = replace(s, articles=s.articles[:-1], more_url=_more_url(view, s))
            html = _MARKER_TAGS.sub("", inline_css(_html(env, view, shown, subject, personal=True)))
            size = encoded_size(html, view.placeholder_key or None)
    text = _render(env, "email/digest.txt", digest=view, sections=shown, subject=subject)
    text = text if text.endswith("\n") else text + "\n"
    styles = style_size(html)
    report = RenderReport(
        subject=subject,
        sections=[SectionCount(s.key, s.name, s.total, len(s.articles)) for s in shown],
        article_count=sum(s.total for s in shown),
        shown_count=sum(len(s.articles) for s in shown),
        cut_count=sum(s.cut for s in shown),
        html_size=size,
        html_budget=budget,
        placeholder_room=placeholder_room(html),
        style_size=styles,
        links=count_links(html),
    )
    if styles > STYLE_LIMIT:
        report.warnings.append(
            f"<style> block is {styles} bytes; Gmail ignores style blocks over {STYLE_LIMIT}"
        )
    return RenderedEmail(subject=subject, html=html, text=text, sections=shown, report=report)


def _more_url(view: DigestView, section: Section) -> str:
    return links.digest_web_url(
        view.base_url,
        view.list_slug,
        view.frequency,
        view.issue_date.isoformat(),
        tag=section.key,
        key=view.web_key,
    )


def _fit(
    env: jinja2.Environment,
    view: DigestView,
    sections: list[Section],
    subject: str,
    inlined: str,
    budget: int,
) -> list[Section]:
    """Choose how many articles each section keeps, round-robin from the newest, using each
    article's encoded size as measured in the fully rendered and inlined HTML."""
    key = view.placeholder_key or None
    measured = {int(m.group(1)): encoded_size(m.group(2), key) for m in _MARKER.finditer(inlined)}
    whole = encoded_size(_MARKER_TAGS.sub("", inlined), key)
    n = sum(len(s.articles) for s in sections)
    if measured:
        fixed = whole - sum(measured.values())
    else:  # a custom template without the markers: assume articles are alike
        fixed = whole // 4
        measured = {a.id: (whole - fixed) // max(n, 1) for s in sections for a in s.articles}
    room = budget - fixed - placeholder_room(inlined) - MORE_ROW_ESTIMATE * len(sections)
    keep = [0] * len(sections)
    open_ = [bool(s.articles) for s in sections]
    while any(open_):
        for i, s in enumerate(sections):
            if not open_[i]:
                continue
            if keep[i] >= len(s.articles):
                open_[i] = False
                continue
            cost = measured.get(s.articles[keep[i]].id, 0)
            if cost > room:
                open_[i] = False
                continue
            room -= cost
            keep[i] += 1
    return [
        replace(s, articles=s.articles[: keep[i]], more_url=_more_url(view, s))
        if keep[i] < len(s.articles)
        else s
        for i, s in enumerate(sections)
    ]


def render_web_page(env: jinja2.Environment, view: DigestView, sections: list[Section]) -> str:
    """The web version: every article, no personal links, CSS left in the ``<style>`` block."""
    d = view.issue_date
    subject = f"{view.list_title} — {view.frequency} digest, {d.day} {d:%b %Y}"
    return _MARKER_TAGS.sub("", _html(env, view, sections, subject, personal=False))
