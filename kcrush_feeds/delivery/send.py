"""Delivering a digest: composer -> bounded queue -> SMTP pool -> result writer, exactly once.

The flow for one run::

    pending subscribers (streamed, a page at a time)
      -> compose (one message at a time, in the producer)
      -> bounded queue (a few messages per connection: memory stays flat)
      -> senders (2 x smtp.concurrency tasks sharing smtp.concurrency connections)
      -> the server answers -> the result writer commits it -> the sender takes the next

Exactly once: a subscriber is pending until a ``sent`` (or ``failed``) row exists; that
row is committed right after the server's 250, before the sender that got the 250 does
anything else. A crash can therefore repeat only messages whose 250 had arrived but
whose row was not yet on disk: at most one per connection (a sender holds one of
``concurrency`` permits from its send to its commit), a few milliseconds' worth; the same
bound holds when a commit fails, which stops every sender. A reply lost after the final
dot is "uncertain": never resent in this run, tried once more by a later one. The
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
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Protocol

from kcrush_feeds.config import Config, check_email
from kcrush_feeds.delivery import approval
from kcrush_feeds.delivery.dkim import DkimSigner, SigningPool
from kcrush_feeds.delivery.lock import run_lock
from kcrush_feeds.delivery.results import ResultWriter
from kcrush_feeds.delivery.smtp import SmtpPool, SmtpSettings, SmtpUnavailable
from kcrush_feeds.digest.compose import DigestComposer, preview_subscriber
from kcrush_feeds.digest.select import compute_digest, open_digest
from kcrush_feeds.errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TEMPFAIL,
    DeferredError,
    DeliveryError,
    UsageError,
)
from kcrush_feeds.model import (
    Delivery,
    Digest,
    Outcome,
    PendingSubscriber,
    SendResult,
    Subscriber,
)
from kcrush_feeds.signals import stop_on_signals
from kcrush_feeds.store import deliveries
from kcrush_feeds.store.db import Store
from kcrush_feeds.store.digests import completion, load_digest, mark_done
from kcrush_feeds.subscriptions.subscribers import iter_subscribers
from kcrush_feeds.tokens import sign_delivery, verp_sender
from kcrush_feeds.weeks import period_of

log = logging.getLogger("kcrush_feeds.delivery.send")

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
    uncertain: int = 0  # sent, reply lost: retried once by a later run (not counted above)
    uncertain_final: int = 0  # of those, the second time: not retried again
    failures: list[tuple[str, str]] = field(default_factory=list)  # (recipient, reply), capped
    stopped: bool = False  # a signal asked us to stop
    unavailable: str | None = None  # the server could not be reached: the rest waits
    summary: str | None = None  # that, in the words of the run's summary line
    left: int = 0  # composed but not attempted (stopped or unavailable)

    def count(self, recipient: str, result: SendResult) -> None:
        if result.outcome is Outcome.SENT:
            self.sent += 1
            return
        if result.outcome is Outcome.UNCERTAIN:
            self.uncertain += 1
        elif result.outcome is Outcome.DEFERRED:
            self.deferred += 1
        else:
            self.failed += 1
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
    writer: ResultWriter,
    digest_id: int,
    now: datetime,
    stop: asyncio.Event | None = None,
    progress: Callable[[int], None] | None = None,
    sign: Callable[[bytes], Awaitable[bytes]] | None = None,
    uncertain_before: frozenset[int] = frozenset(),
    envelope: Callable[[Outgoing], str] | None = None,
) -> Tally:
    """Send ``messages`` (None = a subscriber with nothing to get: counted as skipped)
    through a pool of ``settings.concurrency`` connections, recording each result.

    ``messages`` is consumed lazily: it may compose as it goes. Setting ``stop`` lets the
    messages in flight finish and be recorded; the rest stay pending for the next run.
    Raises ``DeliveryError`` for a problem no retry can fix (after recording what was
    already answered), ``UnrecordedError`` when the store refused a result.
    ``envelope`` gives each message its own envelope sender (VERP). ``sign`` (DKIM) turns a
    message's bytes into the bytes sent, once per message: the pool's retries resend
    exactly those.

    At most ``settings.concurrency`` messages are between "sending" and "committed" at
    any time, so when a commit fails, at most one message per connection was accepted
    by the server without its row. ``uncertain_before``: subscribers whose earlier try
    was uncertain; a second uncertain try is final (recorded as failed, never resent).
    """
    stop = stop or asyncio.Event()
    tally = Tally()
    crash = CrashHook.from_env()
    senders = settings.concurrency * SENDERS_PER_CONNECTION
    queue: asyncio.Queue[Outgoing | None] = asyncio.Queue(maxsize=senders * QUEUE_PER_SENDER)
    fatal: list[BaseException] = []
    unrecorded: list[tuple[Delivery, datetime]] = []
    # Held from the send to its commit: a failing store stops every sender before it
    # sends more, with at most one unrecorded message per connection.
    outstanding = asyncio.Semaphore(settings.concurrency)
    accepted = 0
    started = time.monotonic()

    def moment() -> datetime:
        # ``now`` is pinned by the caller; the results' times advance with the run.
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
        try:
            await sender_loop(pool)
        except BaseException:
            stop.set()
            raise

    async def sender_loop(pool: SmtpPool) -> None:
        nonlocal accepted
        while True:
            message = await queue.get()
            if message is None:
                return
            # Signed before taking a slot: the slots count messages on the wire.
            data = message.data if sign is None else await sign(message.data)
            async with outstanding:
                if stop.is_set():
                    tally.left += 1
                    continue
                try:
                    result = await pool.send(
                        message.recipient,
                        data,
                        sender=envelope(message) if envelope is not None else None,
                    )
                except SmtpUnavailable as e:
                    if tally.unavailable is None:
                        log.warning("%s", e.message)  # once: every sender gets the same answer
                    tally.unavailable = e.message
                    tally.summary = e.summary
                    tally.left += 1
                    stop.set()
                    continue
                except DeliveryError as e:
                    fatal.append(e)
                    tally.left += 1
                    stop.set()
                    continue
                final_uncertain = (
                    result.outcome is Outcome.UNCERTAIN
                    and message.subscriber_id in uncertain_before
                )
                if final_uncertain:
                    result = replace(
                        result,
                        outcome=Outcome.FAILED,
                        reply=f"{result.reply} (the second time: not retried again)",
                    )
                if result.sent:
                    accepted += 1
                    if crash:
                        crash.check(accepted, committed=False)
                number = accepted  # which 250 this was, for the crash hook after the commit
                delivery = Delivery(digest_id, message.subscriber_id, message.message_id, result)
                when = moment()
                try:
                    await writer.record(delivery, when)
                except Exception as e:  # any failure to write stops the run
                    unrecorded.append((delivery, when))
                    if not fatal:
                        fatal.append(e)
                    stop.set()
                    continue
            if result.sent and crash:
                crash.check(number, committed=True)
            if final_uncertain:
                tally.uncertain += 1
                tally.uncertain_final += 1
            else:
                tally.count(message.recipient, result)
            if result.outcome is not Outcome.SENT:
                log.warning("%s: %s: %s", message.recipient, result.outcome.value, result.reply)
            if progress:
                progress(1)

    async with SmtpPool(settings, sender=sender, stop=stop) as pool:
        producer = asyncio.create_task(produce())
        workers = [asyncio.create_task(send_one(pool)) for _ in range(senders)]
        try:
            # A sender that fails (the store cannot be written) stops the others, which
            # finish and record what they have in flight instead of being cancelled.
            outcomes = await asyncio.gather(*workers, return_exceptions=True)
            fatal.extend(e for e in outcomes if isinstance(e, BaseException))
            tally.stopped = stop.is_set() and tally.unavailable is None and not fatal
        finally:
            stop.set()
            # Unblock a producer waiting on a full queue, then let it finish.
            while not producer.done():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                await asyncio.sleep(0)
            await producer
    if unrecorded:
        # The senders have stopped; the store may take the rows now (a lock released):
        # one more try, so that a later run does not send these again.
        try:
            await writer.record_late(unrecorded)
        except Exception as e:  # reported with the first error
            raise UnrecordedError(fatal[0], len(unrecorded)) from e
        for delivery, _ in unrecorded:
            tally.count("", delivery.result)
        tally.unavailable = tally.summary = (
            f"the store refused a result ({_reason(fatal[0])}): sending stopped; "
            "what was sent is recorded"
        )
        fatal = fatal[1:]
    if fatal:
        raise fatal[0]
    return tally


class UnrecordedError(DeferredError):
    """The store refused to record results: every sender stopped at once (exit 75)."""

    def __init__(self, cause: BaseException, count: int) -> None:
        super().__init__(
            f"cannot record deliveries in the store ({_reason(cause)}): every sender stopped "
            f"at once. {count} message(s) accepted by the server have no row, and the next "
            "run sends them again; nothing else was sent",
            hint="free disk space, or stop what holds the store's lock, then run send again",
        )


def _reason(e: BaseException) -> str:
    return getattr(e, "message", None) or str(e) or type(e).__name__


_END: Outgoing = object()  # type: ignore[assignment]


@dataclass(frozen=True)
class SendReport:
    """The outcome of ``send`` for the summary line and the exit status."""

    period: str | None
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    skipped: int = 0
    uncertain: int = 0  # sent, the reply lost after the final dot (not in sent or deferred)
    pending: int = 0  # still without a final result (deferred + not attempted)
    note: str = ""  # why nothing was sent, or what stopped the run
    failures: tuple[tuple[str, str], ...] = ()
    dry_run_dir: Path | None = None
    written: int = 0  # .eml files written by a dry run

    @property
    def exit_status(self) -> int:
        """0 done; 75 when deliveries wait for a later run; 1 when every recipient refused.

        A permanent refusal of single recipients (a 5xx for that address) is the list's
        normal wear: recorded, the bounce rules applied, in the summary, and still 0
        (PRODUCT.md, "Exit status"). 1 is for a run that could not do its job: here, when
        nobody was served and some were refused.
        """
        if self.pending or self.deferred:
            return EXIT_TEMPFAIL
        if self.failed and not self.sent:
            return EXIT_FAILED
        return EXIT_OK

    def summary(self) -> str:
        """One line: the counts, and why when nothing was done."""
        head = f"digest {self.period}: " if self.period else ""
        busy = self.sent or self.deferred or self.failed or self.skipped or self.uncertain
        if not busy and self.note:
            return f"{head}{self.note}"
        text = (
            f"{head}sent {self.sent}, deferred {self.deferred}, failed {self.failed}, "
            f"skipped {self.skipped}"
        )
        if self.uncertain:
            text += f", uncertain {self.uncertain}"
        return f"{text} ({self.note})" if self.note else text


# --- the public entry point --------------------------------------------------------------


def send_digest(
    config: Config,
    store: Store,
    now: datetime,
    *,
    dry_run_dir: Path | None = None,
    test_address: str | None = None,
    progress: Callable[[int], None] | None = None,
    total: Callable[[int], None] | None = None,
    lock_wait: float = 5.0,
    stop: threading.Event | None = None,
) -> SendReport:
    """Deliver this period's digest to every pending subscriber; safe to re-run any time.

    Creates the digest if due (``open_digest``), resumes it if an earlier run was
    interrupted, and says why when there is nothing to send. ``dry_run_dir``: write each
    message as ``.eml`` there instead, marking nothing. ``test_address``: send one copy
    of the whole digest there, marking nothing. ``total`` is told how many subscribers
    are pending before sending starts (for a progress bar); ``progress`` counts them.
    ``stop``: set from another thread (``schedule`` on SIGTERM) to finish the messages in
    flight, record them and return, as a signal does for the ``send`` command.

    Raises ``BusyError`` when another ``send`` holds the lock, ``DeliveryError`` for a
    problem no retry can fix, ``ConfigError`` for a missing section or password.
    """
    config.require_digest()
    if dry_run_dir is not None:
        return _dry_run(config, store, now, dry_run_dir, progress=progress, total=total)
    settings = SmtpSettings.from_config(config.require_smtp(), base_dir=config.base_dir)
    if test_address is not None:
        return _test_send(config, store, now, test_address, settings)
    with run_lock(config.database_path, "send", wait=lock_wait):
        return _send(config, store, now, settings, progress=progress, total=total, halt=stop)


def _send(
    config: Config,
    store: Store,
    now: datetime,
    settings: SmtpSettings,
    *,
    progress: Callable[[int], None] | None,
    total: Callable[[int], None] | None,
    halt: threading.Event | None = None,
) -> SendReport:
    period = period_of(now, config.site.tz)
    digest = open_digest(store, config, now)
    if digest is None:
        return SendReport(period, note="nothing new since the last digest: none this week")
    if digest.status == "done":
        done = deliveries.counts(store, digest.id)
        _, finished = completion(store, digest.id)
        when = f" on {finished.astimezone(config.site.tz):%Y-%m-%d %H:%M}" if finished else ""
        return SendReport(
            period,
            note=f"already sent{when} ({done.sent} delivered): nothing to send until next week",
        )
    signer = DkimSigner.from_config(config)
    passage = approval.gate(config, store, digest, now, settings, signer=signer)
    if not passage.open:
        return SendReport(period, pending=1, note=passage.note)
    pending = deliveries.count_pending(store, digest.id)
    log.info(
        "digest %s: %d subscribers to serve via %s:%d",
        period,
        pending,
        settings.host,
        settings.port,
    )
    if total is not None:
        total(pending)
    smtp = config.require_smtp()
    composer = DigestComposer(
        config, digest, now=now, editorial=approval.load_editorial(config, store, digest)
    )
    messages = (
        composer.compose(_as_subscriber(pending))
        for pending in deliveries.iter_pending(store, digest.id)
    )
    sender = config.require_digest().from_addr
    uncertain_before = deliveries.uncertain_ids(store, digest.id)
    envelope = verp_envelope(config, digest.id)

    async def run() -> Tally:
        stop = asyncio.Event()
        # One stop mechanism (kcrush_feeds.signals): a signal sets a threading.Event,
        # watched here. Under ``schedule`` this runs in a worker thread, where no handler
        # can be installed: its main thread holds them and sets ``halt``.
        asked = halt if halt is not None else threading.Event()
        restore = stop_on_signals(asked, first=_on_signal)
        watcher = asyncio.create_task(_watch(asked, stop, announce=halt is not None))
        signing = SigningPool(signer) if signer is not None else None
        if signing is not None:
            signing.start()  # while the run opens its connections
        try:
            async with ResultWriter(store.path, max_hard_bounces=smtp.max_hard_bounces) as writer:
                return await deliver(
                    messages,
                    settings=settings,
                    sender=sender,
                    writer=writer,
                    digest_id=digest.id,
                    now=now,
                    stop=stop,
                    progress=progress,
                    sign=signing.sign if signing is not None else None,
                    uncertain_before=uncertain_before,
                    envelope=envelope,
                )
        finally:
            if signing is not None:
                await signing.aclose()
            restore()
            watcher.cancel()

    tally = asyncio.run(run())
    _log_sizes(composer)
    for recipient, reply in tally.failures:
        log.debug("%s: %s", recipient, reply)
    retry_uncertain = tally.uncertain - tally.uncertain_final
    complete = not (tally.stopped or tally.unavailable or tally.deferred or retry_uncertain)
    note = ""
    if tally.unavailable:
        waiting = deliveries.count_pending(store, digest.id)
        note = f"{tally.summary or tally.unavailable}; {waiting} waiting for the next run"
    elif tally.stopped:
        note = "stopped by a signal; the rest waits for the next run"
    elif tally.deferred:
        note = "deferred deliveries are retried by the next run"
    if retry_uncertain:
        note = (note + "; " if note else "") + (
            f"{retry_uncertain} sent with no reply after the final dot (the server may have "
            "them): tried once more by the next run, never again"
        )
    if complete:
        mark_done(store, digest, now)
    return SendReport(
        period,
        sent=tally.sent,
        deferred=tally.deferred,
        failed=tally.failed,
        skipped=tally.skipped,
        uncertain=tally.uncertain,
        pending=0 if complete else max(tally.left + retry_uncertain, 1),
        note=note,
        failures=tuple(tally.failures),
    )


def _log_sizes(composer: DigestComposer) -> None:
    """The HTML size of each distinct message, and what the clip guard cut."""
    limit = composer.config.require_digest().max_html_bytes
    for fitted in composer.fitted.values():
        cut = f"; cut {fitted.cut} items into links" if fitted.more else ""
        log.info(
            "digest %s: %d items, HTML %s bytes (limit %s)%s",
            composer.digest.period,
            len(fitted.items),
            f"{fitted.html_bytes:,}",
            f"{limit:,}",
            cut,
        )


def verp_envelope(config: Config, digest_id: int) -> Callable[[Outgoing], str] | None:
    """With ``[bounces] address``: each message's envelope sender names its delivery
    (``bounces+TOKEN@domain``, signed), so what comes back is tied to it. Else None."""
    bounces = config.bounces
    if bounces is None or bounces.address is None:
        return None
    address = parseaddr(bounces.address)[1]
    secret = config.require_subscriptions().secret()

    def envelope(message: Outgoing) -> str:
        return verp_sender(address, sign_delivery(secret, digest_id, message.subscriber_id))

    return envelope


def _on_signal(name: str) -> None:
    log.warning("%s: finishing the messages in flight, then stopping", name)


async def _watch(halt: threading.Event, stop: asyncio.Event, *, announce: bool) -> None:
    """Set ``stop`` once ``halt`` is set (by a signal, or by another thread)."""
    while not halt.is_set():
        await asyncio.sleep(0.1)
    if announce:  # a signal caught here was logged by ``_on_signal`` already
        log.warning("stop asked for: finishing the messages in flight, then stopping")
    stop.set()


def _as_subscriber(pending: PendingSubscriber) -> Subscriber:
    return Subscriber(
        id=pending.id,
        email=pending.email,
        name=pending.name,
        status=pending.status,
        categories=pending.categories,
    )


def _digest_to_show(config: Config, store: Store, now: datetime) -> Digest | None:
    """This period's digest as stored, or as it would be created now (nothing stored)."""
    period = period_of(now, config.site.tz)
    return load_digest(store, period) or compute_digest(store, config, now, period=period)


