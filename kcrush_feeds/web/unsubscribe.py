"""Leaving: ``GET/POST /unsubscribe?token=``.

The GET is a page with one button; it changes nothing (mail scanners follow links). The
POST is that button (CSRF-checked), or the RFC 8058 one-click POST of a mail provider (body
``List-Unsubscribe=One-Click``, no cookie, no CSRF token).
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from kcrush_feeds import tokens
from kcrush_feeds.subscriptions import subscribers
from kcrush_feeds.web import guards
from kcrush_feeds.web.guards import ONE_CLICK
from kcrush_feeds.web.pages import root, wants_json
from kcrush_feeds.web.service import Service

log = logging.getLogger("kcrush_feeds.web.app")


class Unsubscribe:
    """The unsubscribe page and its button (or the one-click POST)."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def get(self, request: Request) -> Response:
        """``GET /unsubscribe``: the page with the button; nothing changes yet."""
        service = self.service
        token = guards.token_of(request)
        try:
            address = service.verify("unsubscribe", token)
        except tokens.TokenError as e:
            return service.pages.error(request, 400, e.message)
        subscriber = await service.read(subscribers.get_subscriber, address)
        status = subscriber.status if subscriber else "unsubscribed"
        return service.pages.respond(
            request,
            "unsubscribe.html",
            {"email": address, "status": status},
            csrf_nonce=service.csrf.nonce_for(request),
            context={
                "title": f"Unsubscribe from {service.list_name}",
                "token": token,
                "email": subscriber.email if subscriber else address,
                "status": status,
            },
        )

    async def post(self, request: Request) -> Response:
        """``POST /unsubscribe``: the button, or RFC 8058 one-click."""
        service = self.service
        form = await service.read_form(request)
        token = guards.token_of(request, form)
        one_click = form.get(ONE_CLICK[0]) == ONE_CLICK[1]
        try:
            address = service.verify("unsubscribe", token)
        except tokens.TokenError as e:
            return service.pages.error(request, 400, e.message)
        if not one_click and not service.csrf_ok(request, form):
            return service.pages.respond(
                request,
                "unsubscribe.html",
                {"error": "the form expired; press the button again"},
                status=403,
                csrf_nonce=service.csrf.new_nonce(),
                context={
                    "title": f"Unsubscribe from {service.list_name}",
                    "token": token,
                    "email": address,
                    "status": "active",
                    "message": "Please press the button once more.",
                },
            )
        subscriber = await service.db(service.unsubscribe, address)
        log.info("unsubscribed %s (%s)", address, "one-click" if one_click else "form")
        if one_click:
            # RFC 8058: a 200 and no further step; the mail provider shows nothing of it.
            return (
                JSONResponse({"status": "unsubscribed"})
                if wants_json(request)
                else (Response("Unsubscribed.\n", media_type="text/plain; charset=utf-8"))
            )
        return service.pages.respond(
            request,
            "unsubscribed.html",
            {"status": "unsubscribed", "email": address},
            context={
                "title": "You're unsubscribed",
                "email": subscriber.email if subscriber else address,
                "subscribe_url": f"{root(request)}/subscribe",
            },
        )
