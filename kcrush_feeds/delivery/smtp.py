"""A pool of reused SMTP connections with a shared rate limit and reply classification.

``SmtpPool.send(recipient, data)`` delivers one message to one recipient and returns a
``SendResult``: ``sent`` (the server answered 250), ``deferred`` (temporary failures:
4xx, 421, a dropped connection or a timeout, still failing after ``smtp.retries``
in-run retries with exponential backoff) or ``failed`` (a 5xx reply for this message,
with the server's reply). Problems that would fail *every* message (authentication
refused, the sender refused with 5xx, a certificate that does not verify) raise
``DeliveryError``; a server that cannot be reached even after retries raises
``SmtpUnavailable`` so the caller stops and leaves the rest for the next run.

Traps of aiosmtplib this module exists to handle:

- ``sendmail`` raises only when *all* recipients are refused; a partial refusal comes
  back in the returned dict. We check the dict for our recipient and count an entry
  there as a failure, never as a success.
- one ``aiosmtplib.SMTP`` cannot carry concurrent transactions: each connection is held
  by exactly one task while it sends (``_Slot`` objects travel through a queue).
- idle connections are closed by servers: a connection idle for longer than
  ``IDLE_TIMEOUT`` is replaced before use, and one found dead is reconnected.
- "421 too many connections" (on connect or later) is a temporary failure.

The end of a successful DATA transaction resets the server's envelope (RFC 5321
4.1.1.4), so RSET is sent only after a transaction that did not complete, where the
server's state is unknown; a completed one goes straight on to the next MAIL FROM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from types import TracebackType
from typing import Any

import aiosmtplib
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPDataError,
    SMTPException,
    SMTPNotSupported,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from kcrush_feeds.config import SmtpConfig
from kcrush_feeds.errors import DeferredError, DeliveryError
from kcrush_feeds.model import UNCERTAIN_PREFIX, Outcome, SendResult

log = logging.getLogger("kcrush_feeds.delivery.smtp")

IDLE_TIMEOUT = 30.0  # seconds: most servers drop an idle client after 60-300 s
BREAKER_TIMEOUTS = 3  # consecutive timeouts (over all connections) that stop the run
STOP_GRACE = 2.0  # seconds a transaction in flight may still take once a stop is asked
MAX_BACKOFF = 60.0  # seconds: the longest wait between two in-run retries


class SmtpUnavailable(DeferredError):
    """The SMTP server cannot be reached (or keeps refusing connections) right now."""


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """What the pool needs, taken from ``[smtp]`` (see ``from_config``)."""

    host: str
    port: int
    tls: str = "starttls"  # "starttls" | "tls" | "none"
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    timeout: float = 30.0
    concurrency: int = 4
    rate_limit: float = 20.0  # messages per second over all connections; 0 = no limit
    retries: int = 3
    retry_delay: float = 2.0  # first backoff; doubles on each retry
    messages_per_connection: int = 100
    idle_timeout: float = IDLE_TIMEOUT
    local_hostname: str | None = None  # EHLO name; default: this host's FQDN
    # Circuit breaker: after this many timeouts in a row the server is taken as gone and
    # every later send raises SmtpUnavailable (the rest waits for the next run).
    breaker_timeouts: int = BREAKER_TIMEOUTS

    @classmethod
    def from_config(cls, smtp: SmtpConfig, *, base_dir: Path | None = None) -> SmtpSettings:
        """Settings from the config section; reads the password from its variable."""
        ca_file = smtp.ca_file
        if ca_file is not None and not ca_file.is_absolute() and base_dir is not None:
            ca_file = base_dir / ca_file
        return cls(
            host=smtp.host,
            port=smtp.port,
            tls=smtp.tls,
            username=smtp.username,
            password=smtp.password(),
            ca_file=ca_file,
            timeout=smtp.timeout.total_seconds(),
            concurrency=smtp.concurrency,
            rate_limit=smtp.rate_limit,
            retries=smtp.retries,
            retry_delay=smtp.retry_delay.total_seconds(),
            messages_per_connection=smtp.messages_per_connection,
        )


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A client context that verifies the server's certificate and host name.

    ``ca_file`` adds a CA (a private relay) to the system's trusted ones.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as e:
            raise DeliveryError(f"smtp.ca_file {ca_file}: cannot load: {e}") from e
    return context


class RateLimiter:
    """A token bucket shared by all connections: ``rate`` per second, bursts of ``burst``.

    Computed as a "theoretical arrival time" (GCRA), so no lock and no background task:
    each caller reserves the next slot and sleeps until it comes.
    """

    def __init__(self, rate: float, burst: int = 1) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.tolerance = self.interval * max(burst - 1, 0)
        self._tat = 0.0

    async def acquire(self) -> None:
        if self.interval == 0.0:
            return
        now = time.monotonic()
        tat = max(self._tat, now)
        self._tat = tat + self.interval
        wait = tat - now - self.tolerance
        if wait > 0:
            await asyncio.sleep(wait)


@dataclass(eq=False)
class _Slot:
    """One connection: at most one task holds it (aiosmtplib cannot multiplex)."""

    number: int
    client: aiosmtplib.SMTP | None = None
    messages: int = 0
    last_used: float = 0.0
    dirty: bool = False  # a transaction did not complete: RSET before the next one
    in_data: bool = False  # the message is being sent (DATA): a lost reply is uncertain

    def discard(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = None
        self.dirty = False


@dataclass(frozen=True, slots=True)
class _Failure:
    temporary: bool
    reply: str
    hard_bounce: bool = False
    uncertain: bool = False  # the reply to the final dot was lost: the server may have it


@dataclass
class PoolStats:
    """Counters for the summary line and the benchmark."""

    connections: int = 0
    transactions: int = 0
    retries: int = 0
    connect_failures: int = 0
    recycled: dict[str, int] = field(default_factory=lambda: {"limit": 0, "idle": 0, "dead": 0})


class SmtpPool:
    """``concurrency`` reused connections to one server. Use ``async with``."""

    def __init__(
        self, settings: SmtpSettings, *, sender: str, stop: asyncio.Event | None = None
    ) -> None:
        self.settings = settings
        # Set (by a signal) to stop at once: no more retries, and a transaction in flight
        # gets STOP_GRACE seconds before it is abandoned.
        self.stop = stop or asyncio.Event()
        self._timeouts = 0  # consecutive, over all connections: the circuit breaker
        self.broken: str | None = None  # why the breaker tripped
        self.sender = parseaddr(sender)[1] or sender  # the envelope sender (MAIL FROM)
        self.stats = PoolStats()
        self._limiter = RateLimiter(settings.rate_limit, burst=settings.concurrency)
        self._slots: asyncio.Queue[_Slot] = asyncio.Queue()
        self._all = [_Slot(n) for n in range(settings.concurrency)]
        for slot in self._all:
            self._slots.put_nowait(slot)
        self._tls: ssl.SSLContext | None = None
        if settings.tls != "none":
            self._tls = tls_context(settings.ca_file)
        self._local_hostname = settings.local_hostname
        self._connect_failures = 0  # consecutive, over all slots

    async def __aenter__(self) -> SmtpPool:
        if self._local_hostname is None:
            # aiosmtplib would look this up (in a thread) for every connection.
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """QUIT every open connection (politely, but without waiting long)."""
        for slot in self._all:
            client, slot.client = slot.client, None
            if client is not None and client.is_connected:
                try:
                    await client.quit(timeout=min(self.settings.timeout, 5.0))
                except (TimeoutError, SMTPException, OSError):
                    client.close()

    # --- sending -------------------------------------------------------------------------

    async def send(self, recipient: str, data: bytes, *, sender: str | None = None) -> SendResult:
        """Deliver ``data`` (RFC 5322 bytes, CRLF) to ``recipient``, retrying temporary
        failures with backoff. Returns as soon as the outcome is known. ``sender``: this
        message's envelope sender (a VERP address), instead of the pool's.

        A reply lost after the message was sent is ``UNCERTAIN`` and never retried here.
        Raises ``SmtpUnavailable`` once the circuit breaker has tripped.
        """
        attempts = 0
        while True:
            if self.broken is not None:
                raise SmtpUnavailable(self.broken, hint="a later run retries what was not sent")
            attempts += 1
            # The rate token first, then a connection: a connection is never held idle
            # while waiting for the rate limit (the server might drop it meanwhile).
            await self._limiter.acquire()
            slot = await self._slots.get()
            try:
                failure = await self._guarded_attempt(slot, recipient, data, sender or self.sender)
            finally:
                self._slots.put_nowait(slot)
            if isinstance(failure, str):
                return SendResult(Outcome.SENT, failure, attempts)
            if failure.uncertain:
                return SendResult(Outcome.UNCERTAIN, UNCERTAIN_PREFIX + failure.reply, attempts)
            if not failure.temporary:
                return SendResult(
                    Outcome.FAILED, failure.reply, attempts, hard_bounce=failure.hard_bounce
                )
            if attempts > self.settings.retries or self.stop.is_set() or self.broken:
                return SendResult(Outcome.DEFERRED, failure.reply, attempts)
            self.stats.retries += 1
            delay = self.backoff(attempts)
            log.debug("%s: %s; retry %d in %.2fs", recipient, failure.reply, attempts, delay)
            # The backoff ends early when a stop is asked: the message is deferred.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), delay)
            if self.stop.is_set():
                return SendResult(Outcome.DEFERRED, failure.reply, attempts)

    async def _guarded_attempt(
        self, slot: _Slot, recipient: str, data: bytes, sender: str
    ) -> _Failure | str:
        """``_attempt``, abandoned STOP_GRACE seconds after a stop is asked; counted by the
        circuit breaker (a reply of any kind resets it, a timeout adds one)."""
        attempt = asyncio.ensure_future(self._attempt(slot, recipient, data, sender))
        stopping = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({attempt, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not attempt.done():
                await asyncio.wait({attempt}, timeout=STOP_GRACE)
        finally:
            stopping.cancel()
        if not attempt.done():
            attempt.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await attempt
            uncertain = slot.in_data
            slot.discard()
            slot.in_data = False
            return _Failure(True, "stopped while waiting for the server", uncertain=uncertain)
        failure = attempt.result()
        if isinstance(failure, _Failure) and failure.reply.startswith("timeout"):
            self._timeouts += 1
            if self._timeouts >= self.settings.breaker_timeouts and self.broken is None:
                self.broken = (
                    f"the SMTP server {self.settings.host}:{self.settings.port} stopped "
                    f"answering ({self._timeouts} timeouts in a row)"
                )
                log.warning("%s: stopping this run", self.broken)
        else:
            self._timeouts = 0
        return failure

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1, 2, ...): doubling, capped."""
        return float(min(self.settings.retry_delay * 2 ** (attempt - 1), MAX_BACKOFF))

    async def _attempt(
        self, slot: _Slot, recipient: str, data: bytes, sender: str
    ) -> _Failure | str:
        """One transaction on ``slot``: the server's reply when it accepted the message."""
        client = await self._ready(slot)
        options = [] if recipient.isascii() else ["SMTPUTF8"]
        slot.dirty = True
        slot.in_data = False
        try:
            errors, reply = await client.sendmail(sender, [recipient], data, mail_options=options)
        except SMTPRecipientsRefused as e:
            refused = e.recipients[0] if e.recipients else None
            slot.dirty = False  # aiosmtplib sent RSET already
            if refused is None:
                return _Failure(True, "recipient refused")
            return self._classify_rcpt(refused.code, refused.message)
        except SMTPSenderRefused as e:
            if e.code >= 500:
                raise DeliveryError(
                    f"the SMTP server refused the sender {sender}: {e.code} {e.message}",
                    hint="check digest.from, smtp.tls and smtp.username: what the server "
                    "requires before it accepts mail",
                ) from e
            return self._response_failure(slot, e)
        except SMTPNotSupported as e:  # SMTPUTF8 for a non-ASCII address
            slot.dirty = False
            return _Failure(False, f"not supported by the server: {e}")
        except ValueError as e:  # an address aiosmtplib will not put on the wire
            slot.dirty = False
            return _Failure(False, f"invalid address: {e}")
        except SMTPResponseException as e:
            return self._response_failure(slot, e)
        except (TimeoutError, SMTPServerDisconnected, SMTPTimeoutError, OSError) as e:
            # Lost during DATA: the server may have queued the message, so a retry could
            # duplicate it: uncertain (see docs/delivery.md). Before DATA: a plain retry.
            uncertain = slot.in_data
            slot.discard()
            slot.in_data = False
            self.stats.recycled["dead"] += 1
            return _Failure(True, _describe(e), uncertain=uncertain)
        slot.dirty = False
        slot.in_data = False
        slot.messages += 1
        slot.last_used = time.monotonic()
        self.stats.transactions += 1
        partial = errors.get(recipient) or next(iter(errors.values()), None)
        if partial is not None:
            # A partial refusal: sendmail did not raise, but our recipient is in the dict.
            return self._classify_rcpt(partial.code, partial.message)
        return f"250 {reply}".strip()

    def _classify_rcpt(self, code: int, message: str) -> _Failure:
        reply = f"{code} {message}".strip()
        if 400 <= code < 500:
            return _Failure(True, reply)
        return _Failure(False, reply, hard_bounce=code >= 500)

    def _response_failure(self, slot: _Slot, e: SMTPResponseException) -> _Failure:
        reply = f"{e.code} {e.message}".strip()
        if e.code == 421 or not (slot.client and slot.client.is_connected):
            slot.discard()
            return _Failure(True, reply)
        if 400 <= e.code < 500:
            return _Failure(True, reply)
        if isinstance(e, SMTPDataError):
            return _Failure(False, reply)  # the message was refused, not the address
        return _Failure(e.code < 500, reply)

    # --- connections ---------------------------------------------------------------------

    async def _ready(self, slot: _Slot) -> aiosmtplib.SMTP:
        """The slot's client, connected, clean and within its message budget."""
        client = slot.client
        now = time.monotonic()
        if client is not None:
            reason = None
            if not client.is_connected:
                reason = "dead"
            elif slot.messages >= self.settings.messages_per_connection:
                reason = "limit"
            elif now - slot.last_used > self.settings.idle_timeout:
                reason = "idle"
            if reason is not None:
                self.stats.recycled[reason] += 1
                if reason == "limit" and client.is_connected:
                    with contextlib.suppress(TimeoutError, SMTPException, OSError):
                        await client.quit()
                slot.discard()
                client = None
            elif slot.dirty:
                try:
                    await client.rset()
                    slot.dirty = False
                except (TimeoutError, SMTPException, OSError):
                    slot.discard()
                    client = None
        if client is None:
            client = await self._connect(slot)
            slot.client = client
            slot.messages = 0
            slot.last_used = time.monotonic()
            slot.dirty = False
        return client

    async def _connect(self, slot: _Slot) -> aiosmtplib.SMTP:
        """A new logged-in connection; temporary failures retried with backoff."""
        settings = self.settings
        attempt = 0
        while True:
            attempt += 1
            client = aiosmtplib.SMTP(
                hostname=settings.host,
                port=settings.port,
                timeout=settings.timeout,
                use_tls=settings.tls == "tls",
                start_tls=settings.tls == "starttls",
                tls_context=self._tls,
                username=settings.username,
                password=settings.password,
                local_hostname=self._local_hostname,
            )
            try:
                await client.connect()
            except SMTPAuthenticationError as e:
                client.close()
                if e.code >= 500:
                    raise DeliveryError(
                        f"the SMTP server {settings.host} refused the login of "
                        f"{settings.username!r}: {e.code} {e.message}",
                        hint="check smtp.username and the variable named by smtp.password_env",
                    ) from e
                failure = f"{e.code} {e.message}"
            except (TimeoutError, SMTPException, OSError) as e:
                client.close()
                _raise_if_fatal(e, settings)
                failure = _describe(e)
            else:
                self._connect_failures = 0
                self.stats.connections += 1
                _track_data(client, slot)
                return client
            self.stats.connect_failures += 1
            self._connect_failures += 1
            if attempt > settings.retries:
                raise SmtpUnavailable(
                    f"cannot connect to the SMTP server {settings.host}:{settings.port}: {failure}",
                    hint="a later run retries what was not sent",
                )
            delay = self.backoff(attempt)
            log.info(
                "connecting to %s:%d: %s; retrying in %.1fs",
                settings.host,
                settings.port,
                failure,
                delay,
            )
            await asyncio.sleep(delay)


