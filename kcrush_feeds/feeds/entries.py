"""What every feed writer shares: the channel, the entries made from records, their ids and
dates. Pure: values in, values out.

Everything that goes into a feed document is decided here or in the writer of its format,
so the bytes depend only on the channel and the entries: no clock, no locale (RFC 822 dates
come from ``email.utils.format_datetime``, which always uses English names), no dict ordering.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import urlsplit

from kcrush_feeds.model import Image, Record
from kcrush_feeds.sanitize import sanitize_html
from kcrush_feeds.text import plain_text, strip_controls

GENERATOR = "kcrush-feeds"
# "updated" of a feed with no entries: fixed, so an empty feed's bytes never change. Not 1970:
# the W3C validator calls dates before 1990 implausible.
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

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
    hub: str | None = None  # WebSub hub URL: RSS/Atom rel="hub", JSON Feed "hubs"

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


@dataclass(frozen=True, slots=True)
class Listing:
    """One feed as the OPML file and index.html list it."""

    title: str
    description: str
    urls: dict[str, str]  # format -> public URL, in the configured order
    paths: dict[str, str]  # format -> path relative to the output directory
    page: str = ""  # the feed's own page (its directory), relative to the output directory


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
