"""What every flow of ``serve`` shares: settings, the store connections, links and mails.

Every change is one store transaction (``subscribers``). The store's one SQLite connection
is used by one worker thread at a time (``db``), so the event loop never blocks on a disk
sync and two requests never share the connection at once; pages that only look read on a
second connection (``read``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.datastructures import FormData
from starlette.requests import Request

from kcrush_feeds import tokens
from kcrush_feeds.catalogue import Catalogue
from kcrush_feeds.config import Config, SubscriptionsConfig
from kcrush_feeds.model import Subscriber
from kcrush_feeds.store.db import Store
from kcrush_feeds.subscriptions import subscribers
from kcrush_feeds.web import guards
from kcrush_feeds.web.guards import Csrf, MailboxLimit, SlidingWindow
from kcrush_feeds.web.mail import Mailer, Mails
from kcrush_feeds.web.pages import Pages, root, template_environment

T = TypeVar("T")
Clock = Callable[[], datetime]

# Any subscription but an unsubscribed one can be ended (a bounced one too).
UNSUBSCRIBABLE = ("pending", "active", "paused", "bounced")


@dataclass
class _Runtime:
    """What only exists while the server runs (opened by the lifespan)."""

    store: Store  # every change goes through this connection, one at a time
    db_lock: anyio.CapacityLimiter
    reader: Store  # pages that only look: WAL lets them read while a change commits
    read_lock: anyio.CapacityLimiter
    mailer: Mailer


@dataclass
class Service:
    """The server's state, built once from the config; the flows call into it."""

    config: Config
    store_path: Path
    now: Clock
    mailer_factory: Callable[[Config], Mailer]
    settings: SubscriptionsConfig = field(init=False)
    secret: bytes = field(init=False)
    catalogue: Catalogue = field(init=False)
    csrf: Csrf = field(init=False)
    by_client: SlidingWindow = field(init=False)
    by_mailbox: MailboxLimit = field(init=False)
    list_name: str = field(init=False)
    base_url: str = field(init=False)
    pages: Pages = field(init=False)
    mails: Mails = field(init=False)
    runtime: _Runtime | None = None

    def __post_init__(self) -> None:
        self.settings = self.config.require_subscriptions()
        self.secret = self.settings.secret()
        self.catalogue = Catalogue.from_config(self.config)
        self.csrf = Csrf(self.secret)
        window = self.settings.rate_limit_window.total_seconds()
        self.by_client = SlidingWindow(self.settings.rate_limit_client, window)
        limit = self.settings.rate_limit_address
        # A day allows at least what one window does, so the window's limit stays true.
        per_day = max(guards.MAILS_PER_MAILBOX_PER_DAY, limit)
        self.by_mailbox = MailboxLimit(limit, window, per_day=per_day)
        digest = self.config.digest
        self.list_name = (parseaddr(digest.from_addr)[0] if digest else "") or (
            f"{self.config.site.title} newsletter"
        )
        self.base_url = self.settings.base_url.rstrip("/")
        env = template_environment(self.settings, self.config.base_dir)
        self.pages = Pages(
            env, self.csrf, site=self.config.site, list_name=self.list_name, now=self.now
        )
        self.mails = Mails(env, self.config, list_name=self.list_name, now=self.now)

    # --- plumbing ---------------------------------------------------------------------------

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Open the store (twice: changes and reads) and the mailer while the server runs."""
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

    def send_later(self, recipient: str, data: bytes) -> BackgroundTask:
        """Send after the response: the answer never waits for (or reveals) the SMTP server."""
        return BackgroundTask(self._rt().mailer.send, recipient, data)

    # --- requests ---------------------------------------------------------------------------

    async def read_form(self, request: Request) -> FormData:
        """The posted form, within ``subscriptions.max_body``."""
        return await guards.read_form(request, self.settings.max_body)

    def csrf_ok(self, request: Request, form: FormData) -> bool:
        """True if the form carries a good CSRF field for the browser's cookie."""
        return guards.csrf_ok(self.csrf, request, form, self.now().timestamp())

    def verify(self, purpose: tokens.Purpose, token: str) -> str:
        """The address ``token`` was signed for, or ``tokens.TokenError``."""
        return tokens.verify(self.secret, purpose, token, now=self.now())

    def verify_claim(self, purpose: tokens.Purpose, token: str) -> tokens.Claim:
        """All that ``token`` carries, or ``tokens.TokenError``."""
        return tokens.verify_claim(self.secret, purpose, token, now=self.now())

    def link(self, path: str, token: str) -> str:
        """An absolute link for a mail: always from ``base_url``, never from the request."""
        return f"{self.base_url}/{path}?token={token}"

    def local_link(self, request: Request, path: str, subscriber: Subscriber) -> str:
        """A signed link to ``path`` on this server, for a page (relative to the request)."""
        purpose: tokens.Purpose = "preferences" if path == "preferences" else "unsubscribe"
        token = tokens.sign(self.secret, purpose, subscriber.email)
        return f"{root(request)}/{path}?token={token}"

    def choices(self, chosen: tuple[str, ...] | None) -> list[dict[str, Any]]:
        """The categories as a form shows them, ticked if chosen (all when none are)."""
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

    # --- changes (run through ``db``) -------------------------------------------------------

    def unsubscribe(self, store: Store, address: str) -> Subscriber | None:
        """End the subscription of ``address`` (whatever its state); None if unknown."""
        return change(
            store, address, now=self.now(), status="unsubscribed", only_from=UNSUBSCRIBABLE
        )


def change(store: Store, address: str, **changes: Any) -> Subscriber | None:
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
