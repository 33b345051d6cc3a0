"""Slugs: safe, stable directory names for any category name; collisions refused."""

from __future__ import annotations

import re

import pytest

from kcrush_feeds.errors import FeedError
from kcrush_feeds.feeds.slugs import check_unique, slugify

SAFE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")

NAMES = [
    "K-Pop Articles",
    "케이팝",
    "케이팝 뉴스",
    "BTS 뉴스",
    "🎤",
    "🎤 Live",
    "../../etc",
    "..",
    ".",
    "/",
    "a/b\\c",
    "CON",
    "con",
    "Nul",
    "COM1",
    "lpt9",
    "all",
    "ALL",
    "x" * 300,
    "x" * 299 + "y",
    "Rock & Roll",
    "rock-roll",
    "",
    " ",
    "\x00\x07",
    "Ｆｕｌｌｗｉｄｔｈ",
    "e\u0301",
    "é",
]


@pytest.mark.parametrize("name", NAMES)
def test_every_slug_is_a_safe_directory_name(name: str) -> None:
    slug = slugify(name)
    assert SAFE.fullmatch(slug), slug
    assert slug not in {"con", "nul", "com1", "lpt9", "all", ".", ".."}
    assert slugify(name) == slug  # stable


def test_readable_names_keep_readable_slugs() -> None:
    assert slugify("K-Pop Articles") == "k-pop-articles"
    assert slugify("Film") == "film"
    assert slugify("featured_interview") == "featured-interview"


def test_lossy_names_get_a_hash_and_stay_apart() -> None:
    assert slugify("케이팝").startswith("category-")
    assert slugify("BTS 뉴스").startswith("bts-")
    assert slugify("../../etc").startswith("etc-")
    assert slugify("CON").startswith("con-")
    assert slugify("all").startswith("all-")
    assert len(slugify("x" * 300)) <= 64
    distinct = [n for n in NAMES if n.strip() and n.casefold() not in {"con", "all", "nul"}]
    slugs = {slugify(n) for n in distinct}
    # Only names that are the same category (case) may share a slug.
    assert len(slugs) == len({n.casefold() for n in distinct})


def test_slugs_are_case_insensitive_like_categories() -> None:
    assert slugify("K-POP") == slugify("k-pop")
    assert slugify("케이팝 NEWS") == slugify("케이팝 news")


def test_pinned_values_never_change() -> None:
    # These end up in subscribers' feed readers: a change would break their subscriptions.
    assert slugify("케이팝") == "category-dbded50b41"
    assert slugify("../../etc") == "etc-37b3685cea" == slugify("../../ETC")
    assert slugify("CON") == "con-cb66561fa5"
    assert slugify("🎤 Live") == "live-588b4836ae"
    assert slugify("Café").startswith("cafe-")
    assert slugify("x" * 300) == "x" * 40 + "-07791d26ef"


def test_collisions_are_refused_with_a_clear_error() -> None:
    with pytest.raises(FeedError) as caught:
        check_unique([("k-pop", "the feed 'K-Pop'"), ("k-pop", "the feed 'K Pop'")])
    assert "'K Pop'" in str(caught.value) and "'K-Pop'" in str(caught.value)
    assert "k-pop/" in str(caught.value)
    check_unique([("a", "A"), ("b", "B")])
