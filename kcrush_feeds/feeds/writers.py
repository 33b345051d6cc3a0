"""Feed documents as bytes: RSS 2.0, Atom 1.0 and JSON Feed 1.1. Pure: values in, bytes out.

Why lxml directly and not feedgen (which stays installed for other code): feedgen 1.0.0
drops ``rel``/``type``/``length`` from Atom entry links (an image enclosure becomes a
second alternate link: an invalid feed, upstream issue #135), stamps ``lastBuildDate`` /
``updated`` with the build time, prepends entries, takes the RSS ``<link>`` from whichever
``link()`` came last, writes ``length="None"`` and has no way to add the
``<?xml-stylesheet?>`` instruction. Working around five of its six documented traps cost
more than writing the ~40 elements ourselves, and building the tree directly is also the
fastest path (the benchmark compares against a minimal lxml writer).

Everything that goes into a document is decided here, so the bytes depend only on the
channel and the entries: no clock, no locale (RFC 822 dates come from
``email.utils.format_datetime``, which always uses English names), no dict ordering.
"""

from __future__ import annotations

import html
import json
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from kcrush_feeds.model import Image, Record
from kcrush_feeds.sanitize import sanitize_html
from kcrush_feeds.text import plain_text, strip_controls, truncate

GENERATOR = "kcrush-feeds"
# Bump when the bytes this module writes change for the same input, so ``build`` rewrites
# every feed once instead of trusting what it remembered about the old files.
FORMAT_VERSION = "2"
# "updated" of a feed with no entries: fixed, so an empty feed's bytes never change. Not 1970:
# the W3C validator calls dates before 1990 implausible.
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
EXCERPT_CHARS = 300  # the RSS description made from the body when a record has no summary

ATOM_NS = "http://www.w3.org/2005/Atom"
CONTENT_NS = "http://purl.org/rss/1.0/modules/content/"
DC_NS = "http://purl.org/dc/elements/1.1/"
MEDIA_NS = "http://search.yahoo.com/mrss/"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"

MEDIA_TYPES = {
    "rss": "application/rss+xml",
    "atom": "application/atom+xml",
    "json": "application/feed+json",
}


@dataclass(frozen=True, slots=True)
class Channel:
    """One feed, whatever its format: what it is called and where it lives."""

    slug: str
    title: str
    description: str
    site_url: str  # the site's home page: RSS <link>, Atom alternate, JSON home_page_url
    site_title: str  # the feed-level author (Atom needs one when an entry has none)
    language: str
    urls: dict[str, str]  # format -> public URL of this feed in that format
    image: str | None = None  # logo URL
    stylesheet: str | None = None  # href of the XSL for <?xml-stylesheet?>

    def url(self, fmt: str) -> str:
        return self.urls[fmt]


@dataclass(frozen=True, slots=True)
class Entry:
    """A record made ready for a feed: text cleaned, HTML sanitised, URLs absolute."""

    id: str
    atom_id: str  # an IRI, as Atom requires (the id itself when it is one)
    url: str
    title: str
    published: datetime  # UTC, whole seconds
    updated: datetime  # UTC, whole seconds, never before published
    summary_html: str  # sanitised
    content_html: str  # sanitised
    image: Image | None
    authors: tuple[str, ...]
    categories: tuple[str, ...]  # record categories, then tags; no duplicates

    @property
    def summary_text(self) -> str:
        return plain_text(self.summary_html)


def _clean(value: str) -> str:
    # Records from the store are already clean; a Record made in code may not be, and lxml
    # refuses control characters outright.
    return strip_controls(value)[0]


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("feed dates must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0)


def atom_id(record_id: str, site_url: str) -> str:
    """``record_id`` if it is already a well-formed http(s) URL, tag: URI (RFC 4151) or URN
    (RFC 2141; a urn:uuid: must hold a real UUID), else a stable urn:uuid derived from it."""
    if not any(c.isspace() for c in record_id):
        parts = urlsplit(record_id)
        if parts.scheme in ("http", "https") and parts.netloc:
            return record_id
        if _TAG_URI.fullmatch(record_id) or (
            _URN.fullmatch(record_id) and _valid_urn_uuid(record_id)
        ):
            return record_id
    return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"{site_url}#{record_id}"))


