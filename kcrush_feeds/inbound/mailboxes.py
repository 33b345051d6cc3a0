"""Where returned mail is read from: a Maildir, an mbox file, one message file, stdin, IMAP.

Each source yields ``Item``s: the bytes of one message, a label for the log, and what to
do once it was understood (``done``). Nothing is ever deleted:

- Maildir: an understood message moves from ``new/`` to ``cur/`` marked seen (``:2,S``),
  as a mail reader would; one not understood stays in ``new/``.
- IMAP: an understood message moves to ``processed_folder`` (MOVE, or COPY then
  ``\\Deleted`` + UID EXPUNGE of that one message where MOVE is missing).
- mbox, a single file and stdin are only read.
"""

from __future__ import annotations

import contextlib
import functools
import imaplib
import logging
import mailbox
import re
import ssl
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kcrush_feeds.config import ImapConfig
from kcrush_feeds.errors import InputError, UsageError
from kcrush_feeds.inbound.classify import MAX_MESSAGE

log = logging.getLogger("kcrush_feeds.inbound")


@dataclass
class Item:
    """One message to process."""

    label: str
    data: bytes
    done: Callable[[], None] | None = None  # call once understood: file it away
    problem: str | None = None  # unreadable or truncated: not understood, whatever it says


def _read_file(path: Path) -> tuple[bytes, str | None]:
    """Bytes of ``path``, or a short placeholder and why when too large to read."""
    size = path.stat().st_size
    if size > MAX_MESSAGE:
        return b"", f"too large ({size:,} bytes, over {MAX_MESSAGE:,}): not read"
    return path.read_bytes(), None


def is_maildir(path: Path) -> bool:
    return path.is_dir() and (path / "new").is_dir() and (path / "cur").is_dir()


def iter_path(path: Path) -> Iterator[Item]:
    """The messages at ``path``: a Maildir, an mbox file, or one message file."""
    if str(path) == "-":
        yield _stdin()
        return
    if path.is_dir():
        if not is_maildir(path):
            raise UsageError(f"{path}: a directory but not a Maildir (no new/ and cur/)")
        yield from _maildir(path)
        return
    if not path.exists():
        raise UsageError(f"{path}: no such file or directory")
    try:
        with path.open("rb") as f:
            head = f.read(5)
    except OSError as e:
        raise InputError(str(path), f"cannot read: {e.strerror}") from e
    if head == b"From " and path.suffix.lower() != ".eml":
        yield from _mbox(path)
    else:
        data, problem = _read_file(path)
        yield Item(str(path), data, problem=problem)


def _stdin() -> Item:
    data = sys.stdin.buffer.read(MAX_MESSAGE + 1)
    if len(data) > MAX_MESSAGE:
        return Item("stdin", b"", problem=f"too large (over {MAX_MESSAGE:,} bytes): not read")
    return Item("stdin", data)


def _maildir(path: Path) -> Iterator[Item]:
    new, cur = path / "new", path / "cur"
    for source in sorted(new.iterdir()):
        name = source.name
        if name.startswith("."):
            continue
        try:
            data, problem = _read_file(source)
        except OSError as e:  # taken by another reader meanwhile
            log.debug("%s: %s", source, e)
            continue

        def done(source: Path = source, name: str = name) -> None:
            base, sep, flags = name.partition(":2,")
            flags = "".join(sorted(set(flags) | {"S"})) if sep else "S"
            source.replace(cur / f"{base}:2,{flags}")

        yield Item(str(source), data, done=done, problem=problem)


def _mbox(path: Path) -> Iterator[Item]:
    box = mailbox.mbox(path, create=False)
    try:
        keys = box.keys()
        with path.open("rb") as f:
            f.seek(max(path.stat().st_size - 1, 0))
            ends_cleanly = f.read(1) in (b"\n", b"")
        for n, key in enumerate(keys, start=1):
            data = box.get_bytes(key, from_=False)
            label = f"{path}#{n}"
            if len(data) > MAX_MESSAGE:
                yield Item(label, b"", problem=f"too large ({len(data):,} bytes): not read")
            elif n == len(keys) and not ends_cleanly:
                yield Item(label, data, problem="truncated: the mbox ends in the middle of it")
            else:
                yield Item(label, data)
    finally:
        box.close()