def _dry_run(
    config: Config,
    store: Store,
    now: datetime,
    out: Path,
    *,
    progress: Callable[[int], None] | None,
    total: Callable[[int], None] | None,
) -> SendReport:
    """Write what ``send`` would send now as ``.eml`` files; mark nothing."""
    period = period_of(now, config.site.tz)
    digest = _digest_to_show(config, store, now)
    if digest is None:
        return SendReport(period, note="nothing new since the last digest: none this week")
    if digest.status == "done":
        return SendReport(period, note="already sent: a real send would send nothing")
    if digest.stored:
        subscribers: Iterable[Subscriber] = (
            _as_subscriber(p) for p in deliveries.iter_pending(store, digest.id)
        )
        if total is not None:
            total(deliveries.count_pending(store, digest.id))
    else:
        subscribers = iter_subscribers(store, status="active")
    out.mkdir(parents=True, exist_ok=True)
    composer = DigestComposer(
        config, digest, now=now, editorial=approval.load_editorial(config, store, digest)
    )
    written = skipped = 0
    for subscriber in subscribers:
        message = composer.compose(subscriber)
        if message is None:
            skipped += 1
        else:
            name = f"{period}-s{subscriber.id:06d}-{_safe(subscriber.email)}.eml"
            (out / name).write_bytes(message.data)
            written += 1
        if progress is not None:
            progress(1)
    return SendReport(
        period,
        skipped=skipped,
        note=f"dry run: wrote {written} messages to {out}, sent and marked nothing",
        dry_run_dir=out,
        written=written,
    )