def _track_data(client: aiosmtplib.SMTP, slot: _Slot) -> None:
    """Mark ``slot`` while ``client`` runs DATA: ``sendmail`` does not say in which step
    a drop or a timeout happened, and only one during DATA can have delivered."""
    data = client.data

    async def tracked(message: str | bytes, /, **kwargs: Any) -> aiosmtplib.SMTPResponse:
        slot.in_data = True
        return await data(message, **kwargs)

    client.data = tracked  # type: ignore[method-assign]


def _raise_if_fatal(e: BaseException, settings: SmtpSettings) -> None:
    """Errors no retry can fix: a certificate that does not verify, STARTTLS or AUTH
    missing, a 5xx greeting."""
    cause: BaseException | None = e
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            raise DeliveryError(
                f"the SMTP server {settings.host}:{settings.port} presented a certificate "
                f"that does not verify: {cause.verify_message}",
                hint="if the relay uses a private CA, name its certificate in smtp.ca_file",
            ) from e
        cause = cause.__cause__ or cause.__context__
    text = str(e)
    if isinstance(e, SMTPException) and "STARTTLS extension not supported" in text:
        raise DeliveryError(
            f"the SMTP server {settings.host}:{settings.port} does not offer STARTTLS",
            hint='use tls = "tls" for port 465, or tls = "none" only for a trusted local relay',
        ) from e
    if isinstance(e, SMTPResponseException) and e.code >= 500:
        raise DeliveryError(
            f"the SMTP server {settings.host}:{settings.port} refused the connection: "
            f"{e.code} {e.message}"
        ) from e
    transient = (SMTPResponseException, SMTPServerDisconnected, SMTPTimeoutError, OSError)
    if isinstance(e, SMTPException) and not isinstance(e, transient):
        # Not a reply, a drop or a timeout: the server lacks something the config asks
        # for (AUTH not offered, for example). The next try would fail the same way.
        raise DeliveryError(
            f"the SMTP server {settings.host}:{settings.port}: {e}",
            hint="check smtp.tls, smtp.username and the server's requirements",
        ) from e


def _describe(e: BaseException) -> str:
    if isinstance(e, SMTPResponseException):
        return f"{e.code} {e.message}".strip()
    if isinstance(e, SMTPTimeoutError | asyncio.TimeoutError):
        return f"timeout: {e}" if str(e) else "timeout"
    if isinstance(e, SMTPServerDisconnected):
        return f"connection lost: {e}"
    return f"{type(e).__name__}: {e}"
