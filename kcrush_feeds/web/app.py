"""The HTTP endpoints behind the signup form and the links in every digest (``serve``).

A Starlette application (ASGI), served by uvicorn in ``commands/serve.py``:

- ``GET/POST /subscribe``: the form; a POST makes the address ``pending`` and mails a
  signed, expiring confirm link (double opt-in). The answer is the same whether or not the
  address was known, so the form cannot be used to find out who subscribes.
- ``GET /confirm?token=``: ``pending`` -> ``active`` (idempotent).
- ``GET /unsubscribe?token=``: a page with one button; it changes nothing (mail scanners
  follow links). ``POST /unsubscribe``: the button (CSRF-checked), or the RFC 8058
  one-click POST (body ``List-Unsubscribe=One-Click``, no cookie, no CSRF token).
- ``GET/POST /preferences?token=``: categories, pause/resume, unsubscribe.
- ``GET /health``: JSON, 200 when the store answers.

Pages are Jinja templates (``templates/web``; ``subscriptions.templates_dir`` overrides
them); a client that sends ``Accept: application/json`` gets JSON instead.

Every change is one store transaction (``subscribers``). The store's one SQLite connection
is used by one worker thread at a time (``_db``), so the event loop never blocks on a disk
sync and two requests never share the connection at once.
"""

from __future__ import annotations

import base64
import email.policy
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import jinja2
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from kcrush_feeds import tokens
from kcrush_feeds.config import Config, SubscriptionsConfig
from kcrush_feeds.digest.sections import Catalogue
from kcrush_feeds.errors import KcrushError
from kcrush_feeds.store.db import Store
from kcrush_feeds.subscriptions import subscribers

log = logging.getLogger("kcrush_feeds.web.app")

T = TypeVar("T")
Clock = Callable[[], datetime]

CSRF_COOKIE = "kcrush_csrf"
CSRF_FIELD = "csrf_token"
CSRF_TTL = 24 * 3600  # seconds a form stays usable: a tab left open over lunch still works
HONEYPOT_FIELD = "website"  # invisible to people; bots fill every field they see
ONE_CLICK = ("List-Unsubscribe", "One-Click")  # RFC 8058 section 3.1: the exact body
MAX_FIELDS = 64  # form fields per request: the biggest form has a few categories

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


# --- mail ----------------------------------------------------------------------------------


class Mailer(Protocol):
    """Sends one message (RFC 5322 bytes) to one recipient, logging what became of it."""

    async def start(self) -> None: ...

    async def send(self, recipient: str, data: bytes) -> None: ...

    async def aclose(self) -> None: ...


class SmtpMailer:
    """The digest's SMTP pool (``smtp.SmtpPool``), open while the server runs.

    The pool keeps a few connections, reconnects idle or dropped ones, and applies
    ``[smtp]``'s rate limit and retries, exactly as for the digest.
    """

    def __init__(self, config: Config) -> None:
        from kcrush_feeds.delivery.smtp import (  # local: only a running server needs SMTP
            SmtpPool,
            SmtpSettings,
        )

        settings = SmtpSettings.from_config(config.require_smtp(), base_dir=config.base_dir)
        self._pool = SmtpPool(settings, sender=config.require_digest().from_addr)

    async def start(self) -> None:
        await self._pool.__aenter__()

    async def send(self, recipient: str, data: bytes) -> None:
        try:
            result = await self._pool.send(recipient, data)
        except KcrushError as e:
            log.error("mail to %s not sent, and nothing retries it: %s", recipient, e.message)
            return
        except Exception:
            # Runs after the answer went out: nobody else would ever hear of this failure.
            log.exception("mail to %s not sent", recipient)
            return
        if result.sent:
            log.info("mail to %s: %s", recipient, result.reply)
        else:
            log.warning(
                "mail to %s not sent (%s), and nothing retries it: %s",
                recipient,
                result.outcome,
                result.reply,
            )

    async def aclose(self) -> None:
        await self._pool.aclose()