def _safe(email: str) -> str:
    return "".join(c if c.isalnum() or c in "@._-" else "_" for c in email)[:80]


def _test_send(
    config: Config, store: Store, now: datetime, address: str, settings: SmtpSettings
) -> SendReport:
    """One copy of the whole digest to ``address``; nothing is marked."""
    try:
        address = check_email(address)
    except ValueError as e:
        raise UsageError(f"--to {address}: {e}") from e
    period = period_of(now, config.site.tz)
    digest = _digest_to_show(config, store, now)
    if digest is None:
        return SendReport(period, note="nothing new since the last digest: nothing to test")
    composer = DigestComposer(
        config, digest, now=now, editorial=approval.load_editorial(config, store, digest)
    )
    message = composer.compose(preview_subscriber(address, ""))
    if message is None:  # cannot happen for a reader of every category, but be explicit
        return SendReport(period, skipped=1, note=f"nothing in the digest for {address}")
    single = replace(settings, concurrency=1)
    signer = DkimSigner.from_config(config)
    data = signer.sign(message.data) if signer else message.data

    async def run() -> SendResult:
        async with SmtpPool(single, sender=config.require_digest().from_addr) as pool:
            return await pool.send(message.recipient, data)

    result = asyncio.run(run())
    return SendReport(
        period,
        sent=int(result.outcome is Outcome.SENT),
        deferred=int(result.outcome is Outcome.DEFERRED),
        failed=int(result.outcome is Outcome.FAILED),
        note=f"test copy to {address}: {result.reply}; nothing marked as sent",
        failures=() if result.sent else ((address, result.reply),),
    )
