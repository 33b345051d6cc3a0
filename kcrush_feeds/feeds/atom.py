"""Atom 1.0 (RFC 4287) as bytes. Pure: a channel and its entries in, bytes out.

Why lxml directly and not feedgen (declared in pyproject.toml, but nothing imports it):
feedgen 1.0.0 drops ``rel``/``type``/``length`` from Atom entry links (an image enclosure
becomes a second alternate link: an invalid feed, upstream issue #135), stamps ``updated``
with the build time, prepends entries and cannot add the ``<?xml-stylesheet?>`` instruction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from lxml import etree

from kcrush_feeds.feeds.entries import GENERATOR, MEDIA_TYPES, Channel, Entry, feed_updated, rfc3339
from kcrush_feeds.feeds.xmltree import ATOM_NS, document, sub


def _atom(tag: str) -> str:
    return f"{{{ATOM_NS}}}{tag}"


def _distinct_rfc3339(moment: datetime, seen: dict[str, int]) -> str:
    """RFC 3339, written differently (not differently timed) for a repeated instant.

    Scheduled posts often go out in the same second, and the W3C validator warns about two
    entries whose ``updated`` strings are equal (it suspects a build time stamped on every
    entry). The n-th repeat gets n fractional zeros: ``10:00:00.0Z`` is the same instant.
    """
    text = rfc3339(moment)
    repeats = seen.get(text, 0)
    seen[text] = repeats + 1
    return text if repeats == 0 else f"{text[:-1]}.{'0' * repeats}Z"


def render_atom(channel: Channel, entries: Sequence[Entry]) -> bytes:
    """Atom 1.0 (RFC 4287): self and alternate links, one alternate link per entry, the
    image as ``link rel="enclosure"`` with type and length, HTML summary and content."""
    feed = etree.Element(_atom("feed"), nsmap={None: ATOM_NS})
    feed.set("{http://www.w3.org/XML/1998/namespace}lang", channel.language)
    sub(feed, _atom("id"), channel.url("atom"))
    sub(feed, _atom("title"), channel.title)
    if channel.description:
        sub(feed, _atom("subtitle"), channel.description)
    sub(feed, _atom("updated"), rfc3339(feed_updated(entries)))
    sub(feed, _atom("link"), rel="self", type=MEDIA_TYPES["atom"], href=channel.url("atom"))
    # WebSub (issue 13): the hub next to rel="self", which is the topic URL it announces.
    if channel.hub:
        sub(feed, _atom("link"), rel="hub", href=channel.hub)
    sub(feed, _atom("link"), rel="alternate", type="text/html", href=channel.site_url)
    author = sub(feed, _atom("author"))
    sub(author, _atom("name"), channel.site_title)
    sub(author, _atom("uri"), channel.site_url)
    sub(feed, _atom("generator"), GENERATOR)
    if channel.image:
        sub(feed, _atom("logo"), channel.image)
    seen_updated: dict[str, int] = {}
    for entry in entries:
        el = sub(feed, _atom("entry"))
        sub(el, _atom("id"), entry.atom_id)
        sub(el, _atom("title"), entry.title, type="text")
        sub(el, _atom("published"), rfc3339(entry.published))
        sub(el, _atom("updated"), _distinct_rfc3339(entry.updated, seen_updated))
        sub(el, _atom("link"), rel="alternate", type="text/html", href=entry.url)
        if entry.image is not None:
            img = entry.image
            link = sub(el, _atom("link"), rel="enclosure", type=img.type, href=img.url)
            if img.length:
                link.set("length", str(img.length))
            if img.alt:
                link.set("title", img.alt)
        for name in entry.authors:
            sub(sub(el, _atom("author")), _atom("name"), name)
        for name in entry.categories:
            sub(el, _atom("category"), term=name)
        if entry.summary_html:
            sub(el, _atom("summary"), entry.summary_html, type="html")
        elif not entry.content_html:
            # Neither summary nor body: the validator wants some text, readers show this.
            sub(el, _atom("summary"), entry.title, type="text")
        if entry.content_html:
            sub(el, _atom("content"), entry.content_html, type="html")
    return document(feed, channel.stylesheet)
