"""The relays' bounce and complaint webhooks: ``POST /webhooks/mailgun``, ``/postmark``, ``/ses``.

Each request is verified before anything is read from it:

- Mailgun: HMAC-SHA256 of ``timestamp + token`` with the signing key; a timestamp older
  than ``max_age`` is stale and a token seen before is a replay (both refused);
- Postmark: HTTP basic auth with the configured user and password;
- SES through SNS: the message signature (SignatureVersion 1, SHA1withRSA, or 2,
  SHA256withRSA) checked with the signing certificate, which is the pinned
  ``ses_cert_file`` or fetched only from an ``https://sns.<region>.amazonaws.com/...pem``
  URL and cached; the topic must be the configured ``ses_topic_arn``. A
  SubscriptionConfirmation is confirmed (its SubscribeURL fetched, same host rule) only for
  that topic.

A verified event becomes a ``Verdict`` and goes through ``inbound.process.Processor``, the
code mail goes through, so the same delivery reported by mail and by webhook counts once.
Anything refused gets a 4xx, is logged, and changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kcrush_feeds.config import BouncesConfig, Config, WebhooksConfig, secret_from_env
from kcrush_feeds.errors import KcrushError
from kcrush_feeds.inbound.classify import Kind, Verdict
from kcrush_feeds.inbound.process import Processor, Result
from kcrush_feeds.store import bounces as db
from kcrush_feeds.store.db import Store
from kcrush_feeds.tokens import TokenError, delivery_tokens, verify_delivery

log = logging.getLogger("kcrush_feeds.web.webhooks")
T = TypeVar("T")
SNS_HOST_RE = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")
MAX_CERT = 65536  # bytes: a signing certificate is a few KB
_NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION_KEYS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)


class Runner(Protocol):
    """Runs ``fn(store, *args)`` on the write connection (``_Service.db``)."""

    def __call__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Awaitable[T]: ...


class Fetcher(Protocol):
    """GETs an https URL (the SNS certificate, the subscription confirmation)."""

    def __call__(self, url: str) -> Awaitable[bytes]: ...


class Refused(Exception):
    """A request that is refused: its status and the reason, for the log and the reply."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def https_get(url: str) -> bytes:
    """The real fetcher: a short-timeout GET, no redirects, size capped."""
    async with httpx.AsyncClient(timeout=10.0, follow_redirects=False) as client:
        response = await client.get(url)
    if response.status_code != 200:
        raise Refused(502, f"{url}: HTTP {response.status_code}")
    return response.content[: MAX_CERT + 1]


def sns_url_ok(url: str) -> bool:
    """Whether ``url`` is an https URL on ``sns.<region>.amazonaws.com`` (nothing else)."""
    parts = urlsplit(url)
    return (
        parts.scheme == "https"
        and parts.port is None
        and parts.username is None
        and bool(SNS_HOST_RE.fullmatch(parts.hostname or ""))
    )


def sns_string_to_sign(message: dict[str, Any]) -> bytes:
    """The canonical text SNS signs: "Key\\nvalue\\n" for the keys of the message type."""
    keys = _NOTIFICATION_KEYS if message.get("Type") == "Notification" else _CONFIRMATION_KEYS
    text = "".join(f"{key}\n{message[key]}\n" for key in keys if key in message)
    return text.encode("utf-8")


