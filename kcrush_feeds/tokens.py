"""Signed, url-safe tokens for the links in emails: unsubscribe, preferences, confirm.

A token is ``<payload>.<mac>``, both base64url without padding. The payload carries the
address (so ``serve`` knows whom it is about) and, for tokens that expire, the expiry time,
encrypted (AES-SIV, RFC 5297, with a key derived from the secret): a link shows nobody the
address, in a URL, a proxy's log or a browser's history. AES-SIV is deterministic, so the
same link comes out each time. An encrypted payload starts with ``z``; a payload that is
plain base64 of the address (links sent before) starts with ``A``-``f`` and still works.
The MAC is HMAC-SHA256 over the purpose and the payload with the configured secret. A token
signed for one purpose is refused for another, a changed address breaks the MAC, and the
MAC is compared in constant time. Unsubscribe and preferences tokens do not expire (a
message read a year later must still unsubscribe) and are deterministic, so a retried
message carries the same links.

A token has exactly one spelling: both parts must be canonical unpadded base64url (no
``=``, no ``+/``, no other final character that decodes to the same bytes), the MAC
exactly 16 bytes. A confirm token also carries a *generation* (``serve`` uses the time
the address last unsubscribed): a link sent before an unsubscribe no longer confirms the
address after it subscribed again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from kcrush_feeds.errors import KcrushError

Purpose = Literal["unsubscribe", "preferences", "confirm"]
PURPOSES: tuple[Purpose, ...] = ("unsubscribe", "preferences", "confirm")
_MAC_BYTES = 16  # 128 bits: plenty against guessing, and keeps the links short
_MAX_TOKEN = 1024
_B64_RE = re.compile(r"[A-Za-z0-9_-]*")
# Base64 of an ASCII first byte is A-Z or a-f: "z" cannot start a payload of the old kind.
_ENCRYPTED = "z"


class TokenError(KcrushError, ValueError):
    """A token is malformed, tampered with, expired, or for another purpose or address."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    """Strictly: only the url-safe alphabet, no padding, and only the canonical spelling
    (the unused low bits of the last character zero), so one value has one spelling."""
    if not _B64_RE.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not canonical unpadded base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        raise ValueError("not canonical unpadded base64url")
    return data


@lru_cache(maxsize=8)
def _cipher(secret: bytes) -> AESSIV:
    """AES-256-SIV under a key derived from ``secret`` (never the MAC's key itself)."""
    key = b"".join(
        hmac.new(secret, f"kcrush-feeds/token-key/{n}".encode(), hashlib.sha256).digest()
        for n in (1, 2)
    )
    return AESSIV(key)


def _seal(secret: bytes, purpose: str, body: str) -> str:
    data = _cipher(secret).encrypt(body.encode("utf-8"), [purpose.encode("ascii")])
    return _ENCRYPTED + _b64(data)


def _open(secret: bytes, purpose: str, payload: str) -> str:
    """The body of a payload whose MAC was checked: decrypted, or (old links) decoded."""
    if not payload.startswith(_ENCRYPTED):
        return _unb64(payload).decode("utf-8")
    try:
        data = _cipher(secret).decrypt(_unb64(payload[1:]), [purpose.encode("ascii")])
    except InvalidTag as e:
        raise ValueError("the payload does not decrypt") from e
    return data.decode("utf-8")


def _mac(secret: bytes, purpose: str, payload: str) -> bytes:
    message = f"kcrush-feeds/{purpose}\n{payload}".encode("ascii")
    return hmac.new(secret, message, hashlib.sha256).digest()[:_MAC_BYTES]


def _key(email: str) -> str:
    # The same address in another case is the same subscriber (see model.email_key).
    return email.strip().lower()


@dataclass(frozen=True, slots=True)
class Claim:
    """What a verified token says: the address, and for a confirm token its generation
    (None in a token signed before generations existed)."""

    address: str
    expires: int | None = None
    generation: str | None = None


def sign(
    secret: bytes,
    purpose: Purpose,
    email: str,
    *,
    expires: datetime | None = None,
    generation: str | None = None,
) -> str:
    """A token for ``purpose`` about ``email``; with ``expires``, refused after that time;
    ``generation`` (confirm tokens) is given back by ``verify_claim``."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    if not secret:
        raise ValueError("an empty secret signs nothing")
    if purpose == "confirm" and expires is None:
        raise ValueError("a confirm token must expire")
    body = _key(email)
    if expires is not None:
        body += f"\n{int(expires.timestamp())}"
    if generation is not None:
        if expires is None or "\n" in generation:
            raise ValueError("a generation goes with an expiry, on one line")
        body += f"\n{generation}"
    payload = _seal(secret, purpose, body)
    return f"{payload}.{_b64(_mac(secret, purpose, payload))}"


def verify(
    secret: bytes,
    purpose: Purpose,
    token: str,
    *,
    now: datetime | None = None,
    email: str | None = None,
) -> str:
    """The address ``token`` was signed for, or ``TokenError``.

    ``now`` is required for tokens that expire (confirm); ``email``, when given, must be the
    address the token names (case-insensitively).
    """
    return verify_claim(secret, purpose, token, now=now, email=email).address


def verify_claim(
    secret: bytes,
    purpose: Purpose,
    token: str,
    *,
    now: datetime | None = None,
    email: str | None = None,
) -> Claim:
    """Like ``verify``, with everything the token carries."""
    if not isinstance(token, str) or len(token) > _MAX_TOKEN or token.count(".") != 1:
        raise TokenError("this link is not valid (malformed token)")
    payload, _, mac_text = token.partition(".")
    try:
        mac = _unb64(mac_text)
        _unb64(payload.removeprefix(_ENCRYPTED))  # one spelling, before anything else
    except (binascii.Error, ValueError) as e:
        raise TokenError("this link is not valid (malformed token)") from e
    if len(mac) != _MAC_BYTES or not hmac.compare_digest(mac, _mac(secret, purpose, payload)):
        raise TokenError("this link is not valid (the signature does not match)")
    try:
        body = _open(secret, purpose, payload)
    except (binascii.Error, ValueError) as e:
        raise TokenError("this link is not valid (malformed token)") from e
    address, *rest = body.split("\n")
    expiry = int(rest[0]) if rest else None
    if expiry is not None:
        if now is None:
            raise TokenError("this link expires; no time to check it against")
        if int(now.timestamp()) > expiry:
            raise TokenError("this link has expired", hint="ask for a new one")
    if email is not None and _key(email) != address:
        raise TokenError("this link belongs to another address")
    return Claim(address, expiry, rest[1] if len(rest) > 1 else None)


# --- VERP: the envelope sender names one delivery ----------------------------------------
#
# ``bounces+TOKEN@domain``: TOKEN is ``d<digest id>-<subscriber id>-<mac>``, the MAC made as
# above (purpose "delivery") and written in lower-case base32, so a mail system that folds
# the case of a local part cannot break it. 120 bits of MAC in 24 characters keeps the
# local part within the 64 octets RFC 5321 allows.
_DELIVERY_MAC_BYTES = 15
_DELIVERY_RE = re.compile(r"d([0-9]{1,12})-([0-9]{1,12})-([a-z2-7]{24})")


def _delivery_mac(secret: bytes, digest_id: int, subscriber_id: int) -> str:
    mac = _mac(secret, "delivery", f"{digest_id}-{subscriber_id}")[:_DELIVERY_MAC_BYTES]
    return base64.b32encode(mac).decode("ascii").lower()


def sign_delivery(secret: bytes, digest_id: int, subscriber_id: int) -> str:
    """The VERP token naming the delivery of digest ``digest_id`` to ``subscriber_id``."""
    if not secret:
        raise ValueError("an empty secret signs nothing")
    if digest_id < 0 or subscriber_id < 0:
        raise ValueError("ids are not negative")
    return f"d{digest_id}-{subscriber_id}-{_delivery_mac(secret, digest_id, subscriber_id)}"


def verify_delivery(secret: bytes, token: str) -> tuple[int, int]:
    """(digest id, subscriber id) of a VERP token, or ``TokenError`` if forged or tampered."""
    match = _DELIVERY_RE.fullmatch(token.lower()) if isinstance(token, str) else None
    if match is None:
        raise TokenError("the envelope token is malformed")
    digest_id, subscriber_id = int(match[1]), int(match[2])
    mac = _delivery_mac(secret, digest_id, subscriber_id)
    if not hmac.compare_digest(mac, match[3]):
        raise TokenError("the envelope token does not verify (forged or tampered)")
    return digest_id, subscriber_id


_DELIVERY_IN_ADDRESS_RE = re.compile(
    r"\+(d[0-9]{1,12}-[0-9]{1,12}-[a-z2-7]{24})@", re.IGNORECASE | re.ASCII
)


def verp_sender(address: str, token: str) -> str:
    """``local+TOKEN@domain`` for the bare ``address`` ``local@domain``."""
    local, _, domain = address.rpartition("@")
    sender = f"{local}+{token}@{domain}"
    if len(f"{local}+{token}".encode()) > 64:
        raise ValueError(f"{sender}: the local part is longer than 64 octets")
    return sender


def delivery_tokens(text: str) -> list[str]:
    """Every VERP token in ``text`` (addresses of the form ``local+TOKEN@domain``), in order."""
    return [match.lower() for match in _DELIVERY_IN_ADDRESS_RE.findall(text)]
