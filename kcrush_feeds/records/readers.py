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
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from kcrush_feeds.errors import InputError, UsageError
from kcrush_feeds.records.jsonsafe import BadValue, decode_record, split_array

Format = Literal["json", "jsonl", "csv"]
_EXTENSIONS: dict[str, Format] = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
}
REQUIRED_CSV_COLUMNS = ("url", "title", "published")
_CHUNK = 1 << 16
_LINE_END = re.compile(r"\r\n|\r|\n")
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
    """Decoded chunks; a byte that is not UTF-8 ends the file with a message saying where.

    The text before the bad byte is yielded first, so the records it holds are kept.
    """
    pending = b""  # the start of a character cut by the chunk boundary
    offset = 0  # bytes of the file before ``pending``
    line = 1
    first = True
    while True:
        chunk = stream.read(_CHUNK)
        data = pending + chunk
        try:
            text, used = codecs.utf_8_decode(data, "strict", not chunk)
        except UnicodeDecodeError as e:
            good = data[: e.start].decode("utf-8")
            if good:
                yield good.removeprefix("\ufeff") if first else good
            raise InputError(
                name,
                f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset "
                f"{offset + e.start}); records before this line were read, the rest "
                "of the file was not; save the file as UTF-8",
                line=line + good.count("\n"),
            ) from e
        if first and text:
            text = text.removeprefix("\ufeff")
            first = False
        pending = data[used:]
        offset += used
        if text:
            line += text.count("\n")
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
            data = decode_record(line)
        except json.JSONDecodeError as e:
            yield BadLine(number, "line", f"not valid JSON: {e.msg} at column {e.colno}")
            continue
        if isinstance(data, BadValue):
            yield BadLine(number, data.field, data.reason)
            continue
        yield RawRecord(number, data)


def _read_json_array(name: str, chunks: Iterator[str]) -> Iterator[RawRecord | BadLine]:
    for line, text in split_array(name, chunks):
        try:
            data = decode_record(text)
        except json.JSONDecodeError as e:
            raise InputError(
                name,
                f"not valid JSON: {e.msg}; records before this line were read, "
                "the rest of the file was not",
                line=line + text.count("\n", 0, e.pos),
            ) from e
        if isinstance(data, BadValue):
            yield BadLine(line, data.field, data.reason)
        else:
            yield RawRecord(line, data)


def _read_csv(name: str, chunks: Iterator[str]) -> Iterator[RawRecord | BadLine]:
    lines = _lines(chunks)
    reader = csv.DictReader(lines, restval=None)
    try:
        header = reader.fieldnames or []
    except csv.Error as e:
        raise InputError(name, f"the CSV header is not valid CSV: {e}", line=1) from e
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
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:  # one malformed row: report it, read on from the next line
            yield BadLine(previous_end + 1, "line", f"not valid CSV: {e}")
            previous_end = reader.line_num
            continue
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
    """Lines ending in "\n", "\r\n" or a lone "\r" (old Mac files), in linear time.

    Not str.splitlines: that would also split on \x0b, \x1c, U+2028 inside a cell.
    """
    pending: list[str] = []  # pieces of a line longer than a chunk
    for chunk in chunks:
        start = 0
        for m in _LINE_END.finditer(chunk):
            if m.end() == len(chunk) and m[0] == "\r":
                break  # a "\n" may open the next chunk
            pending.append(chunk[start : m.end()])
            yield "".join(pending)
            pending.clear()
            start = m.end()
        if start < len(chunk):
            pending.append(chunk[start:])
    if pending:
        yield "".join(pending)
