"""Signing up: ``GET/POST /subscribe`` (the form, double opt-in) and ``GET /confirm``.

A POST makes the address ``pending`` and mails a signed, expiring confirm link. The answer
is the same whether or not the address was known, so the form cannot be used to find out
who subscribes: someone subscribed already is told so by mail, not in the browser.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from kcrush_feeds import tokens
from kcrush_feeds.model import Subscriber
from kcrush_feeds.store import subscribers as store_subscribers
from kcrush_feeds.store.db import Store
from kcrush_feeds.subscriptions import subscribers
from kcrush_feeds.web import guards
from kcrush_feeds.web.guards import CSRF_FIELD, HONEYPOT_FIELD
from kcrush_feeds.web.service import Service, change

log = logging.getLogger("kcrush_feeds.web.app")


class Subscribe:
    """The subscribe form and the confirm link."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def form(
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
        """The form page, filled in with what was sent (after an error)."""
        service = self.service
        data: dict[str, Any] = {
            "fields": ["email", "name", "categories", CSRF_FIELD],
            "categories": [{"slug": c["slug"], "title": c["title"]} for c in service.choices(None)],
        }
        if error:
            data["error"] = error
        return service.pages.respond(
            request,
            "subscribe.html",
            data,
            status=status,
            csrf_nonce=service.csrf.nonce_for(request),
            context={
                "title": f"Subscribe to {service.list_name}",
                "email": email,
                "name": name,
                "choices": service.choices(chosen),
                "message": message,
                "error_message": error,
            },
        )

    async def get(self, request: Request) -> Response:
        """``GET /subscribe``: the empty form."""
        return self.form(request)

    async def post(self, request: Request) -> Response:
        """``POST /subscribe``: make the address pending and mail the confirm link."""
        service = self.service
        wait = service.by_client.hit(guards.client_key(request))
        if wait is not None:
            return service.pages.too_many(request, wait)
        form = await service.read_form(request)
        raw_email = guards.field(form, "email", 320).strip()
        raw_name = guards.field(form, "name", 400)
        if not service.csrf_ok(request, form):
            # An expired tab, a blocked cookie or a form embedded on another page: show the
            # form again, filled in, with a fresh token: one more click and it goes through.
            return self.form(
                request,
                status=403,
                email=raw_email,
                name=raw_name,
                message="Please press Subscribe once more to confirm.",
                error="the form expired or came from another site; submit it again",
            )
        if guards.field(form, HONEYPOT_FIELD):
            log.info("subscribe: honeypot filled by %s; ignored", guards.client_key(request))
            return self.subscribed(request)
        try:
            address = subscribers.normalize_email(raw_email)
            name = subscribers.clean_name(raw_name)
            categories = service.chosen_categories(form)
        except subscribers.SubscriberError as e:
            return self.form(request, status=422, email=raw_email, name=raw_name, error=e.message)
        if not service.by_mailbox.allow(address):
            # This mailbox had its mails for now (maybe asked for by someone else): the
            # same answer as always, no mail; the link sent before still confirms.
            log.info("subscribe: mail limit reached for a mailbox; nothing changed or sent")
            return self.subscribed(request)
        subscriber, before = await service.db(
            subscribers.subscribe_pending,
            address,
            name=name,
            categories=categories,
            now=service.now(),
            origin="web",
        )
        if before in ("active", "paused"):
            # Confirmed already: tell the mailbox, not the browser (no enumeration).
            token = tokens.sign(service.secret, "preferences", subscriber.email)
            data = service.mails.compose(
                "already_subscribed.txt",
                subscriber,
                preferences_url=service.link("preferences", token),
            )
        else:
            expires = service.now() + service.settings.confirm_ttl
            current = await service.db(store_subscribers.confirm_generation, subscriber.email)
            token = tokens.sign(
                service.secret, "confirm", subscriber.email, expires=expires, generation=current
            )
            data = service.mails.compose(
                "confirm.txt",
                subscriber,
                confirm_url=service.link("confirm", token),
                expires=expires.astimezone(service.config.site.tz),
            )
        return self.subscribed(request, background=service.send_later(subscriber.email, data))

    def subscribed(self, request: Request, *, background: BackgroundTask | None = None) -> Response:
        """The "check your inbox" page: the same for a new, a known and a bot's address."""
        return self.service.pages.respond(
            request,
            "subscribed.html",
            {"status": "ok", "message": "check your inbox for a confirmation link"},
            context={"title": "Check your inbox"},
            background=background,
        )

    async def confirm(self, request: Request) -> Response:
        """``GET /confirm?token=``: ``pending`` -> ``active`` (idempotent)."""
        service = self.service
        try:
            claim = service.verify_claim("confirm", guards.token_of(request))
        except tokens.TokenError as e:
            return service.pages.error(request, 400, e.message)
        subscriber = await service.db(self._confirm, claim)
        if subscriber is None or subscriber.status not in ("active", "paused"):
            # Unsubscribed (or bounced) since this link was sent: an old link must not
            # subscribe anyone again; a new subscription sends a new one.
            return service.pages.error(
                request, 400, "this link is no longer valid; please subscribe again"
            )
        return service.pages.respond(
            request,
            "confirmed.html",
            {"status": subscriber.status, "email": subscriber.email},
            context={
                "title": "You're subscribed",
                "subscriber": subscriber,
                "preferences_url": service.local_link(request, "preferences", subscriber),
            },
        )

    def _confirm(self, store: Store, claim: tokens.Claim) -> Subscriber | None:
        """``pending`` -> ``active`` if the link is of the address's current generation
        (runs through ``service.db``); the subscriber as it is then, None if unknown."""
        current = store_subscribers.confirm_generation(store, claim.address)
        if current is None:
            return None
        if not self._same_generation(claim, current):
            return subscribers.get_subscriber(store, claim.address)
        return change(
            store, claim.address, now=self.service.now(), status="active", only_from=("pending",)
        )

    def _same_generation(self, claim: tokens.Claim, current: str) -> bool:
        if claim.generation is not None:
            return claim.generation == current
        # A link sent before generations existed: good unless the address unsubscribed
        # after it was sent (sent = its expiry less the confirm_ttl).
        if not current or claim.expires is None:
            return not current
        sent = claim.expires - self.service.settings.confirm_ttl.total_seconds()
        return int(current) < sent
