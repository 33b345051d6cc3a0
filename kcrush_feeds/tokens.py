"""Signed, url-safe tokens for the links in emails: unsubscribe, preferences, confirm.

A token is ``<payload>.<mac>``, both base64url without padding. The payload carries the
address (so ``serve`` knows whom it is about) and, for tokens that expire, the expiry time;
the MAC is HMAC-SHA256 over the purpose and the payload with the configured secret. A token
signed for one purpose is refused for another, a changed address breaks the MAC, and the
MAC is compared in constant time. Unsubscribe and preferences tokens do not expire (a
message read a year later must still unsubscribe) and are deterministic, so a retried
message carries the same links.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from datetime import datetime
from typing import Literal

from kcrush_feeds.errors import KcrushError

Purpose = Literal["unsubscribe", "preferences", "confirm"]
PURPOSES: tuple[Purpose, ...] = ("unsubscribe", "preferences", "confirm")
_MAC_BYTES = 16  # 128 bits: plenty against guessing, and keeps the links short
_MAX_TOKEN = 1024


class TokenError(KcrushError, ValueError):
    """A token is malformed, tampered with, expired, or for another purpose or address."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, purpose: str, payload: str) -> bytes:
    message = f"kcrush-feeds/{purpose}\n{payload}".encode("ascii")
    return hmac.new(secret, message, hashlib.sha256).digest()[:_MAC_BYTES]


def _key(email: str) -> str:
    # The same address in another case is the same subscriber (see model.email_key).
    return email.strip().lower()


def sign(secret: bytes, purpose: Purpose, email: str, *, expires: datetime | None = None) -> str:
    """A token for ``purpose`` about ``email``; with ``expires``, refused after that time."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    if not secret:
        raise ValueError("an empty secret signs nothing")
    if purpose == "confirm" and expires is None:
        raise ValueError("a confirm token must expire")
    body = _key(email)
    if expires is not None:
        body += f"\n{int(expires.timestamp())}"
    payload = _b64(body.encode("utf-8"))
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
    if not isinstance(token, str) or len(token) > _MAX_TOKEN or token.count(".") != 1:
        raise TokenError("this link is not valid (malformed token)")
    payload, _, mac_text = token.partition(".")
    try:
        mac = _unb64(mac_text)
        body = _unb64(payload).decode("utf-8")
    except (binascii.Error, ValueError) as e:
        raise TokenError("this link is not valid (malformed token)") from e
    if not hmac.compare_digest(mac, _mac(secret, purpose, payload)):
        raise TokenError("this link is not valid (the signature does not match)")
    address, _, expiry = body.partition("\n")
    if expiry:
        if now is None:
            raise TokenError("this link expires; no time to check it against")
        if int(now.timestamp()) > int(expiry):
            raise TokenError("this link has expired", hint="ask for a new one")
    if email is not None and _key(email) != address:
        raise TokenError("this link belongs to another address")
    return address


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
