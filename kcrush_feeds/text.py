"""Small text helpers shared by records, feeds and email: plain text out of HTML-ish input."""

from __future__ import annotations

import html
import re

# C0 controls except tab, newline and carriage return; DEL; C1 controls; the non-characters
# U+FFFE/U+FFFF and lone surrogates. None of these is allowed in XML 1.0 or useful in a title.
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff\ud800-\udfff]")
# A tag, or the opening of a comment (its end is found with str.find). One regex for both,
# "<!--.*?-->|<tag>", is quadratic: at every "<!--" with no "-->" after it the lazy match
# reads to the end of the text. A tag scan stops at the next "<" or ">", so it is linear.
_TAG_OR_COMMENT_RE = re.compile(r"<!--|</?[A-Za-z][^<>]*>")
_SPACE_RE = re.compile(r"\s+")
# What a terminal acts on: every C0 control (tab and newline too), DEL, C1 controls, and
# the bidirectional overrides that can make text read backwards.
_TERMINAL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def strip_controls(value: str) -> tuple[str, int]:
    """``value`` without control characters, and how many were removed."""
    cleaned, count = _CONTROL_RE.subn("", value)
    return cleaned, count


def show(value: str) -> str:
    """Untrusted text made safe to print on a terminal: each control character written as
    an escape (``\\x1b``, ``\\n``, ``\\u202e``), everything else as it is."""
    return _TERMINAL_RE.sub(_escape, value)


def show_lines(value: str) -> str:
    """Like ``show``, keeping the line breaks (a log line with a traceback after it)."""
    return "\n".join(show(line) for line in value.split("\n"))


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char)
    if named:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _tags(value: str) -> list[tuple[int, int]]:
    """Where the tags and closed comments of ``value`` are, in one linear pass.

    An unclosed ``<!--`` stays text (as it always did); once one has no ``-->`` after it,
    no later one can, so the rest are text without a search.
    """
    spans: list[tuple[int, int]] = []
    pos = 0
    closed_comments = True
    while (m := _TAG_OR_COMMENT_RE.search(value, pos)) is not None:
        if m[0] != "<!--":
            spans.append(m.span())
            pos = m.end()
            continue
        close = value.find("-->", m.end()) if closed_comments else -1
        if close < 0:
            closed_comments = False
            pos = m.end()
            continue
        spans.append((m.start(), close + 3))
        pos = close + 3
    return spans


def has_tags(value: str) -> bool:
    return "<" in value and bool(_tags(value))


def strip_tags(value: str, replacement: str = " ") -> str:
    """``value`` with every tag and comment replaced by ``replacement``, in linear time."""
    if "<" not in value:
        return value
    pieces: list[str] = []
    pos = 0
    for start, end in _tags(value):
        pieces.append(value[pos:start])
        pieces.append(replacement)
        pos = end
    pieces.append(value[pos:])
    return "".join(pieces)


def plain_text(value: str) -> str:
    """Tags removed, entities decoded, runs of white space (newlines too) made one space."""
    value = strip_tags(value)
    if "&" in value:
        value = html.unescape(value)
        value, _ = strip_controls(value)  # an entity such as &#11; can decode to a control
    return _SPACE_RE.sub(" ", value).strip()


def truncate(value: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a word boundary with an ellipsis."""
    if len(value) <= limit:
        return value
    cut = value[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,.;:!?-–—")
    return cut + "…"
