"""The outbox of ``serve``: confirmation and welcome mail kept until the server took it.

A mail is written to the store (``store.editorial`` outbox) before the answer goes out, then
sent in the background. A temporary failure (the SMTP server down, a 4xx) is retried with
backoff (``subscriptions.mail_retry``, doubling, at most ten minutes apart) for
``subscriptions.mail_retry_for`` (an hour by default), after which the mail is given up and
logged; a permanent refusal (5xx) is not retried. Because the queue lives in the store, a
restart of ``serve`` picks up what was left: nothing claims "a later run retries" without a
later run doing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from kcrush_feeds.model import Outcome, SendResult
from kcrush_feeds.store import editorial as outbox
from kcrush_feeds.store.db import Store

log = logging.getLogger("kcrush_feeds.web.outbox")

T = TypeVar("T")
MAX_DELAY = timedelta(minutes=10)
POLL = 30.0  # seconds between looks at the queue when nothing kicks the worker


class Sends(Protocol):
    async def send(self, recipient: str, data: bytes) -> SendResult: ...


Db = Callable[..., Awaitable[Any]]


def next_delay(attempts: int, first: timedelta) -> timedelta:
    """The wait after ``attempts`` failed attempts: ``first``, doubling, capped."""
    return min(first * (1 << min(attempts, 16)), MAX_DELAY)


class OutboxWorker:
    """Sends what the outbox holds, as soon as it is kicked and again when retries are due."""

    def __init__(
        self,
        db: Db,
        mailer: Sends,
        now: Callable[[], datetime],
        *,
        first_retry: timedelta,
        give_up_after: timedelta,
    ) -> None:
        self.db = db
        self.mailer = mailer
        self.now = now
        self.first_retry = first_retry
        self.give_up_after = give_up_after
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def kick(self) -> None:
        """Look at the queue now (a mail was just added)."""
        self._kick.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                wait = await self.drain()
            except Exception:  # a broken store must not end the worker: log, look again
                log.exception("outbox: could not send the queued mail")
                wait = POLL
            self._kick.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), timeout=wait)

    async def drain(self) -> float:
        """Send every mail that is due; the seconds until the next one is (at most POLL)."""
        while True:
            due = await self.db(outbox.due_mail, self.now())
            if not due:
                break
            for mail in due:
                await self._send(mail)
        return float(await self.db(_seconds_to_next, self.now()))

    async def _send(self, mail: outbox.OutboxMail) -> None:
        result = await self.mailer.send(mail.recipient, mail.data)
        now = self.now()
        if result.outcome is Outcome.SENT:
            await self.db(outbox.record_attempt, mail.id, now, status="sent", reply=result.reply)
            log.info("%s mail to %s: %s", mail.kind, mail.recipient, result.reply)
            return
        if result.outcome is Outcome.FAILED:
            await self.db(outbox.record_attempt, mail.id, now, status="failed", reply=result.reply)
            log.error("%s mail to %s refused: %s", mail.kind, mail.recipient, result.reply)
            return
        retry = now + next_delay(mail.attempts, self.first_retry)
        if retry - mail.created_at > self.give_up_after:
            await self.db(outbox.record_attempt, mail.id, now, status="expired", reply=result.reply)
            log.error(
                "%s mail to %s not sent after %s of retries, given up: %s",
                mail.kind,
                mail.recipient,
                self.give_up_after,
                result.reply,
            )
            return
        await self.db(
            outbox.record_attempt,
            mail.id,
            now,
            status="pending",
            reply=result.reply,
            next_attempt=retry,
        )
        log.warning(
            "%s mail to %s not sent yet (%s); retrying at %s",
            mail.kind,
            mail.recipient,
            result.reply,
            retry.isoformat(timespec="seconds"),
        )


def _seconds_to_next(store: Store, now: datetime) -> float:
    due = outbox.next_attempt_at(store)
    if due is None:
        return POLL
    return max(0.05, min(POLL, (due - now).total_seconds()))
