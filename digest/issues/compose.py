"""Composing one variant's email in its list's language and brand, never over the HTML budget:
render the templates (``templates/email/``), inline the CSS, and if the encoded HTML part is too
large, measure each story and section, let ``budget.plan`` choose what to show, render that and
check it; then the plain-text part (same stories, no images) and the subject (``digest/subjects.py``).

Measuring: the templates mark each section and story with ``<!--digest-...-->`` comments when
rendered with ``measure=True``. One render with full excerpts gives each story's full size, each
section's heading and the fixed rest; one with shortened excerpts and an "N more" row in every
section gives the short sizes and the row's. A section's stories past what could ever be shown
are not rendered to be measured (``measured_per_section``), and a digest whose stories' text
alone is over the budget skips the first, complete render. Sizes are taken after CSS inlining and encoding
(``size_of``: quoted-printable as ``messages.py`` sends today, or ``transfer.best_size`` once
the message picks the smaller encoding per part), so images, inline styles and escaping all
count. The planned message is rendered and measured again; if estimation left it over, the plan
is redone with the overshoot taken off, a few times at most, and a message that still does not
fit raises ``BudgetError``: nothing is ever queued over the budget.

"N more" links point at the first story not shown (``#story-<id>`` on the web version), folded
sections at their heading (``#tag-<key>``).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import jinja2
import premailer

from .. import links
from ..audience.branding import Brand
from ..errors import ConfigError, DigestError
from ..i18n import Language
from ..subjects import SubjectFacts, fill_subject
from . import budget, render, transfer

SHORT_WORDS = 20  # a shortened excerpt: about two lines on a phone
FOLD_BLOCK_ESTIMATE = 700  # the "More in" row without its entries, inlined and encoded
FOLD_ENTRY_OVERHEAD = 60  # an entry's link markup and count, besides its URL and name
MORE_ROW_ESTIMATE = 400  # an "N more" row, for templates without measuring markers
MIN_STORY = 400  # the smallest a story can be: headline, byline, inline styles
ATTEMPTS = 5

_MARKERS = re.compile(r"<!--/?digest-(?:article|section|folded)(?::\d+)?-->\n?")
_SECTION = re.compile(r"<!--digest-section:(\d+)-->(.*?)<!--/digest-section-->", re.S)
_ARTICLE = re.compile(r"<!--digest-article:(\d+)-->(.*?)<!--/digest-article-->", re.S)


class BudgetError(DigestError):
    """A digest cannot be made to fit the HTML budget."""


@dataclass(frozen=True)
class FoldedSection:
    """A section shown only as an entry of the "More in" block."""

    key: str
    name: str
    count: int
    url: str


@dataclass(frozen=True)
class EmailSettings:
    """How a list's digests look and fit: its language, brand and budget."""

    language: Language
    brand: Brand | None = None
    budget: int = 90_000  # [digest] html_budget
    subject_pattern: str | None = None  # None: templates/email/subject.txt
    short_words: int = SHORT_WORDS
    intro: str | None = None  # the editor's note for this issue
    size_of: Callable[[str], int] = field(default=transfer.quoted_printable_size)


def _render(env: jinja2.Environment, name: str, **context: Any) -> str:
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateNotFound as e:
        raise ConfigError(f"template {e.name} not found in the templates folders") from None
    except jinja2.TemplateError as e:
        line = getattr(e, "lineno", None)
        where = f" line {line}" if line else ""
        raise ConfigError(f"template {name}{where}: {e}") from None


_RULES: dict[tuple[str, int], tuple[list[Any], list[Any]]] = {}


class _Inliner(premailer.Premailer):
    """premailer, keeping each stylesheet's parsed rules between calls. Every variant of every
    digest has the same stylesheet (the list's accent colour aside), and turning its ~200
    declarations back into text through cssutils took half of premailer's time per call.
    ``_parse_style_rules`` is premailer's own (3.10, unchanged since 2021); the cache holds
    the rules of a few stylesheets only."""

    def _parse_style_rules(self, css_body: str, ruleset_index: int) -> tuple[list[Any], list[Any]]:
        key = (css_body, ruleset_index)
        found = _RULES.get(key)
        if found is None:
            found = super()._parse_style_rules(css_body, ruleset_index)
            if len(_RULES) >= 32:
                _RULES.clear()
            _RULES[key] = found
        return list(found[0]), list(found[1])


