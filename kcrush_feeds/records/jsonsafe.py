"""One safe JSON decoding step for every reader of records, and a linear array splitter.

``json.loads`` accepts things a record must never carry on: ``1e400`` and ``Infinity``
(floats that overflow every integer conversion), integers of more than 4,300 digits (a
``ValueError`` from Python's int-to-string limit), nesting deep enough for a
``RecursionError``, and ``"\\ud800"`` (a lone surrogate no UTF-8 encoder can write). Each
of these is one bad record, never the end of an import: ``decode_record`` returns the
object or a ``BadValue`` naming the field.

``split_array`` cuts a JSON array into the text of its elements with a scanner that keeps
its state between chunks, so a file is read once, in linear time, holding one element at
a time; an early syntax error stops it at once.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kcrush_feeds.errors import InputError

MAX_DEPTH = 32  # a record is an object of lists and small objects: 3 levels are used
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_MAX_INT_DIGITS = sys.get_int_max_str_digits() or 4300


@dataclass(frozen=True, slots=True)
class BadValue:
    """Why one decoded value cannot become a record: ``field: reason``."""

    field: str
    reason: str


class _Unusable(Exception):
    """A number the parser met that no record field can hold (raised, or kept in place)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise _Unusable(f"a number of {len(text.lstrip('-')):,} digits is too large")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Unusable(f"{_short(text)} is out of range for a number")
    return value


def _parse_constant(text: str) -> float:
    raise _Unusable(f"{text} is not a number a record can hold")


def _keep(parse: Callable[[str], object]) -> Callable[[str], object]:
    def parse_or_keep(text: str) -> object:
        try:
            return parse(text)
        except _Unusable as e:
            return e

    return parse_or_keep


# The fast decoder raises at the first unusable number; only then is the record decoded
# again with the numbers kept in place, to find the field that holds it.
_DECODER = json.JSONDecoder(
    parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant
)
_LOCATING_DECODER = json.JSONDecoder(
    parse_int=_keep(_parse_int),
    parse_float=_keep(_parse_float),
    parse_constant=_keep(_parse_constant),
)


def decode_record(text: str) -> dict[str, Any] | BadValue:
    """One JSON object; ``json.JSONDecodeError`` for bad syntax, ``BadValue`` for bad values."""
    try:
        data = _DECODER.decode(text)
    except RecursionError:
        return BadValue("record", f"nested more than {MAX_DEPTH} levels deep")
    except _Unusable as e:
        located = _check(_LOCATING_DECODER.decode(text))
        return located if located is not None else BadValue("record", e.reason)
    if not isinstance(data, dict):
        return BadValue("record", "expected a JSON object {...}")
    # A surrogate can only come from an escape (the text itself is valid UTF-8), and the
    # walk costs more than decoding: skip it when there is none.
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        return _check(data) or data
    return data


def _check(data: object) -> BadValue | None:
    """The first unusable value (by field path), walking without recursion."""
    stack: list[tuple[str, object, int]] = [("", data, 1)]
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return BadValue(path or "record", "contains a lone surrogate (\\ud800-\\udfff)")
        elif isinstance(value, _Unusable):
            return BadValue(path or "record", value.reason)
        elif isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                return BadValue(path or "record", f"nested more than {MAX_DEPTH} levels deep")
            if isinstance(value, dict):
                for key, item in value.items():
                    if _SURROGATE.search(key):
                        return BadValue(path or "record", "a field name contains a lone surrogate")
                    stack.append((f"{path}.{key}" if path else key, item, depth + 1))
            else:
                stack.extend((path or "record", item, depth + 1) for item in value)
    return None


# Outside a string only these matter; inside one, only the closing quote and escapes.
_OUTSIDE = re.compile(r'["{}\[\],]')
# JSON strings hold no raw control character: a line break inside one means a quote is
# missing, which is found here rather than at the end of the file.
_INSIDE = re.compile(r'["\\\x00-\x1f]')
# Everything up to the next bracket, whole strings included, in one C-speed match (the
# possessive quantifiers never backtrack, so this is linear too).
_SKIP = re.compile(r'(?:[^"{}\[\]]++|"[^"\\\x00-\x1f]*+(?:\\.[^"\\\x00-\x1f]*+)*+")*+')
_SPACE = " \t\r\n"
_CLOSER = {"{": ord("}"), "[": ord("]")}
_OPENER = {ord("}"): ord("{"), ord("]"): ord("[")}
# Bodies over 1 MiB are stored without their text, so a real record is far smaller; past
# this a missing quote or bracket has made the rest of the file look like one record.
MAX_RECORD_CHARS = 64 * 2**20


