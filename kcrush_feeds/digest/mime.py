"""The one mail writer: RFC 5322 headers and MIME bodies as 7-bit bytes, CRLF line ends.

Used by the digest composer (``digest.compose``, a multipart message per subscriber, built
from pieces prepared once) and by the confirmation mails of ``serve`` (``web.mail``, one
plain-text message through ``text_message``).

Headers are ASCII (RFC 2047 encoded words for a non-ASCII subject or display name); a line
break in a name or title can never start a new header: all white space is folded to spaces
before a header is written. Bodies are quoted-printable, every line at most 76 characters.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from email import policy

from kcrush_feeds.text import strip_controls

QP_LINE = 76
_SPACE_RE = re.compile(r"\s+")
# A display name that needs no quoting: atoms (RFC 5322 atext) separated by spaces.
_ATOMS_RE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
# RFC 5322 specials: in a display name, any of them could end the name or start an address.
_SPECIALS_RE = re.compile(r'[()<>\[\]:;@\\,."]')
_WORD_BYTES = 45  # UTF-8 bytes in one encoded word: 60 base64 characters, a short line


# --- headers -----------------------------------------------------------------------------


def header_text(value: str) -> str:
    """A header value on one line: control characters dropped, all white space one space."""
    cleaned, _ = strip_controls(value)
    return _SPACE_RE.sub(" ", cleaned).strip()


def fold_header(name: str, value: str) -> bytes:
    """``Name: value`` CRLF, folded and RFC 2047-encoded as needed (7-bit)."""
    # Through the header factory: policy.fold() alone leaves a short value unencoded.
    folded: str = policy.SMTP.header_factory(name, header_text(value)).fold(policy=policy.SMTP)
    return folded.encode("ascii")


def address_header(header: str, name: str, address: str) -> bytes:
    """``To:``-style header for exactly one mailbox, whatever the display name holds.

    The name goes as atoms, as a quoted string, or as RFC 2047 encoded words (base64, one
    word per 45 bytes, folded); the address as given (ASCII). Written by hand because it
    runs once per subscriber: the email package's header objects cost a millisecond each.

    A name is what a stranger typed into the form, so it may look like an address
    (``Kim <evil@attacker.example>``) or a list (``Martin, Chloé``). Many readers decode
    encoded words *before* they parse the addresses, so an encoded name with such
    characters would become a second mailbox for them. The text that is encoded is
    therefore itself a quoted string: decoded first or parsed first, it is one name. A
    plain-ASCII name that contains ``=?`` is encoded too, so that no reader decodes it
    into something else.
    """
    name = header_text(name)
    if not name:
        return f"{header}: {address}\r\n".encode("ascii")
    if name.isascii() and "=?" not in name:
        phrase = name if _ATOMS_RE.fullmatch(name) else _quoted(name)
        return f"{header}: {phrase} <{address}>\r\n".encode("ascii")
    text = _quoted(name) if _SPECIALS_RE.search(name) else name
    words = b"\r\n ".join(
        b"=?utf-8?b?" + base64.b64encode(chunk) + b"?=" for chunk in _utf8_chunks(text)
    )
    return header.encode("ascii") + b": " + words + b" <" + address.encode("ascii") + b">\r\n"


def _quoted(text: str) -> str:
    """``text`` as an RFC 5322 quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _utf8_chunks(text: str) -> Iterable[bytes]:
    """``text`` in UTF-8, in pieces of at most ``_WORD_BYTES`` that end on a character
    (RFC 2047 section 5: each encoded word must decode on its own)."""
    chunk = b""
    for char in text:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > _WORD_BYTES:
            yield chunk
            chunk = b""
        chunk += encoded
    if chunk:
        yield chunk


def raw_header(name: str, value: str) -> bytes:
    """``Name: value`` CRLF for a value that is ASCII and one line by construction
    (a Message-ID, a URL list): written as is, never re-encoded."""
    return f"{name}: {value}\r\n".encode("ascii")


# --- bodies ------------------------------------------------------------------------------


def qp(text: str) -> bytes:
    """``text`` as quoted-printable with CRLF line ends; every line at most 76 characters
    even with a soft line break (``=``) appended, so slot values can be joined on."""
    data = binascii.b2a_qp(text.encode("utf-8"), quotetabs=False, istext=True, header=False)
    lines = data.split(b"\n")
    if any(len(line) > QP_LINE - 1 for line in lines):
        lines = [piece for line in lines for piece in _rewrap(line)]
    return b"\r\n".join(lines)


def _rewrap(line: bytes) -> list[bytes]:
    """One encoded line as pieces of at most 75 characters plus a soft break, never cut
    inside an ``=XX`` escape. (binascii's encoder can exceed 76 when it escapes white space
    at the end of a line, and a line of 76 would leave no room for a joining ``=``.)"""
    limit = QP_LINE - 1
    if len(line) <= limit:
        return [line]
    # A trailing "=" is always a soft break: an escape is "=" and two hex digits.
    soft = line.endswith(b"=")
    body = line[:-1] if soft else line
    pieces = []
    while len(body) > limit:
        cut = limit - 1  # leave room for the "=" of the soft break
        while body[cut - 1 : cut] == b"=" or body[cut - 2 : cut - 1] == b"=":
            cut -= 1
        pieces.append(body[:cut] + b"=")
        body = body[cut:]
    pieces.append(body + b"=" if soft else body)
    return pieces


def part_headers(subtype: str, encoding: str = "quoted-printable") -> bytes:
    """The ``Content-Type`` (UTF-8 text) and ``Content-Transfer-Encoding`` lines of a part."""
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n"
    ).encode("ascii")


def text_message(headers: Iterable[bytes], body: str) -> bytes:
    """A whole single-part ``text/plain`` message: ``headers`` (each a written header line,
    from the functions above), the MIME headers, a blank line, ``body``.

    A body of short ASCII lines goes as it is (7bit); any other as quoted-printable.
    """
    lines = body.replace("\r\n", "\n").split("\n")
    if body.isascii() and all(len(line) <= QP_LINE for line in lines):
        encoding, data = "7bit", "\r\n".join(lines).encode("ascii")
    else:
        encoding, data = "quoted-printable", qp(body.replace("\r\n", "\n"))
    return b"".join(
        (*headers, b"MIME-Version: 1.0\r\n", part_headers("plain", encoding), b"\r\n", data)
    )
