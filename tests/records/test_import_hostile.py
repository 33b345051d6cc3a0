"""Hostile and odd input to ``import``: one bad value costs one record, never the import.

Each case here once ended an import with ``internal error`` (and lost the batch, the rest
of the file and the next files), ran in quadratic time, or read a broken file to its end.
"""

from __future__ import annotations

import io
import json
import sqlite3
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from kcrush_feeds.errors import InputError, StoreError
from kcrush_feeds.records.importer import import_files
from kcrush_feeds.records.normalize import normalize
from kcrush_feeds.records.readers import read_records
from kcrush_feeds.sanitize import sanitize_html
from kcrush_feeds.store import records as store_records
from kcrush_feeds.store.db import Store
from kcrush_feeds.text import has_tags, plain_text
from tests.support.project import Project

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


def good_lines(count: int, prefix: str = "g") -> list[str]:
    return [
        json.dumps(rec(url=f"https://www.kcrush.com/{prefix}{i}/", id=f"{prefix}{i}"))
        for i in range(count)
    ]


IMG = '"image": {"url": "https://www.kcrush.com/i.jpg", "length": '
BASE = (
    '{"url": "https://www.kcrush.com/odd/", "title": "Odd", '
    '"published": "2024-02-26T10:00:00Z", "categories": ["News"], '
)
ODD = [
    (BASE + '"id": "\\ud800"}', "id: contains a lone surrogate"),
    (BASE.replace("/odd/", "/\\ud800/") + '"tags": []}', "url: contains a lone surrogate"),
    (BASE + '"image": "https://www.kcrush.com/\\udfff.jpg"}', "image: contains a lone surrogate"),
    (BASE + IMG + "9223372036854775808}}", "image.length: 9,223,372,036,854,775,808 bytes"),
    (BASE + IMG + "1e400}}", "image.length: 1e400 is out of range"),
    (BASE + IMG + "Infinity}}", "image.length: Infinity is not a number"),
    (BASE + IMG + "-Infinity}}", "image.length: -Infinity is not a number"),
    (BASE + IMG + "NaN}}", "image.length: NaN is not a number"),
    (BASE + '"extra": ' + "7" * 4301 + "}", "extra: a number of 4,301 digits is too large"),
    (BASE + '"extra": ' + "[" * 1000 + "]" * 1000 + "}", "record: nested more than"),
]


@pytest.mark.parametrize("suffix", ["jsonl", "json"])
@pytest.mark.parametrize(("odd", "message"), ODD, ids=[m.split(":")[0] for _, m in ODD])
def test_one_odd_value_rejects_one_record_and_nothing_else(
    project: Project, suffix: str, odd: str, message: str
) -> None:
    before = good_lines(1500, "a")
    after = good_lines(10, "b")
    if suffix == "jsonl":
        body = "\n".join([*before, odd, *after]) + "\n"
        line = 1501
    else:
        body = "[\n" + ",\n".join([*before, odd, *after]) + "\n]\n"
        line = 1502
    path = project.write(f"odd.{suffix}", body)
    nxt = project.write("next.jsonl", "\n".join(good_lines(3, "c")) + "\n")
    result = project.run("import", str(path), str(nxt))
    assert result.exit_code == 1, result.output
    assert "internal error" not in result.output
    assert f"error: {path}:{line}: {message}" in result.output
    assert "imported: 1513 added, 0 updated, 0 unchanged, 1 rejected" in result.output


def test_csv_with_cr_only_line_ends_imports(project: Project) -> None:
    rows = [f"https://www.kcrush.com/c{i}/,Title {i},2024-02-26T10:00:00Z,News" for i in range(3)]
    path = project.write("mac.csv", "\r".join(["url,title,published,categories", *rows]) + "\r")
    result = project.run("import", str(path))
    assert result.exit_code == 0, result.output
    assert "imported: 3 added" in result.output


def test_csv_huge_image_length_is_one_bad_record(project: Project) -> None:
    path = project.write(
        "len.csv",
        "url,title,published,categories,image,image_length\n"
        "https://www.kcrush.com/a/,A,2024-02-26T10:00:00Z,News,https://x.test/a.jpg,"
        + "9" * 30
        + "\nhttps://www.kcrush.com/b/,B,2024-02-26T10:00:00Z,News,,\n",
    )
    result = project.run("import", str(path))
    assert f"error: {path}:2: image.length:" in result.output
    assert "imported: 1 added, 0 updated, 0 unchanged, 1 rejected" in result.output


def test_the_other_sources_are_imported_after_an_odd_file(project: Project) -> None:
    odd = project.write("odd.jsonl", ODD[1][0] + "\n")
    nxt = project.write("next.json", "[" + ",".join(good_lines(2)) + "]")
    result = project.run("import", str(odd), str(nxt))
    assert "imported: 2 added, 0 updated, 0 unchanged, 1 rejected" in result.output
    with Store.open(project.dir / "store.db") as store:
        assert store_records.count(store) == 2


# --- point 6: bad UTF-8 keeps what came before it ------------------------------------------


