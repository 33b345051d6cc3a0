"""``schedule``'s runtime: APScheduler 3.x fires the jobs; the only module importing it.

What runs when is decided elsewhere, on values: ``schedule.triggers`` (fire times, DST),
``schedule.plan`` (the plan, catch-up, retries); the job bodies are ``schedule.jobs``,
injected as a ``Jobs`` object. Everything that depends on "now" takes it from a clock
passed in, so tests can pin any moment (a DST change, a restart after an outage) without
sleeping.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from kcrush_feeds.errors import BusyError, KcrushError
from kcrush_feeds.schedule.plan import (
    BUILD,
    DIGEST,
    DIGEST_RETRY,
    DigestStatus,
    JobOutcome,
    Jobs,
    Plan,
    catch_up,
    duration,
    retry_time,
)
from kcrush_feeds.schedule.triggers import (
    EveryTrigger,
    FireTimes,
    WallClockCronTrigger,
    build_trigger,
    last_fire_time,
)
from kcrush_feeds.signals import stop_on_signals

log = logging.getLogger("kcrush_feeds.schedule")

Clock = Callable[[], datetime]


class _Fires(BaseTrigger):  # type: ignore[misc]
    """One of our triggers, as APScheduler takes it (it accepts ``BaseTrigger`` only)."""

    def __init__(self, times: FireTimes) -> None:
        self.times = times

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """Whatever the wrapped trigger says."""
        return self.times.get_next_fire_time(previous_fire_time, now)

    def __str__(self) -> str:
        return str(self.times)


class Service:
    """The running ``schedule``: APScheduler plus logging, catch-up and retries.

    ``clock`` gives "now" for decisions and for the jobs (pinned in tests); ``timer`` is
    the real clock APScheduler fires by, used only to place runs on its timeline.

    Only three long-lived jobs are ever added (build, digest, digest-retry); nothing is
    added or removed while running. (APScheduler 3.x removes a finished one-off job from
    its scheduler thread, which races with ``shutdown()`` and prints a JobLookupError.)
    """

    def __init__(
        self,
        plan: Plan,
        jobs: Jobs,
        *,
        clock: Clock,
        timer: Clock,
        digest_status: DigestStatus | None = None,
        workers: int = 2,
        retry_check: timedelta = timedelta(minutes=1),
    ) -> None:
        self.plan = plan
        self.jobs = jobs
        self.clock = clock
        self.timer = timer
        self.digest_status = digest_status
        self.retry_check = retry_check
        self.stop = threading.Event()
        self._digest: WallClockCronTrigger | None = plan.digest
        self._lock = threading.Lock()
        self._retries = 0
        self._retry: tuple[datetime, datetime] | None = None  # (when, scheduled) on timer
        self._build: EveryTrigger = build_trigger(plan.build_every, timer())
        self.scheduler = BackgroundScheduler(
            timezone=plan.tz,
            executors={"default": ThreadPoolExecutor(max_workers=workers)},
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        self.scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)

    # -- lifecycle

    def start(self) -> None:
        """Add the jobs (the first build, and a catch-up digest if due, run at once)."""
        now = self.clock()
        self._build = build_trigger(self.plan.build_every, self.timer())
        self.scheduler.add_job(
            self._run_build,
            _Fires(self._build),
            id=BUILD,
            name=BUILD,
            misfire_grace_time=None,
            next_run_time=self.timer(),
        )
        if self._digest is not None:
            due = self._catch_up(now)
            # A catch-up is the digest job's first run, now; the trigger takes over after it.
            extra = {"next_run_time": self.timer()} if due else {}
            self.scheduler.add_job(
                self._run_digest,
                _Fires(self._digest),
                id=DIGEST,
                name=DIGEST,
                misfire_grace_time=max(1, int(self.plan.grace.total_seconds())),
                **extra,
            )
            self.scheduler.add_job(
                self._check_retry,
                IntervalTrigger(
                    seconds=self.retry_check.total_seconds(), start_date=self.timer(), timezone=UTC
                ),
                id=DIGEST_RETRY,
                name=DIGEST_RETRY,
                misfire_grace_time=None,
            )
        self.scheduler.start()
        log.log(
            logging.WARNING
            if self.plan.why_no_digest == "no [smtp] section" and self._digest is None
            else logging.INFO,
            "schedule: started in %s; build every %s; %s",
            self.plan.tz.key,
            duration(self.plan.build_every),
            f"digest at {self.plan.schedule!r}, next {self._next_digest(now)}"
            if self._digest is not None
            else f"{self.plan.why_no_digest}: the digest is not sent",
        )

    def run(self) -> None:
        """Start, then block until SIGTERM or SIGINT (or ``stop``); the work in flight
        finishes first, a second signal stops at once (exit status 1)."""
        route_apscheduler_logs()
        restore = stop_on_signals(self.stop, first=_announce, again=_stop_at_once)
        self.start()
        try:
            # A timeout keeps the main thread responsive to signals on every platform.
            while not self.stop.wait(1.0):
                pass
        finally:
            self.shutdown()
            restore()

    def shutdown(self) -> None:
        """Stop firing, let running jobs finish (they see ``stop`` set), then return."""
        self.stop.set()
        if self.scheduler.running:
            log.info("schedule: stopping after the work in flight")
            self.scheduler.shutdown(wait=True)
            log.info("schedule: stopped")

    # -- decisions on start

    def _catch_up(self, now: datetime) -> bool:
        """Log what happened to the last digest time; True if it is to be sent now."""
        assert self._digest is not None
        decision = catch_up(self._digest, now, self.plan.grace)
        if decision.kind == "due":
            assert decision.fire_time is not None
            log.info(
                "digest: the digest time %s passed while schedule was not running; "
                "within the grace period of %s: sending now",
                decision.fire_time.isoformat(),
                duration(self.plan.grace),
            )
            return True
        if decision.kind == "missed":
            assert decision.fire_time is not None and decision.period is not None
            state = (
                self.digest_status(decision.period) if self.digest_status is not None else "missing"
            )
            when = decision.fire_time.isoformat()
            if state == "done":
                log.info("digest: the digest of %s (%s) was sent", decision.period, when)
            elif state == "empty":
                log.info(
                    "digest: no digest sent yet; the first one is at %s", self._next_digest(now)
                )
            else:
                log.warning(
                    "digest: the digest of %s (%s) %s, and its time passed more than %s "
                    "ago: schedule leaves that week; the next digest is at %s "
                    "('kcrush-feeds send' still sends it by hand)",
                    decision.period,
                    when,
                    "was started but not finished"
                    if state == "sending"
                    else "is not in the store (not sent, or nothing was new)",
                    duration(self.plan.grace),
                    self._next_digest(now),
                )
        return False

    # -- the job wrappers APScheduler calls

    def _run_build(self) -> None:
        now = self.clock()
        log.info("build: started")
        outcome = self._guard(BUILD, self.jobs.build, now)
        log.log(
            logging.INFO if outcome.status == "ok" else logging.WARNING,
            "build: %s: %s; next build at %s",
            outcome.status,
            outcome.summary,
            self._next_build(),
        )

    def _check_retry(self) -> None:
        with self._lock:
            due = self._retry is not None and self._retry[0] <= self.timer()
            scheduled = self._retry[1] if self._retry is not None else None
            if due:
                self._retry = None
        if due:
            self._run_digest(scheduled)

    def _run_digest(self, scheduled: datetime | None = None) -> None:
        now = self.clock()
        assert self._digest is not None
        if scheduled is None:
            scheduled = last_fire_time(self._digest, now, self.plan.grace + timedelta(days=1))
        scheduled = scheduled or now
        log.info(
            "digest: started (scheduled at %s)", scheduled.astimezone(self.plan.tz).isoformat()
        )
        outcome = self._guard(DIGEST, self.jobs.send, now)
        retry = None
        with self._lock:
            if outcome.status == "ok":
                self._retries = 0
                self._retry = None
            elif not self.stop.is_set():
                retry = retry_time(scheduled, self._retries, now, self.plan.grace)
                self._retries = self._retries + 1 if retry is not None else 0
                if retry is not None:
                    # On the timer's timeline: the clock may be pinned (tests, demos).
                    self._retry = (self.timer() + (retry - now.astimezone(UTC)), scheduled)
        if retry is not None:
            log.warning(
                "digest: %s: %s; retrying at %s",
                outcome.status,
                outcome.summary,
                retry.astimezone(self.plan.tz).isoformat(timespec="seconds"),
            )
            return
        if outcome.status != "ok" and not self.stop.is_set():
            log.warning(
                "digest: %s: %s; past the grace period of %s: not retrying "
                "('kcrush-feeds send' retries by hand)",
                outcome.status,
                outcome.summary,
                duration(self.plan.grace),
            )
        else:
            log.info("digest: %s: %s", outcome.status, outcome.summary)
        log.info("digest: next digest at %s", self._next_digest(now))

    def _guard(
        self, name: str, job: Callable[[datetime, threading.Event], JobOutcome], now: datetime
    ) -> JobOutcome:
        """Run one job; whatever it raises is logged, never kills the process."""
        try:
            return job(now, self.stop)
        except BusyError as e:
            return JobOutcome("deferred", f"{e.message} (another run holds the lock)")
        except KcrushError as e:
            return JobOutcome("failed", str(e).replace("\n", " "))
        except Exception as e:
            # A service must outlive a bug in one run: log it with its traceback and let
            # the next run try again.
            log.exception("%s: unexpected error", name)
            return JobOutcome("failed", f"internal error: {type(e).__name__}: {e}")

    # -- helpers

    def _next_build(self) -> str:
        # From the trigger, not the job: APScheduler may update the job's next_run_time
        # only after this run has started.
        when = self._build.get_next_fire_time(None, self.timer() + timedelta(seconds=1))
        return when.astimezone(self.plan.tz).isoformat(timespec="seconds")

    def _next_digest(self, now: datetime) -> str:
        if self._digest is None:
            return "-"
        when = self._digest.get_next_fire_time(None, now + timedelta(seconds=1))
        return when.isoformat() if when is not None else "-"

    def _on_missed(self, event: JobExecutionEvent | JobSubmissionEvent) -> None:
        if event.code == EVENT_JOB_MAX_INSTANCES:
            log.info("%s: still running from the last time: this run is skipped", event.job_id)
            return
        log.warning(
            "%s: the run due at %s was missed by more than the grace period of %s "
            "(was the machine asleep?); the next one runs as scheduled",
            event.job_id,
            event.scheduled_run_time.astimezone(self.plan.tz).isoformat(),
            duration(self.plan.grace),
        )


def _announce(name: str) -> None:
    log.info(
        "schedule: %s received: stopping after the work in flight (send it again to stop at once)",
        name,
    )


def _stop_at_once(name: str) -> None:
    log.warning("schedule: %s again: stopping at once", name)
    sys.exit(1)


def route_apscheduler_logs() -> None:
    """APScheduler's errors go through our handler; its INFO chatter is dropped."""
    ours = logging.getLogger("kcrush_feeds")
    theirs = logging.getLogger("apscheduler")
    theirs.handlers[:] = list(ours.handlers)
    theirs.propagate = False
    theirs.setLevel(logging.ERROR)  # missed and skipped runs are logged by the Service
