"""``import``: every kind of bad input gets FILE:LINE: field: reason, and loses nothing stored."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kcrush_feeds.store import records as store_records
from kcrush_feeds.store.db import Store
from tests.support.project import EXAMPLES, Project

GOOD = {
    "url": "https://www.kcrush.com/kcrush-interview-with-travelingwill/",
    "title": "KCrush Interview with TravelingWill",
    "published": "2024-02-26T10:00:00-08:00",
    "categories": ["K-Pop Interviews"],
    "summary": "Have you ever dreamed of being a DJ…",
}


def rec(**changes: object) -> dict[str, object]:
    record = {**GOOD, **changes}
    return {k: v for k, v in record.items() if v is not None}


def snapshot(project: Project) -> list[tuple[object, ...]]:
    with sqlite3.connect(project.dir / "store.db") as conn:
        return conn.execute("SELECT * FROM records ORDER BY id").fetchall()


@pytest.fixture
def stored(project: Project) -> Iterator[list[tuple[object, ...]]]:
    """The store already holds the 30 sample records; tests check they survive."""
    result = project.run("import", str(EXAMPLES / "records.jsonl"))
    assert result.exit_code == 0, result.output
    assert "imported: 30 added" in result.output
    before = snapshot(project)
    yield before
    after = {row[0]: row for row in snapshot(project)}
    assert [after.get(row[0]) for row in before] == before, "a stored record was changed"


def test_sample_records_import_and_reimport_is_unchanged(
    project: Project, stored: list[object]
) -> None:
    result = project.run("import", str(EXAMPLES / "records.jsonl"))
    assert result.exit_code == 0
    assert "imported: 0 added, 0 updated, 30 unchanged, 0 rejected" in result.output


def test_sample_csv_matches_the_jsonl(project: Project) -> None:
    result = project.run("import", str(EXAMPLES / "records.csv"))
    assert result.exit_code == 0, result.output
    assert "30 added" in result.output


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (rec(title=None), "title: missing"),
        (rec(url=None), "url: missing"),
        (rec(published=None), "published: missing"),
        (rec(published="next Tuesday"), "published: 'next Tuesday' is not a valid ISO 8601"),
        (
            rec(published="2024-02-30T10:00:00"),
            "published: '2024-02-30T10:00:00' is not a valid "
            "ISO 8601 date-time (day is out of range",
        ),
        (rec(url="/2024/02/relative/"), "url: '/2024/02/relative/' is not an absolute"),
        (rec(url="javascript:alert(1)"), "url: 'javascript:alert(1)' is not an absolute"),
        (rec(categories=[]), "categories: missing"),
        (rec(title="<b></b>"), "title: is empty once HTML"),
        (rec(title="x" * 1001), "title: is 1,001 characters; the limit is 1,000"),
        (rec(image={"url": "https://x/a.jpg", "length": "big"}), "image.length: 'big'"),
        (
            rec(categories="K-Pop|" + "|".join(f"c{i}" for i in range(200))),
            "categories: has 201 entries",
        ),
    ],
)
def test_bad_record_is_rejected_with_file_line_field(
    project: Project,
    stored: list[object],
    write_jsonl: Callable[..., Path],
    record: dict[str, object],
    message: str,
) -> None:
    good2 = rec(url="https://www.kcrush.com/another/", id="another")
    path = write_jsonl("batch.jsonl", good2, record)
    result = project.run("import", str(path))
    assert result.exit_code == 1
    assert f"error: {path}:2: {message}" in result.output
    assert "imported: 1 added, 0 updated, 0 unchanged, 1 rejected" in result.output
    with Store.open(project.dir / "store.db") as store:
        assert store_records.get(store, "another") is not None
        assert store_records.count(store) == 31


def test_malformed_json_line_in_the_middle_of_jsonl(project: Project, stored: list[object]) -> None:
    lines = [json.dumps(rec(url=f"https://www.kcrush.com/p{i}/")) for i in range(5)]
    lines[2] = '{"url": "https://www.kcrush.com/broken/", "title": "oops"'
    path = project.write("mid.jsonl", "\n".join(lines) + "\n")
    result = project.run("import", str(path))
    assert result.exit_code == 1
    assert f"error: {path}:3: line: not valid JSON" in result.output
    assert "4 added" in result.output


def test_csv_with_a_missing_column_is_refused_whole(project: Project, stored: list[object]) -> None:
    path = project.write(
        "no-title.csv",
        "url,published,categories\nhttps://www.kcrush.com/a/,2024-02-26T10:00:00Z,News\n",
    )
    result = project.run("import", str(path))
    assert result.exit_code == 1
    assert f"error: {path}:1: the CSV header has no 'title' column(s)" in result.output


def test_csv_row_with_too_many_cells(project: Project, stored: list[object]) -> None:
    path = project.write(
        "cells.csv",
        "url,title,published,categories\n"
        "https://www.kcrush.com/a/,A,2024-02-26T10:00:00Z,News,extra\n",
    )
    result = project.run("import", str(path))
    assert f"error: {path}:2: line: has 5 cells; the header has 4" in result.output


def test_dates_naive_and_with_offset(project: Project, write_jsonl: Callable[..., Path]) -> None:
    path = write_jsonl(
        "dates.jsonl",
        rec(id="naive", published="2024-02-26T10:00:00"),
        rec(id="seoul", published="2024-02-26T10:00:00+09:00"),
        rec(id="zulu", published="2024-02-26T10:00:00Z"),
    )
    assert project.run("import", str(path)).exit_code == 0
    with Store.open(project.dir / "store.db") as store:
        got = {i: store_records.get(store, i).published for i in ("naive", "seoul", "zulu")}  # type: ignore[union-attr]
    # No offset: read in site.timezone (America/Los_Angeles, UTC-8 in February).
    assert got["naive"] == datetime(2024, 2, 26, 18, 0, tzinfo=UTC)
    assert got["seoul"] == datetime(2024, 2, 26, 1, 0, tzinfo=UTC)
    assert got["zulu"] == datetime(2024, 2, 26, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("title", "stored_title", "warning"),
    [
        ("<b>BTS</b> is back", "BTS is back", "title: HTML tags removed"),
        ("Tom &amp; Jerry &#8220;live&#8221;", "Tom & Jerry “live”", None),
        ("Two\nlines", "Two lines", "title: line breaks replaced by spaces"),
        ("Tab\x0bbed", "Tabbed", "title: removed 1 control character(s)"),
        ("Nul\x00led", "Nulled", "title: removed 1 control character(s)"),
        ("아이콘 🎤 iKON", "아이콘 🎤 iKON", None),
    ],
)
def test_titles_become_plain_text(
    project: Project,
    write_jsonl: Callable[..., Path],
    title: str,
    stored_title: str,
    warning: str | None,
) -> None:
    path = write_jsonl("titles.jsonl", rec(title=title))
    result = project.run("import", str(path))
    assert result.exit_code == 0
    if warning:
        assert f"warning: {path}:1: {warning}" in result.output
    else:
        assert "warning" not in result.output
    with Store.open(project.dir / "store.db") as store:
        assert store_records.get(store, GOOD["url"]).title == stored_title  # type: ignore[union-attr]


def test_huge_content_is_stored_without_the_body(
    project: Project, stored: list[object], write_jsonl: Callable[..., Path]
) -> None:
    body = "<p>" + "가" * (5 * 1024 * 1024 // 3) + "</p>"
    path = write_jsonl("huge.jsonl", rec(url="https://www.kcrush.com/huge/", content_html=body))
    result = project.run("import", str(path))
    assert result.exit_code == 0
    assert f"warning: {path}:1: content_html: 5.2 MB is over the 1 MiB limit" in result.output
    with Store.open(project.dir / "store.db") as store:
        record = store_records.get(store, "https://www.kcrush.com/huge/")
        assert record is not None and record.content_html == "" and record.summary


def test_same_id_twice_last_wins_and_is_reported(
    project: Project, write_jsonl: Callable[..., Path]
) -> None:
    path = write_jsonl(
        "dup.jsonl", rec(id="x", title="First"), rec(id="y"), rec(id="x", title="Second")
    )
    result = project.run("import", str(path))
    assert result.exit_code == 0
    assert f"warning: {path}:3: id: 'x' appeared already on line 1" in result.output
    assert "imported: 2 added" in result.output
    with Store.open(project.dir / "store.db") as store:
        assert store_records.get(store, "x").title == "Second"  # type: ignore[union-attr]


def test_empty_file(project: Project, stored: list[object]) -> None:
    path = project.write("empty.jsonl", "")
    result = project.run("import", str(path))
    assert result.exit_code == 1
    assert f"error: {path}: the file is empty" in result.output


@pytest.mark.parametrize("suffix", ["jsonl", "csv", "json"])
def test_file_that_is_not_utf8(project: Project, stored: list[object], suffix: str) -> None:
    latin1 = "Caf\xe9 Seoul".encode("latin-1")
    body = {
        "jsonl": b'{"url": "https://www.kcrush.com/cafe/", "title": "' + latin1 + b'"}\n',
        "csv": b"url,title,published,categories\nhttps://www.kcrush.com/c/,"
        + latin1
        + b",2024-02-26T10:00:00Z,News\n",
        "json": b'[{"url": "https://www.kcrush.com/cafe/", "title": "' + latin1 + b'"}]',
    }[suffix]
    path = project.write(f"latin1.{suffix}", body)
    result = project.run("import", str(path))
    assert result.exit_code == 1
    assert "not UTF-8 text (byte 0xe9" in result.output
    assert "save the file as UTF-8" in result.output


def test_unknown_field_is_a_warning(project: Project, write_jsonl: Callable[..., Path]) -> None:
    path = write_jsonl("extra.jsonl", rec(mood="excited"))
    result = project.run("import", str(path))
    assert result.exit_code == 0
    assert f"warning: {path}:1: mood: unknown field, ignored" in result.output


def test_strict_is_all_or_nothing(
    project: Project, stored: list[object], write_jsonl: Callable[..., Path]
) -> None:
    path = write_jsonl("strict.jsonl", rec(url="https://www.kcrush.com/new/"), rec(title=None))
    result = project.run("import", "--strict", str(path))
    assert result.exit_code == 1
    assert "0 added" in result.output and "--strict: nothing was stored" in result.output


def test_update_changes_the_record_once(project: Project, write_jsonl: Callable[..., Path]) -> None:
    assert project.run("import", str(write_jsonl("a.jsonl", rec()))).exit_code == 0
    result = project.run("import", str(write_jsonl("b.jsonl", rec(title="New title"))))
    assert "0 added, 1 updated, 0 unchanged" in result.output
    with Store.open(project.dir / "store.db") as store:
        assert store_records.count(store) == 1
        rows = store.conn.execute("SELECT count(*) FROM record_categories").fetchone()
        assert rows == (1,)


def test_json_array_with_line_numbers_and_stdin(project: Project) -> None:
    records = [rec(url=f"https://www.kcrush.com/p{i}/") for i in range(3)]
    records[1]["published"] = "yesterday"
    text = json.dumps(records, indent=2)
    result = project.run("import", "--format", "json", "-", input=text)
    assert result.exit_code == 1
    line = text.splitlines().index("  {", 3) + 1  # where the second object starts
    assert f"error: <stdin>:{line}: published: 'yesterday'" in result.output
    assert "2 added" in result.output


def test_malformed_json_array_keeps_what_came_before(project: Project) -> None:
    good = json.dumps(rec(url="https://www.kcrush.com/ok/"))
    path = project.write("broken.json", f'[\n{good},\n{{"url": oops}}\n]')
    result = project.run("import", str(path))
    assert result.exit_code == 1
    assert f"error: {path}:3: not valid JSON" in result.output
    assert "1 added" in result.output


def test_a_large_jsonl_file_streams(project: Project) -> None:
    lines = (
        json.dumps(rec(url=f"https://www.kcrush.com/p{i}/", id=str(i))) + "\n" for i in range(5000)
    )
    path = project.write("many.jsonl", "".join(lines))
    result = project.run("import", str(path))
    assert result.exit_code == 0 and "5000 added" in result.output