@pytest.mark.parametrize("suffix", ["csv", "json"])
def test_bad_utf8_early_in_the_file_keeps_the_records_before_it(
    project: Project, suffix: str
) -> None:
    if suffix == "csv":
        rows = [
            f"https://www.kcrush.com/u{i}/,Title {i},2024-02-26T10:00:00Z,News" for i in range(5)
        ]
        good = ("url,title,published,categories\n" + "\n".join(rows) + "\n").encode()
        bad = b"https://www.kcrush.com/bad/,Caf\xe9,2024-02-26T10:00:00Z,News\n"
        line = 7
    else:
        good = ("[\n" + ",\n".join(good_lines(5, "u")) + ",\n").encode()
        bad = b'{"url": "https://www.kcrush.com/bad/", "title": "Caf\xe9"}\n]'
        line = 7
    path = project.write(f"latin.{suffix}", good + bad + b"x" * 10)
    result = project.run("import", str(path))
    assert result.exit_code == 1
    assert f"error: {path}:{line}: not UTF-8 text (byte 0xe9" in result.output
    assert "imported: 5 added" in result.output


# --- point 5: a broken JSON array stops at the error, linear time, flat memory -------------


def _array(count: int) -> bytes:
    return ("[\n" + ",\n".join(good_lines(count)) + "\n]\n").encode()


def _read_all(data: bytes) -> tuple[int, str]:
    read = 0
    try:
        for _ in read_records("big.json", io.BytesIO(data)):
            read += 1
    except InputError as e:  # what ended the read
        return read, str(e)
    return read, ""


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda text: text.replace("},\n{", "}\n{", 1), "expected ',' or ']' between records"),
        (lambda text: text.replace('"title": ', '"title" ', 1), "Expecting ':' delimiter"),
        (lambda text: text.replace('["K-Pop Interviews"]', '["K-Pop"}', 1), "'}' closes a '['"),
        (lambda text: text.replace('"title": "', '"title": ', 1), "not valid JSON"),
    ],
)
def test_an_early_syntax_error_stops_the_read_at_once(
    damage: Callable[[str], str], reason: str
) -> None:
    """The time and the memory do not grow with what follows the error."""
    small = damage(_array(2_000).decode()).encode()
    large = damage(_array(20_000).decode()).encode()
    timings = []
    peaks = []
    for data in (small, large):
        tracemalloc.start()
        started = time.perf_counter()
        read, error = _read_all(data)
        timings.append(time.perf_counter() - started)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert read <= 1 and reason in error
        assert "big.json:" in error
    # Ten times the file after the error: no more time and no more memory than the error
    # needs (the old reader re-parsed to the end: ten times both, or far more).
    assert timings[1] < 3 * timings[0] + 0.05, timings
    assert peaks[1] < 2 * peaks[0] + 1_000_000, peaks


def test_a_json_array_is_read_in_linear_time_and_flat_memory() -> None:
    small, large = _array(2_000), _array(20_000)
    timings = []
    peaks = []
    for data in (small, large):
        tracemalloc.start()
        started = time.perf_counter()
        read, error = _read_all(data)
        timings.append(time.perf_counter() - started)
        peaks.append(tracemalloc.get_traced_memory()[1] - len(data))
        tracemalloc.stop()
        assert not error and read == len(data.splitlines()) - 2
    assert timings[1] < 30 * timings[0], timings  # linear: about 10x; quadratic: 100x
    assert peaks[1] < 2 * peaks[0] + 1_000_000, peaks  # one record at a time, not the file


def test_a_record_that_never_ends_is_refused_without_reading_the_rest() -> None:
    text = _array(10).decode().replace('"title": "', '"title": ', 1)
    read, error = _read_all(text.encode())
    assert read == 0 and "big.json:2: not valid JSON" in error


# --- point 2: linear time in every text path ----------------------------------------------


def _costs(work: Callable[[str], object], make: Callable[[int], str], size: int) -> list[float]:
    """The best CPU time of five runs of ``work`` on ``size`` and on ``10 * size`` characters.

    CPU time of this process, runs interleaved, the best of each kept: what other processes
    on the machine do changes little. A run already 100 times the small one ends the
    measuring (a quadratic path would take minutes more to say the same).
    """
    texts = [make(size), make(10 * size)]
    best = [float("inf"), float("inf")]
    for _ in range(5):
        for i, text in enumerate(texts):
            started = time.process_time()
            work(text)
            best[i] = min(best[i], time.process_time() - started)
        if best[1] > 100 * best[0] + 0.05:
            break
    return best


def _normalize_category(text: str) -> object:
    try:
        return normalize(rec(categories=[text]), tz=UTC)
    except ValueError as e:
        return e


