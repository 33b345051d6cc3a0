"""The editor's hand on a frozen digest: a note on top, pinned stories first, drops, a subject.

Pure: takes the digest as ``select`` froze it and what the editor asked for, returns the
digest subscribers get. Pinned records open the digest in the order given, in a section of
their own before the configured ones (each subscriber still gets only the pins in their
categories); dropped records are left out. The note is CommonMark, rendered with
markdown-it-py, then sanitised like record HTML (raw HTML in it is allowed and cleaned);
the text part gets it as plain text, links written out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import lxml.html
from markdown_it import MarkdownIt

from kcrush_feeds.model import Digest, DigestItem
from kcrush_feeds.sanitize import sanitize_html

PINNED_SECTION = -1  # sorts before every configured section
PINNED_TITLE = "Editor's picks"
_BLOCKS = frozenset(
    ("p", "div", "ul", "ol", "li", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6")
)
_BLANK_RUN_RE = re.compile(r"\n{3,}")
_markdown = MarkdownIt("commonmark", {"html": True, "linkify": False, "typographer": False})


@dataclass(frozen=True, slots=True)
class Note:
    """The editor's note as both parts show it."""

    markdown: str
    html: str  # sanitised
    text: str  # plain text, links written out


@dataclass(frozen=True, slots=True)
class Editorial:
    """What the editor asked for on one digest."""

    note: Note | None = None
    subject: str | None = None
    pins: tuple[str, ...] = ()
    drops: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        *,
        note: str,
        subject: str | None,
        pins: Sequence[str],
        drops: Sequence[str],
        base_url: str,
    ) -> Editorial:
        """From stored values: the note's Markdown is rendered here."""
        return cls(
            render_note(note, base_url) if note.strip() else None,
            subject or None,
            tuple(pins),
            tuple(drops),
        )

    @property
    def empty(self) -> bool:
        return self.note is None and self.subject is None and not self.pins and not self.drops


def render_note(markdown: str, base_url: str) -> Note:
    """CommonMark -> HTML -> sanitised HTML (relative links against ``base_url``) -> text."""
    safe = sanitize_html(_markdown.render(markdown), base_url).strip()
    return Note(markdown, safe, html_to_text(safe))


def html_to_text(html: str) -> str:
    """Sanitised HTML as readable plain text: blocks on their own lines, ``* `` for list
    items, a link as ``text <url>`` (or just the url when that is its text)."""
    if not html.strip():
        return ""
    root = lxml.html.fragment_fromstring(html, create_parent="div")
    parts: list[str] = []

    def walk(element: lxml.html.HtmlElement) -> None:
        tag = element.tag if isinstance(element.tag, str) else ""
        if tag in _BLOCKS:
            parts.append("\n\n" if tag != "li" else "\n* ")
        elif tag == "br":
            parts.append("\n")
        if element.text:
            parts.append(element.text)
        for child in element:
            walk(child)
        if tag == "a":
            href = element.get("href", "")
            label = element.text_content().strip()
            if href and href != label:
                parts.append(f" <{href}>")
        if tag in _BLOCKS and tag != "li":
            parts.append("\n")
        # White space between blocks is layout of the HTML source, not text.
        if element.tail and (tag not in _BLOCKS or element.tail.strip()):
            parts.append(element.tail)

    walk(root)
    text = "".join(parts)
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.split("\n")]
    return _BLANK_RUN_RE.sub("\n\n", "\n".join(lines)).strip("\n")


@dataclass(frozen=True, slots=True)
class Applied:
    """The edited digest, and the ids the editor named that the digest does not hold."""

    digest: Digest
    unknown: tuple[str, ...]


def apply(digest: Digest, editorial: Editorial) -> Applied:
    """``digest`` with the pins first (their own section, in the order given), the drops
    left out; every other item where ``select`` put it."""
    by_id = {item.record_id: item for item in digest.items}
    unknown = tuple(i for i in (*editorial.pins, *editorial.drops) if i not in by_id)
    dropped = frozenset(editorial.drops)
    pinned_ids = [i for i in editorial.pins if i in by_id and i not in dropped]
    pinned: list[DigestItem] = [
        replace(by_id[i], section=PINNED_SECTION, section_title=PINNED_TITLE) for i in pinned_ids
    ]
    chosen = frozenset(pinned_ids)
    rest = [i for i in digest.items if i.record_id not in dropped and i.record_id not in chosen]
    return Applied(replace(digest, items=(*pinned, *rest)), unknown)
