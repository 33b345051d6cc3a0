"""What ``schedule`` runs when: the plan from the config, the catch-up on start, retries.

Pure decisions on values: "now" and the triggers come in, nothing is fired or slept here
(``schedule.service`` does that with APScheduler).

Catch-up after downtime: with the memory job store, a restarted scheduler does not know
what it missed. ``catch_up`` computes the last digest time before "now": within
``schedule.misfire_grace_time`` the digest runs at once (the stored digest status and the send
lock decide whether that week was already sent, never this process's memory); later than
that it is logged as missed and the next week is waited for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

from kcrush_feeds.config import Config
from kcrush_feeds.model import DigestState
from kcrush_feeds.schedule.triggers import (
    WallClockCronTrigger,
    build_trigger,
    digest_trigger,
    last_fire_time,
    next_fire_times,
)
from kcrush_feeds.weeks import period_of

BUILD = "build"
DIGEST = "digest"
DIGEST_RETRY = "digest-retry"

Status = Literal["ok", "deferred", "failed"]

# How far back "the week was missed" is reported on start: one week, whatever the grace.
MISSED_LOOKBACK = timedelta(days=7)
# A failed or deferred digest is retried after 5, 10, 20, 40, 60, 60 ... minutes while
# the scheduled time is within the grace period (send resumes the same digest, so a retry
# never sends anyone a second copy).
RETRY_FIRST = timedelta(minutes=5)
RETRY_MAX = timedelta(hours=1)


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


# --- the jobs ---------------------------------------------------------------------------


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


# Where the scheduler asks what the store says about a period's digest.
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
            f"every {duration(plan.build_every)}: {what}",
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
            f"(up to {duration(plan.grace)} late after a restart)"
        )
        if decision.kind == "due":
            assert decision.fire_time is not None
            runs = [now.astimezone(plan.tz), *runs][:count]
            description += f" (catching up {decision.fire_time.isoformat()} at start)"
        jobs.append(PlannedJob(DIGEST, description, tuple(runs)))
    else:
        jobs.append(PlannedJob(DIGEST, f"not sent: {plan.why_no_digest}", ()))
    return jobs


def duration(value: timedelta) -> str:
    """``timedelta(hours=1, minutes=30)`` as "1h30m", for log lines."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"
