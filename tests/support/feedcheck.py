"""Checks shared by the feed tests: real parsers and schema validators over real bytes.

feedparser reads RSS and Atom as readers do; lxml's RELAX NG validates Atom against RFC
4287's schema, plus the RFC's Schematron rules by hand (lxml ignores them); jsonschema with
a FormatChecker validates JSON Feed against tests/schemas/jsonfeed-1.1.schema.json.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import feedparser
import jsonschema
from lxml import etree

from kcrush_feeds.feeds.entries import atom_id
from kcrush_feeds.model import Record

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
ATOM = "{http://www.w3.org/2005/Atom}"
SITE = "https://www.kcrush.com"


@cache
def atom_schema() -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(str(SCHEMAS / "atom.rng")))


@cache
def json_feed_validator() -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / "jsonfeed-1.1.schema.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def expected_terms(record: Record) -> list[str]:
    """Categories then tags, case-insensitively unique: what every feed lists for a record."""
    seen: set[str] = set()
    out = []
    for name in (*record.categories, *record.tags):
        if name.casefold() not in seen:
            seen.add(name.casefold())
            out.append(name)
    return out


def _utc(parsed: Any) -> datetime:
    return datetime(*parsed[:6], tzinfo=UTC)


def check_atom_xml(data: bytes) -> None:
    """RELAX NG plus the RFC 4287 rules the schema cannot express."""
    doc = etree.fromstring(data)
    schema = atom_schema()
    assert schema.validate(doc), schema.error_log
    feed_author = doc.find(f"{ATOM}author") is not None
    assert doc.findtext(f"{ATOM}id")
    assert doc.findtext(f"{ATOM}updated")
    assert len(doc.findall(f"{ATOM}link[@rel='self']")) == 1
    for entry in doc.iterfind(f"{ATOM}entry"):
        alternates = [
            link
            for link in entry.iterfind(f"{ATOM}link")
            if link.get("rel", "alternate") == "alternate"
        ]
        assert len(alternates) == 1, etree.tostring(entry)[:300]
        assert entry.findtext(f"{ATOM}id")
        assert entry.findtext(f"{ATOM}updated")
        assert feed_author or entry.find(f"{ATOM}author") is not None
        for link in entry.iterfind(f"{ATOM}link[@rel='enclosure']"):
            assert link.get("type") and link.get("href")


def check_feed(
    path: Path, fmt: str, records: Sequence[Record], *, self_url: str, big: bool = False
) -> Any:
    """The file at ``path`` parses cleanly and lists exactly ``records``, in that order.

    Returns what feedparser made of it (None for JSON). ``big``: skip feedparser's own
    HTML sanitising and URL resolving, which take seconds per megabyte of markup.
    """
    data = path.read_bytes()
    if fmt == "json":
        check_json_feed(data, records, self_url=self_url)
        return None
    if fmt == "atom":
        check_atom_xml(data)
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n")
    assert b"<?xml-stylesheet" not in data  # browsers are removing XSLT: {slug}/index.html
    options = {"sanitize_html": False, "resolve_relative_uris": False} if big else {}
    parsed = feedparser.parse(data, **options)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == ("rss20" if fmt == "rss" else "atom10")
    links = parsed.feed.get("links", [])
    assert [link["href"] for link in links if link.get("rel") == "self"] == [self_url]
    if fmt == "rss":
        assert parsed.feed.link == SITE  # the site, not the feed
    assert len(parsed.entries) == len(records)
    for entry, record in zip(parsed.entries, records, strict=True):
        assert entry.title == record.title
        assert entry.link == record.url
        assert entry.id == (record.id if fmt == "rss" else atom_id(record.id, SITE))
        assert _utc(entry.published_parsed) == record.published
        assert [t.term for t in entry.get("tags", [])] == expected_terms(record)
        enclosures = [(e.href, int(e.get("length", 0)), e.type) for e in entry.enclosures]
        image = record.image
        assert enclosures == ([] if image is None else [(image.url, image.length, image.type)])
        if fmt == "atom":
            alternates = [link for link in entry.links if link.rel == "alternate"]
            assert [a.href for a in alternates] == [record.url]
    return parsed


def check_json_feed(data: bytes, records: Sequence[Record], *, self_url: str) -> None:
    feed = json.loads(data)
    errors = sorted(json_feed_validator().iter_errors(feed), key=str)
    assert not errors, [e.message for e in errors]
    assert feed["feed_url"] == self_url
    assert feed["home_page_url"] == SITE
    assert len(feed["items"]) == len(records)
    for item, record in zip(feed["items"], records, strict=True):
        assert item["id"] == record.id
        assert item["url"] == record.url
        assert item["title"] == record.title
        assert datetime.fromisoformat(item["date_published"]) == record.published
        assert item.get("tags", []) == expected_terms(record)
        assert item.get("image") == (record.image.url if record.image else None)
        assert "content_html" in item or "content_text" in item
