"""The pages ``build`` writes next to the feeds: ``index.html`` (every feed, with
autodiscovery links) and ``feed.xsl`` (what a browser shows for an RSS or Atom file).

Both are Jinja templates shipped in ``kcrush_feeds/templates/feeds/``. Values in the page are
escaped with the stdlib's ``html.escape`` (the ``html_escape`` filter), as the page has always
been: its bytes stay the same, and only changed inputs rewrite it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from functools import cache

import jinja2
from markupsafe import Markup

from kcrush_feeds import templating
from kcrush_feeds.feeds.entries import MEDIA_TYPES, Listing

FORMAT_NAMES = {"rss": "RSS", "atom": "Atom", "json": "JSON Feed"}


def _html_escape(value: object) -> Markup:
    # html.escape writes &quot; and &#x27; where markupsafe writes &#34; and &#39;: the
    # stdlib's spelling keeps index.html byte for byte what earlier versions wrote.
    return Markup(html.escape(str(value)))


# The page bytes rely on trim_blocks, lstrip_blocks (the factory's) and keep_trailing_newline.
@cache
def _environment() -> jinja2.Environment:
    env = templating.environment(
        templating.loader("templates/feeds"),
        autoescape=templating.by_extension("html"),
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.filters["html_escape"] = _html_escape
    return env


def render_index(
    title: str,
    description: str,
    language: str,
    opml_path: str,
    opml_url: str,
    listings: Sequence[Listing],
) -> bytes:
    """index.html: every feed with autodiscovery ``<link rel="alternate">`` tags."""
    page = (
        _environment()
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


@cache
def render_xsl() -> bytes:
    """feed.xsl, the stylesheet RSS and Atom files point to (the same bytes every build)."""
    return _environment().get_template("feed.xsl").render().encode("utf-8")