HOSTILE = {
    "open-comments": lambda n: "<!--" * (n // 4),
    "open-tags": lambda n: "<a" * (n // 2),
    "closed-comments": lambda n: "<!-- -->" * (n // 8),
    "comment-then-open-comments": lambda n: "<!-- x -->" + "<!--" * (n // 4),
    "entities": lambda n: "&amp;<b>" * (n // 8),
}
PATHS: dict[str, Callable[[str], object]] = {
    "plain_text": plain_text,
    "has_tags": has_tags,
    "sanitize_html": lambda text: sanitize_html(text, "https://www.kcrush.com/p/"),
    "import-category": _normalize_category,
}


@pytest.mark.parametrize("shape", sorted(HOSTILE))
@pytest.mark.parametrize("path", sorted(PATHS))
def test_text_paths_are_linear(path: str, shape: str) -> None:
    """Ten times the input costs about ten times the work, never a hundred."""
    small, large = _costs(PATHS[path], HOSTILE[shape], 20_000)
    assert large < 40 * small + 0.005, (small, large)


def test_an_over_long_title_is_rejected_at_once(project: Project) -> None:
    path = project.write(
        "long.jsonl",
        json.dumps(rec(title="<!--" * 50_000)) + "\n" + good_lines(1)[0] + "\n",
    )
    result = project.run("import", str(path))
    assert f"error: {path}:1: title: is 200,000 characters; the limit is 1,000" in result.output
    assert "imported: 1 added" in result.output


# --- a full disk: say what happened --------------------------------------------------------


def test_a_full_store_says_what_happened_and_keeps_what_it_had(project: Project) -> None:
    """SQLite rolls a transaction back by itself on a full disk; the old ROLLBACK on top
    failed with "no transaction is active" and hid the reason."""
    path = project.write("many.jsonl", "\n".join(good_lines(300)) + "\n")
    with Store.open(project.dir / "store.db") as store:
        pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
        store.conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full now
        with pytest.raises(StoreError) as info:
            import_files(store, [str(path)], tz=UTC, now=datetime.now(UTC))
        assert store_records.count(store) == 0
    message = str(info.value)
    assert "database or disk is full" in message
    assert "nothing of this transaction was stored" in message
    assert "rollback" not in message
    assert info.value.exit_code == 1


# --- low points: the same id in two files; memory of rejected lines -----------------------


def test_the_same_id_in_two_files_of_one_import_is_a_warning(project: Project) -> None:
    first = project.write("one.jsonl", json.dumps(rec(id="x", title="First")) + "\n")
    second = project.write(
        "two.jsonl", good_lines(1)[0] + "\n" + json.dumps(rec(id="x", title="Second")) + "\n"
    )
    result = project.run("import", str(first), str(second))
    assert result.exit_code == 0, result.output
    assert (
        f"warning: {second}:2: id: 'x' appeared already on {first}:1; this later record replaces it"
    ) in result.output
    with Store.open(project.dir / "store.db") as store:
        assert store_records.get(store, "x").title == "Second"  # type: ignore[union-attr]


def test_rejected_lines_cost_the_messages_shown_not_the_file(project: Project) -> None:
    """A million bad lines used to be a million messages in memory (249 MB)."""
    count = 30_000
    path = project.write("bad.jsonl", '{"title": "no url"}\n' * count)
    with Store.open(project.dir / "store.db") as store:
        tracemalloc.start()
        report = import_files(store, [str(path)], tz=UTC, now=datetime.now(UTC))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert len(report.rejected) == count  # every one is counted
    kept = list(report.rejected)
    assert (
        0 < len(kept) <= 1_000
        and str(kept[0]) == f"{path}:1: url: missing: give the absolute https:// URL"
    )
    assert peak < 5_000_000, peak  # 30,000 messages alone would be ~10 MB
    result = project.run("import", str(path))
    assert f"error: ... and {count - 200} more" in result.output
    assert f"{count} rejected" in result.output


# --- import --strict holds the write lock only for the final move -------------------------


def test_strict_import_leaves_the_store_writable_while_it_reads(project: Project) -> None:
    """A concurrent send or subscribe used to wait 30 s and fail: the whole strict run
    was one write transaction."""
    path = project.write("big.jsonl", "\n".join(good_lines(5_000)) + "\n")
    db = project.dir / "store.db"
    writes: list[str] = []

    def another_writer(_: int) -> None:
        # What a send's ledger or a subscribe POST does meanwhile: a write, no waiting.
        conn = sqlite3.connect(db, timeout=0, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE subscribers SET name = name WHERE 0")
            conn.execute("COMMIT")
            writes.append("ok")
        except sqlite3.OperationalError as e:
            writes.append(str(e))
        finally:
            conn.close()

    with Store.open(db) as store:
        report = import_files(
            store, [str(path)], tz=UTC, now=datetime.now(UTC), strict=True, progress=another_writer
        )
        assert report.ok and report.added == 5_000 and store_records.count(store) == 5_000
    assert writes and set(writes) == {"ok"}, writes


def test_strict_import_with_one_bad_record_stores_nothing(project: Project) -> None:
    lines = good_lines(3_000)
    lines[2_500] = '{"title": "no url"}'
    path = project.write("strict.jsonl", "\n".join(lines) + "\n")
    with Store.open(project.dir / "store.db") as store:
        report = import_files(store, [str(path)], tz=UTC, now=datetime.now(UTC), strict=True)
        assert report.rolled_back and report.added == 0 and store_records.count(store) == 0
