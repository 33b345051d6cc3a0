"""Turn input files into a stream of raw records, each with the line it started on.

Streams: a 100,000-record file is never held as Python objects all at once. A JSON array
is decoded object by object from a sliding buffer; JSON Lines and CSV line by line.
Whole-file problems (not UTF-8, malformed JSON array, CSV header without a required
column) raise ``InputError``; a problem with one line is yielded as a ``BadLine`` so the
rest of the file still imports.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from kcrush_feeds.errors import InputError, UsageError

Format = Literal["json", "jsonl", "csv"]
_EXTENSIONS: dict[str, Format] = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
}
REQUIRED_CSV_COLUMNS = ("url", "title", "published")
_CHUNK = 1 << 16
csv.field_size_limit(64 * 1024 * 1024)  # content_html cells can be large


@dataclass(frozen=True, slots=True)
class RawRecord:
    line: int
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BadLine:
    line: int
    field: str
    reason: str


def detect_format(name: str, head: bytes, explicit: Format | None) -> Format:
    """``--format``, else the file extension, else a look at the first character."""
    if explicit:
        return explicit
    fmt = _EXTENSIONS.get(Path(name).suffix.lower())
    if fmt:
        return fmt
    first = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if first == b"[":
        return "json"
    if first == b"{":
        return "jsonl"
    if first:
        return "csv"
    raise UsageError(f"{name}: cannot tell the format; pass --format json, jsonl or csv")


def open_source(name: str) -> BinaryIO:
    if name == "-":
        return sys.stdin.buffer
    try:
        return Path(name).open("rb")
    except OSError as e:
        raise InputError(name, f"cannot open: {e.strerror}") from e


def read_records(
    name: str, stream: BinaryIO, explicit: Format | None = None
) -> Iterator[RawRecord | BadLine]:
    """Raw records (or bad lines) from ``stream``; ``name`` is used in messages."""
    buffered: Any = stream if hasattr(stream, "peek") else io.BufferedReader(stream)
    head = buffered.peek(4096)[:4096]
    if not head.strip(b"\xef\xbb\xbf \t\r\n"):
        raise InputError(
            name, "the file is empty; expected records as a JSON array, JSON Lines or CSV"
        )
    fmt = detect_format(name, head, explicit)
    if fmt == "jsonl":
        return _read_jsonl(name, buffered)
    text = _utf8_text(name, buffered)
    return _read_json_array(name, text) if fmt == "json" else _read_csv(name, text)


def _utf8_text(name: str, stream: BinaryIO) -> Iterator[str]:
    """Decoded chunks; a byte that is not UTF-8 ends the file with a message saying where."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    offset = 0
    while True:
        chunk = stream.read(_CHUNK)
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as e:
            raise InputError(
                name,
                f"not UTF-8 text (byte 0x{chunk[e.start]:02x} at offset "
                f"{offset + e.start}); save the file as UTF-8",
            ) from e
        offset += len(chunk)
        if text:
            yield text
        if not chunk:
            return


def _read_jsonl(name: str, stream: BinaryIO) -> Iterator[RawRecord | BadLine]:
    for number, raw in enumerate(stream, start=1):
        if number == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield BadLine(
                number,
                "line",
                f"not UTF-8 text (byte 0x{raw[e.start]:02x} at "
                f"column {e.start + 1}); save the file as UTF-8",
            )
            continue
        try:
            # Without its line break: else a line cut short is reported at "line 2,
            # column 1" (the break), which json names as column 1 of the *next* line.
            data = json.loads(line.rstrip("\r\n"))
        except json.JSONDecodeError as e:
            yield BadLine(number, "line", f"not valid JSON: {e.msg} at column {e.pos + 1}")
            continue
        if not isinstance(data, dict):
            yield BadLine(number, "line", "expected a JSON object {...} on each line")
            continue
        yield RawRecord(number, data)


def _read_json_array(name: str, chunks: Iterator[str]) -> Iterator[RawRecord | BadLine]:
    decoder = json.JSONDecoder()
    buffer = ""
    pos = 0
    line = 1  # line number at ``pos``
    more = True

    def fill() -> bool:
        nonlocal buffer, pos
        chunk = next(chunks, None)
        if chunk is None:
            return False
        buffer = buffer[pos:] + chunk
        pos = 0
        return True

    def skip_space() -> None:
        nonlocal pos, line, more
        while True:
            while pos < len(buffer) and buffer[pos] in " \t\r\n":
                if buffer[pos] == "\n":
                    line += 1
                pos += 1
            if pos < len(buffer) or not more:
                return
            more = fill()

    more = fill()
    skip_space()
    if buffer[pos : pos + 1] != "[":
        raise InputError(name, "expected a JSON array of records starting with '['", line=line)
    pos += 1
    first = True
    while True:
        skip_space()
        if buffer[pos : pos + 1] == "]":
            pos += 1
            skip_space()
            if pos < len(buffer):
                raise InputError(name, "unexpected text after the closing ']'", line=line)
            return
        if not first:
            if buffer[pos : pos + 1] != ",":
                raise InputError(
                    name, "not valid JSON: expected ',' or ']' between records", line=line
                )
            pos += 1
            skip_space()
        first = False
        while True:
            try:
                data, end = decoder.raw_decode(buffer, pos)
                break
            except json.JSONDecodeError as e:
                if more:  # the object may run past the buffer: read on and try again
                    more = fill()
                    continue
                where = line + buffer.count("\n", pos, e.pos)
                raise InputError(
                    name,
                    f"not valid JSON: {e.msg}; records before this line "
                    "were read, the rest of the file was not",
                    line=where,
                ) from e
        start_line = line
        line += buffer.count("\n", pos, end)
        pos = end
        if isinstance(data, dict):
            yield RawRecord(start_line, data)
        else:
            yield BadLine(start_line, "record", "expected a JSON object {...}")


def _read_csv(name: str, chunks: Iterator[str]) -> Iterator[RawRecord | BadLine]:
    lines = _lines(chunks)
    reader = csv.DictReader(lines, restval=None)
    header = reader.fieldnames or []
    columns = [c.strip() for c in header]
    missing = [c for c in REQUIRED_CSV_COLUMNS if c not in columns]
    if "categories" not in columns and "category" not in columns:
        missing.append("categories")
    if missing:
        raise InputError(
            name,
            f"the CSV header has no {', '.join(repr(c) for c in missing)} "
            f"column(s); it has {', '.join(repr(c) for c in columns) or 'nothing'}",
            line=1,
        )
    reader.fieldnames = columns
    previous_end = 1
    for row in reader:
        start = previous_end + 1
        previous_end = reader.line_num
        if None in row:
            yield BadLine(
                start,
                "line",
                f"has {len(columns) + len(row[None])} cells; the header has {len(columns)}",
            )
            continue
        data = {k: v for k, v in row.items() if v not in (None, "")}
        if data:
            yield RawRecord(start, data)


def _lines(chunks: Iterator[str]) -> Iterator[str]:
    """Lines ending in "\n" only: str.splitlines would also split on \x0b, \x1c, U+2028."""
    rest = ""
    for chunk in chunks:
        parts = (rest + chunk).split("\n")
        rest = parts.pop()
        for part in parts:
            yield part + "\n"
    if rest:
        yield rest
