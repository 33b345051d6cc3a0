"""Approving a digest from its proof: ``GET/POST /approve?token=``.

The proof's link opens a page with one button: a GET never approves (mail scanners and
link previews follow links). The button's POST, CSRF-checked, approves the revision the
proof showed; a token that was tampered with, has expired, or is for a revision edited
since (a newer proof went out) is refused and changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from kcrush_feeds import tokens
from kcrush_feeds.store import editorial as store_editorial
from kcrush_feeds.store.db import Store
from kcrush_feeds.store.editorial import SendingBegan
from kcrush_feeds.web import guards
from kcrush_feeds.web.service import Service

log = logging.getLogger("kcrush_feeds.web.app")


@dataclass(frozen=True, slots=True)
class _Looked:
    digest_id: int | None
    items: int
    revision: int
    approved: bool
    began: bool


def _look(store: Store, period: str) -> _Looked:
    digest_id = store_editorial.digest_id_of(store, period)
    if digest_id is None:
        return _Looked(None, 0, 0, False, False)
    row = store_editorial.get_editorial(store, digest_id)
    items = next(
        (
            listing.items - len(listing.editorial.drops)
            for listing in store_editorial.list_digests(store)
            if listing.id == digest_id
        ),
        0,
    )
    began = store_editorial.sending_began(store.conn, digest_id)
    return _Looked(digest_id, items, row.revision, row.approved, began)


class Approve:
    """The approve page and its button."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def _verify(self, token: str) -> tuple[str, str, int]:
        service = self.service
        return tokens.verify_approval(service.secret, token, now=service.now())

    def _state_message(self, looked: _Looked, period: str, revision: int) -> str | None:
        if looked.digest_id is None:
            return f"There is no {period} digest."
        if looked.began:
            return f"The {period} digest is being sent (or was sent) already."
        if looked.revision != revision:
            return (
                f"This proof of the {period} digest is out of date: it was edited since, "
                "and a new proof goes out with the next send run."
            )
        if looked.approved:
            return f"The {period} digest is approved already; it goes out with the next send run."
        return None

    def _page(
        self,
        request: Request,
        token: str,
        editor: str,
        period: str,
        looked: _Looked,
        *,
        status: int = 200,
        state_message: str | None,
        message: str = "",
        nonce: str | None = None,
    ) -> Response:
        service = self.service
        return service.pages.respond(
            request,
            "approve.html",
            {"period": period, "can_approve": state_message is None, "state": state_message},
            status=status,
            csrf_nonce=nonce or service.csrf.nonce_for(request),
            context={
                "title": f"Approve the {period} digest",
                "token": token,
                "editor": editor,
                "period": period,
                "items": looked.items,
                "can_approve": state_message is None,
                "state_message": state_message or "",
                "message": message,
            },
        )

    async def get(self, request: Request) -> Response:
        """``GET /approve``: the page with the button; nothing changes."""
        service = self.service
        token = guards.token_of(request)
        try:
            editor, period, revision = self._verify(token)
        except tokens.TokenError as e:
            return service.pages.error(request, 400, e.message)
        looked = await service.read(_look, period)
        return self._page(
            request,
            token,
            editor,
            period,
            looked,
            state_message=self._state_message(looked, period, revision),
        )

    async def post(self, request: Request) -> Response:
        """``POST /approve``: the button (CSRF-checked) approves the proof's revision."""
        service = self.service
        form = await service.read_form(request)
        token = guards.token_of(request, form)
        try:
            editor, period, revision = self._verify(token)
        except tokens.TokenError as e:
            return service.pages.error(request, 400, e.message)
        looked = await service.read(_look, period)
        if not service.csrf_ok(request, form):
            return self._page(
                request,
                token,
                editor,
                period,
                looked,
                status=403,
                state_message=self._state_message(looked, period, revision),
                message="The form expired: please press the button once more.",
                nonce=service.csrf.new_nonce(),
            )
        if looked.digest_id is None:
            return service.pages.error(request, 404, f"there is no {period} digest")
        try:
            row = await service.db(
                store_editorial.approve,
                looked.digest_id,
                service.now(),
                by=editor,
                revision=revision,
            )
        except SendingBegan:
            return service.pages.error(request, 409, f"the {period} digest is being sent already")
        if row is None:
            return service.pages.error(
                request, 409, "this proof is out of date: the digest was edited since"
            )
        log.info("digest %s: revision %d approved by %s", period, revision, editor)
        return service.pages.respond(
            request,
            "message.html",
            {"status": "approved", "period": period, "revision": revision, "error": ""},
            context={
                "title": f"The {period} digest is approved",
                "message": "It goes out to subscribers with the next send run.",
            },
        )