def check_smtp_reachable(config: Config, *, timeout: float = 3.0) -> bool:
    """At start, once: can a TCP connection to ``[smtp]`` host:port be opened?

    Logs one warning when it cannot (confirmation mail would fail until it can) and
    returns False; the server starts all the same (the relay may come up later).
    """
    import socket

    smtp = config.require_smtp()
    try:
        with socket.create_connection((smtp.host, smtp.port), timeout=timeout):
            return True
    except OSError as e:
        log.warning(
            "the SMTP server %s:%d cannot be reached (%s): confirmation mail is not sent "
            "until it can",
            smtp.host,
            smtp.port,
            e.strerror or e,
        )
        return False


# --- abuse controls --------------------------------------------------------------------------


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
    """Signed double-submit tokens: a random cookie, and a form field that is an HMAC of it.

    A page with a form sets the cookie (``SameSite=Strict``, ``HttpOnly``) and puts
    ``ISSUED.MAC(cookie, ISSUED)`` in the form. Another site can make a browser post to us,
    but cannot read the cookie or our pages, so it cannot produce a matching field.
    """

    def __init__(self, secret: bytes, ttl: int = CSRF_TTL) -> None:
        self._key = hmac.new(secret, b"kcrush-feeds/csrf", hashlib.sha256).digest()
        self.ttl = ttl

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_urlsafe(24)

    @staticmethod
    def valid_nonce(value: str | None) -> bool:
        return value is not None and re.fullmatch(r"[A-Za-z0-9_-]{32}", value) is not None

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


# --- the application -------------------------------------------------------------------------


def template_environment(settings: SubscriptionsConfig, base_dir: Path) -> jinja2.Environment:
    """Jinja for the pages and mails: the editor's directory first, then the built-ins."""
    loaders: list[jinja2.BaseLoader] = []
    if settings.templates_dir is not None:
        directory = settings.templates_dir
        loaders.append(
            jinja2.FileSystemLoader(directory if directory.is_absolute() else base_dir / directory)
        )
    loaders.append(jinja2.PackageLoader("kcrush_feeds", "templates/web"))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(["html"]),
        auto_reload=False,  # read once at start: no stat() of every template per request
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@dataclass
class _Runtime:
    """What only exists while the server runs (opened by the lifespan)."""

    store: Store  # every change goes through this connection, one at a time
    db_lock: anyio.CapacityLimiter
    reader: Store  # pages that only look: WAL lets them read while a change commits
    read_lock: anyio.CapacityLimiter
    mailer: Mailer


