"""``schedule``: build every N minutes and send the weekly digest, in one process.

The job bodies (import + build, send) are injected as a ``Jobs`` object, so this module
decides only *when* things run: APScheduler 3.x fires them, and everything that depends on
"now" takes it from a clock passed in, so tests can pin any moment (a DST change, a restart
after an outage) without sleeping.

Two things APScheduler 3.x does not do for us, done here:

- **Daylight saving time.** ``CronTrigger`` works on wall-clock fields and, on the day the
  clocks go back, fires a 01:30 job twice (01:30 PDT and 01:30 PST); on the day they go
  forward it returns a local time that does not exist. ``WallClockCronTrigger`` wraps it
  with the rules of Vixie cron: a time in the repeated hour runs once (the first time the
  clock shows it), and a time the clock skips runs at the moment of the jump.
- **Catch-up after downtime.** With the memory job store, a restarted scheduler does not
  know what it missed. ``catch_up`` computes the last digest time before "now": within
  ``schedule.misfire_grace_time`` the digest runs at once (the stored digest status and the send
  lock decide whether that week was already sent, never this process's memory); later
  than that it is logged as missed and the next week is waited for.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from kcrush_feeds.config import Config
from kcrush_feeds.errors import BusyError, KcrushError
from kcrush_feeds.model import DigestState
from kcrush_feeds.weeks import parse_schedule, period_of

log = logging.getLogger("kcrush_feeds.schedule")

BUILD = "build"
DIGEST = "digest"
DIGEST_RETRY = "digest-retry"

Clock = Callable[[], datetime]
Status = Literal["ok", "deferred", "failed"]

# How far back "the week was missed" is reported on start: one week, whatever the grace.
MISSED_LOOKBACK = timedelta(days=7)
# A failed or deferred digest is retried after 5, 10, 20, 40, 60, 60 ... minutes while
# the scheduled time is within the grace period (send resumes the same digest, so a retry
# never sends anyone a second copy).
RETRY_FIRST = timedelta(minutes=5)
RETRY_MAX = timedelta(hours=1)
_MAX_STEPS = 100_000  # a cron expression matches at most this often in a search


# --- triggers -------------------------------------------------------------------------------


class WallClockCronTrigger(BaseTrigger):  # type: ignore[misc]
    """A ``CronTrigger`` in ``tz`` that runs each wall-clock time once, across DST changes.

    - A time in the hour that is repeated when the clocks go back runs once, the first time
      the clock shows it (the second occurrence is skipped).
    - A time that does not exist because the clocks go forward runs at the moment of the
      jump (02:30 on the spring-forward day in Los Angeles runs at 03:00 PDT).

    Comparisons are made in UTC: aware datetimes in one zone compare without ``fold``, the
    root of several APScheduler DST bugs.
    """

    def __init__(self, fields: Mapping[str, str], tz: ZoneInfo) -> None:
        self.tz = tz
        self.fields = dict(fields)
        self._cron = CronTrigger(timezone=tz, **self.fields)

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """APScheduler's entry point: the first fire time after the previous one and >= now."""
        after = now.astimezone(UTC)
        if previous_fire_time is not None:
            after = max(after, previous_fire_time.astimezone(UTC) + timedelta(microseconds=1))
        return self.first_at_or_after(after)

    def first_at_or_after(self, moment: datetime) -> datetime | None:
        """The first fire time at or after ``moment`` (aware), in ``tz``."""
        moment = moment.astimezone(UTC)
        probe = moment
        for _ in range(_MAX_STEPS):
            wall = self._cron.get_next_fire_time(None, probe.astimezone(self.tz))
            if wall is None:
                return None
            fire = self._resolve(wall)
            if fire is not None and fire >= moment:
                return fire
            # Always move forward, whatever instant the wall time mapped to.
            probe = max(probe, wall.astimezone(UTC)) + timedelta(seconds=1)
        raise RuntimeError(f"no fire time found for {self} after {moment.isoformat()}")

    def _resolve(self, wall: datetime) -> datetime | None:
        """The instant a wall-clock time ``wall`` fires at, or None for a repeat."""
        naive = wall.replace(tzinfo=None)
        first = naive.replace(tzinfo=self.tz, fold=0)
        second = naive.replace(tzinfo=self.tz, fold=1)
        if first.utcoffset() == second.utcoffset():
            return first  # an ordinary time: one instant
        if first.astimezone(UTC).astimezone(self.tz).replace(tzinfo=None) == naive:
            # The repeated hour: both instants show this time; only the first one runs.
            return first if wall.fold == 0 else None
        return self._jump_over(naive, second.astimezone(UTC), first.astimezone(UTC))

    def _jump_over(self, naive: datetime, low: datetime, high: datetime) -> datetime:
        """The instant the clock jumps over the missing wall time ``naive``.

        ``low`` (the time read with the later offset) is before the jump and ``high`` (read
        with the earlier offset) after it; bisect to the second.
        """
        while high - low > timedelta(seconds=1):
            middle = low + (high - low) / 2
            if middle.astimezone(self.tz).replace(tzinfo=None) > naive:
                high = middle
            else:
                low = middle
        return high.replace(microsecond=0).astimezone(self.tz)

    def __str__(self) -> str:
        return "wall-clock cron[{}] in {}".format(
            ", ".join(f"{k}='{v}'" for k, v in self.fields.items()), self.tz.key
        )


