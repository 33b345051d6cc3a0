"""The pure writers: Records made in code (no import cleaning) -> bytes, read back by real
parsers and validators. Covers what the import step would otherwise have cleaned away."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from kcrush_feeds.feeds.atom import render_atom
from kcrush_feeds.feeds.entries import Channel, Entry, Listing, atom_id, prepare_entry, rfc822
from kcrush_feeds.feeds.jsonfeed import render_json
from kcrush_feeds.feeds.opml import render_opml
from kcrush_feeds.feeds.pages import render_feed_page, render_index
from kcrush_feeds.feeds.rss import render_rss
from kcrush_feeds.model import Image, Record
from kcrush_feeds.text import strip_controls
from tests.support.feedcheck import SITE, check_atom_xml, check_feed, expected_terms

BASE = "https://www.kcrush.com/feeds/test"
T0 = datetime(2024, 2, 26, 17, 0, tzinfo=UTC)


def channel(**changes: object) -> Channel:
    values: dict[str, object] = {
        "slug": "test",
        "title": 'Test & <Feed> "케이팝" 🎤',
        "description": "K-Pop & friends",
        "site_url": SITE,
        "site_title": "KCrush",
        "language": "en",
        "urls": {"rss": f"{BASE}/rss.xml", "atom": f"{BASE}/atom.xml", "json": f"{BASE}/feed.json"},
        "image": None,
        "stylesheet": None,
    }
    values.update(changes)
    return Channel(**values)  # type: ignore[arg-type]


def record(n: int, **changes: object) -> Record:
    values: dict[str, object] = {
        "id": f"https://www.kcrush.com/post-{n}/",
        "url": f"https://www.kcrush.com/post-{n}/",
        "title": f"Post {n}",
        "published": T0 - timedelta(days=n),
        "updated": T0 - timedelta(days=n),
        "categories": ("K-Pop Articles",),
        "summary": f"Summary {n}",
        "image": Image(f"https://www.kcrush.com/img/{n}.jpg", "alt", "image/jpeg", 1000 + n),
        "authors": ("KCrush Staff",),
    }
    values.update(changes)
    return Record(**values)  # type: ignore[arg-type]


TRICKY = [
    record(
        0, title='블랙핑크 & <새 앨범> "특별" 🎤', id="kr-001", tags=("케이팝", "k-pop articles")
    ),
    record(1, title="Ampersand & less-than < and 'quotes'", summary=""),
    record(
        2,
        title="Bell\x07 and \x0b control characters",
        summary="bad \x00 byte\x1b",
        content_html="<p>ctrl \x0c here</p>",
        authors=("Name\x01",),
    ),
    record(3, image=None, summary="", content_html=""),
    record(4, content_html="<p>Long read.</p>"),
    record(
        5,
        content_html='<p onclick="x()">Hi <a href="/about">about</a>'
        '<script>alert(1)</script><img src="pic.jpg"><a href="javascript:alert(1)">j</a></p>',
        image=Image("https://www.kcrush.com/img/x.png", "", "image/png", 0),
    ),
    record(6, id="urn:kcrush:6", updated=T0 - timedelta(days=10)),  # updated before published
]


def cleaned(r: Record) -> Record:
    """What a reader should see for ``r``: control characters gone (lxml refuses them)."""
    return replace(r, title=strip_controls(r.title)[0])


@pytest.fixture(scope="module")
def entries() -> list[Entry]:
    return [prepare_entry(r, site_url=SITE) for r in TRICKY]


@pytest.mark.parametrize("fmt", ["rss", "atom", "json"])
def test_tricky_records_parse_back_exactly(fmt: str, entries: list[Entry], tmp_path: Path) -> None:
    render = {"rss": render_rss, "atom": render_atom, "json": render_json}[fmt]
    path = tmp_path / f"feed.{fmt}"
    path.write_bytes(render(channel(), entries))
    check_feed(path, fmt, [cleaned(r) for r in TRICKY], self_url=channel().url(fmt))


def test_sanitised_html_and_absolute_urls(entries: list[Entry]) -> None:
    for data in (
        render_rss(channel(), entries),
        render_atom(channel(), entries),
        render_json(channel(), entries),
    ):
        text = data.decode()
        assert "alert(1)" not in text and "onclick" not in text and "javascript:" not in text
        assert "https://www.kcrush.com/about" in text
        assert "https://www.kcrush.com/post-5/pic.jpg" in text
        assert "\x07" not in text and "\x00" not in text and "\x0c" not in text


# ~5.3 MB in 10,000 paragraphs. (One single 5 MB text node full of "&" takes nh3 tens of
# seconds; real articles come in paragraphs.)
PARAGRAPH = "<p>" + "케이팝 &amp; K-Pop, <b>bold</b> and <a href='/x'>a link</a>. " * 8 + "</p>\n"
BIG = record(9, content_html=PARAGRAPH * 10_000)


@pytest.mark.parametrize("fmt", ["rss", "atom", "json"])
def test_big_body_is_carried_whole(fmt: str, tmp_path: Path) -> None:
    assert len(BIG.content_html.encode()) > 5_000_000
    entry = prepare_entry(BIG, site_url=SITE)
    render = {"rss": render_rss, "atom": render_atom, "json": render_json}[fmt]
    path = tmp_path / "big"
    path.write_bytes(render(channel(), [entry]))
    parsed = check_feed(path, fmt, [BIG], self_url=channel().url(fmt), big=True)
    if fmt == "json":
        content = json.loads(path.read_bytes())["items"][0]["content_html"]
    else:
        content = parsed.entries[0].content[0].value
    assert content.count("케이팝 &amp; K-Pop") == 80_000
    assert content.count('href="https://www.kcrush.com/x"') == 80_000


def test_rss_details(entries: list[Entry]) -> None:
    doc = etree.fromstring(render_rss(channel(image="https://www.kcrush.com/logo.png"), entries))
    ch = doc.find("channel")
    assert ch.findtext("link") == SITE
    assert ch.findtext("image/url") == "https://www.kcrush.com/logo.png"
    assert ch.findtext("image/link") == SITE
    # lastBuildDate is the newest entry's update, not the clock
    assert ch.findtext("lastBuildDate") == "Mon, 26 Feb 2024 17:00:00 GMT"
    items = ch.findall("item")
    assert items[0].find("guid").get("isPermaLink") == "false"  # id "kr-001" is not the URL
    assert items[1].find("guid").get("isPermaLink") == "true"
    assert items[3].find("description") is None and items[3].find("enclosure") is None
    media = items[5].find("{http://search.yahoo.com/mrss/}content")
    assert media.get("medium") == "image" and media.get("url").endswith("x.png")
    assert items[5].find("enclosure").get("length") == "0"  # unknown length
    assert [c.text for c in items[0].findall("category")] == ["K-Pop Articles", "케이팝"]


def test_atom_details(entries: list[Entry]) -> None:
    data = render_atom(channel(image="https://www.kcrush.com/logo.png"), entries)
    check_atom_xml(data)
    doc = etree.fromstring(data)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    first = doc.find("a:entry", ns)
    assert first.findtext("a:id", namespaces=ns) == atom_id("kr-001", SITE)
    assert first.findtext("a:id", namespaces=ns).startswith("urn:uuid:")
    enclosure = doc.find("a:entry/a:link[@rel='enclosure']", ns)
    assert enclosure.get("type") == "image/jpeg" and enclosure.get("length") == "1000"
    last = doc.findall("a:entry", ns)[-1]
    assert last.findtext("a:id", namespaces=ns) == "urn:kcrush:6"
    # updated never before published
    assert last.findtext("a:updated", namespaces=ns) == last.findtext("a:published", namespaces=ns)
    assert doc.findtext("a:logo", namespaces=ns) == "https://www.kcrush.com/logo.png"


def test_json_details(entries: list[Entry]) -> None:
    feed = json.loads(render_json(channel(), entries))
    items = feed["items"]
    assert items[3] == {
        "id": "https://www.kcrush.com/post-3/",
        "url": "https://www.kcrush.com/post-3/",
        "title": "Post 3",
        "content_text": "",
        "date_published": "2024-02-23T17:00:00Z",
        "date_modified": "2024-02-23T17:00:00Z",
        "authors": [{"name": "KCrush Staff"}],
        "tags": ["K-Pop Articles"],
    }
    assert items[2]["authors"] == [{"name": "Name"}]
    assert items[0]["tags"] == expected_terms(TRICKY[0])


@pytest.mark.parametrize("fmt", ["rss", "atom", "json"])
def test_empty_feed_is_valid(fmt: str, tmp_path: Path) -> None:
    render = {"rss": render_rss, "atom": render_atom, "json": render_json}[fmt]
    path = tmp_path / "empty"
    path.write_bytes(render(channel(), []))
    check_feed(path, fmt, [], self_url=channel().url(fmt))


def test_bytes_do_not_depend_on_clock_or_locale(entries: list[Entry]) -> None:
    import locale

    first = [f(channel(), entries) for f in (render_rss, render_atom, render_json)]
    previous = locale.setlocale(locale.LC_TIME)
    for name in ("de_DE.UTF-8", "ko_KR.UTF-8", "fr_FR.UTF-8"):
        try:
            locale.setlocale(locale.LC_TIME, name)
        except locale.Error:
            continue
        try:
            assert [f(channel(), entries) for f in (render_rss, render_atom, render_json)] == first
        finally:
            locale.setlocale(locale.LC_TIME, previous)
    assert rfc822(datetime(2024, 3, 5, 1, 2, 3, tzinfo=UTC)) == "Tue, 05 Mar 2024 01:02:03 GMT"


def test_naive_dates_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        prepare_entry(record(1, published=datetime(2024, 1, 1)), site_url=SITE)


def test_opml_index_and_xsl() -> None:
    listings = [
        Listing(
            "K-Pop & <Co>",
            "about",
            {"rss": f"{BASE}/rss.xml", "json": f"{BASE}/feed.json"},
            {"rss": "test/rss.xml", "json": "test/feed.json"},
        ),
        Listing("JSON only", "", {"json": f"{BASE}2/feed.json"}, {"json": "test2/feed.json"}),
    ]
    opml = etree.fromstring(render_opml("KCrush feeds", SITE, listings))
    outlines = opml.findall("body/outline")
    assert [o.get("text") for o in outlines] == ["K-Pop & <Co>", "JSON only"]
    assert [o.get("xmlUrl") for o in outlines] == [f"{BASE}/rss.xml", f"{BASE}2/feed.json"]
    page = render_index("KCrush feeds", "d", "en", "feeds.opml", f"{BASE}/feeds.opml", listings)
    html = page.decode()
    assert (
        '<link rel="alternate" type="application/rss+xml" title="K-Pop &amp; &lt;Co&gt; (RSS)"'
        in html
    )
    assert 'type="application/feed+json"' in html
    assert '<a href="test/rss.xml">RSS</a>' in html
    # Each feed's own page shows it to a person (no XSLT: browsers are removing it).
    entries = [prepare_entry(record(1), site_url=SITE)]
    out = render_feed_page(channel(), entries, UTC).decode()
    assert "Post 1" in out and 'href="https://www.kcrush.com/post-1/"' in out
    assert "Test &amp; &lt;Feed&gt;" in out


def test_entries_of_the_same_second_have_distinct_updated_strings() -> None:
    # Scheduled posts go out in the same second; the W3C validator warns (DuplicateUpdated)
    # when two entries' updated strings are equal, so repeats carry fractional zeros.
    same = [
        prepare_entry(
            record(1, id=f"id-{i}", url=f"https://www.kcrush.com/s{i}/", published=T0, updated=T0),
            site_url=SITE,
        )
        for i in range(3)
    ]
    data = render_atom(channel(), same)
    check_atom_xml(data)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    updated = [
        e.findtext("a:updated", namespaces=ns)
        for e in etree.fromstring(data).findall("a:entry", ns)
    ]
    assert len(set(updated)) == 3
    assert {datetime.fromisoformat(u) for u in updated} == {T0}


def test_rss_item_without_summary_gets_a_description_from_its_body() -> None:
    body_only = prepare_entry(
        record(1, summary="", content_html="<p>First &amp; <b>second</b> paragraph.</p>"),
        site_url=SITE,
    )
    item = etree.fromstring(render_rss(channel(), [body_only])).find("channel/item")
    names = [child.tag for child in item]
    content = "{http://purl.org/rss/1.0/modules/content/}encoded"
    # The validator warns unless description comes before content:encoded.
    assert names.index("description") < names.index(content)
    assert item.findtext("description") == "First &amp; second paragraph."


@pytest.mark.parametrize(
    ("record_id", "kept"),
    [
        ("https://www.kcrush.com/?p=42", True),
        ("tag:kcrush.com,2024:post-42", True),
        ("urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", True),
        ("urn:kcrush:42", True),
        ("urn:uuid:1234", False),  # not a UUID: the validator rejects it
        ("plain id", False),
        ("42", False),
    ],
)
def test_atom_ids_are_valid_iris(record_id: str, kept: bool) -> None:
    made = atom_id(record_id, SITE)
    assert (made == record_id) is kept
    if not kept:
        assert made.startswith("urn:uuid:")
        assert atom_id(record_id, SITE) == made  # stable
