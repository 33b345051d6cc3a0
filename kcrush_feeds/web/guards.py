"""What every request passes before a page answers: abuse controls and request checks.

- ``SlidingWindow``: the rate limits (per client, per address);
- ``Csrf``: signed double-submit tokens for the forms;
- ``middleware``: the trusted proxies (only they may say who the client is), the security
  headers on every answer, and the cap on request bodies (413);
- ``read_form``, ``field``, ``token_of``: reading a form and a link's token defensively.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from kcrush_feeds.config import SubscriptionsConfig

CSRF_COOKIE = "kcrush_csrf"
CSRF_FIELD = "csrf_token"
CSRF_TTL = 24 * 3600  # seconds a form stays usable: a tab left open over lunch still works
HONEYPOT_FIELD = "website"  # invisible to people; bots fill every field they see
ONE_CLICK = ("List-Unsubscribe", "One-Click")  # RFC 8058 section 3.1: the exact body
MAX_FIELDS = 64  # form fields per request: the biggest form has a few categories
# Confirmation mails one mailbox gets in a day, whoever asks for them and from where: the
# form must not be a way to flood someone's inbox.
MAILS_PER_MAILBOX_PER_DAY = 5
DAY = 24 * 3600.0

# Security headers on every answer. Tokens travel in URLs, so no Referer may carry them
# away; the pages need nothing but their own inline style.
_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


class SlidingWindow:
    """At most ``limit`` hits per key in any ``window`` seconds (an exact sliding log).

    In memory, per process: ``serve`` runs one process. The number of keys is bounded, so a
    flood of addresses cannot grow it without limit: the least recently used key goes.
    """

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def hit(self, key: str) -> float | None:
        """Count a hit for ``key``: None if allowed, else the seconds until one would be."""
        now = self.clock()
        hits = self._hits.get(key)
        if hits is None:
            hits = self._hits[key] = deque()
            while len(self._hits) > self.max_keys:
                self._hits.popitem(last=False)
        else:
            self._hits.move_to_end(key)
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return max(hits[0] + self.window - now, 0.0)
        hits.append(now)
        return None


class Csrf:
    """Signed double-submit tokens: a signed random cookie, and a form field that is an
    HMAC of that cookie.

    A page with a form sets the cookie (``SameSite=Strict``, ``HttpOnly``) and puts
    ``ISSUED.MAC(cookie, ISSUED)`` in the form. Another site can make a browser post to us,
    but cannot read the cookie or our pages, so it cannot produce a matching field. The
    cookie is ``RANDOM.MAC(RANDOM)``: only one this server made is taken, so a cookie
    planted in the browser (from a sibling domain) with a value of the attacker's choosing
    is replaced, not given a token.
    """

    def __init__(self, secret: bytes, ttl: int = CSRF_TTL) -> None:
        self._key = hmac.new(secret, b"kcrush-feeds/csrf", hashlib.sha256).digest()
        self._cookie_key = hmac.new(secret, b"kcrush-feeds/csrf-cookie", hashlib.sha256).digest()
        self.ttl = ttl

    def _cookie_mac(self, random: str) -> str:
        digest = hmac.new(self._cookie_key, random.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:12]).decode("ascii")

    def new_nonce(self) -> str:
        """A new cookie value: random, signed by this server."""
        random = secrets.token_urlsafe(24)
        return f"{random}.{self._cookie_mac(random)}"

    def valid_nonce(self, value: str | None) -> bool:
        """True for a cookie value this server made."""
        if value is None or re.fullmatch(r"[A-Za-z0-9_-]{32}\.[A-Za-z0-9_-]{16}", value) is None:
            return False
        random, _, mac = value.partition(".")
        return hmac.compare_digest(mac, self._cookie_mac(random))

    def nonce_for(self, request: Request) -> str:
        """The browser's CSRF cookie if this server made it, else a new one."""
        current = request.cookies.get(CSRF_COOKIE)
        return current if current is not None and self.valid_nonce(current) else self.new_nonce()

    def _mac(self, nonce: str, issued: int) -> str:
        digest = hmac.new(self._key, f"{nonce}\n{issued}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode("ascii")

    def token(self, nonce: str, now: float) -> str:
        issued = int(now)
        return f"{issued}.{self._mac(nonce, issued)}"

    def check(self, nonce: str | None, token: str | None, now: float) -> bool:
        """True if ``token`` was made for the cookie ``nonce`` less than ``ttl`` ago."""
        if not self.valid_nonce(nonce) or not token or len(token) > 64:
            return False
        issued_text, _, mac = token.partition(".")
        if not issued_text.isdigit():
            return False
        issued = int(issued_text)
        if not (now - self.ttl <= issued <= now + 60):
            return False
        assert nonce is not None
        return hmac.compare_digest(mac, self._mac(nonce, issued))


class _BodyTooLarge(HTTPException):
    def __init__(self) -> None:
        super().__init__(413, "The request is too large.")


class BodyLimit:
    """Refuse request bodies over ``max_body`` bytes (413), by header and as they stream."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        received = 0

        async def limited() -> Message:
            nonlocal received
            # Raised from inside the handler's body read, so the app's 413 page answers.
            if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
                raise _BodyTooLarge()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge()
            return message

        await self.app(scope, limited, send)


class SecurityHeaders:
    """Adds ``_HEADERS`` to every response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in _HEADERS.items():
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def middleware(settings: SubscriptionsConfig) -> list[Middleware]:
    """The middleware stack, outermost first: proxies, security headers, the body cap."""
    stack = []
    if settings.trusted_proxies:
        # Only these peers may say who the client is: the rate limit keys on it.
        stack.append(
            Middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))
        )
    stack += [Middleware(SecurityHeaders), Middleware(BodyLimit, max_body=settings.max_body)]
    return stack