# --- IMAP ------------------------------------------------------------------------------------

_UID_RE = re.compile(rb"UID (\d+)")


class ImapError(InputError):
    """The IMAP mailbox cannot be read (connection, TLS, login, folder)."""


class ImapMailbox:
    """``[bounces.imap]`` over TLS: iterate the folder, move understood messages."""

    def __init__(self, settings: ImapConfig, *, base_dir: Path | None = None) -> None:
        self.settings = settings
        self.base_dir = base_dir
        self.client: imaplib.IMAP4_SSL | None = None
        self.label = f"imap://{settings.username}@{settings.host}:{settings.port}/{settings.folder}"

    def __enter__(self) -> ImapMailbox:
        settings = self.settings
        context = ssl.create_default_context()
        if settings.ca_file is not None:
            ca = settings.ca_file
            if not ca.is_absolute() and self.base_dir is not None:
                ca = self.base_dir / ca
            context.load_verify_locations(cafile=str(ca))
        password = settings.password()
        try:
            client = imaplib.IMAP4_SSL(
                settings.host,
                settings.port,
                ssl_context=context,
                timeout=settings.timeout.total_seconds(),
            )
        except (OSError, ssl.SSLError, imaplib.IMAP4.error) as e:
            raise ImapError(self.label, f"cannot connect: {e}") from e
        self.client = client
        try:
            client.login(settings.username, password)
            # imaplib keeps the capabilities from before login; servers add MOVE, UIDPLUS after.
            status, caps = client.capability()
            if status == "OK" and caps and isinstance(caps[-1], bytes):
                client.capabilities = tuple(caps[-1].decode("ascii", "replace").upper().split())
            status, _ = client.select(_quote(settings.folder))
            if status != "OK":
                raise ImapError(self.label, "cannot select the folder")
            client.create(_quote(settings.processed_folder))  # NO when it exists: fine
        except (imaplib.IMAP4.error, OSError) as e:
            self.close()
            raise ImapError(self.label, f"{e}", hint="check [bounces.imap]") from e
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            client.logout()

    def _client(self) -> imaplib.IMAP4_SSL:
        if self.client is None:
            raise RuntimeError("not connected")
        return self.client

    def __iter__(self) -> Iterator[Item]:
        client = self._client()
        status, data = client.uid("SEARCH", "ALL")
        if status != "OK":
            raise ImapError(self.label, "SEARCH failed")
        uids = [u.decode() for u in (data[0] or b"").split()]
        for uid in uids:
            status, size_data = client.uid("FETCH", uid, "(RFC822.SIZE)")
            size = _size(size_data)
            if size is not None and size > MAX_MESSAGE:
                yield Item(f"{self.label};UID={uid}", b"", problem=f"too large ({size:,} bytes)")
                continue
            status, fetched = client.uid("FETCH", uid, "(BODY.PEEK[])")
            body = next(
                (part[1] for part in fetched if isinstance(part, tuple) and len(part) > 1), None
            )
            if status != "OK" or not isinstance(body, bytes):
                log.warning("%s;UID=%s: cannot fetch (kept)", self.label, uid)
                continue
            yield Item(f"{self.label};UID={uid}", body, done=functools.partial(self._move, uid))

    def _move(self, uid: str) -> None:
        client = self._client()
        target = _quote(self.settings.processed_folder)
        if "MOVE" in client.capabilities:
            status, _ = client.uid("MOVE", uid, target)
            if status == "OK":
                return
        status, _ = client.uid("COPY", uid, target)
        if status != "OK":
            raise ImapError(self.label, f"cannot copy UID {uid} to {target}")
        client.uid("STORE", uid, "+FLAGS.SILENT", "(\\Deleted)")
        if "UIDPLUS" in client.capabilities:
            client.uid("EXPUNGE", uid)


def _size(data: list[object]) -> int | None:
    for part in data:
        raw = part if isinstance(part, bytes) else None
        if raw is not None:
            match = re.search(rb"RFC822\.SIZE (\d+)", raw)
            if match:
                return int(match[1])
    return None


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
