"""The answers of ``serve``: a page rendered from ``templates/web``, or the same data as JSON.

A client that sends ``Accept: application/json`` (and not ``text/html``) gets JSON; anyone
else gets the HTML page. A page with a form also gets a fresh CSRF cookie and field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from kcrush_feeds import templating
from kcrush_feeds.config import SiteConfig, SubscriptionsConfig
from kcrush_feeds.web.guards import CSRF_COOKIE, CSRF_FIELD, CSRF_TTL, HONEYPOT_FIELD, Csrf


def template_environment(settings: SubscriptionsConfig, base_dir: Path) -> jinja2.Environment:
    """Jinja for the pages and mails: the editor's directory first, then the built-ins."""
    overrides = []
    if settings.templates_dir is not None:
        directory = settings.templates_dir
        overrides.append(directory if directory.is_absolute() else base_dir / directory)
    return templating.environment(
        templating.loader("templates/web", overrides),
        autoescape=templating.by_extension("html"),
        auto_reload=False,  # read once at start: no stat() of every template per request
    )


def wants_json(request: Request) -> bool:
    """True if the client asked for JSON rather than a page."""
    accept = request.headers.get("accept", "").lower()
    return "application/json" in accept and "text/html" not in accept


def root(request: Request) -> str:
    """The path prefix the app is served under ("" at the top), without a trailing slash."""
    return str(request.scope.get("root_path", "")).rstrip("/")


class Pages:
    """Renders the answers: every page sees the site, the list's name and the CSRF names."""

    def __init__(
        self,
        env: jinja2.Environment,
        csrf: Csrf,
        *,
        site: SiteConfig,
        list_name: str,
        now: Callable[[], datetime],
    ) -> None:
        self.env = env
        self.csrf = csrf
        self.site = site
        self.list_name = list_name
        self.now = now

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
        if wants_json(request):
            body = dict(data)
            if csrf_nonce is not None:
                body[CSRF_FIELD] = self.csrf.token(csrf_nonce, self.now().timestamp())
            response = JSONResponse(body, status_code=status, background=background)
        else:
            page = self.env.get_template(template).render(
                site=self.site,
                list_name=self.list_name,
                root=root(request),
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
                path=root(request) or "/",
                secure=request.url.scheme == "https",
                httponly=True,
                samesite="strict",
            )
        return response

    def error(self, request: Request, status: int, message: str) -> Response:
        """The message page with ``message`` as the error, answered with ``status``."""
        return self.respond(
            request, "message.html", {"error": message}, status=status, context={"title": message}
        )

    def too_many(self, request: Request, wait: float) -> Response:
        """429 with ``Retry-After``: the rate limit allows another try in ``wait`` seconds."""
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
