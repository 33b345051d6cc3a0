"""Untrusted text on the terminal (issue 18): control characters are shown escaped, by
one helper (``text.show``) wherever the CLI prints what someone else wrote."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from kcrush_feeds.text import show, show_lines
from tests.support.project import Project


def test_show_escapes_what_a_terminal_would_act_on() -> None:
    assert show("plain, é, 김민지") == "plain, é, 김민지"
    assert show("\x1b[2J\x07\x9b\x00") == "\\x1b[2J\\x07\\x9b\\x00"
    assert show("a\nb\tc\rd") == "a\\nb\\tc\\rd"
    assert show("\u202eevil") == "\\u202eevil"  # right-to-left override
    assert show_lines("one\x1b\ntwo") == "one\\x1b\ntwo"


def test_an_unknown_field_name_in_an_import_is_shown_escaped(
    project: Project, write_jsonl: Callable[..., Path]
) -> None:
    record = {
        "id": "esc-1",
        "title": "A title",
        "url": "https://www.kcrush.com/a",
        "published": "2024-02-20T10:00:00Z",
        "categories": ["K-Pop Articles"],
        "\x1b]0;pwned\x07\x1b[2Jfield": "x",
    }
    path = write_jsonl("records.jsonl", record)
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[0])["id"] == "esc-1"
    result = project.run("import", str(path))
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "\\x1b]0;pwned\\x07\\x1b[2Jfield: unknown field" in result.output
