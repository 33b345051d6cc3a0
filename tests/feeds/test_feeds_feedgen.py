"""The feedgen workarounds (kcrush_feeds/feeds/feedgen_fixes.py), tested on what the writers
produce: each workaround has a test here that fails when it is taken out.

The canaries at the end show each defect is still in the installed feedgen, using feedgen
alone. When one fails after an upgrade, feedgen fixed that defect and its workaround can go.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from feedgen.feed import FeedGenerator
from lxml import etree

from kcrush_feeds.feeds.atom import render_atom
from kcrush_feeds.feeds.entries import Channel, Entry, prepare_entry, rfc822
from kcrush_feeds.feeds.rss import render_rss
from kcrush_feeds.model import Image, Record
from tests.support.feedcheck import check_atom_xml

SITE = "https://www.kcrush.com"
BASE = f"{SITE}/feeds/fix"
T0 = datetime(2024, 2, 26, 17, 0, tzinfo=UTC)
ATOM = "{http://www.w3.org/2005/Atom}"
MEDIA = "{http://search.yahoo.com/mrss/}"


def channel(**changes: object) -> Channel:
    values: dict[str, object] = {
        "slug": "fix",
        "title": "Fix",
        "description": "Workarounds",
        "site_url": SITE,
        "site_title": "KCrush",
        "language": "en",
        "urls": {"rss": f"{BASE}/rss.xml", "atom": f"{BASE}/atom.xml"},
        "stylesheet": "../feed.xsl",
    }
    values.update(changes)
    return Channel(**values)  # type: ignore[arg-type]


def entry(n: int, **changes: object) -> Entry:
    values: dict[str, object] = {
        "id": f"{SITE}/post-{n}/",
        "url": f"{SITE}/post-{n}/",
        "title": f"Post {n}",
        "published": T0 - timedelta(days=n),
        "updated": T0 - timedelta(days=n),
        "categories": ("K-Pop Articles",),
        "summary": f"Summary {n}",
        "content_html": f"<p>Body {n}</p>",
        "image": Image(f"{SITE}/img/{n}.jpg", f"alt {n}", "image/jpeg", 1000 + n),
        "authors": ("KCrush Staff",),
    }
    values.update(changes)
    return prepare_entry(Record(**values), site_url=SITE)  # type: ignore[arg-type]


ENTRIES = [entry(n) for n in range(4)]


def rss_channel(data: bytes) -> etree._Element:
    return etree.fromstring(data).find("channel")


# --- each workaround, seen in what the writers produce --------------------------------------


def test_generator_is_ours_and_no_docs() -> None:
    ch = rss_channel(render_rss(channel(), ENTRIES))
    assert ch.findtext("generator") == "kcrush-feeds"
    assert ch.find("docs") is None
    generator = etree.fromstring(render_atom(channel(), ENTRIES)).find(f"{ATOM}generator")
    assert generator.text == "kcrush-feeds" and dict(generator.attrib) == {}


def test_feed_dates_come_from_the_entries_not_the_clock() -> None:
    for render in (render_rss, render_atom):
        first = render(channel(), ENTRIES)
        assert render(channel(), ENTRIES) == first  # feedgen's now() has microseconds
    assert rss_channel(render_rss(channel(), ENTRIES)).findtext("lastBuildDate") == rfc822(T0)
    feed = etree.fromstring(render_atom(channel(), ENTRIES))
    assert datetime.fromisoformat(feed.findtext(f"{ATOM}updated")) == T0
    for el, e in zip(feed.findall(f"{ATOM}entry"), ENTRIES, strict=True):
        assert datetime.fromisoformat(el.findtext(f"{ATOM}updated")) == e.updated


def test_rss_channel_link_is_the_site_and_self_is_the_feed() -> None:
    ch = rss_channel(render_rss(channel(), ENTRIES))
    assert ch.findtext("link") == SITE
    [self_link] = ch.findall(f"{ATOM}link")
    assert self_link.get("href") == f"{BASE}/rss.xml" and self_link.get("rel") == "self"
    assert self_link.get("type") == "application/rss+xml"


def test_rss_channel_without_description_says_its_title() -> None:
    ch = rss_channel(render_rss(channel(description=""), ENTRIES))
    assert ch.findtext("description") == "Fix"


def test_entries_keep_the_order_given() -> None:
    rss = rss_channel(render_rss(channel(), ENTRIES))
    assert [i.findtext("guid") for i in rss.findall("item")] == [e.id for e in ENTRIES]
    atom = etree.fromstring(render_atom(channel(), ENTRIES))
    ids = [el.findtext(f"{ATOM}id") for el in atom.findall(f"{ATOM}entry")]
    assert ids == [e.atom_id for e in ENTRIES]


def test_rss_enclosure_of_unknown_length_says_zero() -> None:
    unknown = entry(1, image=Image(f"{SITE}/img/x.png", "", "image/png", 0))
    item = rss_channel(render_rss(channel(), [unknown])).find("item")
    assert dict(item.find("enclosure").attrib) == {
        "url": f"{SITE}/img/x.png",
        "length": "0",
        "type": "image/png",
    }


def test_rss_media_content_is_a_child_of_the_item_with_the_alt_text() -> None:
    # Our own item extension (rss.py), not a workaround: feedgen's media extension would
    # wrap it in media:group and has no media:description.
    item = rss_channel(render_rss(channel(), ENTRIES)).find("item")
    assert item.find(f"{MEDIA}group") is None
    content = item.find(f"{MEDIA}content")
    assert content.get("url") == f"{SITE}/img/0.jpg" and content.get("medium") == "image"
    assert content.get("fileSize") == "1000"
    description = content.find(f"{MEDIA}description")
    assert description.text == "alt 0" and description.get("type") == "plain"


def test_stylesheet_instruction_before_the_root() -> None:
    for render in (render_rss, render_atom):
        data = render(channel(), ENTRIES)
        assert data.splitlines()[1] == b'<?xml-stylesheet type="text/xsl" href="../feed.xsl"?>'
        assert b"xml-stylesheet" not in render(channel(stylesheet=None), ENTRIES)


def test_rss_dates_are_rfc822_gmt_whatever_the_locale() -> None:
    ch = rss_channel(render_rss(channel(), ENTRIES))
    assert ch.findtext("lastBuildDate") == "Mon, 26 Feb 2024 17:00:00 GMT"
    dates = [i.findtext("pubDate") for i in ch.findall("item")]
    assert dates == [rfc822(e.published) for e in ENTRIES]
    assert dates[1] == "Sun, 25 Feb 2024 17:00:00 GMT"


def test_empty_rss_feed_has_no_build_date() -> None:
    ch = rss_channel(render_rss(channel(), []))
    assert ch.find("lastBuildDate") is None and ch.find("item") is None


def test_atom_entry_links_keep_rel_type_length_and_title() -> None:
    data = render_atom(channel(), ENTRIES)
    check_atom_xml(data)  # exactly one alternate link per entry, among others
    first = etree.fromstring(data).find(f"{ATOM}entry")
    links = sorted((dict(link.attrib) for link in first.findall(f"{ATOM}link")), key=str)
    assert links == [
        {"href": f"{SITE}/img/0.jpg", "rel": "enclosure", "type": "image/jpeg"}
        | {"length": "1000", "title": "alt 0"},
        {"href": f"{SITE}/post-0/", "rel": "alternate", "type": "text/html"},
    ]


# --- canaries: the defects, in feedgen alone ------------------------------------------------


def _minimal() -> FeedGenerator:
    fg = FeedGenerator()
    fg.id(f"{BASE}/atom.xml")
    fg.title("t")
    fg.description("d")
    fg.link(href=SITE, rel="alternate")
    fg.link(href=f"{BASE}/rss.xml", rel="self")
    return fg


def _entry(fg: FeedGenerator, n: int, **kwargs: object) -> object:
    fe = fg.add_entry(**kwargs)
    fe.id(f"{SITE}/post-{n}/")
    fe.title(f"Post {n}")
    fe.link(href=f"{SITE}/post-{n}/", rel="alternate", type="text/html")
    return fe


def test_canary_feedgen_defaults() -> None:
    fg = _minimal()
    before = datetime.now(UTC)
    assert fg.updated() >= before - timedelta(seconds=5)  # now(), not a record date
    ch = etree.fromstring(fg.rss_str()).find("channel")
    assert ch.findtext("generator") == "python-feedgen"
    assert ch.findtext("docs") == "http://www.rssboard.org/rss-specification"
    assert ch.findtext("link") == f"{BASE}/rss.xml"  # the last link() called, not the site
    assert ch.find("lastBuildDate").text.endswith("+0000")  # written with no entries, +0000
    assert etree.fromstring(fg.atom_str()).find(f"{ATOM}generator").get("uri")


def test_canary_feedgen_entries() -> None:
    fg = _minimal()
    for n in range(2):
        fe = _entry(fg, n)
    fe.enclosure(f"{SITE}/img/1.jpg", type="image/jpeg")  # type: ignore[attr-defined]
    fg.add_entry(_entry(FeedGenerator(), 9))  # still prepended
    items = etree.fromstring(fg.rss_str()).find("channel").findall("item")
    assert [i.findtext("guid") for i in items] == [f"{SITE}/post-{n}/" for n in (9, 1, 0)]
    assert items[1].find("enclosure").get("length") == "None"
    entry_links = etree.fromstring(fg.atom_str()).find(f"{ATOM}entry[2]").findall(f"{ATOM}link")
    assert [dict(link.attrib) for link in entry_links] == [  # rel, type, length lost
        {"href": f"{SITE}/post-1/"},
        {"href": f"{SITE}/img/1.jpg"},
    ]


def test_canary_feedgen_refuses_an_empty_channel_description() -> None:
    fg = FeedGenerator()
    fg.title("t")
    fg.link(href=SITE)
    with pytest.raises(ValueError, match="description"):
        fg.rss_str()
