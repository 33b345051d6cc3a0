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
- ``GET/POST /approve?token=``: a digest proof's approve link (``approve``): a page with a
  button; only its CSRF-checked POST approves.
- ``GET /health``: JSON, 200 when the store answers.

One module per job: ``guards`` (rate limits, CSRF, trusted proxies, request checks),
``pages`` (templates in ``templates/web``, overridden by ``subscriptions.templates_dir``;
JSON for a client that sends ``Accept: application/json``), ``mail`` (the confirmation
mails), ``service`` (the state every flow shares: settings, store connections, links), one
module per flow (``subscribe``, ``unsubscribe``, ``preferences``), ``server`` (uvicorn).
This module puts them together: the routes, the lifespan, the error pages, ``/health``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kcrush_feeds.config import Config
from kcrush_feeds.errors import StoreError
from kcrush_feeds.store import subscribers as store_subscribers
from kcrush_feeds.store.db import Store
from kcrush_feeds.web import guards
from kcrush_feeds.web.approve import Approve
from kcrush_feeds.web.mail import Mailer, SmtpMailer
from kcrush_feeds.web.preferences import Preferences
from kcrush_feeds.web.service import Clock, Service
from kcrush_feeds.web.subscribe import Subscribe
from kcrush_feeds.web.unsubscribe import Unsubscribe
from kcrush_feeds.web.webhooks import Webhooks, webhook_routes

log = logging.getLogger("kcrush_feeds.web.app")


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
    service = Service(config, store_path, now, mailer_factory)
    subscribe = Subscribe(service)
    unsubscribe = Unsubscribe(service)
    preferences = Preferences(service)
    approve = Approve(service)

    async def health(request: Request) -> Response:
        def probe(store: Store) -> dict[str, Any]:
            store_subscribers.count_all(store)
            return {"status": "ok", "store": "ok", "schema_version": store.schema_version}

        try:
            body = await service.read(probe)
        except Exception as e:  # any failure of the probe is what health must report
            log.error("health: store unreachable: %s", e)
            return JSONResponse({"status": "error", "store": str(e)}, status_code=503)
        return JSONResponse(body)

    async def error_page(request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            return service.pages.error(request, exc.status_code, exc.detail)
        if isinstance(exc, StoreError):
            # A full disk, a locked or read-only store: temporary, and not the visitor's
            # doing. 503 tells them (and any proxy) to come back.
            log.error("%s %s: %s", request.method, request.url.path, exc.message)
            response = service.pages.error(
                request, 503, "we cannot save this right now; please try again in a minute"
            )
            response.headers["Retry-After"] = "60"
            return response
        return service.pages.error(request, 500, "something went wrong on our side")

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/subscribe", subscribe.get, methods=["GET"]),
        Route("/subscribe", subscribe.post, methods=["POST"]),
        Route("/confirm", subscribe.confirm, methods=["GET"]),
        Route("/unsubscribe", unsubscribe.get, methods=["GET"]),
        Route("/unsubscribe", unsubscribe.post, methods=["POST"]),
        Route("/preferences", preferences.get, methods=["GET"]),
        Route("/preferences", preferences.post, methods=["POST"]),
        Route("/approve", approve.get, methods=["GET"]),
        Route("/approve", approve.post, methods=["POST"]),
    ]
    # Returned mail: the relays' bounce and complaint webhooks (see web/webhooks.py).
    routes += webhook_routes(Webhooks(config, service.db, now))
    app = Starlette(
        routes=routes,
        middleware=guards.middleware(service.settings),
        lifespan=service.lifespan,
        exception_handlers={HTTPException: error_page, Exception: error_page},
    )
    # No endpoint redirects: Starlette's slash redirect ("/subscribe/" -> "/subscribe") would
    # build its Location from the request's Host header, an open redirect. A 404 instead.
    app.router.redirect_slashes = False
    return app
