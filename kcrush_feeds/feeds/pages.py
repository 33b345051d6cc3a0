"""The pages ``build`` writes next to the feeds: ``index.html`` (every feed, with
autodiscovery links), ``{slug}/index.html`` (one feed shown to a person: no XSLT, which
browsers are removing) and ``style.css`` (the digest's stylesheet plus ``page.css``).

All are Jinja templates shipped in ``kcrush_feeds/templates/feeds/`` (the stylesheet comes
from ``templates/email/style.css`` and ``templates/archive/page.css``). Values in the page are
escaped with the stdlib's ``html.escape`` (the ``html_escape`` filter), as the page has always
been: its bytes stay the same, and only changed inputs rewrite it.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Sequence
from datetime import tzinfo
from functools import cache
from pathlib import Path

import jinja2
from markupsafe import Markup

from kcrush_feeds import templating
from kcrush_feeds.dates import iso_date, local_date
from kcrush_feeds.feeds.entries import MEDIA_TYPES, Channel, Entry, Listing

FORMAT_NAMES = {"rss": "RSS", "atom": "Atom", "json": "JSON Feed"}


def _html_escape(value: object) -> Markup:
    # html.escape writes &quot; and &#x27; where markupsafe writes &#34; and &#39;: the
    # stdlib's spelling keeps index.html byte for byte what earlier versions wrote.
    return Markup(html.escape(str(value)))


# Every template a page may use: their sources go into the build's fingerprint, so an
# edited override (feeds.templates_dir) rewrites the pages at the next build.
TEMPLATES = ("index.html", "feed.html", "site.css", "page.css", "style.css")


# The page bytes rely on trim_blocks, lstrip_blocks (the factory's) and keep_trailing_newline.
def _loader(overrides: tuple[Path, ...]) -> jinja2.BaseLoader:
    # The archive's and the email's directories after ours: site.css, page.css, style.css.
    return jinja2.ChoiceLoader(
        [
            templating.loader(d, overrides)
            for d in ("templates/feeds", "templates/archive", "templates/email")
        ]
    )


@cache
def _environment(overrides: tuple[Path, ...] = (), key: str = "") -> jinja2.Environment:
    """The pages' environment; ``key`` (``templates_key``) makes an edited override a new
    environment, so a long-running ``schedule`` picks it up without a restart."""
    del key  # part of the cache key only
    loader = _loader(overrides)
    env = templating.environment(
        loader,
        autoescape=templating.by_extension("html"),
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.filters["html_escape"] = _html_escape
    return env


def templates_key(overrides: tuple[Path, ...] = ()) -> str:
    """A hash of the sources of every page template (an editor's override included)."""
    loader = _loader(overrides)
    env = jinja2.Environment(loader=loader)
    h = hashlib.blake2b(digest_size=12)
    for name in TEMPLATES:
        source, _, _ = loader.get_source(env, name)
        h.update(name.encode() + b"\0" + source.encode() + b"\0")
    return h.hexdigest()


def render_index(
    title: str,
    description: str,
    language: str,
    opml_path: str,
    opml_url: str,
    listings: Sequence[Listing],
    overrides: tuple[Path, ...] = (),
    key: str = "",
) -> bytes:
    """index.html: every feed with autodiscovery ``<link rel="alternate">`` tags.
    ``overrides``: ``feeds.templates_dir``; ``key``: their ``templates_key``."""
    page = (
        _environment(overrides, key)
        .get_template("index.html")
        .render(
            title=title,
            description=description,
            language=language,
            opml_path=opml_path,
            opml_url=opml_url,
            listings=listings,
            media_types=MEDIA_TYPES,
            format_names=FORMAT_NAMES,
        )
    )
    return page.encode("utf-8")


def render_feed_page(
    channel: Channel,
    entries: Sequence[Entry],
    tz: tzinfo,
    overrides: tuple[Path, ...] = (),
    key: str = "",
) -> bytes:
    """``{slug}/index.html``: the feed for a person: title, description, the three formats
    with the address to copy, and the entries with their local dates and images."""
    env = _environment(overrides, key)
    page = env.get_template("feed.html").render(
        channel=channel,
        entries=entries,
        media_types=MEDIA_TYPES,
        format_names=FORMAT_NAMES,
        localdate=lambda moment: local_date(moment, tz),
        isodate=lambda moment: iso_date(moment, tz),
    )
    return page.encode("utf-8")


def render_stylesheet(overrides: tuple[Path, ...] = (), key: str = "") -> bytes:
    """``style.css`` of the feed pages: the same bytes as the archive's."""
    return _environment(overrides, key).get_template("site.css").render().encode("utf-8")
