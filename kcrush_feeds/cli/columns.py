"""Columns that line up on a terminal: widths measured in cells, not characters.

A Korean syllable or most emoji take two cells, a combining mark none: ``str.ljust``
counts characters and misaligns such names. ``wcwidth`` measures what a terminal shows;
it is imported only for text that is not ASCII (most lines are, and start-up counts).
"""

from __future__ import annotations


def width(text: str) -> int:
    """The number of terminal cells ``text`` takes."""
    if text.isascii():
        return len(text)
    from wcwidth import wcswidth

    cells = wcswidth(text)
    return cells if cells >= 0 else len(text)  # a control character: count characters


def ljust(text: str, cells: int) -> str:
    """``text`` padded with spaces to ``cells`` terminal cells."""
    return text + " " * max(cells - width(text), 0)
