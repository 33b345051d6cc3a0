"""DKIM signatures (RFC 6376) with dkimpy, for when the relay does not sign.

Every message the product sends (digests, proofs, confirmation and welcome mail) is signed
relaxed/relaxed over From, To, Subject, Date, Message-ID and, where the message has them,
List-Id, List-Unsubscribe, List-Unsubscribe-Post and List-Archive: RFC 8058 asks for the
one-click headers to be covered by a valid signature. The signature is computed on the
exact bytes that are then sent, once per message: ``sign`` returns those bytes with the
``DKIM-Signature`` header in front, and nothing touches them afterwards.

RSA signing in dkimpy is pure Python (about 10-25 ms per message for a 2048-bit key on a
busy machine): ``SigningPool`` runs it in worker processes, so the event loop keeps every
SMTP connection busy while messages are signed on the other cores.

The key is read and checked when the config is used: a missing, unreadable or malformed
PEM file (PKCS#1 or PKCS#8) is a ``ConfigError`` (exit 2).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import dkim

from kcrush_feeds.config import Config
from kcrush_feeds.errors import ConfigError

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
_NAME_RE = re.compile(rb"^([A-Za-z0-9-]+):", re.MULTILINE)
_PROBE = b"From: probe@example.com\r\nTo: probe@example.com\r\nSubject: probe\r\n\r\nprobe\r\n"


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
            signer.signature(_PROBE)
        except (dkim.DKIMException, ValueError, IndexError, TypeError) as e:
            raise ConfigError(
                f"{where}: not a usable RSA private key (PEM, PKCS#1 or PKCS#8): {e}",
                hint="generate one with: openssl genrsa -out dkim.key 2048",
            ) from e
        return signer

    def signature(self, data: bytes) -> bytes:
        """The ``DKIM-Signature`` header line(s) for ``data`` (CRLF line ends)."""
        head = data.split(b"\r\n\r\n", 1)[0]
        present = {name.lower() for name in _NAME_RE.findall(head)}
        headers = [h for h in SIGNED_HEADERS if h in present or h in _REQUIRED]
        signature: bytes = dkim.sign(
            data,
            self.selector.encode("ascii"),
            self.domain.encode("ascii"),
            self.key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=headers,
            linesep=b"\r\n",
        )
        return signature

    def sign(self, data: bytes) -> bytes:
        """``data`` with its signature in front: the bytes to send, unchanged from here on."""
        return self.signature(data) + data


def _sign(signer: DkimSigner, data: bytes) -> bytes:
    return signer.sign(data)


class SigningPool:
    """Signs off the event loop, in worker processes (dkimpy's RSA holds the GIL)."""

    def __init__(self, signer: DkimSigner, workers: int | None = None) -> None:
        self.signer = signer
        count = workers or max(1, min(4, os.cpu_count() or 1))
        # spawn, not fork: ``schedule`` calls this from a thread, and fork copies locks.
        context = multiprocessing.get_context("spawn")
        self._executor = ProcessPoolExecutor(max_workers=count, mp_context=context)

    async def sign(self, data: bytes) -> bytes:
        """``data`` signed, computed in a worker process."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, _sign, self.signer, data)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def key_path(config: Config) -> Path | None:
    """The configured key file, resolved (for messages that name it)."""
    smtp = config.smtp
    return None if smtp is None or smtp.dkim is None else config.resolve(smtp.dkim.key_file)
