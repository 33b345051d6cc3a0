"""The pages next to the feeds (index.html, each feed's page) come from Jinja templates; their bytes
are pinned by golden files written by the earlier Python-string pages, so a change of template,
of Jinja settings or of escaping shows up here (pytest --regen-golden rewrites them)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from kcrush_feeds.feeds.entries import Channel, Listing, prepare_entry
from kcrush_feeds.feeds.pages import render_feed_page, render_index
from kcrush_feeds.model import Image, Record
from tests.support.project import GOLDEN

# Quotes, ampersands, markup, Korean, emoji and Jinja-looking text: every escaping difference
# between html.escape and markupsafe shows in the bytes.
WEIRD = "A & B <c> \"q\" 'a' 케이팝 🎤 {{ x }} {% y %} ` > ]]>"
LISTINGS = [
    Listing(
        WEIRD,
        WEIRD,
        {"rss": 'https://x/a?b=1&c="2"', "atom": "https://x/'a'", "json": "https://x/j"},
        {"rss": "a/rss.xml?&\"'", "atom": "a/atom.xml", "json": "a/feed.json"},
    ),
    Listing("No desc", "", {"json": "https://x/j2"}, {"json": "b/feed.json"}),
    Listing("Atom only", "d", {"atom": "https://x/at"}, {"atom": "c/atom.xml"}),
]
PAGES = {
    "feeds-index.html": lambda: render_index(
        WEIRD, WEIRD, "ko\"'&", "feeds.opml?&'\"", "https://x/o&\"'", LISTINGS
    ),
    "feeds-index-plain.html": lambda: render_index(
        "T", "", "en", "feeds.opml?&'\"", "https://x/o&\"'", LISTINGS[1:]
    ),
    "feeds-feed-page.html": lambda: render_feed_page(
        Channel("a", WEIRD, WEIRD, "https://x/", WEIRD, "en", {"rss": "https://x/a/rss.xml"}),
        [
            prepare_entry(
                Record(
                    "r1",
                    "https://x/r1",
                    WEIRD,
                    datetime(2026, 4, 26, 6, 30, tzinfo=UTC),  # 23:30 on the 25th in LA
                    datetime(2026, 4, 26, 6, 30, tzinfo=UTC),
                    ("c",),
                    summary=WEIRD,
                    image=Image("https://x/i.jpg", WEIRD),
                    authors=("A",),
                ),
                site_url="https://x/",
            )
        ],
        ZoneInfo("America/Los_Angeles"),
    ),
}


@pytest.mark.parametrize("name", sorted(PAGES))
def test_page_bytes_are_the_golden_bytes(name: str, regen_golden: bool) -> None:
    data = PAGES[name]()
    golden = GOLDEN / name
    if regen_golden:
        golden.write_bytes(data)
    assert golden.exists(), f"{golden} is missing (pytest --regen-golden writes it)"
    assert data == golden.read_bytes(), f"{golden} differs (pytest --regen-golden)"
