"""A subscriber's own page: ``GET/POST /preferences?token=``: categories, pause/resume,
unsubscribe.

What each button does is written once, in ``ACTIONS``: the change, the states it applies
to, the states that mean it worked, and what the page then says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from kcrush_feeds import tokens
from kcrush_feeds.model import Subscriber
from kcrush_feeds.subscriptions import subscribers
from kcrush_feeds.web import guards
from kcrush_feeds.web.pages import root
from kcrush_feeds.web.service import UNSUBSCRIBABLE, Service, change

GONE = "there is no subscription for this link any more"


@dataclass(frozen=True, slots=True)
class Action:
    """One button of the preferences form."""

    status: str | None  # the state it sets; None: it changes the categories only
    only_from: tuple[str, ...]  # the states it applies to (else nothing changes)
    expected: tuple[str, ...]  # the states after it that mean it was done
    message: str  # what the page says when it was done


ACTIONS: dict[str, Action] = {
    "save": Action(
        None, ("active", "paused"), ("active", "paused"), "Your choice of categories is saved."
    ),
    "pause": Action(
        "paused",
        ("active",),
        ("paused",),
        "The newsletter is paused: you get nothing until you resume it.",
    ),
    "resume": Action("active", ("paused",), ("active",), "The newsletter is on again."),
    "unsubscribe": Action(
        "unsubscribed",
        UNSUBSCRIBABLE,
        ("unsubscribed",),
        "You are unsubscribed: you get no more newsletters.",
    ),
}


class Preferences:
    """The preferences page and its buttons."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def page(
        self,
        request: Request,
        token: str,
        subscriber: Subscriber,
        *,
        status: int = 200,
        message: str = "",
        error: str = "",
    ) -> Response:
        """The page for ``subscriber``, saying ``message`` (and ``error``) on top."""
        service = self.service
        data: dict[str, Any] = {
            "email": subscriber.email,
            "status": subscriber.status,
            "categories": list(subscriber.categories) if subscriber.categories else None,
            "choices": [c["slug"] for c in service.choices(None)],
        }
        if message:
            data["message"] = message
        if error:
            data["error"] = error
        return service.pages.respond(
            request,
            "preferences.html",
            data,
            status=status,
            csrf_nonce=service.csrf.nonce_for(request),
            context={
                "title": "Your newsletter preferences",
                "subscriber": subscriber,
                "token": token,
                "choices": service.choices(subscriber.categories),
                "message": message,
                "error_message": error,
                "subscribe_url": f"{root(request)}/subscribe",
            },
        )

    async def get(self, request: Request) -> Response:
        """``GET /preferences``: the page."""
        service = self.service
        token = guards.token_of(request)
        try:
            address = service.verify("preferences", token)
        except tokens.TokenError as e:
            return service.pages.error(request, 400, e.message)
        subscriber = await service.read(subscribers.get_subscriber, address)
        if subscriber is None:
            return service.pages.error(request, 400, GONE)
        return self.page(request, token, subscriber)

    async def post(self, request: Request) -> Response:
        """``POST /preferences``: one of ``ACTIONS`` (``action`` field; "save" if none)."""
        service = self.service
        form = await service.read_form(request)
        token = guards.token_of(request, form)
        try:
            address = service.verify("preferences", token)
        except tokens.TokenError as e:
            return service.pages.error(request, 400, e.message)
        name = guards.field(form, "action", 32) or "save"
        current = await service.read(subscribers.get_subscriber, address)
        if current is None:
            return service.pages.error(request, 400, GONE)
        if not service.csrf_ok(request, form):
            return self.page(
                request,
                token,
                current,
                status=403,
                message="Nothing was changed: please press the button once more.",
                error="the form expired; submit it again",
            )
        action = ACTIONS.get(name)
        if action is None:
            raise HTTPException(400, "Unknown action.")
        changes: dict[str, Any] = {}
        if action.status is None:
            try:
                changes["categories"] = service.chosen_categories(form)
            except subscribers.SubscriberError as e:
                return self.page(request, token, current, status=422, error=e.message)
        else:
            changes["status"] = action.status
        changed = await service.db(
            change, address, now=service.now(), only_from=action.only_from, **changes
        )
        if changed is None:
            return service.pages.error(request, 400, GONE)
        message = action.message
        if changed.status not in action.expected:
            message = f"Nothing was changed: this subscription is {changed.status}."
        return self.page(request, token, changed, message=message)
