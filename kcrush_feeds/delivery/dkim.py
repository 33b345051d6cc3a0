"""DKIM signatures (RFC 6376) with dkimpy, for when the relay does not sign.

Every message the product sends (digests, proofs, confirmation and welcome mail) is signed
relaxed/relaxed over From, To, Subject, Date, Message-ID and, where the message has them,
List-Id, List-Unsubscribe, List-Unsubscribe-Post and List-Archive: RFC 8058 asks for the
one-click headers to be covered by a valid signature. The signature is computed on the
exact bytes that are then sent, once per message: ``sign`` returns those bytes with the
``DKIM-Signature`` header in front, and nothing touches them afterwards.

dkimpy does the DKIM work: it parses the header fields, selects and canonicalises the
signed ones, hashes them with the signature header, folds that header; its own ``verify``
checks the result in the tests. Four of its steps cost more than the rest of a ``send``
put together (cProfile on a 42 KB digest), so ``_Signing`` does those four, and only
those, another way with the same bytes as a result (signing then costs about 1 ms a
message instead of 3.3 with OpenSSL's RSA alone, or 10-20 with none of the four):

- the RSA signature: dkimpy's is pure Python (``pow`` on 1024-bit halves, 10-20 ms for a
  2048-bit key); OpenSSL through ``cryptography`` computes the same deterministic PKCS#1
  v1.5 signature in about 0.4 ms, and releases the GIL while it does;
- the key: dkimpy parses the PEM file (its own ASN.1 reader) on every ``sign``; here it is
  parsed once per process;
- the relaxed body canonicalisation (RFC 6376 3.4.4): dkimpy's regular expressions visit
  every space of the body; ``relaxed_body`` visits only the runs of spaces;
- the parse: dkimpy splits the whole message into lines and joins the body again; here it
  parses the header block alone when every line ends in CRLF, and the body is the bytes
  after the blank line, which is what its parser would give.

A test holds the whole signature byte for byte against dkimpy's own ``dkim.sign`` (the same
key, the same second), and ``relaxed_body`` against dkimpy's canonicalisation on generated
bodies. During ``send``, ``SigningPool`` signs in a process of its own, fed through a
pipe by the event loop, so signing takes the second core and not the loop's: the send
with DKIM runs at about 0.8-0.9x the throughput of the send without it, where a signing
thread gave 0.6x (its Python half holds the GIL the loop needs) and a
``ProcessPoolExecutor`` no better (its feeder threads pickle every message under the
GIL). See docs/bench.md. Proofs, confirmation and welcome mail are signed in place.

The key is read and checked when the config is used: a missing, unreadable or malformed
PEM file (PKCS#1 or PKCS#8) is a ``ConfigError`` (exit 2).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import logging
import re
import signal
import struct
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from kcrush_feeds.errors import ConfigError

if TYPE_CHECKING:  # the signing process imports this module: it stays light
    from kcrush_feeds.config import Config

log = logging.getLogger("kcrush_feeds.delivery.dkim")

SIGNED_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"list-archive",
)
_REQUIRED = frozenset(SIGNED_HEADERS[:5])
_SPACES = re.compile(rb"  +")  # a literal prefix: the engine searches for the runs alone
_PROBE = b"From: probe@example.com\r\nTo: probe@example.com\r\nSubject: probe\r\n\r\nprobe\r\n"


def relaxed_body(body: bytes) -> bytes:
    """The relaxed canonical form of a body (RFC 6376 3.4.4): the bytes dkimpy's
    ``Relaxed.canonicalize_body`` gives, without a regular expression over every space.

    Tabs become spaces and each run of two or more spaces one space, so every run of
    whitespace is one space; the one space that may then end a line goes; trailing empty
    lines go, and a body that is left empty is empty.
    """
    if b"\t" in body:
        body = body.replace(b"\t", b" ")
    if b"  " in body:
        body = _SPACES.sub(b" ", body)
    body = body.replace(b" \r\n", b"\r\n")
    canonical: bytes = dkim.canonicalization.correct_empty_body(
        dkim.canonicalization.strip_trailing_lines(body)
    )
    return canonical


class _Signing(dkim.DKIM):  # type: ignore[misc]
    """dkimpy's ``DKIM`` for one message, signed rsa-sha256 relaxed/relaxed.

    ``signature`` is dkimpy 1.1's ``sign`` for that one case (no ``l=``, ``i=@domain``),
    and ``gen_header`` is dkimpy 1.1's with the RSA call made by OpenSSL; the steps in
    between are dkimpy's own (header canonicalisation and selection, folding).
    """

    _POLICY = dkim.CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")

    def __init__(self, message: bytes, key: rsa.RSAPrivateKey) -> None:
        head, blank, body = message.partition(b"\r\n\r\n")
        if blank and message.count(b"\n") == message.count(b"\r\n"):
            super().__init__(head + blank, linesep=b"\r\n")  # dkimpy parses the header
            self.body = body  # what its parser would make of the rest: the same bytes
        else:  # bare line feeds: dkimpy's parser turns them into CRLF
            super().__init__(message, linesep=b"\r\n")
        self._rsa = key

    def signature(self, selector: bytes, domain: bytes, include: tuple[bytes, ...]) -> bytes:
        """The ``DKIM-Signature`` header of the message over the ``include`` headers."""
        self.include_headers = include
        self.hasher = dkim.HASH_ALGORITHMS[b"rsa-sha256"]
        bodyhash = base64.b64encode(self.hasher(relaxed_body(self.body)).digest())
        fields = [
            (b"v", b"1"),
            (b"a", b"rsa-sha256"),
            (b"c", b"relaxed/relaxed"),
            (b"d", domain),
            (b"i", b"@" + domain),
            (b"q", b"dns/txt"),
            (b"s", selector),
            (b"t", str(int(time.time())).encode("ascii")),  # the signing moment, as dkimpy
            (b"h", b" : ".join(include)),
            (b"bh", bodyhash),
            (b"b", b"0" * 60),  # a placeholder of dkimpy's: b= folds onto a line of its own
        ]
        header = self.gen_header(fields, include, self._POLICY, b"DKIM-Signature")
        self.domain, self.selector, self.signature_fields = domain, selector, dict(fields)
        return b"DKIM-Signature: " + header

    def gen_header(
        self,
        fields: list[tuple[bytes, bytes]],
        include_headers: tuple[bytes, ...],
        canon_policy: object,
        header_name: bytes,
    ) -> bytes:
        header_value = b"; ".join(b"=".join(x) for x in fields)
        header_value = dkim.fold(header_value, namelen=len(header_name), linesep=b"\r\n")
        header_value = dkim.RE_BTAG.sub(b"\\1", header_value)
        header = (header_name, b" " + header_value)
        h = dkim.HashThrough(self.hasher(), self.debug_content)
        headers = canon_policy.canonicalize_headers(self.headers)  # type: ignore[attr-defined]
        self.signed_headers = dkim.hash_headers(
            h, canon_policy, headers, include_headers, header, dict(fields)
        )
        signature = self._rsa.sign(h.digest(), padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        index = next(i for i, (name, _) in enumerate(fields) if name == b"b")
        fields[index] = (b"b", base64.b64encode(signature))
        header_value = b"; ".join(b"=".join(x) for x in fields) + self.linesep
        folded: bytes = dkim.fold(header_value, namelen=len(header_name), linesep=self.linesep)
        return folded


def _load_rsa(key: bytes) -> rsa.RSAPrivateKey:
    loaded = serialization.load_pem_private_key(key, password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise ValueError("the key is not an RSA key")
    return loaded


@dataclass(frozen=True, slots=True)
class DkimSigner:
    """Signs messages for ``domain`` with the key published at ``selector._domainkey``."""

    domain: str
    selector: str
    key: bytes  # PEM

    @classmethod
    def from_config(cls, config: Config) -> DkimSigner | None:
        """The signer ``[smtp.dkim]`` asks for, its key checked; None without the section."""
        smtp = config.smtp
        if smtp is None or smtp.dkim is None:
            return None
        settings = smtp.dkim
        path = config.resolve(settings.key_file)
        where = f"{config.path}: smtp.dkim.key_file"
        try:
            key = path.read_bytes()
        except OSError as e:
            raise ConfigError(
                f"{where}: cannot read {path}: {e.strerror}",
                hint="a PEM file with the RSA private key (openssl genrsa -out dkim.key 2048)",
            ) from e
        return cls.checked(settings.domain, settings.selector, key, where=where)

    @classmethod
    def checked(cls, domain: str, selector: str, key: bytes, *, where: str) -> DkimSigner:
        """A signer whose key was tried on a probe message; ``ConfigError`` if it fails."""
        signer = cls(domain, selector, key)
        try:
            _load_rsa(key)
            signer.signature(_PROBE)
        except (dkim.DKIMException, ValueError, IndexError, TypeError) as e:
            raise ConfigError(
                f"{where}: not a usable RSA private key (PEM, PKCS#1 or PKCS#8): {e}",
                hint="generate one with: openssl genrsa -out dkim.key 2048",
            ) from e
        return signer

    def signature(self, data: bytes) -> bytes:
        """The ``DKIM-Signature`` header line(s) for ``data`` (CRLF line ends)."""
        signing = _Signing(data, _rsa_key(self.key))
        present = {name.lower() for name, _ in signing.headers}  # as dkimpy parsed them
        headers = [h for h in SIGNED_HEADERS if h in present or h in _REQUIRED]
        return signing.signature(  # "DKIM-Signature: ..." CRLF, folded
            self.selector.encode("ascii"), self.domain.encode("ascii"), tuple(headers)
        )

    def sign(self, data: bytes) -> bytes:
        """``data`` with its signature in front: the bytes to send, unchanged from here on."""
        return self.signature(data) + data


_KEYS: dict[bytes, rsa.RSAPrivateKey] = {}


def _rsa_key(pem: bytes) -> rsa.RSAPrivateKey:
    """The loaded key, parsed once per process rather than once per message."""
    key = _KEYS.get(pem)
    if key is None:
        key = _KEYS[pem] = _load_rsa(pem)
    return key


# --- the signing process -----------------------------------------------------------------
#
# Frames on the pipes: a 4-byte big-endian length, then that many bytes. The parent writes
# the domain, the selector and the key (never on the command line), then one message per
# frame. The process says b"=" once it can sign, then answers each message with one
# frame, in order: b"+" and the signature header, or b"-" and what went wrong.

_LENGTH = struct.Struct(">I")
_WORKER = "from kcrush_feeds.delivery.dkim import serve_signing; serve_signing()"
_READY = b"="


def _frame(data: bytes) -> bytes:
    return _LENGTH.pack(len(data)) + data


def _read_frame(stream: BinaryIO) -> bytes | None:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(head)
    data = stream.read(size)
    return data if len(data) == size else None


def serve_signing() -> None:
    """The signing process: sign each message read from stdin until it closes.

    It ignores SIGINT and SIGTERM (a Ctrl-C reaches the whole process group, systemd stops
    the whole unit: the parent decides, and finishes the messages in flight) and ends when
    its stdin closes, which is also what happens when the parent dies.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    fields = [_read_frame(source) for _ in range(3)]
    if any(f is None for f in fields):
        return
    domain, selector, key = (f for f in fields if f is not None)
    signer = DkimSigner(domain.decode("ascii"), selector.decode("ascii"), key)
    signer.signature(_PROBE)  # the key parsed, the code warm: then say so
    sink.write(_frame(_READY))
    sink.flush()
    while (data := _read_frame(source)) is not None:
        try:
            answer = b"+" + signer.signature(data)
        except Exception as e:  # answered, so the parent can say which message and why
            answer = b"-" + f"{type(e).__name__}: {e}".encode("utf-8", "replace")
        try:
            sink.write(_frame(answer))
            sink.flush()
        except BrokenPipeError:  # the parent is gone: nobody waits for the answer
            return