@dataclass
class _Service:
    config: Config
    store_path: Path
    now: Clock
    mailer_factory: Callable[[Config], Mailer]
    settings: SubscriptionsConfig = field(init=False)
    secret: bytes = field(init=False)
    catalogue: Catalogue = field(init=False)
    env: jinja2.Environment = field(init=False)
    csrf: Csrf = field(init=False)
    by_client: SlidingWindow = field(init=False)
    by_address: SlidingWindow = field(init=False)
    runtime: _Runtime | None = None

    def __post_init__(self) -> None:
        self.settings = self.config.require_subscriptions()
        self.secret = self.settings.secret()
        self.catalogue = Catalogue.from_config(self.config)
        self.env = template_environment(self.settings, self.config.base_dir)
        self.csrf = Csrf(self.secret)
        window = self.settings.rate_limit_window.total_seconds()
        self.by_client = SlidingWindow(self.settings.rate_limit_client, window)
        self.by_address = SlidingWindow(self.settings.rate_limit_address, window)
        digest = self.config.digest
        self.list_name = (parseaddr(digest.from_addr)[0] if digest else "") or (
            f"{self.config.site.title} newsletter"
        )
        self.base_url = self.settings.base_url.rstrip("/")

    # --- plumbing ---------------------------------------------------------------------------

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        store = Store.open(self.store_path)
        reader = Store.open(self.store_path)
        mailer = self.mailer_factory(self.config)
        await mailer.start()
        self.runtime = _Runtime(
            store, anyio.CapacityLimiter(1), reader, anyio.CapacityLimiter(1), mailer
        )
        try:
            yield
        finally:
            self.runtime = None
            await mailer.aclose()
            reader.close()
            store.close()

    def _rt(self) -> _Runtime:
        if self.runtime is None:
            raise RuntimeError("the application is not running (no lifespan)")
        return self.runtime

    async def db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(store, *args, **kwargs)`` in a worker thread, one call at a time."""
        rt = self._rt()
        return await anyio.to_thread.run_sync(
            lambda: fn(rt.store, *args, **kwargs), limiter=rt.db_lock
        )

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Like ``db`` for a read-only ``fn``, on the second connection."""
        rt = self._rt()
        return await anyio.to_thread.run_sync(
            lambda: fn(rt.reader, *args, **kwargs), limiter=rt.read_lock
        )

    def wants_json(self, request: Request) -> bool:
        accept = request.headers.get("accept", "").lower()
        return "application/json" in accept and "text/html" not in accept

    def root(self, request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    def respond(
        self,
        request: Request,
        template: str,
        data: Mapping[str, Any],
        *,
        status: int = 200,
        context: Mapping[str, Any] | None = None,
        background: BackgroundTask | None = None,
        csrf_nonce: str | None = None,
    ) -> Response:
        """The page ``template`` (or ``data`` as JSON), with a fresh CSRF cookie if given."""
        response: Response
        if self.wants_json(request):
            body = dict(data)
            if csrf_nonce is not None:
                body[CSRF_FIELD] = self.csrf.token(csrf_nonce, self.now().timestamp())
            response = JSONResponse(body, status_code=status, background=background)
        else:
            page = self.env.get_template(template).render(
                site=self.config.site,
                list_name=self.list_name,
                root=self.root(request),
                data=data,
                csrf_field=CSRF_FIELD,
                csrf_token=self.csrf.token(csrf_nonce, self.now().timestamp())
                if csrf_nonce
                else "",
                honeypot=HONEYPOT_FIELD,
                **{"title": self.list_name, "message": "", "error_message": "", **(context or {})},
            )
            response = HTMLResponse(page, status_code=status, background=background)
        if csrf_nonce is not None:
            response.set_cookie(
                CSRF_COOKIE,
                csrf_nonce,
                max_age=CSRF_TTL,
                path=self.root(request) or "/",
                secure=request.url.scheme == "https",
                httponly=True,
                samesite="strict",
            )
        return response

    def nonce(self, request: Request) -> str:
        """The browser's CSRF cookie if it has a good one, else a new one."""
        current = request.cookies.get(CSRF_COOKIE)
        return current if current is not None and Csrf.valid_nonce(current) else Csrf.new_nonce()

    def csrf_ok(self, request: Request, form: FormData) -> bool:
        token = form.get(CSRF_FIELD)
        return self.csrf.check(
            request.cookies.get(CSRF_COOKIE),
            token if isinstance(token, str) else None,
            self.now().timestamp(),
        )

    def error(self, request: Request, status: int, message: str) -> Response:
        return self.respond(
            request, "message.html", {"error": message}, status=status, context={"title": message}
        )

    async def read_form(self, request: Request) -> FormData:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
            raise HTTPException(415, "Send the form as application/x-www-form-urlencoded.")
        try:
            # One field may be as large as a whole body: the body cap (413) is the limit.
            return await request.form(
                max_files=0, max_fields=MAX_FIELDS, max_part_size=self.settings.max_body
            )
        except HTTPException:
            raise
        except Exception as e:  # python-multipart's parse errors have no common base
            raise HTTPException(400, "The form could not be read.") from e

    @staticmethod
    def field(form: FormData, name: str, limit: int = 1024) -> str:
        value = form.get(name)
        if not isinstance(value, str):
            return ""
        if len(value) > limit:
            raise HTTPException(400, f"The field {name!r} is too long.")
        return value

    def token_of(self, request: Request, form: FormData | None = None) -> str:
        """The link's token, from the query string or the form (not two different ones)."""
        from_query = request.query_params.get("token", "")
        from_form = self.field(form, "token", 2048) if form is not None else ""
        if from_query and from_form and from_query != from_form:
            return ""
        return from_query or from_form

    def verify(self, purpose: tokens.Purpose, token: str) -> str:
        return tokens.verify(self.secret, purpose, token, now=self.now())

    def link(self, path: str, token: str) -> str:
        """An absolute link for a mail: always from ``base_url``, never from the request."""
        return f"{self.base_url}/{path}?token={token}"

    def choices(self, chosen: tuple[str, ...] | None) -> list[dict[str, Any]]:
        return [
            {
                "slug": slug,
                "title": self.catalogue.titles[slug],
                "checked": not chosen or slug in chosen,
            }
            for slug in self.catalogue.categories
        ]

    def chosen_categories(self, form: FormData) -> tuple[str, ...] | None:
        """The ticked categories; none ticked or all ticked means all (and future ones)."""
        values = [v for v in form.getlist("categories") if isinstance(v, str)]
        categories = subscribers.check_categories(self.catalogue, values)
        if categories is not None and set(categories) >= set(self.catalogue.categories):
            return None
        return categories

    def client_key(self, request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def too_many(self, request: Request, wait: float) -> Response:
        minutes = max(1, round(wait / 60))
        response = self.respond(
            request,
            "message.html",
            {"error": "too many requests", "retry_after": int(wait) + 1},
            status=429,
            context={
                "title": "Too many attempts",
                "message": f"Too many attempts from here. Please try again in {minutes} "
                f"minute{'s' if minutes != 1 else ''}.",
            },
        )
        response.headers["retry-after"] = str(int(wait) + 1)
        return response

    # --- mails ------------------------------------------------------------------------------

    def compose(self, template: str, to: subscribers.Subscriber, **context: Any) -> bytes:
        """A plain-text mail from ``template`` (its ``subject`` variable is the subject)."""
        now = self.now()
        module = self.env.get_template(template).make_module(
            {
                "site": self.config.site,
                "list_name": self.list_name,
                "subscriber": to,
                **context,
            }
        )
        subject = " ".join(str(getattr(module, "subject", self.list_name)).split())
        ascii_only = to.email.isascii()
        msg = EmailMessage(policy=email.policy.SMTP if ascii_only else email.policy.SMTPUTF8)
        digest = self.config.require_digest()
        msg["From"] = digest.from_addr
        msg["To"] = formataddr((to.name, to.email)) if to.name else to.email
        if digest.reply_to:
            msg["Reply-To"] = digest.reply_to
        msg["Subject"] = subject
        msg["Date"] = format_datetime(now)
        msg["Message-ID"] = make_msgid(domain=urlsplit(self.config.site.url).hostname)
        # RFC 3834: an automatic answer to a request, so vacation responders stay quiet.
        msg["Auto-Submitted"] = "auto-replied"
        msg.set_content(str(module).strip() + "\n")
        return msg.as_bytes()

    def send_later(self, recipient: str, data: bytes) -> BackgroundTask:
        """Send after the response: the answer never waits for (or reveals) the SMTP server."""
        return BackgroundTask(self._rt().mailer.send, recipient, data)

    # --- endpoints --------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        def probe(store: Store) -> dict[str, Any]:
            store.conn.execute("SELECT count(*) FROM subscribers").fetchone()
            return {"status": "ok", "store": "ok", "schema_version": store.schema_version}

        try:
            body = await self.read(probe)
        except Exception as e:  # any failure of the probe is what health must report
            log.error("health: store unreachable: %s", e)
            return JSONResponse({"status": "error", "store": str(e)}, status_code=503)
        return JSONResponse(body)

    def subscribe_form(
        self,
        request: Request,
        *,
        status: int = 200,
        email: str = "",
        name: str = "",
        chosen: tuple[str, ...] | None = None,
        message: str = "",
        error: str = "",
    ) -> Response:
        data: dict[str, Any] = {
            "fields": ["email", "name", "categories", CSRF_FIELD],
            "categories": [{"slug": c["slug"], "title": c["title"]} for c in self.choices(None)],
        }
        if error:
            data["error"] = error
        return self.respond(
            request,
            "subscribe.html",
            data,
            status=status,
            csrf_nonce=self.nonce(request),
            context={
                "title": f"Subscribe to {self.list_name}",
                "email": email,
                "name": name,
                "choices": self.choices(chosen),
                "message": message,
                "error_message": error,
            },
        )

    async def subscribe_get(self, request: Request) -> Response:
        return self.subscribe_form(request)

    async def subscribe_post(self, request: Request) -> Response:
        wait = self.by_client.hit(self.client_key(request))
        if wait is not None:
            return self.too_many(request, wait)
        form = await self.read_form(request)
        raw_email = self.field(form, "email", 320).strip()
        raw_name = self.field(form, "name", 400)
        if not self.csrf_ok(request, form):
            # An expired tab, a blocked cookie or a form embedded on another page: show the
            # form again, filled in, with a fresh token: one more click and it goes through.
            return self.subscribe_form(
                request,
                status=403,
                email=raw_email,
                name=raw_name,
                message="Please press Subscribe once more to confirm.",
                error="the form expired or came from another site; submit it again",
            )
        if self.field(form, HONEYPOT_FIELD):
            log.info("subscribe: honeypot filled by %s; ignored", self.client_key(request))
            return self.subscribed(request)
        try:
            address = subscribers.normalize_email(raw_email)
            name = subscribers.clean_name(raw_name)
            categories = self.chosen_categories(form)
        except subscribers.SubscriberError as e:
            return self.subscribe_form(
                request, status=422, email=raw_email, name=raw_name, error=e.message
            )
        wait = self.by_address.hit(subscribers.email_key(address))
        if wait is not None:
            return self.too_many(request, wait)
        subscriber, before = await self.db(
            subscribers.subscribe_pending,
            address,
            name=name,
            categories=categories,
            now=self.now(),
            origin="web",
        )
        if before in ("active", "paused"):
            # Confirmed already: tell the mailbox, not the browser (no enumeration).
            token = tokens.sign(self.secret, "preferences", subscriber.email)
            data = self.compose(
                "already_subscribed.txt",
                subscriber,
                preferences_url=self.link("preferences", token),
            )
        else:
            expires = self.now() + self.settings.confirm_ttl
            token = tokens.sign(self.secret, "confirm", subscriber.email, expires=expires)
            data = self.compose(
                "confirm.txt",
                subscriber,
                confirm_url=self.link("confirm", token),
                expires=expires.astimezone(self.config.site.tz),
            )
        return self.subscribed(request, background=self.send_later(subscriber.email, data))

    def subscribed(self, request: Request, *, background: BackgroundTask | None = None) -> Response:
        return self.respond(
            request,
            "subscribed.html",
            {"status": "ok", "message": "check your inbox for a confirmation link"},
            context={"title": "Check your inbox"},
            background=background,
        )

    async def confirm(self, request: Request) -> Response:
        try:
            address = self.verify("confirm", self.token_of(request))
        except tokens.TokenError as e:
            return self.error(request, 400, e.message)
        subscriber = await self.db(
            _change,
            address,
            now=self.now(),
            status="active",
            only_from=("pending",),
        )
        if subscriber is None or subscriber.status not in ("active", "paused"):
            # Unsubscribed (or bounced) since this link was sent: an old link must not
            # subscribe anyone again; a new subscription sends a new one.
            return self.error(request, 400, "this link is no longer valid; please subscribe again")
        return self.respond(
            request,
            "confirmed.html",
            {"status": subscriber.status, "email": subscriber.email},
            context={
                "title": "You're subscribed",
                "subscriber": subscriber,
                "preferences_url": self.local_link(request, "preferences", subscriber),
            },
        )

    def local_link(self, request: Request, path: str, subscriber: subscribers.Subscriber) -> str:
        purpose: tokens.Purpose = "preferences" if path == "preferences" else "unsubscribe"
        token = tokens.sign(self.secret, purpose, subscriber.email)
        return f"{self.root(request)}/{path}?token={token}"

    async def unsubscribe_get(self, request: Request) -> Response:
        token = self.token_of(request)
        try:
            address = self.verify("unsubscribe", token)
        except tokens.TokenError as e:
            return self.error(request, 400, e.message)
        subscriber = await self.read(subscribers.get_subscriber, address)
        status = subscriber.status if subscriber else "unsubscribed"
        return self.respond(
            request,
            "unsubscribe.html",
            {"email": address, "status": status},
            csrf_nonce=self.nonce(request),
            context={
                "title": f"Unsubscribe from {self.list_name}",
                "token": token,
                "email": subscriber.email if subscriber else address,
                "status": status,
            },
        )

    async def unsubscribe_post(self, request: Request) -> Response:
        form = await self.read_form(request)
        token = self.token_of(request, form)
        one_click = form.get(ONE_CLICK[0]) == ONE_CLICK[1]
        try:
            address = self.verify("unsubscribe", token)
        except tokens.TokenError as e:
            return self.error(request, 400, e.message)
        if not one_click and not self.csrf_ok(request, form):
            return self.respond(
                request,
                "unsubscribe.html",
                {"error": "the form expired; press the button again"},
                status=403,
                csrf_nonce=Csrf.new_nonce(),
                context={
                    "title": f"Unsubscribe from {self.list_name}",
                    "token": token,
                    "email": address,
                    "status": "active",
                    "message": "Please press the button once more.",
                },
            )
        subscriber = await self.db(self._unsubscribe, address)
        log.info("unsubscribed %s (%s)", address, "one-click" if one_click else "form")
        if one_click:
            # RFC 8058: a 200 and no further step; the mail provider shows nothing of it.
            return (
                JSONResponse({"status": "unsubscribed"})
                if self.wants_json(request)
                else (Response("Unsubscribed.\n", media_type="text/plain; charset=utf-8"))
            )
        return self.respond(
            request,
            "unsubscribed.html",
            {"status": "unsubscribed", "email": address},
            context={
                "title": "You're unsubscribed",
                "email": subscriber.email if subscriber else address,
                "subscribe_url": f"{self.root(request)}/subscribe",
            },
        )

    def _unsubscribe(self, store: Store, address: str) -> subscribers.Subscriber | None:
        return _change(
            store,
            address,
            now=self.now(),
            status="unsubscribed",
            only_from=("pending", "active", "paused", "bounced"),
        )

    def preferences_page(
        self,
        request: Request,
        token: str,
        subscriber: subscribers.Subscriber,
        *,
        status: int = 200,
        message: str = "",
        error: str = "",
    ) -> Response:
        data: dict[str, Any] = {
            "email": subscriber.email,
            "status": subscriber.status,
            "categories": list(subscriber.categories) if subscriber.categories else None,
            "choices": [c["slug"] for c in self.choices(None)],
        }
        if message:
            data["message"] = message
        if error:
            data["error"] = error
        return self.respond(
            request,
            "preferences.html",
            data,
            status=status,
            csrf_nonce=self.nonce(request),
            context={
                "title": "Your newsletter preferences",
                "subscriber": subscriber,
                "token": token,
                "choices": self.choices(subscriber.categories),
                "message": message,
                "error_message": error,
                "subscribe_url": f"{self.root(request)}/subscribe",
            },
        )

    async def preferences_get(self, request: Request) -> Response:
        token = self.token_of(request)
        try:
            address = self.verify("preferences", token)
        except tokens.TokenError as e:
            return self.error(request, 400, e.message)
        subscriber = await self.read(subscribers.get_subscriber, address)
        if subscriber is None:
            return self.error(request, 400, "there is no subscription for this link any more")
        return self.preferences_page(request, token, subscriber)

    async def preferences_post(self, request: Request) -> Response:
        form = await self.read_form(request)
        token = self.token_of(request, form)
        try:
            address = self.verify("preferences", token)
        except tokens.TokenError as e:
            return self.error(request, 400, e.message)
        action = self.field(form, "action", 32) or "save"
        current = await self.read(subscribers.get_subscriber, address)
        if current is None:
            return self.error(request, 400, "there is no subscription for this link any more")
        if not self.csrf_ok(request, form):
            return self.preferences_page(
                request,
                token,
                current,
                status=403,
                message="Nothing was changed: please press the button once more.",
                error="the form expired; submit it again",
            )
        now = self.now()
        changed: subscribers.Subscriber | None
        if action == "save":
            try:
                categories = self.chosen_categories(form)
            except subscribers.SubscriberError as e:
                return self.preferences_page(request, token, current, status=422, error=e.message)
            changed = await self.db(
                _change,
                address,
                now=now,
                categories=categories,
                only_from=("active", "paused"),
            )
            message = "Your choice of categories is saved."
        elif action == "pause":
            changed = await self.db(
                _change,
                address,
                now=now,
                status="paused",
                only_from=("active",),
            )
            message = "The newsletter is paused: you get nothing until you resume it."
        elif action == "resume":
            changed = await self.db(
                _change,
                address,
                now=now,
                status="active",
                only_from=("paused",),
            )
            message = "The newsletter is on again."
        elif action == "unsubscribe":
            changed = await self.db(self._unsubscribe, address)
            message = "You are unsubscribed: you get no more newsletters."
        else:
            raise HTTPException(400, "Unknown action.")
        if changed is None:
            return self.error(request, 400, "there is no subscription for this link any more")
        expected = {
            "pause": ("paused",),
            "resume": ("active",),
            "unsubscribe": ("unsubscribed",),
            "save": ("active", "paused"),
        }[action]
        if changed.status not in expected:
            message = f"Nothing was changed: this subscription is {changed.status}."
        return self.preferences_page(request, token, changed, message=message)

    async def not_found(self, request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            return self.error(request, exc.status_code, exc.detail)
        return self.error(request, 500, "something went wrong on our side")


def _change(store: Store, address: str, **changes: Any) -> subscribers.Subscriber | None:
    """``subscribers.update_subscriber``; None if the address is not (or no longer) known."""
    if subscribers.get_subscriber(store, address) is None:
        return None
    try:
        return subscribers.update_subscriber(store, address, **changes)
    except subscribers.SubscriberError:
        # Deleted (``subscribers remove --forget``) between the two looks.
        if subscribers.get_subscriber(store, address) is None:
            return None
        raise


def create_app(
    config: Config,
    store_path: Path,
    now: Clock,
    *,
    mailer_factory: Callable[[Config], Mailer] = SmtpMailer,
) -> Starlette:
    """The ASGI application for ``config`` over the store at ``store_path``.

    ``now`` gives the current time (tokens expire by it). The store is opened when the
    server starts (ASGI lifespan) and closed when it stops; ``mailer_factory`` makes the
    mailer then (the SMTP pool from ``[smtp]`` by default).
    """
    config.require_digest()  # the confirmation mail's From
    service = _Service(config, store_path, now, mailer_factory)
    settings = service.settings
    middleware = []
    if settings.trusted_proxies:
        # Only these peers may say who the client is: the rate limit keys on it.
        middleware.append(
            Middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))
        )
    middleware += [Middleware(SecurityHeaders), Middleware(BodyLimit, max_body=settings.max_body)]
    routes = [
        Route("/health", service.health, methods=["GET"]),
        Route("/subscribe", service.subscribe_get, methods=["GET"]),
        Route("/subscribe", service.subscribe_post, methods=["POST"]),
        Route("/confirm", service.confirm, methods=["GET"]),
        Route("/unsubscribe", service.unsubscribe_get, methods=["GET"]),
        Route("/unsubscribe", service.unsubscribe_post, methods=["POST"]),
        Route("/preferences", service.preferences_get, methods=["GET"]),
        Route("/preferences", service.preferences_post, methods=["POST"]),
    ]
    return Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=service.lifespan,
        exception_handlers={HTTPException: service.not_found, Exception: service.not_found},
    )
