"""The content record: what one article, interview or review is, and how raw input becomes one.

``normalize`` is pure: it takes one decoded JSON object (or CSV row) and returns a
``Record`` plus warnings, or raises ``RecordError`` naming the field and the reason.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import urlsplit

from kcrush_feeds.errors import RecordError
from kcrush_feeds.model import Image, Record
from kcrush_feeds.text import has_tags, plain_text, strip_controls

MAX_TITLE = 1_000  # characters
# A title longer than this before its tags are stripped is refused without reading it.
MAX_TITLE_INPUT = 16 * MAX_TITLE
MAX_LENGTH = 2**63 - 1  # image.length: what SQLite's INTEGER holds
MAX_SUMMARY = 100_000
MAX_CONTENT_BYTES = 1024 * 1024  # larger bodies are stored without their full text
MAX_URL = 2_048
MAX_LIST = 100  # categories, tags or authors on one record
# scheme://[user@]host[:port] followed by the end, a path, a query or a fragment
_ABSOLUTE_URL = re.compile(
    r"(?i)https?://(?:[^/?#@\s]*@)?(?:\[[0-9a-f:.]+\]|[^/?#@:\s\[\]]+)(?::\d*)?(?:[/?#]|$)"
)
# Lone surrogates too: text from JSON may carry "\ud800", which SQLite cannot store.
_BAD_URL_CHAR = re.compile("[\\s\x00-\x1f\x7f\ud800-\udfff]")
_MIME_RE = re.compile(r"[\w.+-]+/[\w.+-]+")

KNOWN_FIELDS = frozenset(
    {
        "id",
        "url",
        "title",
        "published",
        "updated",
        "categories",
        "category",
        "summary",
        "content_html",
        "image",
        "authors",
        "author",
        "tags",
        # CSV spells the image object out in columns
        "image_alt",
        "image_type",
        "image_length",
    }
)


def normalize(raw: Mapping[str, Any], tz: tzinfo) -> tuple[Record, list[str]]:
    """Validate and clean one raw record. Returns the record and warnings (``field: text``)."""
    warnings: list[str] = [
        f"{key}: unknown field, ignored" for key in raw if key not in KNOWN_FIELDS
    ]
    url = _url(raw.get("url"), "url", required=True)
    assert url is not None
    record_id = raw.get("id")
    if record_id is None or record_id == "":
        record_id = url
    elif isinstance(record_id, int) and not isinstance(record_id, bool):
        record_id = str(record_id)
    elif not isinstance(record_id, str):
        raise RecordError("id", f"expected text or a number, got {_kind(record_id)}")
    record_id, removed = strip_controls(record_id.strip())
    if not record_id or len(record_id) > MAX_URL:
        raise RecordError("id", f"must be 1 to {MAX_URL} characters")
    if removed:
        warnings.append(f"id: removed {removed} control character(s)")

    title = _title(raw.get("title"), warnings)
    published = _datetime(raw.get("published"), "published", tz, required=True)
    assert published is not None
    updated = _datetime(raw.get("updated"), "updated", tz, required=False) or published

    categories = _names(raw, "categories", "category", warnings)
    if not categories:
        raise RecordError("categories", "missing: give at least one category name")

    summary = _text(raw.get("summary"), "summary", warnings)
    if len(summary) > MAX_SUMMARY:
        raise RecordError(
            "summary",
            f"is {len(summary):,} characters; the limit is "
            f"{MAX_SUMMARY:,} (put the full text in content_html)",
        )
    content = _text(raw.get("content_html"), "content_html", warnings)
    if len(content) > MAX_CONTENT_BYTES // 4 and len(content.encode()) > MAX_CONTENT_BYTES:
        warnings.append(
            f"content_html: {len(content.encode()) / 1e6:.1f} MB is over the "
            f"{MAX_CONTENT_BYTES // 1024 // 1024} MiB limit; stored without the full text "
            "(feeds and the digest carry the summary)"
        )
        content = ""

    return Record(
        id=record_id,
        url=url,
        title=title,
        published=published,
        updated=updated,
        categories=categories,
        summary=summary,
        content_html=content,
        image=_image(raw),
        authors=_names(raw, "authors", "author", warnings),
        tags=_names(raw, "tags", None, warnings),
    ), warnings


# --- fields --------------------------------------------------------------------------------


def _kind(value: object) -> str:
    return {
        bool: "true/false",
        int: "a number",
        float: "a number",
        list: "a list",
        dict: "an object",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _url(value: object, field: str, *, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise RecordError(field, "missing: give the absolute https:// URL")
        return None
    if not isinstance(value, str):
        raise RecordError(field, f"expected a URL, got {_kind(value)}")
    url = value.strip()
    if len(url) > MAX_URL:
        raise RecordError(field, f"is {len(url):,} characters; the limit is {MAX_URL:,}")
    # A regex rather than urlsplit: this runs twice per record on 100,000-record imports.
    if not _ABSOLUTE_URL.match(url):
        raise RecordError(field, f"{_short(url)!r} is not an absolute http(s) URL")
    if _BAD_URL_CHAR.search(url):
        raise RecordError(field, f"{_short(url)!r} contains white space or control characters")
    return url


def _title(value: object, warnings: list[str]) -> str:
    if value is None or value == "":
        raise RecordError("title", "missing: every record needs a title")
    if not isinstance(value, str):
        raise RecordError("title", f"expected text, got {_kind(value)}")
    if len(value) > MAX_TITLE_INPUT:
        raise RecordError("title", f"is {len(value):,} characters; the limit is {MAX_TITLE:,}")
    text, removed = strip_controls(value)
    if removed:
        warnings.append(f"title: removed {removed} control character(s)")
    if has_tags(text):
        warnings.append("title: HTML tags removed (titles are plain text)")
    if "\n" in text or "\r" in text:
        warnings.append("title: line breaks replaced by spaces")
    title = plain_text(text)
    if not title:
        raise RecordError("title", "is empty once HTML and white space are removed")
    if len(title) > MAX_TITLE:
        raise RecordError("title", f"is {len(title):,} characters; the limit is {MAX_TITLE:,}")
    return title


def _text(value: object, field: str, warnings: list[str]) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RecordError(field, f"expected text, got {_kind(value)}")
    text, removed = strip_controls(value)
    if removed:
        warnings.append(f"{field}: removed {removed} control character(s)")
    return text.strip()


def _datetime(value: object, field: str, tz: tzinfo, *, required: bool) -> datetime | None:
    if value is None or value == "":
        if required:
            raise RecordError(
                field, "missing: give an ISO 8601 date-time such as 2024-02-26T09:30:00-08:00"
            )
        return None
    if not isinstance(value, str):
        raise RecordError(field, f"expected an ISO 8601 date-time, got {_kind(value)}")
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as e:
        reason = str(e) if "out of range" in str(e) or "must be in" in str(e) else None
        raise RecordError(
            field,
            f"{_short(text)!r} is not a valid ISO 8601 date-time"
            + (f" ({reason})" if reason else "")
            + "; write it as 2024-02-26T09:30:00-08:00",
        ) from e
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)  # a time without an offset is local to the site
    if not 1970 <= moment.year <= 9998:
        raise RecordError(field, f"{_short(text)!r} is outside 1970-9998")
    return moment.astimezone(UTC).replace(microsecond=0)


def _names(
    raw: Mapping[str, Any], plural: str, singular: str | None, warnings: list[str]
) -> tuple[str, ...]:
    """A list of plain-text names from ``plural`` (list, or "a|b" from CSV) or ``singular``."""
    values: list[object] = []
    for field in (plural, singular):
        if field is None or raw.get(field) in (None, ""):
            continue
        value = raw[field]
        if isinstance(value, str):
            values.extend(value.split("|") if field == plural else [value])
        elif isinstance(value, list) and field == plural:
            values.extend(value)
        else:
            expected = "a list of names" if field == plural else "one name"
            raise RecordError(field, f"expected {expected}, got {_kind(value)}")
    names: dict[str, None] = {}
    for item in values:
        if not isinstance(item, str):
            raise RecordError(plural, f"expected names (text), got {_kind(item)} in the list")
        cleaned, removed = strip_controls(item)
        if removed:
            warnings.append(f"{plural}: removed {removed} control character(s)")
        name = plain_text(cleaned)
        if len(name) > 200:
            raise RecordError(plural, f"{_short(name)!r} is longer than 200 characters")
        if name:
            names[name] = None
    if len(names) > MAX_LIST:
        raise RecordError(plural, f"has {len(names)} entries; the limit is {MAX_LIST}")
    return tuple(names)


def _image(raw: Mapping[str, Any]) -> Image | None:
    value = raw.get("image")
    if isinstance(value, dict):
        spec: Mapping[str, Any] = value
        unknown = set(spec) - {"url", "alt", "type", "length"}
        if unknown:
            raise RecordError(
                "image", f"unknown key(s) {sorted(unknown)}; expected url, alt, type, length"
            )
    elif value is None or isinstance(value, str):
        spec = {
            "url": value,
            "alt": raw.get("image_alt"),
            "type": raw.get("image_type"),
            "length": raw.get("image_length"),
        }
    else:
        raise RecordError("image", f"expected a URL or an object, got {_kind(value)}")
    url = _url(
        spec.get("url"),
        "image.url" if isinstance(value, dict) else "image",
        required=isinstance(value, dict),
    )
    if url is None:
        return None
    alt = spec.get("alt") or ""
    if not isinstance(alt, str):
        raise RecordError("image.alt", f"expected text, got {_kind(alt)}")
    mime = spec.get("type") or mimetypes.guess_type(urlsplit(url).path)[0] or "image/jpeg"
    if not isinstance(mime, str) or not _MIME_RE.fullmatch(mime):
        raise RecordError("image.type", f"{mime!r} is not a MIME type such as image/jpeg")
    length = spec.get("length")
    try:
        size = 0 if length in (None, "") else int(length)
    except (TypeError, ValueError, OverflowError):
        raise RecordError(
            "image.length", f"{_short(str(length))!r} is not a number of bytes"
        ) from None
    if size < 0 or isinstance(length, bool | float):
        raise RecordError("image.length", f"{length!r} is not a number of bytes")
    if size > MAX_LENGTH:
        raise RecordError("image.length", f"{size:,} bytes is more than any image can be")
    return Image(url=url, alt=plain_text(strip_controls(alt)[0]), type=mime.lower(), length=size)


def _short(value: str, limit: int = 80) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"