class _Gone(Exception):
    """The signing process stopped with this message unanswered."""


class SigningPool:
    """Signs in a process of its own, fed through a pipe by the event loop.

    The loop writes each message down the pipe and goes on composing and sending; the
    process signs on the other core, and its answers come back in order. Until the
    process says it is ready (its imports take a few tenths of a second), and if it cannot
    start or stops, messages are signed here, in one worker thread, with a warning: the
    same signatures, only slower. (A signing thread alone measured 0.6x the throughput of
    a send without DKIM: its Python half holds the GIL the loop needs. See docs/bench.md.)
    """

    def __init__(self, signer: DkimSigner) -> None:
        self.signer = signer
        self._process: asyncio.subprocess.Process | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._waiting: collections.deque[asyncio.Future[bytes]] = collections.deque()
        self._ready = False
        self._gone: str | None = None
        self._thread: ThreadPoolExecutor | None = None

    def start(self) -> None:
        """Start the signing process (in the running loop); until it is ready, and
        should it fail, ``sign`` signs here."""
        if not self._tasks:
            self._tasks.append(asyncio.get_running_loop().create_task(self._run()))

    async def _run(self) -> None:
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _WORKER,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        except OSError as e:
            self._stopped(f"cannot start the signing process: {e}")
            return
        self._process = process
        assert process.stdin is not None and process.stdout is not None
        for field in (self.signer.domain.encode(), self.signer.selector.encode(), self.signer.key):
            process.stdin.write(_frame(field))
        try:
            if await self._answer(process.stdout) != _READY:
                raise ValueError("it did not say it was ready")
            self._ready = True
            while True:
                answer = await self._answer(process.stdout)
                done = self._waiting.popleft()
                if done.done():
                    continue  # its sender was cancelled
                if answer[:1] == b"+":
                    done.set_result(answer[1:])
                else:
                    done.set_exception(ValueError(answer[1:].decode("utf-8", "replace")))
        except (asyncio.IncompleteReadError, OSError, ValueError) as e:
            why = str(e) or type(e).__name__
            if isinstance(e, asyncio.IncompleteReadError):
                with contextlib.suppress(TimeoutError):
                    why = f"it exited with status {await asyncio.wait_for(process.wait(), 1.0)}"
            self._stopped(f"the signing process stopped ({why})")

    @staticmethod
    async def _answer(stdout: asyncio.StreamReader) -> bytes:
        head = await stdout.readexactly(_LENGTH.size)
        return await stdout.readexactly(_LENGTH.unpack(head)[0])

    def _stopped(self, why: str) -> None:
        if self._gone is None:
            log.warning("DKIM: %s; signing in this process instead", why)
        self._gone = why
        while self._waiting:
            done = self._waiting.popleft()
            if not done.done():
                done.set_exception(_Gone())

    async def sign(self, data: bytes) -> bytes:
        """``data`` with its signature in front."""
        self.start()
        if self._ready and self._gone is None and self._process is not None:
            stdin = self._process.stdin
            assert stdin is not None
            done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            self._waiting.append(done)
            stdin.write(_frame(data))
            try:
                await stdin.drain()
            except OSError as e:  # ``done`` then holds _Gone, awaited just below
                self._stopped(f"the signing process stopped ({e})")
            with contextlib.suppress(_Gone):
                return await done + data
        return await self._sign_here(data)

    async def _sign_here(self, data: bytes) -> bytes:
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dkim")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self.signer.sign, data)

    async def aclose(self) -> None:
        """Close the pipe, and wait for the process to end (killed if it does not)."""
        self._gone = self._gone or "closed"  # its end is no news: no warning
        process = self._process
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 5.0)
            except TimeoutError:
                process.kill()
                await process.wait()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if self._thread is not None:
            self._thread.shutdown(wait=True, cancel_futures=True)