_TAG_URI = re.compile(r"tag:[A-Za-z0-9.@-]+,\d{4}(?:-\d{2}(?:-\d{2})?)?:[^\s]*")
_URN = re.compile(r"(?i)urn:[a-z0-9][a-z0-9-]{0,31}:[a-z0-9()+,\-.:=@;$_!*'%/?#]+")


def _valid_urn_uuid(urn: str) -> bool:
    if not urn.lower().startswith("urn:uuid:"):
        return True
    try:
        uuid.UUID(urn[9:])
    except ValueError:
        return False
    return True


def prepare_entry(record: Record, *, site_url: str) -> Entry:
    """Turn a ``Record`` into an ``Entry``: sanitise its HTML (relative URLs resolved against
    the record's own URL), strip control characters, merge categories and tags."""
    names: list[str] = []
    seen: set[str] = set()
    for name in (*record.categories, *record.tags):
        name = _clean(name).strip()
        if name and name.casefold() not in seen:
            seen.add(name.casefold())
            names.append(name)
    image = record.image
    if image is not None:
        image = Image(
            url=image.url,
            alt=_clean(image.alt),
            type=image.type or "image/jpeg",
            length=max(image.length, 0),
        )
    published = _utc(record.published)
    return Entry(
        id=_clean(record.id),
        atom_id=atom_id(_clean(record.id), site_url),
        url=record.url,
        title=_clean(record.title),
        published=published,
        updated=max(_utc(record.updated), published),
        summary_html=sanitize_html(_clean(record.summary), base_url=record.url),
        content_html=sanitize_html(_clean(record.content_html), base_url=record.url),
        image=image,
        authors=tuple(a for a in (_clean(a).strip() for a in record.authors) if a),
        categories=tuple(names),
    )


def feed_updated(entries: Sequence[Entry]) -> datetime:
    """When the feed last changed: its newest entry update (never the build time)."""
    return max((e.updated for e in entries), default=EPOCH)


def rfc822(moment: datetime) -> str:
    """``Tue, 09 May 2023 17:30:00 GMT``: English names whatever the locale."""
    return format_datetime(_utc(moment), usegmt=True)


