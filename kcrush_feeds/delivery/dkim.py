"""DKIM signatures (RFC 6376) with dkimpy, for when the relay does not sign.

Every message the product sends (digests, proofs, confirmation and welcome mail) is signed
relaxed/relaxed over From, To, Subject, Date, Message-ID and, where the message has them,
List-Id, List-Unsubscribe, List-Unsubscribe-Post and List-Archive: RFC 8058 asks for the
one-click headers to be covered by a valid signature. The signature is computed on the
exact bytes that are then sent, once per message: ``sign`` returns those bytes with the
``DKIM-Signature`` header in front, and nothing touches them afterwards.

dkimpy does the DKIM work (header selection, relaxed canonicalisation, body hash, the
signature header and its folding) and its own ``verify`` checks the result in the tests.
Its RSA step is pure Python (``pow`` on 1024-bit halves: 10-20 ms per message for a
2048-bit key), so that one step is done by OpenSSL through ``cryptography`` instead
(about 1 ms): ``_OpenSslDkim`` is dkimpy's ``DKIM`` with the RSA call swapped, nothing else.
``SigningPool`` runs the signing in two worker threads, off the event loop: OpenSSL's RSA
releases the GIL, and the loop keeps every SMTP connection busy meanwhile. (Worker
processes were measured too: their start-up and the copying of every message cost more
than they gained on two cores; see docs/bench.md.)

The key is read and checked when the config is used: a missing, unreadable or malformed
PEM file (PKCS#1 or PKCS#8) is a ``ConfigError`` (exit 2).
"""

from __future__ import annotations

import asyncio
import base64
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

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


class _OpenSslDkim(dkim.DKIM):  # type: ignore[misc]
    """dkimpy's ``DKIM``, its RSA signature computed by OpenSSL.

    ``gen_header`` is dkimpy 1.1's, with ``RSASSA_PKCS1_v1_5_sign(h, pk)`` replaced by the
    same PKCS#1 v1.5 signature over the same SHA-256 digest from ``cryptography``
    (deterministic: byte for byte what dkimpy would produce, only ~15x faster).
    """

    def __init__(self, message: bytes, key: rsa.RSAPrivateKey) -> None:
        super().__init__(message, linesep=b"\r\n")
        self._rsa = key

    def gen_header(
        self,
        fields: list[tuple[bytes, bytes]],
        include_headers: tuple[bytes, ...],
        canon_policy: object,
        header_name: bytes,
        pk: object,
        standardize: bool = False,
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
        head = data.split(b"\r\n\r\n", 1)[0]
        present = {name.lower() for name in _NAME_RE.findall(head)}
        headers = [h for h in SIGNED_HEADERS if h in present or h in _REQUIRED]
        signing = _OpenSslDkim(data, _rsa_key(self.key))
        signature: bytes = signing.sign(
            self.selector.encode("ascii"),
            self.domain.encode("ascii"),
            self.key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=headers,
        )
        return signature  # "DKIM-Signature: ..." CRLF, folded

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


def _sign(signer: DkimSigner, data: bytes) -> bytes:
    return signer.sign(data)


class SigningPool:
    """Signs off the event loop, in a few worker threads."""

    def __init__(self, signer: DkimSigner, workers: int = 2) -> None:
        self.signer = signer
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dkim")

    async def sign(self, data: bytes) -> bytes:
        """``data`` signed, computed in a worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, _sign, self.signer, data)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