def split_array(name: str, chunks: Iterator[str]) -> Iterator[tuple[int, str]]:
    """``(line, text)`` of each element of the JSON array in ``chunks``.

    Syntax outside the elements (a missing ``[``, ``,`` or ``]``, an unbalanced bracket,
    the end of the file inside an element) raises ``InputError`` at once; what is inside
    an element is left to ``decode_record``.
    """
    line = 1
    parts: list[str] = []  # text of the element being read
    element_line = 0
    closers = bytearray()  # the closing bracket of every open "{" and "["
    size = 0  # characters of the element so far
    in_string = False
    escaped = False  # the previous chunk ended on a backslash inside a string
    state = "start"  # start -> value|end -> after -> value|end ... -> done

    def fail(reason: str) -> InputError:
        return InputError(
            name,
            f"not valid JSON: {reason}; records before this line were read, "
            "the rest of the file was not",
            line=line,
        )

    for chunk in chunks:
        i = 0
        n = len(chunk)
        while i < n:
            if state == "element":
                start = i
                ended = False
                while i < n and not ended:
                    if escaped:
                        escaped = False
                        i += 1
                    elif in_string:
                        m = _INSIDE.search(chunk, i)
                        if m is None:
                            i = n
                        elif m[0] < " ":
                            line = element_line + "".join(parts).count("\n")
                            line += chunk.count("\n", start, m.start())
                            raise fail(
                                "a line break or control character inside a string "
                                "(a quote is probably missing)"
                            )
                        elif m[0] == "\\":
                            i = m.end() + 1
                            escaped = i > n  # the escaped character is in the next chunk
                            i = min(i, n)
                        else:
                            in_string = False
                            i = m.end()
                    elif closers:  # inside brackets only brackets and strings matter
                        i = _SKIP.match(chunk, i).end()  # type: ignore[union-attr]
                        if i == n:
                            break
                        c = chunk[i]
                        i += 1
                        if c == '"':  # a string that runs past this chunk
                            in_string = True
                        elif c in "{[":
                            closers.append(_CLOSER[c])
                        elif closers[-1] != ord(c):
                            line = element_line + "".join(parts).count("\n")
                            line += chunk.count("\n", start, i)
                            raise fail(f"{c!r} closes a {chr(_OPENER[closers[-1]])!r}")
                        else:
                            closers.pop()
                            ended = not closers
                    else:
                        m = _OUTSIDE.search(chunk, i)
                        if m is None:
                            i = n
                        elif m[0] == '"':
                            in_string = True
                            i = m.end()
                        elif m[0] in "{[":
                            closers.append(_CLOSER[m[0]])
                            i = m.end()
                        elif m[0] in "}]" and closers:
                            if closers[-1] != ord(m[0]):
                                line = element_line + "".join(parts).count("\n")
                                line += chunk.count("\n", start, m.start())
                                raise fail(f"{m[0]!r} closes a {chr(_OPENER[closers[-1]])!r}")
                            closers.pop()
                            i = m.end()
                            ended = not closers
                        elif closers:  # a "," inside the element
                            i = m.end()
                        else:  # "," or "]" at depth 0 ends a bare value such as 1 or "x"
                            i = m.start()
                            ended = True
                parts.append(chunk[start:i])
                size += i - start
                if size > MAX_RECORD_CHARS:
                    line = element_line
                    raise fail(
                        f"a record runs past {MAX_RECORD_CHARS // 2**20} MiB (a quote or a "
                        "bracket is probably missing)"
                    )
                if ended:
                    text = "".join(parts)
                    parts.clear()
                    size = 0
                    yield element_line, text
                    line = element_line + text.count("\n")
                    state = "after"
                continue
            c = chunk[i]
            if c in _SPACE:
                if c == "\n":
                    line += 1
                i += 1
                continue
            if state == "start":
                if c != "[":
                    raise InputError(
                        name, "expected a JSON array of records starting with '['", line=line
                    )
                state = "first"
                i += 1
            elif state in ("first", "value"):
                if c == "]" and state == "first":
                    state = "done"
                    i += 1
                elif c in ",]":
                    raise fail("expected a record before ',' or ']'")
                else:
                    state = "element"
                    element_line = line
            elif state == "after":
                if c == ",":
                    state = "value"
                elif c == "]":
                    state = "done"
                else:
                    raise fail("expected ',' or ']' between records")
                i += 1
            else:  # done
                raise InputError(name, "unexpected text after the closing ']'", line=line)
    if state == "element":
        line = element_line
        raise fail("the file ends inside a record")
    if state != "done":
        raise fail("the file ends before the closing ']'")


def _short(value: str, limit: int = 40) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"