def rfc3339(moment: datetime) -> str:
    """``2023-05-09T17:30:00Z``."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


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


# --- XML helpers ---------------------------------------------------------------------------


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def _document(root: etree._Element, stylesheet: str | None) -> bytes:
    if stylesheet is not None:
        root.addprevious(
            etree.ProcessingInstruction("xml-stylesheet", f'type="text/xsl" href="{stylesheet}"')
        )
    body: bytes = etree.tostring(
        root.getroottree(), xml_declaration=True, encoding="UTF-8", pretty_print=True
    )
    return body


# --- RSS 2.0 -------------------------------------------------------------------------------


def render_rss(channel: Channel, entries: Sequence[Entry]) -> bytes:
    """RSS 2.0 with atom:link rel=self, content:encoded, dc:creator and media:content."""
    nsmap = {"atom": ATOM_NS, "content": CONTENT_NS, "dc": DC_NS, "media": MEDIA_NS}
    rss = etree.Element("rss", {"version": "2.0"}, nsmap=nsmap)
    ch = _sub(rss, "channel")
    _sub(ch, "title", channel.title)
    _sub(ch, "link", channel.site_url)  # the site, not the feed (RSS 2.0 spec)
    _sub(ch, "description", channel.description)
    _sub(
        ch,
        f"{{{ATOM_NS}}}link",
        href=channel.url("rss"),
        rel="self",
        type=MEDIA_TYPES["rss"],
    )
    _sub(ch, "language", channel.language)
    if entries:
        _sub(ch, "lastBuildDate", rfc822(feed_updated(entries)))
    _sub(ch, "generator", GENERATOR)
    if channel.image:
        image = _sub(ch, "image")
        _sub(image, "url", channel.image)
        _sub(image, "title", channel.title)
        _sub(image, "link", channel.site_url)
    for entry in entries:
        item = _sub(ch, "item")
        _sub(item, "title", entry.title)
        _sub(item, "link", entry.url)
        if entry.summary_html:
            _sub(item, "description", entry.summary_html)
        elif entry.content_html:
            # Readers show description as the synopsis, and the validator wants one before
            # content:encoded: without a summary, the start of the body as text.
            excerpt = truncate(plain_text(entry.content_html), EXCERPT_CHARS)
            _sub(item, "description", html.escape(excerpt, quote=False))
        if entry.content_html:
            _sub(item, f"{{{CONTENT_NS}}}encoded", entry.content_html)
        for author in entry.authors:
            _sub(item, f"{{{DC_NS}}}creator", author)
        for name in entry.categories:
            _sub(item, "category", name)
        permalink = "true" if entry.id == entry.url else "false"
        _sub(item, "guid", entry.id, isPermaLink=permalink)
        _sub(item, "pubDate", rfc822(entry.published))
        if entry.image is not None:
            img = entry.image
            _sub(item, "enclosure", url=img.url, length=str(img.length), type=img.type)
            media = _sub(item, f"{{{MEDIA_NS}}}content", url=img.url, medium="image", type=img.type)
            if img.length:
                media.set("fileSize", str(img.length))
            if img.alt:
                _sub(media, f"{{{MEDIA_NS}}}description", img.alt, type="plain")
    return _hex_references(_document(rss, channel.stylesheet))


def _hex_references(data: bytes) -> bytes:
    """``&amp;`` -> ``&#x26;`` and ``&lt;`` -> ``&#x3C;``, as the RSS Best Practices Profile
    asks: RSS never said whether a title is HTML or plain text, and readers that guess from
    the markup treat ``&#x26;`` as a literal ampersand. The XML means exactly the same (lxml
    escapes every literal ``&``, so each ``&amp;`` in its output is a reference), and the W3C
    validator warns about ``&``/``<`` in plain-text elements otherwise."""
    return data.replace(b"&amp;", b"&#x26;").replace(b"&lt;", b"&#x3C;")


# --- Atom 1.0 ------------------------------------------------------------------------------


def _atom(tag: str) -> str:
    return f"{{{ATOM_NS}}}{tag}"


def render_atom(channel: Channel, entries: Sequence[Entry]) -> bytes:
    """Atom 1.0 (RFC 4287): self and alternate links, one alternate link per entry, the
    image as ``link rel="enclosure"`` with type and length, HTML summary and content."""
    feed = etree.Element(_atom("feed"), nsmap={None: ATOM_NS})
    feed.set("{http://www.w3.org/XML/1998/namespace}lang", channel.language)
    _sub(feed, _atom("id"), channel.url("atom"))
    _sub(feed, _atom("title"), channel.title)
    if channel.description:
        _sub(feed, _atom("subtitle"), channel.description)
    _sub(feed, _atom("updated"), rfc3339(feed_updated(entries)))
    _sub(feed, _atom("link"), rel="self", type=MEDIA_TYPES["atom"], href=channel.url("atom"))
    _sub(feed, _atom("link"), rel="alternate", type="text/html", href=channel.site_url)
    author = _sub(feed, _atom("author"))
    _sub(author, _atom("name"), channel.site_title)
    _sub(author, _atom("uri"), channel.site_url)
    _sub(feed, _atom("generator"), GENERATOR)
    if channel.image:
        _sub(feed, _atom("logo"), channel.image)
    seen_updated: dict[str, int] = {}
    for entry in entries:
        el = _sub(feed, _atom("entry"))
        _sub(el, _atom("id"), entry.atom_id)
        _sub(el, _atom("title"), entry.title, type="text")
        _sub(el, _atom("published"), rfc3339(entry.published))
        _sub(el, _atom("updated"), _distinct_rfc3339(entry.updated, seen_updated))
        _sub(el, _atom("link"), rel="alternate", type="text/html", href=entry.url)
        if entry.image is not None:
            img = entry.image
            link = _sub(el, _atom("link"), rel="enclosure", type=img.type, href=img.url)
            if img.length:
                link.set("length", str(img.length))
            if img.alt:
                link.set("title", img.alt)
        for name in entry.authors:
            _sub(_sub(el, _atom("author")), _atom("name"), name)
        for name in entry.categories:
            _sub(el, _atom("category"), term=name)
        if entry.summary_html:
            _sub(el, _atom("summary"), entry.summary_html, type="html")
        elif not entry.content_html:
            # Neither summary nor body: the validator wants some text, readers show this.
            _sub(el, _atom("summary"), entry.title, type="text")
        if entry.content_html:
            _sub(el, _atom("content"), entry.content_html, type="html")
    return _document(feed, channel.stylesheet)


# --- JSON Feed 1.1 -------------------------------------------------------------------------


def render_json(channel: Channel, entries: Sequence[Entry]) -> bytes:
    """JSON Feed 1.1: feed_url, home_page_url, items with HTML content, image and authors."""
    feed: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": channel.title,
        "home_page_url": channel.site_url,
        "feed_url": channel.url("json"),
    }
    if channel.description:
        feed["description"] = channel.description
    if channel.image:
        feed["icon"] = channel.image
    feed["authors"] = [{"name": channel.site_title, "url": channel.site_url}]
    feed["language"] = channel.language
    items: list[dict[str, Any]] = []
    for entry in entries:
        item: dict[str, Any] = {"id": entry.id, "url": entry.url, "title": entry.title}
        # The spec wants content_html or content_text; the summary stands in for a
        # record without a body, and an empty text for one without either.
        if entry.content_html or entry.summary_html:
            item["content_html"] = entry.content_html or entry.summary_html
        else:
            item["content_text"] = ""
        summary = entry.summary_text
        if summary:
            item["summary"] = summary
        if entry.image is not None:
            item["image"] = entry.image.url
        item["date_published"] = rfc3339(entry.published)
        item["date_modified"] = rfc3339(entry.updated)
        if entry.authors:
            item["authors"] = [{"name": name} for name in entry.authors]
        if entry.categories:
            item["tags"] = list(entry.categories)
        items.append(item)
    feed["items"] = items
    # No indent: Python's C encoder only runs without one, and feeds are read by programs.
    return (json.dumps(feed, ensure_ascii=False) + "\n").encode("utf-8")


RENDERERS: dict[str, Callable[[Channel, Sequence[Entry]], bytes]] = {
    "rss": render_rss,
    "atom": render_atom,
    "json": render_json,
}


# --- the pages around the feeds: OPML, index.html, the XSL stylesheet --------------------


@dataclass(frozen=True, slots=True)
class Listing:
    """One feed as the OPML file and index.html list it."""

    title: str
    description: str
    urls: dict[str, str]  # format -> public URL, in the configured order
    paths: dict[str, str]  # format -> path relative to the output directory


def preferred_format(formats: Sequence[str]) -> str:
    """The format OPML subscribes to: the first XML format configured, else JSON."""
    return next((f for f in formats if f in ("rss", "atom")), formats[0])


def render_opml(title: str, site_url: str, listings: Sequence[Listing]) -> bytes:
    """OPML 2.0: one subscription outline per feed, in its preferred format.

    One outline per feed, not per format: a reader importing the file would otherwise
    subscribe to the same feed two or three times.
    """
    opml = etree.Element("opml", {"version": "2.0"})
    head = _sub(opml, "head")
    _sub(head, "title", title)
    body = _sub(opml, "body")
    for listing in listings:
        fmt = preferred_format(list(listing.urls))
        # Attributes as a dict: "text" is both an OPML attribute and _sub's parameter.
        outline = etree.SubElement(
            body,
            "outline",
            {
                "type": "rss",
                "text": listing.title,
                "title": listing.title,
                "xmlUrl": listing.urls[fmt],
                "htmlUrl": site_url,
            },
        )
        if listing.description:
            outline.set("description", listing.description)
    return _document(opml, None)


_FORMAT_NAMES = {"rss": "RSS", "atom": "Atom", "json": "JSON Feed"}


def render_index(
    title: str,
    description: str,
    language: str,
    opml_path: str,
    opml_url: str,
    listings: Sequence[Listing],
) -> bytes:
    """index.html: every feed with autodiscovery ``<link rel="alternate">`` tags."""
    from html import escape

    head = [
        "<!DOCTYPE html>",
        f'<html lang="{escape(language)}">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
    ]
    rows = []
    for listing in listings:
        for fmt, url in listing.urls.items():
            head.append(
                f'<link rel="alternate" type="{MEDIA_TYPES[fmt]}" '
                f'title="{escape(listing.title)} ({_FORMAT_NAMES[fmt]})" href="{escape(url)}">'
            )
        links = " · ".join(
            f'<a href="{escape(path)}">{_FORMAT_NAMES[fmt]}</a>'
            for fmt, path in listing.paths.items()
        )
        about = f"<br><small>{escape(listing.description)}</small>" if listing.description else ""
        rows.append(f"<li><strong>{escape(listing.title)}</strong>{about}<br>{links}</li>")
    head.append(f'<link rel="alternate" type="text/x-opml" title="OPML" href="{escape(opml_url)}">')
    head += [
        "<style>body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;"
        "padding:0 1rem;line-height:1.5}li{margin:.8rem 0}</style>",
        "</head>",
        "<body>",
        f"<h1>{escape(title)}</h1>",
    ]
    if description:
        head.append(f"<p>{escape(description)}</p>")
    head.append(
        "<p>Copy a feed's address into your feed reader, or import "
        f'<a href="{escape(opml_path)}">all feeds as OPML</a>.</p>'
    )
    page = [*head, "<ul>", *rows, "</ul>", "</body>", "</html>", ""]
    return "\n".join(page).encode("utf-8")


# Shown by a browser that opens an RSS or Atom file; feed readers ignore it. Plain XSLT 1.0
# (what browsers run); entry summaries are HTML escaped in the feed, so only titles, links and
# dates are shown, which needs no disable-output-escaping (Firefox does not support it).
XSL_STYLESHEET = b"""<?xml version="1.0" encoding="UTF-8"?>
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom">
  <xsl:output method="html" encoding="UTF-8" indent="yes"
      doctype-system="about:legacy-compat"/>
  <xsl:template match="/">
    <xsl:variable name="title" select="rss/channel/title | atom:feed/atom:title"/>
    <xsl:variable name="about" select="rss/channel/description | atom:feed/atom:subtitle"/>
    <xsl:variable name="site"
        select="rss/channel/link | atom:feed/atom:link[@rel='alternate']/@href"/>
    <html>
      <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title><xsl:value-of select="$title"/> (feed)</title>
        <style>
          body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;
            padding:0 1rem;line-height:1.5}
          .note{background:#f4f1fa;border-radius:.5rem;padding:.8rem 1rem}
          li{margin:.7rem 0} time{color:#666;font-size:.9em}
        </style>
      </head>
      <body>
        <p class="note">This is a web feed. Copy the address of this page into your feed
          reader (Feedly, Inoreader, NetNewsWire, Thunderbird...) to follow it.</p>
        <h1><xsl:value-of select="$title"/></h1>
        <p><xsl:value-of select="$about"/></p>
        <p><a href="{$site}">Visit the site</a></p>
        <ul>
          <xsl:for-each select="rss/channel/item">
            <li><a href="{link}"><xsl:value-of select="title"/></a><br/>
              <time><xsl:value-of select="pubDate"/></time></li>
          </xsl:for-each>
          <xsl:for-each select="atom:feed/atom:entry">
            <li><a href="{atom:link[@rel='alternate']/@href}"><xsl:value-of
                select="atom:title"/></a><br/>
              <time><xsl:value-of select="substring(atom:published, 1, 10)"/></time></li>
          </xsl:for-each>
        </ul>
      </body>
    </html>
  </xsl:template>
</xsl:stylesheet>
"""