def digest_trigger(schedule: str, tz: ZoneInfo) -> WallClockCronTrigger:
    """The trigger for ``digest.schedule`` ("mon 09:00" or a crontab line) in ``tz``."""
    return WallClockCronTrigger(parse_schedule(schedule).cron_fields(), tz)


def build_trigger(every: timedelta, start: datetime) -> IntervalTrigger:
    """Every ``every`` from ``start`` (the first build runs at start), counted in UTC."""
    return IntervalTrigger(
        seconds=max(1, int(every.total_seconds())), start_date=start.astimezone(UTC), timezone=UTC
    )


def next_fire_times(trigger: Any, now: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times of ``trigger`` at or after ``now``."""
    times: list[datetime] = []
    previous: datetime | None = None
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None:
            break
        times.append(fire)
        previous = fire
    return times


def last_fire_time(
    trigger: WallClockCronTrigger, now: datetime, lookback: timedelta
) -> datetime | None:
    """The last fire time of ``trigger`` in ``[now - lookback, now]``, or None."""
    now = now.astimezone(UTC)
    span = min(timedelta(hours=1), lookback)
    while True:
        fire = trigger.first_at_or_after(now - span)
        if fire is not None and fire <= now:
            last = fire
            while True:
                after = trigger.first_at_or_after(last + timedelta(microseconds=1))
                if after is None or after > now:
                    return last
                last = after
        if span >= lookback:
            return None
        span = min(span * 2, lookback)


# --- decisions -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CatchUp:
    """What to do on start about the last digest time before now.

    ``kind``: "due" (within the grace period: send now), "missed" (later than that: log it
    and wait for next week) or "none" (no digest time in the last week).
    """

    kind: Literal["due", "missed", "none"]
    fire_time: datetime | None = None

    @property
    def period(self) -> str | None:
        if self.fire_time is None:
            return None
        tz = self.fire_time.tzinfo
        assert tz is not None
        return period_of(self.fire_time, tz)


def catch_up(trigger: WallClockCronTrigger, now: datetime, grace: timedelta) -> CatchUp:
    """Decide, on start, whether a digest time passed while the process was down."""
    last = last_fire_time(trigger, now, max(grace, MISSED_LOOKBACK))
    if last is None:
        return CatchUp("none")
    if now.astimezone(UTC) - last.astimezone(UTC) <= grace:
        return CatchUp("due", last)
    return CatchUp("missed", last)


def retry_time(
    scheduled: datetime, attempt: int, now: datetime, grace: timedelta
) -> datetime | None:
    """When to retry a failed or deferred digest, or None once past the grace period.

    ``attempt`` counts the retries already made (0 for the first). The delays are 5, 10,
    20, 40, then 60 minutes; the last try is at the end of the grace period.
    """
    delay = min(RETRY_FIRST * (1 << min(attempt, 16)), RETRY_MAX)
    now = now.astimezone(UTC)
    deadline = scheduled.astimezone(UTC) + grace
    if now >= deadline:
        return None
    # The last try is at the end of the grace period, not skipped because of the backoff.
    return min(now + delay, deadline)


# --- the jobs -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """What one run of a job did: ``status`` and a one-line summary for the log."""

    status: Status
    summary: str


class Jobs(Protocol):
    """The work ``schedule`` runs. Each call gets ``now`` and an event set on SIGTERM."""

    def build(self, now: datetime, stop: threading.Event) -> JobOutcome:
        """Import the configured sources, then build the feeds."""
        ...

    def send(self, now: datetime, stop: threading.Event) -> JobOutcome:
        """Send (or resume) the digest of the current period; a no-op if already sent."""
        ...


# Looks up the digest status of a period (``store.digests.digest_state``): whether a
# missed digest time still needs its digest sent.
DigestStatus = Callable[[str], DigestState]


@dataclass(frozen=True, slots=True)
class Plan:
    """When each job runs, from the config."""

    tz: ZoneInfo
    build_every: timedelta
    grace: timedelta
    schedule: str | None  # digest.schedule; None when the digest is not sent
    sources: int = 0
    why_no_digest: str = "no [digest] section"

    @classmethod
    def from_config(cls, config: Config) -> Plan:
        """The plan for ``config``: the digest only with both [digest] and [smtp]."""
        schedule = None
        why = "no [digest] section"
        if config.digest is not None:
            schedule = config.digest.schedule if config.smtp is not None else None
            why = "no [smtp] section"
        return cls(
            tz=config.site.tz,
            build_every=config.schedule.build_every,
            grace=config.schedule.misfire_grace_time,
            schedule=schedule,
            sources=len(config.sources),
            why_no_digest=why,
        )

    @property
    def digest(self) -> WallClockCronTrigger | None:
        return None if self.schedule is None else digest_trigger(self.schedule, self.tz)


@dataclass(frozen=True, slots=True)
class PlannedJob:
    """One line of ``schedule --print``."""

    name: str
    description: str
    next_runs: tuple[datetime, ...]


def describe(plan: Plan, now: datetime, count: int = 3) -> list[PlannedJob]:
    """The jobs and their next ``count`` run times if the process started at ``now``."""
    what = (
        f"import {plan.sources} source{'s' if plan.sources != 1 else ''}, then build"
        if plan.sources
        else "build the feeds"
    )
    jobs = [
        PlannedJob(
            BUILD,
            f"every {_duration(plan.build_every)}: {what}",
            tuple(
                t.astimezone(plan.tz)
                for t in next_fire_times(build_trigger(plan.build_every, now), now, count)
            ),
        )
    ]
    trigger = plan.digest
    if trigger is not None and plan.schedule is not None:
        runs = next_fire_times(trigger, now, count)
        decision = catch_up(trigger, now, plan.grace)
        description = (
            f"{plan.schedule!r} in {plan.tz.key}: send the weekly digest "
            f"(up to {_duration(plan.grace)} late after a restart)"
        )
        if decision.kind == "due":
            assert decision.fire_time is not None
            runs = [now.astimezone(plan.tz), *runs][:count]
            description += f" (catching up {decision.fire_time.isoformat()} at start)"
        jobs.append(PlannedJob(DIGEST, description, tuple(runs)))
    else:
        jobs.append(PlannedJob(DIGEST, f"not sent: {plan.why_no_digest}", ()))
    return jobs


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


# --- the service ------------------------------------------------------------------------------


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
        self._digest = plan.digest
        self._lock = threading.Lock()
        self._retries = 0
        self._retry: tuple[datetime, datetime] | None = None  # (when, scheduled) on timer
        self._build: IntervalTrigger = build_trigger(plan.build_every, timer())
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
            self._build,
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
                self._digest,
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
            _duration(self.plan.build_every),
            f"digest at {self.plan.schedule!r}, next {self._next_digest(now)}"
            if self._digest is not None
            else f"{self.plan.why_no_digest}: the digest is not sent",
        )

    def run(self) -> None:
        """Start, then block until ``stop`` is set; the work in flight finishes first."""
        self.start()
        try:
            while not self.stop.wait(1.0):
                pass
        finally:
            self.shutdown()

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
                _duration(self.plan.grace),
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
                    _duration(self.plan.grace),
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
                _duration(self.plan.grace),
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
        when: datetime = self._build.get_next_fire_time(None, self.timer() + timedelta(seconds=1))
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
            _duration(self.plan.grace),
        )
