"""The archive's pages and feeds as bytes. Pure: values in, bytes out (no store, no clock).

An issue page is the public version of a frozen digest: every section, every item, the
editor's note when the digest has one (``note_html``), and nothing personal (no greeting,
address, token or preferences link: the templates are given none). The archive feeds have
one entry per issue whose content is the issue's HTML, written by the same feed writers as
every other feed.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any

import jinja2

from kcrush_feeds import templating
from kcrush_feeds.dates import iso_date, local_date, long_date
from kcrush_feeds.feeds.entries import MEDIA_TYPES, Channel, Entry
from kcrush_feeds.feeds.formats import RENDERERS
from kcrush_feeds.model import Digest, DigestItem, sections_of
from kcrush_feeds.text import truncate
from kcrush_feeds.weeks import period_bounds

FEED_NAMES = {"rss": "rss.xml", "atom": "atom.xml", "json": "feed.json"}
FORMAT_NAMES = {"rss": "RSS", "atom": "Atom", "json": "JSON Feed"}
# Every template a page may use: their sources go into the build fingerprint, so an
# editor's edited override rewrites the pages at the next build.
TEMPLATES = ("base.html", "issue.html", "index.html", "content.html", "site.css", "page.css",
             "style.css")  # fmt: skip
STYLESHEET = "style.css"


@dataclass(frozen=True, slots=True)
class ArchiveSite:
    """What every archive page shows about the newsletter and where things live."""

    name: str  # "KCrush Weekly"
    site_title: str
    site_url: str
    description: str
    language: str
    tz: tzinfo
    base_url: str  # the archive's public URL, no trailing slash
    subscribe_url: str | None  # serve's /subscribe, or None without [subscriptions]
    feeds_url: str  # the feeds' index page
    image: str | None = None
    hub: str | None = None
    formats: tuple[str, ...] = ("rss", "atom", "json")

    def feed_url(self, fmt: str) -> str:
        return f"{self.base_url}/{FEED_NAMES[fmt]}"

    def key(self) -> list[object]:
        """Everything here that changes a page, for the build fingerprint."""
        return [self.name, self.site_title, self.site_url, self.description, self.language,
                str(self.tz), self.base_url, self.subscribe_url, self.feeds_url, self.image,
                self.hub, list(self.formats)]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Section:
    title: str
    items: tuple[DigestItem, ...]


@dataclass(frozen=True, slots=True)
class Issue:
    """One sent digest as its page shows it."""

    period: str
    url: str  # base_url/WEEK/
    title: str  # "KCrush Weekly · Week of April 20, 2026"
    week_label: str  # "Week of April 20, 2026"
    digest: Digest
    sections: tuple[Section, ...]
    description: str  # the first titles: the page's meta description and the feed summary
    image_url: str | None  # the first item's image: Open Graph / Twitter card
    image_alt: str
    note_html: str = ""  # the editor's note, sanitised, when the digest has one

    @property
    def date(self) -> Any:
        return self.digest.created_at


def make_issue(site: ArchiveSite, digest: Digest, note_html: str = "") -> Issue:
    """The page's view of a frozen ``digest`` (the editor's pins and drops already
    applied), with the editor's note (sanitised HTML) when it had one."""
    start, _ = period_bounds(digest.period, site.tz)
    week_label = f"Week of {long_date(start, site.tz)}"
    titles = [item.title for item in digest.items]
    description = " · ".join(titles[:3]) + (
        f" and {len(titles) - 3} more" if len(titles) > 3 else ""
    )
    lead = next((item for item in digest.items if item.image_url), None)
    return Issue(
        period=digest.period,
        url=f"{site.base_url}/{digest.period}/",
        title=f"{site.name} · {week_label}",
        week_label=week_label,
        digest=digest,
        sections=tuple(Section(t, tuple(items)) for t, items in sections_of(digest.items)),
        description=truncate(description, 200),
        image_url=lead.image_url if lead else None,
        image_alt=(lead.image_alt or lead.title) if lead else "",
        note_html=note_html,
    )


@dataclass(slots=True)
class Renderer:
    """The archive's Jinja environment (the editor's ``templates_dir`` first)."""

    site: ArchiveSite
    overrides: Sequence[Path] = ()
    env: jinja2.Environment = field(init=False)

    def __post_init__(self) -> None:
        # templates/email last: style.css is the digest's own stylesheet, shared.
        loader = jinja2.ChoiceLoader(
            [
                templating.loader("templates/archive", self.overrides),
                templating.loader("templates/email", self.overrides),
            ]
        )
        env = templating.environment(
            loader,
            autoescape=templating.by_extension("html"),
            keep_trailing_newline=True,
            auto_reload=False,
        )
        tz = self.site.tz
        env.filters["localdate"] = lambda moment: local_date(moment, tz)
        env.filters["isodate"] = lambda moment: iso_date(moment, tz)
        self.env = env

    def templates_key(self) -> str:
        """A hash of every template's source: an edited override changes it."""
        h = hashlib.blake2b(digest_size=12)
        for name in TEMPLATES:
            source, _, _ = self.env.loader.get_source(self.env, name)  # type: ignore[union-attr]
            h.update(name.encode() + b"\0" + source.encode() + b"\0")
        return h.hexdigest()

    def _page(self, name: str, **context: Any) -> bytes:
        return (
            self.env.get_template(name)
            .render(site=self.site, format_names=FORMAT_NAMES, media_types=MEDIA_TYPES, **context)
            .encode("utf-8")
        )

    def issue_page(self, issue: Issue, newer: str | None, older: str | None) -> bytes:
        """``WEEK/index.html``; ``newer``/``older`` are the neighbouring periods, if any."""
        return self._page("issue.html", issue=issue, newer=newer, older=older, root="../")

    def index_page(self, issues: Sequence[Issue], page: int, pages: int) -> bytes:
        """``index.html`` (page 1) or ``page/N/index.html``: issues newest first."""
        root = "" if page == 1 else "../../"
        return self._page("index.html", issues=issues, page=page, pages=pages, root=root)

    def stylesheet(self) -> bytes:
        """``style.css``: the digest's stylesheet, then the rules only pages need."""
        return self.env.get_template("site.css").render().encode("utf-8")

    def content(self, issue: Issue) -> str:
        """The issue as an HTML fragment for a feed entry (absolute links, no styles)."""
        return self.env.get_template("content.html").render(site=self.site, issue=issue).strip()

    def channel(self) -> Channel:
        site = self.site
        return Channel(
            slug="archive",
            title=site.name,
            description=site.description or f"Every issue of {site.name}",
            site_url=f"{site.base_url}/",
            site_title=site.site_title,
            language=site.language,
            urls={fmt: site.feed_url(fmt) for fmt in site.formats},
            image=site.image,
            hub=site.hub,
        )

    def entry(self, issue: Issue) -> Entry:
        moment = issue.date.replace(microsecond=0)
        return Entry(
            id=issue.url,
            atom_id=issue.url,
            url=issue.url,
            title=issue.title,
            published=moment,
            updated=moment,
            summary_html=html.escape(issue.description, quote=False),
            content_html=self.content(issue),
            image=None,  # the lead image is in the content; an enclosure needs a real length
            authors=(),
            categories=tuple(section.title for section in issue.sections),
        )

    def feed(self, fmt: str, issues: Sequence[Issue]) -> bytes:
        """The archive feed in ``fmt``: one entry per issue, newest first."""
        return RENDERERS[fmt](self.channel(), [self.entry(issue) for issue in issues])