def inline_css(markup: str) -> str:
    """``render.inline_css`` (premailer, offline) except that CSS widths and heights never
    become ``width``/``height`` attributes: the templates set those to an image's true pixel
    size, which Outlook for Windows needs, and premailer would overwrite them with the
    ``max-width``/``height:auto`` of a class rule (``height="auto"``). Images are not floated,
    so premailer's float-to-align pass (a cssutils parse per image, most of the time of a
    digest with images) is off."""
    try:
        inlined: str = _Inliner(
            markup,
            strip_important=False,
            allow_network=False,
            allow_loading_external_files=False,
            disable_validation=True,
            disable_link_rewrites=True,
            disable_basic_attributes=["width", "height"],
            align_floating_images=False,  # no floats; it re-parses every image's style
            cssutils_logging_level=50,
        ).transform()
    except (premailer.premailer.ExternalNotFoundError, ValueError) as e:
        raise DigestError(f"email template: cannot inline CSS ({e})") from None
    return inlined


def subject_facts(
    view: render.DigestView, sections: Sequence[render.Section], lang: Language
) -> SubjectFacts:
    top = next((s.articles[0].title for s in sections if s.articles), "")
    weekly = view.frequency == "weekly"
    return SubjectFacts(
        top=top,
        # The untagged section ('') is not a topic: named only when it is all there is.
        tags=tuple(s.name for s in sections if s.key) or tuple(s.name for s in sections),
        date=lang.short_date(view.issue_date),
        list_title=view.list_title,
        site=view.site,
        frequency=lang.gettext("Weekly digest") if weekly else lang.gettext("Daily digest"),
        count=sum(s.total for s in sections),
    )


def digest_subject(
    env: jinja2.Environment,
    view: render.DigestView,
    sections: Sequence[render.Section],
    settings: EmailSettings,
) -> str:
    """The subject: the list's pattern, else ``email/subject.txt`` (the translated default)."""
    lang = settings.language
    facts = subject_facts(view, sections, lang)
    if settings.subject_pattern:
        return fill_subject(settings.subject_pattern, facts, lang)
    # The plain values too, for a subject.txt written before SubjectFacts existed.
    plain = {
        "top": facts.top,
        "tags": lang.join(list(facts.tags)),
        "date": facts.date,
        "list": facts.list_title,
        "site": facts.site,
        "frequency": facts.frequency,
        "count": facts.count,
    }
    subject = _render(env, "email/subject.txt", facts=facts, lang=lang, digest=view, **plain)
    return " ".join(subject.split()) or fill_subject("{list} — {date}", facts, lang)


def preheader(sections: Sequence[render.Section]) -> str:
    """The inbox preview line: the other sections' first headlines (the subject already
    shows the first one)."""
    titles = [s.articles[0].title for s in sections if s.articles]
    return " · ".join(titles[1:] or titles)[:180]


def _strip(markup: str) -> str:
    return _MARKERS.sub("", markup)


@dataclass
class _Layout:
    """What one render shows."""

    sections: list[render.Section]
    folded: list[FoldedSection]
    folded_rest: int = 0


