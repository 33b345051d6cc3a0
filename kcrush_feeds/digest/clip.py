"""The Gmail clip guard: a digest whose HTML would pass ``digest.max_html_bytes`` is cut.

Gmail hides everything past about 102 KB of a message's HTML behind "[Message clipped]",
the footer with the unsubscribe link included. The digest is therefore cut at section
boundaries (the last sections go first) and each section cut becomes a "More on KCrush"
link with its count; only if the first section alone is too big is it cut between items.
Pure: ``fit`` is handed a ``render`` function and measures what it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kcrush_feeds.model import DigestItem, sections_of

# Per-subscriber values replace short slot names after rendering (an unsubscribe URL with
# its token is ~150 bytes longer than its slot): leave room for them.
SLOT_ALLOWANCE = 400


@dataclass(frozen=True, slots=True)
class MoreLink:
    """A cut section as the templates show it: "Interviews: 5 more stories ->"."""

    title: str
    url: str
    count: int


@dataclass(frozen=True, slots=True)
class Fitted:
    """What is shown, what was cut, and the size of the HTML that will go out."""

    items: tuple[DigestItem, ...]
    more: tuple[MoreLink, ...]
    html: str
    html_bytes: int

    @property
    def cut(self) -> int:
        return sum(link.count for link in self.more)


Render = Callable[[tuple[DigestItem, ...], tuple[MoreLink, ...]], str]


def size_of(html: str, slots: int = 0) -> int:
    """Bytes of the decoded HTML part, with room for ``slots`` per-subscriber values."""
    return len(html.encode("utf-8")) + slots * SLOT_ALLOWANCE


def fit(
    items: Sequence[DigestItem],
    render: Render,
    limit: int,
    *,
    url: str,
    slots: Callable[[str], int] = lambda html: 0,
) -> Fitted:
    """The most of ``items`` whose rendering stays within ``limit`` bytes, cut at a section
    boundary where possible; the rest as links to ``url`` (the archive issue, or the site)."""
    chosen = tuple(items)

    def attempt(kept: tuple[DigestItem, ...]) -> Fitted:
        left = chosen[len(kept) :]
        more = tuple(MoreLink(title, url, len(section)) for title, section in sections_of(left))
        html = render(kept, more)
        return Fitted(kept, more, html, size_of(html, slots(html)))

    whole = attempt(chosen)
    if whole.html_bytes <= limit:
        return whole
    groups = [tuple(section) for _, section in sections_of(chosen)]
    for keep in range(len(groups) - 1, 0, -1):
        kept = tuple(item for group in groups[:keep] for item in group)
        fitted = attempt(kept)
        if fitted.html_bytes <= limit:
            return fitted
    # The first section alone is too big: the most of its items that fit (at least one,
    # so the message is never empty; one item cannot pass 100 KB with a sane template).
    first = groups[0]
    low, high = 1, len(first) - 1
    best = attempt(first[:1])
    while low <= high:
        middle = (low + high) // 2
        fitted = attempt(first[:middle])
        if fitted.html_bytes <= limit:
            best, low = fitted, middle + 1
        else:
            high = middle - 1
    return best
