"""Record HTML on its way into a feed or an email."""

from __future__ import annotations

import pytest

from kcrush_feeds.sanitize import sanitize_html

BASE = "https://www.kcrush.com/2024/02/post/"


@pytest.mark.parametrize(
    ("html", "gone"),
    [
        ("<p>a<script>alert(1)</script></p>", "alert"),
        ("<p>a<style>p{color:red}</style></p>", "color"),
        ('<iframe src="https://evil.test/"></iframe><p>a</p>', "evil"),
        ('<p onclick="steal()">a</p>', "steal"),
        ('<a href="javascript:steal()">a</a>', "javascript"),
        ('<img src="x.jpg" onerror="steal()">', "steal"),
        ('<form action="https://evil.test/"><input name=x></form>', "evil"),
    ],
)
def test_unsafe_html_is_removed(html: str, gone: str) -> None:
    assert gone not in sanitize_html(html, BASE)


def test_relative_urls_are_resolved_against_the_record() -> None:
    out = sanitize_html(
        '<a href="/about/">a</a> <img alt="x" src="pic.jpg"> <a href="#top">t</a> '
        '<q cite="../c">q</q> <a href="https://other.test/x?a=1&amp;b=2">o</a> '
        '<a href="mailto:editors@kcrush.com">m</a>',
        BASE,
    )
    assert 'href="https://www.kcrush.com/about/"' in out
    assert 'src="https://www.kcrush.com/2024/02/post/pic.jpg"' in out
    assert 'href="https://www.kcrush.com/2024/02/post/#top"' in out
    assert 'cite="https://www.kcrush.com/2024/02/c"' in out
    assert 'href="https://other.test/x?a=1&amp;b=2"' in out
    assert 'href="mailto:editors@kcrush.com"' in out


def test_ordinary_markup_survives() -> None:
    html = "<p>Hello <strong>아이콘</strong> &amp; <em>friends</em> 🎤</p><ul><li>one</li></ul>"
    assert sanitize_html(html, BASE) == html
    assert sanitize_html("", BASE) == ""