class _Composer:
    def __init__(
        self,
        env: jinja2.Environment,
        view: render.DigestView,
        sections: Sequence[render.Section],
        settings: EmailSettings,
    ):
        self.env = env
        self.view = view
        self.sections = list(sections)
        self.settings = settings
        self.subject = digest_subject(env, view, sections, settings)
        self.context = {
            "digest": view,
            "subject": self.subject,
            "preheader": preheader(sections),
            "lang": settings.language,
            "brand": settings.brand,
            "intro": settings.intro,
        }

    def html(self, layout: _Layout, *, measure: bool = False) -> str:
        """The inlined HTML part (with the measuring markers if ``measure``)."""
        return inline_css(
            _render(
                self.env,
                "email/digest.html",
                sections=layout.sections,
                folded=layout.folded,
                folded_rest=layout.folded_rest,
                personal=True,
                measure=measure,
                **self.context,
            )
        )

    def size(self, markup: str) -> int:
        """Encoded bytes, plus room for what replaces each placeholder."""
        return self.settings.size_of(markup) + render.placeholder_room(markup)

    def short(self, article: render.ArticleView) -> render.ArticleView:
        shortened = render.excerpt(article.excerpt, self.settings.short_words)
        return article if shortened == article.excerpt else replace(article, excerpt=shortened)

    def story_url(self, article: render.ArticleView) -> str:
        return f"{self.view.web_url.split('#')[0]}#story-{article.id}"

    def section_url(self, section: render.Section) -> str:
        view = self.view
        return links.digest_web_url(
            view.base_url,
            view.list_slug,
            view.frequency,
            view.issue_date.isoformat(),
            tag=section.key,
            key=view.web_key,
        )

    # ------------------------------------------------------------ measuring

    def measured_per_section(self) -> int:
        """How many stories of each section the measuring renders include: enough to fill the
        budget twice over even if every section showed that many of its smallest stories.
        Stories further down cost the average of those measured in their section (they are
        rarely shown; the check after rendering catches a wrong guess)."""
        count = max(len(self.sections), 1)
        return max(2, -(-2 * self.settings.budget // (count * MIN_STORY)))

    def content_floor(self) -> int:
        """A lower bound of the HTML part's size: the stories' own text (encoding, markup and
        styles only add to it). Over the budget, rendering everything would be wasted."""
        return sum(
            len(a.title.encode()) + len(a.excerpt.encode())
            for s in self.sections
            for a in s.articles
        )

    def costs(self) -> tuple[list[budget.SectionCost], int]:
        """(cost of each section, fixed bytes) from a full and a short measuring render."""
        size_of = self.settings.size_of
        cap = self.measured_per_section()
        full_probe = [
            replace(s, articles=s.articles[:cap], total=len(s.articles[:cap]), more_url=None)
            for s in self.sections
        ]
        short_probe = [
            replace(
                s,
                articles=tuple(self.short(a) for a in s.articles[:cap]),
                total=len(s.articles[:cap]) + 1,
                more_url=self.story_url(max(s.articles, key=lambda a: a.id)),
            )
            for s in self.sections
        ]
        full_html = self.html(_Layout(full_probe, []), measure=True)
        short_html = self.html(_Layout(short_probe, []), measure=True)
        full_chunks = {int(m.group(1)): m.group(2) for m in _SECTION.finditer(full_html)}
        short_chunks = {int(m.group(1)): m.group(2) for m in _SECTION.finditer(short_html)}
        if len(full_chunks) != len(self.sections) or len(short_chunks) != len(self.sections):
            return self._uniform_costs(full_html)
        costs = []
        sections_total = 0
        for i, section in enumerate(self.sections):
            full = {int(m.group(1)): size_of(m.group(2)) for m in _ARTICLE.finditer(full_chunks[i])}
            short = {
                int(m.group(1)): size_of(m.group(2)) for m in _ARTICLE.finditer(short_chunks[i])
            }
            header = size_of(_strip(_ARTICLE.sub("", full_chunks[i])))
            with_row = size_of(_strip(_ARTICLE.sub("", short_chunks[i])))
            mean_full = sum(full.values()) // max(len(full), 1)
            mean_short = sum(short.values()) // max(len(short), 1)
            stories = tuple(
                budget.StoryCost(
                    full=full.get(a.id, mean_full),
                    short=min(short.get(a.id, mean_short), full.get(a.id, mean_full)),
                )
                for a in section.articles
            )
            entry = size_of(html.escape(section.name) + self.section_url(section))
            costs.append(
                budget.SectionCost(
                    header=header,
                    stories=stories,
                    more_row=max(with_row - header, 0),
                    fold_entry=entry + FOLD_ENTRY_OVERHEAD,
                )
            )
            sections_total += size_of(_strip(full_chunks[i]))
        fixed = self.size(_strip(full_html)) - sections_total
        return costs, fixed

    def _uniform_costs(self, full_html: str) -> tuple[list[budget.SectionCost], int]:
        """Costs for a custom template without section markers: stories alike, a quarter of
        the message fixed (the check after rendering corrects the estimate)."""
        whole = self.size(_strip(full_html))
        fixed = whole // 4
        n = max(sum(len(s.articles) for s in self.sections), 1)
        each = (whole - fixed) // n
        costs = [
            budget.SectionCost(
                header=0,
                stories=tuple(budget.StoryCost(each, each * 2 // 3) for _ in s.articles),
                more_row=MORE_ROW_ESTIMATE,
                fold_entry=len(s.name) + 160,
            )
            for s in self.sections
        ]
        return costs, fixed

    # ------------------------------------------------------------ applying a plan

    def layout(self, plan: budget.Plan) -> _Layout:
        shown: list[render.Section] = []
        folded: list[FoldedSection] = []
        for section, step in zip(self.sections, plan.sections, strict=True):
            if step.folded:
                if section.articles:
                    url = self.section_url(section)
                    folded.append(FoldedSection(section.key, section.name, section.total, url))
                continue
            articles = tuple(
                a if not step.short(rank) else self.short(a)
                for rank, a in enumerate(section.articles[: step.shown])
            )
            cut = step.shown < len(section.articles)
            more_url = self.story_url(section.articles[step.shown]) if cut else section.more_url
            shown.append(replace(section, articles=articles, more_url=more_url))
        listed = folded[: plan.listed_folds]
        return _Layout(shown, listed, len(folded) - len(listed))

    def compose(self) -> tuple[str, _Layout, dict[str, Any]]:
        limit = self.settings.budget
        layout = _Layout(list(self.sections), [])
        notes: dict[str, Any] = {"attempts": 0, "folded_count": 0, "shortened_count": 0}
        if self.content_floor() <= limit:
            markup = _strip(self.html(layout))
            notes["attempts"] = 1
            if self.size(markup) <= limit:
                return markup, layout, notes
        costs, fixed = self.costs()
        for attempt in range(ATTEMPTS):
            plan = budget.plan(costs, fixed=fixed, fold_block=FOLD_BLOCK_ESTIMATE, limit=limit)
            if not plan.fits:
                break
            layout = self.layout(plan)
            markup = _strip(self.html(layout))
            size = self.size(markup)
            notes = {
                "attempts": notes["attempts"] + attempt + 1,
                "folded_count": len(layout.folded) + layout.folded_rest,
                "shortened_count": plan.shortened,
            }
            if size <= self.settings.budget:
                return markup, layout, notes
            # The estimate was short by this much: plan again with it taken off.
            limit -= size - self.settings.budget + self.settings.budget // 200
        raise BudgetError(
            f"the digest cannot fit the HTML budget of {self.settings.budget} bytes: its fixed"
            f" parts (head, masthead, footer) take about {fixed} bytes; raise [digest]"
            f" html_budget or shorten the list's footer and description"
        )


def render_digest_email(
    env: jinja2.Environment,
    view: render.DigestView,
    sections: Sequence[render.Section],
    settings: EmailSettings,
) -> render.RenderedEmail:
    """One variant's subject, HTML part (inlined, with placeholders) and text part, within
    ``settings.budget``. Raises ``BudgetError`` when it cannot fit, ``ConfigError`` for a
    broken template. ``RenderedEmail.sections`` lists every section, folded ones with no
    article shown (so ``cut_count`` counts their stories)."""
    composer = _Composer(env, view, sections, settings)
    markup, layout, notes = composer.compose()
    text = _render(
        env,
        "email/digest.txt",
        sections=layout.sections,
        folded=layout.folded,
        folded_rest=layout.folded_rest,
        **composer.context,
    )
    text = text if text.endswith("\n") else text + "\n"
    shown = {s.key: s for s in layout.sections}
    every = [shown.get(s.key) or replace(s, articles=()) for s in sections]
    size = composer.settings.size_of(markup)
    styles = render.style_size(markup)
    report = render.RenderReport(
        subject=composer.subject,
        language=settings.language.code,
        sections=[
            render.SectionCount(s.key, s.name, s.total, len(s.articles), s.key not in shown)
            for s in every
        ],
        article_count=sum(s.total for s in every),
        shown_count=sum(len(s.articles) for s in every),
        cut_count=sum(s.cut for s in every),
        html_size=size,
        html_budget=settings.budget,
        placeholder_room=render.placeholder_room(markup),
        style_size=styles,
        links=render.count_links(markup),
        attempts=int(notes["attempts"]),
        folded_count=int(notes["folded_count"]),
        shortened_count=int(notes["shortened_count"]),
    )
    if styles > render.STYLE_LIMIT:
        report.warnings.append(
            f"<style> block is {styles} bytes; Gmail ignores style blocks over {render.STYLE_LIMIT}"
        )
    return render.RenderedEmail(
        subject=composer.subject, html=markup, text=text, sections=every, report=report
    )


def render_digest_web(
    env: jinja2.Environment,
    view: render.DigestView,
    sections: Sequence[render.Section],
    settings: EmailSettings,
) -> str:
    """The web version: every story in full with its ``#story-<id>`` anchor, nothing personal,
    the CSS left in ``<style>`` (served as a page, not mailed)."""
    lang = settings.language
    title = lang.gettext("Weekly digest" if view.frequency == "weekly" else "Daily digest")
    subject = f"{view.list_title} — {title}, {lang.format_date(view.issue_date, 'medium')}"
    return _strip(
        _render(
            env,
            "email/digest.html",
            digest=view,
            sections=list(sections),
            subject=subject,
            preheader=preheader(sections),
            personal=False,
            lang=lang,
            brand=settings.brand,
            intro=settings.intro,
        )
    )