@dataclass
class Webhooks:
    """The three endpoints over one store runner and clock."""

    config: Config
    run: Runner
    now: Callable[[], datetime]
    fetch: Fetcher = https_get
    certificates: dict[str, x509.Certificate] = field(default_factory=dict)  # the cache
    settings: WebhooksConfig = field(init=False)
    bounces: BouncesConfig = field(init=False)

    def __post_init__(self) -> None:
        self.bounces = self.config.bounces or BouncesConfig()
        self.settings = self.bounces.webhooks
        self.secret = self.config.require_subscriptions().secret()

    # --- plumbing -------------------------------------------------------------------------

    async def _handle(
        self, request: Request, name: str, handler: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        try:
            return await handler(request)
        except Refused as e:
            log.warning("webhook %s: refused (%d): %s", name, e.status, e.reason)
            return JSONResponse({"error": e.reason}, status_code=e.status)
        except KcrushError as e:
            log.warning("webhook %s: %s", name, e)
            return JSONResponse({"error": "not configured"}, status_code=503)

    async def _json(self, request: Request) -> dict[str, Any]:
        body = await request.body()
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise Refused(400, f"the body is not JSON: {e}") from e
        if not isinstance(data, dict):
            raise Refused(400, "the body is not a JSON object")
        return data

    async def _apply(
        self, verdicts: list[Verdict], source: str, *, replay_token: str | None = None
    ) -> Response:
        now = self.now()

        def apply(store: Store) -> list[Result] | None:
            # The replay token is claimed in the transaction that applies the event: an
            # event that fails half-way can be sent again, one that was applied cannot.
            with db.batch(store):
                if replay_token is not None and not db.claim_replay_token(
                    store, source, replay_token, now=now, keep=self.settings.max_age * 2
                ):
                    return None
                processor = Processor(self.config, store, now)
                return [processor.verdict(v, source=source) for v in verdicts]

        results = await self.run(apply)
        if results is None:
            raise Refused(406, "a replayed token")
        for result in results:
            level = logging.INFO if result.understood else logging.WARNING
            log.log(level, "webhook %s: %s: %s", source, result.kind, result.note)
        return JSONResponse({"results": [{"kind": r.kind, "note": r.note} for r in results]})

    def _delivery(self, *texts: object) -> tuple[int, int] | None:
        """The first VERP token in ``texts`` that verifies (the event itself is signed)."""
        for text in texts:
            for token in delivery_tokens(str(text or "")):
                try:
                    return verify_delivery(self.secret, token)
                except TokenError:
                    continue
        return None

    # --- Mailgun ----------------------------------------------------------------------------

    async def mailgun(self, request: Request) -> Response:
        return await self._handle(request, "mailgun", self._mailgun)

    async def _mailgun(self, request: Request) -> Response:
        if self.settings.mailgun_signing_key_env is None:
            raise Refused(404, "the Mailgun webhook is not configured")
        key = secret_from_env(self.settings.mailgun_signing_key_env, "mailgun_signing_key_env")
        data = await self._json(request)
        signature = data.get("signature")
        event = data.get("event-data")
        if not isinstance(signature, dict) or not isinstance(event, dict):
            raise Refused(400, "no 'signature' and 'event-data' objects")
        timestamp, token = str(signature.get("timestamp", "")), str(signature.get("token", ""))
        given = str(signature.get("signature", ""))
        expected = hmac.new(
            (key or "").encode(), (timestamp + token).encode(), hashlib.sha256
        ).hexdigest()
        if not token or not hmac.compare_digest(expected, given):
            raise Refused(403, "the signature does not match")
        now = self.now()
        if not timestamp.isdigit() or abs(now.timestamp() - int(timestamp)) > (
            self.settings.max_age.total_seconds()
        ):
            raise Refused(403, "the timestamp is stale")
        kind: Kind
        name, severity = str(event.get("event", "")), str(event.get("severity", ""))
        if name == "failed":
            kind = "hard" if severity == "permanent" else "soft"
        elif name == "complained":
            kind = "complaint"
        else:
            return JSONResponse({"results": [], "note": f"event {name!r} ignored"})
        status = _obj(event, "delivery-status")
        message = _obj(event, "message")
        headers = _obj(message, "headers")
        envelope = _obj(event, "envelope")
        verdict = Verdict(
            kind,
            f"Mailgun {name} ({severity or 'complaint'})",
            delivery=self._delivery(envelope.get("sender"), headers.get("return-path")),
            email=str(event.get("recipient") or "") or None,
            message_id=str(headers.get("message-id") or "") or None,
            status_code=str(status.get("code") or ""),
            diagnostic=str(status.get("message") or status.get("description") or "")[:500],
            reported_at=_from_epoch(event.get("timestamp")),
            detector="mailgun",
        )
        return await self._apply([verdict], "mailgun", replay_token=token)

    # --- Postmark ---------------------------------------------------------------------------

    async def postmark(self, request: Request) -> Response:
        return await self._handle(request, "postmark", self._postmark)

    async def _postmark(self, request: Request) -> Response:
        user = self.settings.postmark_username
        if user is None:
            raise Refused(404, "the Postmark webhook is not configured")
        password = secret_from_env(self.settings.postmark_password_env, "postmark_password_env")
        expected = base64.b64encode(f"{user}:{password}".encode()).decode()
        given = request.headers.get("authorization", "")
        scheme, _, credentials = given.partition(" ")
        if scheme.lower() != "basic" or not hmac.compare_digest(
            credentials.strip().encode(), expected.encode()
        ):
            raise Refused(401, "wrong or missing credentials")
        data = await self._json(request)
        record, kind_name = str(data.get("RecordType", "")), str(data.get("Type", ""))
        kind: Kind
        if record == "Bounce" and kind_name == "HardBounce":
            kind = "hard"
        elif record == "Bounce" and kind_name == "SoftBounce":
            kind = "soft"
        elif record == "SpamComplaint":
            kind = "complaint"
        else:
            return JSONResponse({"results": [], "note": f"{record} {kind_name} ignored"})
        address = str(data.get("Email") or "")
        if not address:
            raise Refused(400, "no 'Email' in the event")
        when = data.get("BouncedAt") or data.get("ReceivedAt")
        verdict = Verdict(
            kind,
            f"Postmark {record} {kind_name}".strip(),
            delivery=self._delivery(data.get("ReturnPath"), json.dumps(data.get("Metadata"))),
            email=address,
            status_code=str(data.get("TypeCode") or ""),
            diagnostic=str(data.get("Details") or data.get("Description") or "")[:500],
            reported_at=_from_iso(when),
            detector="postmark",
        )
        return await self._apply([verdict], "postmark")

    # --- SES through SNS --------------------------------------------------------------------

    async def ses(self, request: Request) -> Response:
        return await self._handle(request, "ses", self._ses)

    async def _ses(self, request: Request) -> Response:
        topic = self.settings.ses_topic_arn
        if topic is None:
            raise Refused(404, "the SES webhook is not configured")
        data = await self._json(request)
        if data.get("TopicArn") != topic:
            arn = str(data.get("TopicArn"))[:200]
            raise Refused(403, f"topic {arn!r} is not the configured one")
        kind = data.get("Type")
        if kind not in ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"):
            raise Refused(400, f"unknown SNS message type {str(kind)[:50]!r}")
        await self._verify_sns(data)
        if kind == "SubscriptionConfirmation":
            url = str(data.get("SubscribeURL", ""))
            if not sns_url_ok(url):
                raise Refused(400, "the SubscribeURL is not an SNS https URL")
            await self.fetch(url)
            log.info("webhook ses: subscription to %s confirmed", topic)
            return JSONResponse({"confirmed": topic})
        if kind == "UnsubscribeConfirmation":
            return JSONResponse({"results": []})
        try:
            message = json.loads(str(data.get("Message", "")))
        except json.JSONDecodeError as e:
            raise Refused(400, f"the SNS Message is not JSON: {e}") from e
        if not isinstance(message, dict):
            raise Refused(400, "the SNS Message is not a JSON object")
        return await self._apply(self._ses_verdicts(message), "ses")

    async def _verify_sns(self, data: dict[str, Any]) -> None:
        version = str(data.get("SignatureVersion", ""))
        algorithm: hashes.HashAlgorithm
        if version == "1":
            algorithm = hashes.SHA1()  # what SNS signs with for version 1
        elif version == "2":
            algorithm = hashes.SHA256()
        else:
            raise Refused(403, f"unsupported SignatureVersion {version[:10]!r}")
        try:
            signature = base64.b64decode(str(data.get("Signature", "")), validate=True)
        except (binascii.Error, ValueError) as e:
            raise Refused(403, "the signature is not base64") from e
        certificate = await self._certificate(str(data.get("SigningCertURL", "")))
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise Refused(403, "the signing certificate has no RSA key")
        try:
            key.verify(signature, sns_string_to_sign(data), padding.PKCS1v15(), algorithm)
        except (InvalidSignature, KeyError) as e:
            raise Refused(403, "the signature does not match") from e

    async def _certificate(self, url: str) -> x509.Certificate:
        pinned = self.settings.ses_cert_file
        if pinned is not None:
            path = pinned if pinned.is_absolute() else self.config.base_dir / pinned
            return self._load(str(path), _read(path))
        if not sns_url_ok(url) or not urlsplit(url).path.endswith(".pem"):
            raise Refused(403, "the SigningCertURL is not an SNS https .pem URL")
        cached = self.certificates.get(url)
        if cached is None:
            cached = self.certificates[url] = self._load(url, await self.fetch(url))
        return cached

    @staticmethod
    def _load(where: str, pem: bytes) -> x509.Certificate:
        if len(pem) > MAX_CERT:
            raise Refused(403, f"{where}: not a certificate (too large)")
        try:
            return x509.load_pem_x509_certificate(pem)
        except ValueError as e:
            raise Refused(403, f"{where}: not a PEM certificate") from e

    def _ses_verdicts(self, message: dict[str, Any]) -> list[Verdict]:
        kind_name = str(message.get("notificationType") or message.get("eventType") or "")
        mail = _obj(message, "mail")
        common = _obj(mail, "commonHeaders")
        headers = {
            str(h.get("name", "")).lower(): str(h.get("value", ""))
            for h in mail.get("headers", [])
            if isinstance(h, dict)
        }
        delivery = self._delivery(mail.get("source"), headers.get("return-path"))
        message_id = str(common.get("messageId") or headers.get("message-id") or "") or None
        verdicts = []
        if kind_name == "Bounce":
            bounce = _obj(message, "bounce")
            bounce_type = str(bounce.get("bounceType", ""))
            if bounce_type not in ("Permanent", "Transient"):
                return []
            for recipient in bounce.get("bouncedRecipients", []) or []:
                if not isinstance(recipient, dict):
                    continue
                verdicts.append(
                    Verdict(
                        "hard" if bounce_type == "Permanent" else "soft",
                        f"SES bounce ({bounce_type}/{bounce.get('bounceSubType', '')})",
                        delivery=delivery,
                        email=str(recipient.get("emailAddress") or "") or None,
                        message_id=message_id,
                        status_code=str(recipient.get("status") or ""),
                        diagnostic=str(recipient.get("diagnosticCode") or "")[:500],
                        reported_at=_from_iso(bounce.get("timestamp")),
                        detector="ses",
                    )
                )
        elif kind_name == "Complaint":
            complaint = _obj(message, "complaint")
            for recipient in complaint.get("complainedRecipients", []) or []:
                if not isinstance(recipient, dict):
                    continue
                verdicts.append(
                    Verdict(
                        "complaint",
                        f"SES complaint ({complaint.get('complaintFeedbackType', 'abuse')})",
                        delivery=delivery,
                        email=str(recipient.get("emailAddress") or "") or None,
                        message_id=message_id,
                        reported_at=_from_iso(complaint.get("timestamp")),
                        detector="ses",
                    )
                )
        return verdicts


def _obj(data: dict[str, Any], key: str) -> dict[str, Any]:
    """``data[key]`` when it is a JSON object, else an empty one."""
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()[: MAX_CERT + 1]
    except OSError as e:
        raise Refused(500, f"{path}: cannot read the pinned certificate: {e.strerror}") from e


def _from_epoch(value: object) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(str(value)), UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _from_iso(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def webhook_routes(hooks: Webhooks) -> list[Route]:
    """The three routes, for the application's route list."""
    return [
        Route("/webhooks/mailgun", hooks.mailgun, methods=["POST"]),
        Route("/webhooks/postmark", hooks.postmark, methods=["POST"]),
        Route("/webhooks/ses", hooks.ses, methods=["POST"]),
    ]
