"""Read entries from an RSS, Atom or JSON Feed document (a URL or a file) as raw records.

RSS 0.9x-2.0, RSS 1.0 and Atom are parsed by feedparser; JSON Feed 1.0/1.1 by ``json``.
Each entry becomes the dict a JSONL line would give, for ``records.normalize``:

- ``id``: the entry's id / guid (JSON Feed ``id``), else its link;
- ``url`` <- link (JSON Feed ``url``, else ``external_url``); ``title``; ``summary`` as
  plain text; ``content_html`` (Atom ``content``, RSS ``content:encoded``, JSON Feed
  ``content_html``); ``published``/``updated`` (an entry with only one has it for both);
- categories <- RSS ``category`` / Atom ``category`` / JSON Feed ``tags``; an entry with
  none gets the source's configured ``categories``, else the feed's own title;
- image <- an image enclosure, ``media:content``/``media:thumbnail``, or JSON Feed
  ``image``; authors <- author names.

Conditional GET (ETag / Last-Modified) is done by ``sources``; this module only parses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from time import struct_time
from typing import Any

import feedparser

from kcrush_feeds.errors import InputError
from kcrush_feeds.text import plain_text

JSON_FEED_PREFIX = "https://jsonfeed.org/version/"


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """What a feed document holds: its title, format and entries as raw records."""

    title: str
    format: str  # "rss20", "atom10", "json1.1", ... (feedparser's names for XML)
    entries: tuple[dict[str, Any], ...]

    @property
    def newest(self) -> datetime | None:
        dates = [_iso(e.get("updated") or e.get("published")) for e in self.entries]
        known = [d for d in dates if d is not None]
        return max(known) if known else None


def parse_feed(
    data: bytes,
    source: str,
    *,
    content_type: str | None = None,
    default_categories: Sequence[str] = (),
) -> ParsedFeed:
    """Parse ``data`` (from ``source``, a URL or path, named in errors)."""
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    is_json = head == b"{" or (content_type or "").split(";")[0].strip().endswith("json")
    if is_json:
        return _parse_json_feed(data, source, default_categories)
    return _parse_xml_feed(data, source, content_type, default_categories)


# --- RSS / Atom -----------------------------------------------------------------------------


def _parse_xml_feed(
    data: bytes, source: str, content_type: str | None, default_categories: Sequence[str]
) -> ParsedFeed:
    headers = {"content-type": content_type} if content_type else {}
    parsed = feedparser.parse(data, response_headers=headers)
    version = parsed.get("version") or ""
    if not version:
        reason = parsed.get("bozo_exception")
        raise InputError(
            source, "not an RSS, Atom or JSON feed" + (f" ({reason})" if reason else "")
        )
    feed = parsed.get("feed", {})
    title = plain_text(str(feed.get("title") or "")) or source
    fallback = list(default_categories) or [title]
    entries = tuple(_xml_entry(e, fallback) for e in parsed.get("entries", []))
    return ParsedFeed(title, version, entries)


def _xml_entry(entry: Mapping[str, Any], fallback: list[str]) -> dict[str, Any]:
    link = entry.get("link") or ""
    published = _from_struct(entry.get("published_parsed"))
    # dict.get: feedparser's own get() maps a missing updated_parsed to published_parsed,
    # with a DeprecationWarning; we make that choice ourselves below.
    updated = _from_struct(dict.get(entry, "updated_parsed") if isinstance(entry, dict) else None)
    categories = [t.get("term") or t.get("label") for t in entry.get("tags", []) or []]
    categories = [c for c in categories if c]
    content = ""
    for part in entry.get("content", []) or []:
        if "html" in (part.get("type") or ""):
            content = part.get("value") or ""
            break
    authors = [a.get("name") for a in entry.get("authors", []) or [] if a.get("name")]
    if not authors and entry.get("author"):
        authors = [entry["author"]]
    raw: dict[str, Any] = {
        "id": entry.get("id") or link,
        "url": link,
        "title": entry.get("title") or "",
        "published": _isoformat(published or updated),
        "updated": _isoformat(updated or published),
        "categories": categories or fallback,
        "summary": plain_text(entry.get("summary") or ""),
        "content_html": content,
        "authors": authors,
    }
    image = _xml_image(entry)
    if image:
        raw["image"] = image
    return raw


def _xml_image(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    for enclosure in entry.get("enclosures", []) or []:
        kind = enclosure.get("type") or ""
        if kind.startswith("image/") and enclosure.get("href"):
            image: dict[str, Any] = {"url": enclosure["href"], "type": kind}
            length = str(enclosure.get("length") or "")
            if length.isdigit():
                image["length"] = int(length)
            return image
    for media in (entry.get("media_content") or []) + (entry.get("media_thumbnail") or []):
        url = media.get("url")
        if (
            url
            and (media.get("medium") in (None, "image"))
            and (media.get("type") or "image/").startswith("image/")
        ):
            image = {"url": url}
            if media.get("type"):
                image["type"] = media["type"]
            size = str(media.get("filesize") or "")
            if size.isdigit():
                image["length"] = int(size)
            return image
    return None


def _isoformat(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _from_struct(value: object) -> datetime | None:
    """feedparser gives dates as UTC ``time.struct_time``."""
    if not isinstance(value, struct_time):
        return None
    try:
        return datetime(*value[:6], tzinfo=UTC)
    except ValueError:
        return None


# --- JSON Feed --------------------------------------------------------------------------------


def _parse_json_feed(data: bytes, source: str, default_categories: Sequence[str]) -> ParsedFeed:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(source, f"not valid JSON: {e}") from e
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith(JSON_FEED_PREFIX):
        raise InputError(
            source, 'not a JSON Feed (no "version": "https://jsonfeed.org/version/1.1")'
        )
    items = doc.get("items")
    if not isinstance(items, list):
        raise InputError(source, 'a JSON Feed needs an "items" list')
    title = plain_text(str(doc.get("title") or "")) or source
    version = "json" + str(doc["version"]).removeprefix(JSON_FEED_PREFIX)
    fallback = list(default_categories) or [title]
    feed_authors = _json_authors(doc)
    entries = tuple(
        _json_item(item, fallback, feed_authors) for item in items if isinstance(item, dict)
    )
    return ParsedFeed(title, version, entries)


def _json_item(
    item: Mapping[str, Any], fallback: list[str], feed_authors: list[str]
) -> dict[str, Any]:
    url = item.get("url") or item.get("external_url")
    published = item.get("date_published") or item.get("date_modified")
    tags = [t for t in item.get("tags", []) or [] if isinstance(t, str)]
    summary = item.get("summary")
    if not summary and item.get("content_text"):
        summary = item["content_text"]
    raw: dict[str, Any] = {
        "id": str(item["id"]) if item.get("id") not in (None, "") else url,
        "url": url,
        "title": item.get("title") or "",
        "published": published,
        "updated": item.get("date_modified") or published,
        "categories": tags or fallback,
        "summary": plain_text(summary) if isinstance(summary, str) else "",
        "content_html": item.get("content_html")
        if isinstance(item.get("content_html"), str)
        else "",
        "authors": _json_authors(item) or feed_authors,
        "tags": tags,
    }
    image = item.get("image") or item.get("banner_image")
    if isinstance(image, str) and image:
        raw["image"] = image
    else:
        for attachment in item.get("attachments", []) or []:
            if isinstance(attachment, dict) and str(attachment.get("mime_type", "")).startswith(
                "image/"
            ):
                spec: dict[str, Any] = {
                    "url": attachment.get("url"),
                    "type": attachment["mime_type"],
                }
                if isinstance(attachment.get("size_in_bytes"), int):
                    spec["length"] = attachment["size_in_bytes"]
                raw["image"] = spec
                break
    return raw


def _json_authors(obj: Mapping[str, Any]) -> list[str]:
    authors = obj.get("authors")
    if not isinstance(authors, list):
        authors = [obj["author"]] if isinstance(obj.get("author"), dict) else []
    return [a["name"] for a in authors if isinstance(a, dict) and isinstance(a.get("name"), str)]


def _iso(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