# --- request checks --------------------------------------------------------------------------


def csrf_ok(csrf: Csrf, request: Request, form: FormData, now: float) -> bool:
    """True if the form's CSRF field matches the browser's cookie (and has not expired)."""
    token = form.get(CSRF_FIELD)
    return csrf.check(
        request.cookies.get(CSRF_COOKIE), token if isinstance(token, str) else None, now
    )


async def read_form(request: Request, max_body: int) -> FormData:
    """The posted form; 415 for another content type, 400 for one that cannot be parsed."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise HTTPException(415, "Send the form as application/x-www-form-urlencoded.")
    try:
        # One field may be as large as a whole body: the body cap (413) is the limit.
        return await request.form(max_files=0, max_fields=MAX_FIELDS, max_part_size=max_body)
    except HTTPException:
        raise
    except Exception as e:  # python-multipart's parse errors have no common base
        raise HTTPException(400, "The form could not be read.") from e


def field(form: FormData, name: str, limit: int = 1024) -> str:
    """The text field ``name`` ("" if absent); 400 if it is longer than ``limit``."""
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    if len(value) > limit:
        raise HTTPException(400, f"The field {name!r} is too long.")
    return value


def token_of(request: Request, form: FormData | None = None) -> str:
    """The link's token, from the query string or the form (not two different ones)."""
    from_query = request.query_params.get("token", "")
    from_form = field(form, "token", 2048) if form is not None else ""
    if from_query and from_form and from_query != from_form:
        return ""
    return from_query or from_form


def mailbox_key(address: str) -> str:
    """The mailbox an address delivers to, for counting only (the address is stored as
    given): case folded, and a ``+tag`` dropped from the local part, so that
    ``Victim+1@Example.com`` and ``victim@example.com`` count as one mailbox."""
    local, at, domain = address.strip().rpartition("@")
    if not at:
        return address.strip().lower()
    base = local.split("+", 1)[0] or local  # "+tag@x" alone is a local part of its own
    return f"{base.lower()}@{domain.lower()}"


class MailboxLimit:
    """How many confirmation mails a mailbox may get: ``limit`` per ``window``, and
    ``per_day`` per day. Over either, the form still answers as always and nothing is
    sent: the mails sent before carry a working link, and the owner is never told to
    wait (429) because someone else used the form with their address."""

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        per_day: int = MAILS_PER_MAILBOX_PER_DAY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._short = SlidingWindow(limit, window, clock=clock)
        self._day = SlidingWindow(per_day, DAY, clock=clock)

    def allow(self, address: str) -> bool:
        """Count one mail to ``address``'s mailbox; False if it must not be sent."""
        key = mailbox_key(address)
        return self._short.hit(key) is None and self._day.hit(key) is None


def client_key(request: Request) -> str:
    """Who is asking, for the rate limit (the proxy's word only when it is trusted)."""
    return request.client.host if request.client else "unknown"
