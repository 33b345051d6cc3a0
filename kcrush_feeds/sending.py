"""Delivering a digest: composer -> bounded queue -> SMTP pool -> ledger, exactly once.

The flow for one run::

    pending subscribers (streamed, a page at a time)
      -> compose (one message at a time, in the producer)
      -> bounded queue (a few messages per connection: memory stays flat)
      -> senders (2 x smtp.concurrency tasks sharing smtp.concurrency connections)
      -> the server answers -> the ledger commits the result -> the sender takes the next

Exactly once: a subscriber is pending until a ``sent`` (or ``failed``) row exists; that
row is committed right after the server's 250, before the sender that got the 250 does
anything else. A crash can therefore repeat only messages whose 250 had arrived but
whose row was not yet on disk: at most one per sender, a few milliseconds' worth. The
digest is frozen and the Message-ID deterministic, so a repeat is the same message.

``KCRUSH_FEEDS_TEST_CRASH_AFTER=N`` (tests only) kills the process with SIGKILL right
after the Nth 250 reply, before its commit; ``N:committed`` right after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from .deliveries import Delivery, Ledger
from .errors import EXIT_FAILED, EXIT_OK, EXIT_TEMPFAIL, DeliveryError
from .smtp import Outcome, SendResult, SmtpPool, SmtpSettings, SmtpUnavailable

log = logging.getLogger("kcrush_feeds.sending")

ENV_CRASH = "KCRUSH_FEEDS_TEST_CRASH_AFTER"
SENDERS_PER_CONNECTION = 4  # a connection is busy while another sender waits for its commit
QUEUE_PER_SENDER = 2  # composed messages waiting per sender


class Outgoing(Protocol):
    """One composed message (``compose.OutgoingMessage`` is one)."""

    @property
    def subscriber_id(self) -> int: ...
    @property
    def recipient(self) -> str: ...
    @property
    def message_id(self) -> str: ...
    @property
    def data(self) -> bytes: ...


@dataclass
class Tally:
    """What a run did, counted as it goes."""

    sent: int = 0
    deferred: int = 0
    failed: int = 0
    skipped: int = 0
    bounced: int = 0  # hard bounces this run
    failures: list[tuple[str, str]] = field(default_factory=list)  # (recipient, reply), capped
    stopped: bool = False  # a signal asked us to stop
    unavailable: str | None = None  # the server could not be reached: the rest waits
    left: int = 0  # composed but not attempted (stopped or unavailable)

    def count(self, recipient: str, result: SendResult) -> None:
        if result.outcome is Outcome.SENT:
            self.sent += 1
            return
        if result.outcome is Outcome.DEFERRED:
            self.deferred += 1
        else:
            self.failed += 1
            self.bounced += result.hard_bounce
        if len(self.failures) < 50:
            self.failures.append((recipient, result.reply))


@dataclass(frozen=True)
class CrashHook:
    """Test hook: SIGKILL ourselves after the Nth 250, before or after its commit."""

    after: int
    committed: bool

    @classmethod
    def from_env(cls) -> CrashHook | None:
        value = os.environ.get(ENV_CRASH)
        if not value:
            return None
        number, _, when = value.partition(":")
        return cls(int(number), when == "committed")

    def check(self, accepted: int, *, committed: bool) -> None:
        if accepted == self.after and committed == self.committed:
            os.kill(os.getpid(), signal.SIGKILL)


async def deliver(
    messages: Iterable[Outgoing | None],
    *,
    settings: SmtpSettings,
    sender: str,
    ledger: Ledger,
    digest_id: int,
    now: datetime,
    stop: asyncio.Event | None = None,
    progress: Callable[[int], None] | None = None,
) -> Tally:
    """Send ``messages`` (None = a subscriber with nothing to get: counted as skipped)
    through a pool of ``settings.concurrency`` connections, recording each result.

    ``messages`` is consumed lazily: it may compose as it goes. Setting ``stop`` lets the
    messages in flight finish and be recorded; the rest stay pending for the next run.
    Raises ``DeliveryError`` for a problem no retry can fix (after recording what was
    already answered).
    """
    stop = stop or asyncio.Event()
    tally = Tally()
    crash = CrashHook.from_env()
    senders = settings.concurrency * SENDERS_PER_CONNECTION
    queue: asyncio.Queue[Outgoing | None] = asyncio.Queue(maxsize=senders * QUEUE_PER_SENDER)
    fatal: list[BaseException] = []
    accepted = 0
    started = time.monotonic()

    def moment() -> datetime:
        # ``now`` is pinned by the caller; the ledger's times advance with the run.
        return now + timedelta(seconds=time.monotonic() - started)

    async def produce() -> None:
        iterator: Iterator[Outgoing | None] = iter(messages)
        try:
            while not stop.is_set():
                message = next(iterator, _END)
                if message is _END:
                    break
                if message is None:
                    tally.skipped += 1
                    if progress:
                        progress(1)
                    continue
                await queue.put(message)  # waits while the senders are busy
        finally:
            for _ in range(senders):
                await queue.put(None)

    async def send_one(pool: SmtpPool) -> None:
        nonlocal accepted
        while True:
            message = await queue.get()
            if message is None:
                return
            if stop.is_set():
                tally.left += 1
                continue
            try:
                result = await pool.send(message.recipient, message.data)
            except SmtpUnavailable as e:
                tally.unavailable = e.message
                tally.left += 1
                stop.set()
                continue
            except DeliveryError as e:
                fatal.append(e)
                tally.left += 1
                stop.set()
                continue
            if result.sent:
                accepted += 1
                if crash:
                    crash.check(accepted, committed=False)
            await ledger.record(
                Delivery(digest_id, message.subscriber_id, message.message_id, result), moment()
            )
            if result.sent and crash:
                crash.check(accepted, committed=True)
            tally.count(message.recipient, result)
            if result.outcome is not Outcome.SENT:
                log.warning("%s: %s: %s", message.recipient, result.outcome.value, result.reply)
            if progress:
                progress(1)

    async with SmtpPool(settings, sender=sender) as pool:
        producer = asyncio.create_task(produce())
        workers = [asyncio.create_task(send_one(pool)) for _ in range(senders)]
        try:
            await asyncio.gather(*workers)
            tally.stopped = stop.is_set() and tally.unavailable is None and not fatal
        finally:
            stop.set()
            # Unblock a producer waiting on a full queue, then let it finish.
            while not producer.done():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                await asyncio.sleep(0)
            await producer
    if fatal:
        raise fatal[0]
    return tally


_END: Outgoing = object()  # type: ignore[assignment]


@dataclass(frozen=True)
class SendReport:
    """The outcome of ``send`` for the summary line and the exit status."""

    period: str | None
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    skipped: int = 0
    pending: int = 0  # still without a final result (deferred + not attempted)
    note: str = ""  # why nothing was sent, or what stopped the run
    failures: tuple[tuple[str, str], ...] = ()
    dry_run_dir: Path | None = None

    @property
    def exit_status(self) -> int:
        """0 done; 75 when deliveries wait for a later run; 1 when some failed for good."""
        if self.pending or self.deferred:
            return EXIT_TEMPFAIL
        if self.failed:
            return EXIT_FAILED
        return EXIT_OK

    def summary(self) -> str:
        counts = (
            f"sent {self.sent}, deferred {self.deferred}, failed {self.failed}, "
            f"skipped {self.skipped}"
        )
        head = f"digest {self.period}: " if self.period else ""
        text = f"{head}{counts}"
        if self.note:
            text += f" ({self.note})"
        return text


def stop_on_signals(stop: asyncio.Event) -> Callable[[], None]:
    """SIGTERM and SIGINT set ``stop`` (finish the message in flight, record it, exit).

    Returns a function that restores the previous handlers. Outside the main thread
    (``schedule`` runs jobs in a worker thread) signals cannot be caught: a no-op.
    """
    loop = asyncio.get_running_loop()

    def handler(signum: int) -> None:
        if not stop.is_set():
            log.warning(
                "%s: finishing the messages in flight, then stopping",
                signal.Signals(signum).name,
            )
        stop.set()

    installed: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, handler, signum)
            installed.append(signum)
        except (ValueError, RuntimeError, NotImplementedError):
            pass

    def restore() -> None:
        for signum in installed:
            loop.remove_signal_handler(signum)

    return restore
