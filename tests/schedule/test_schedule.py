"""``schedule``: when jobs run (DST, catch-up, retries) with a controllable clock, and the
service running real APScheduler threads with recording jobs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kcrush_feeds.errors import BusyError, DeliveryError
from kcrush_feeds.schedule.plan import (
    CatchUp,
    DigestStatus,
    JobOutcome,
    Plan,
    catch_up,
    describe,
    retry_time,
)
from kcrush_feeds.schedule.service import Service
from kcrush_feeds.schedule.triggers import (
    WallClockCronTrigger,
    digest_trigger,
    last_fire_time,
    next_fire_times,
)
from kcrush_feeds.store.db import Store
from kcrush_feeds.store.digests import digest_state
from tests.support.project import Project

LA = ZoneInfo("America/Los_Angeles")
SMTP = '[smtp]\nhost = "127.0.0.1"\nport = 2525\ntls = "none"\n\n'
BERLIN = ZoneInfo("Europe/Berlin")


def simulate(
    trigger: WallClockCronTrigger,
    start: datetime,
    end: datetime,
    step: timedelta = timedelta(minutes=1),
) -> list[datetime]:
    """Drive ``trigger`` the way APScheduler's loop does, with a clock that ticks by ``step``.

    At each tick, every due run time is run (coalesced) and the next one is asked for with
    the previous fire time and the current time, as ``Job._get_run_times`` does.
    """
    fired: list[datetime] = []
    now = start
    next_run = trigger.get_next_fire_time(None, now)
    while now <= end:
        if next_run is not None and next_run <= now:
            fired.append(next_run)
            next_run = trigger.get_next_fire_time(next_run, now)
        now += step
    return fired


def _day(fires: list[datetime], tz: ZoneInfo, year: int, month: int, day: int) -> list[str]:
    return [
        f.isoformat() for f in fires if f.astimezone(tz).date() == datetime(year, month, day).date()
    ]


# --- next-run computation across daylight-saving changes ---------------------------------


@pytest.mark.parametrize(
    ("tz", "day", "hour", "minute", "expected"),
    [
        # Spring forward: 02:00-03:00 does not exist; the 02:30 job runs once, at the jump.
        (LA, (2026, 3, 8), 2, 30, ["2026-03-08T03:00:00-07:00"]),
        (BERLIN, (2026, 3, 29), 2, 30, ["2026-03-29T03:00:00+02:00"]),
        # Fall back: 01:00-02:00 (LA) and 02:00-03:00 (Berlin) happen twice; run once, first.
        (LA, (2026, 11, 1), 1, 30, ["2026-11-01T01:30:00-07:00"]),
        (BERLIN, (2026, 10, 25), 2, 30, ["2026-10-25T02:30:00+02:00"]),
        # Berlin's fall-back day at 01:30 is an ordinary time, before the repeated hour.
        (BERLIN, (2026, 10, 25), 1, 30, ["2026-10-25T01:30:00+02:00"]),
        # Times just outside the changes are unaffected.
        (LA, (2026, 3, 8), 3, 30, ["2026-03-08T03:30:00-07:00"]),
        (LA, (2026, 11, 1), 2, 30, ["2026-11-01T02:30:00-08:00"]),
    ],
)
def test_a_daily_job_runs_exactly_once_on_dst_days(
    tz: ZoneInfo, day: tuple[int, int, int], hour: int, minute: int, expected: list[str]
) -> None:
    trigger = WallClockCronTrigger({"hour": str(hour), "minute": str(minute)}, tz)
    start = datetime(*day, tzinfo=tz) - timedelta(days=2)
    fires = simulate(trigger, start, start + timedelta(days=5))
    assert _day(fires, tz, *day) == expected
    # One run on each of the five days, never two within 23 hours of each other.
    assert len(fires) == 5
    assert all(b - a >= timedelta(hours=23) for a, b in pairwise(fires))


@pytest.mark.parametrize(
    ("tz", "spec", "day", "expected"),
    [
        (LA, "sun 02:30", (2026, 3, 8), "2026-03-08T03:00:00-07:00"),
        (LA, "30 1 * * 0", (2026, 11, 1), "2026-11-01T01:30:00-07:00"),  # crontab 0 = Sunday
        (BERLIN, "sun 02:30", (2026, 3, 29), "2026-03-29T03:00:00+02:00"),
        (BERLIN, "30 2 * * 7", (2026, 10, 25), "2026-10-25T02:30:00+02:00"),  # 7 = Sunday
    ],
)
def test_the_weekly_digest_on_a_dst_sunday_runs_once(
    tz: ZoneInfo, spec: str, day: tuple[int, int, int], expected: str
) -> None:
    trigger = digest_trigger(spec, tz)
    start = datetime(*day, tzinfo=tz) - timedelta(days=8)
    fires = simulate(trigger, start, start + timedelta(days=15))
    assert [f.isoformat() for f in fires][1] == expected
    assert len(fires) == 2
    assert fires[1] - fires[0] >= timedelta(days=7) - timedelta(hours=1)


def test_every_minute_through_the_repeated_hour_never_goes_back_in_time() -> None:
    trigger = WallClockCronTrigger({"minute": "*/15"}, LA)
    start = datetime(2026, 11, 1, 0, 0, tzinfo=LA)
    fires = simulate(trigger, start, start + timedelta(hours=4))
    instants = [f.astimezone(UTC) for f in fires]
    assert instants == sorted(set(instants))
    # 00:00 .. 03:45 by the wall clock, each once: 16 runs in 5 real hours.
    assert [f.strftime("%H:%M") for f in fires][:8] == [
        "00:00",
        "00:15",
        "00:30",
        "00:45",
        "01:00",
        "01:15",
        "01:30",
        "01:45",
    ]
    assert [f.strftime("%H:%M%z") for f in fires][8:10] == ["02:00-0800", "02:15-0800"]


def test_next_runs_of_the_example_schedule_keep_local_time_across_the_change() -> None:
    trigger = digest_trigger("mon 09:00", LA)
    runs = next_fire_times(trigger, datetime(2026, 10, 20, tzinfo=UTC), 3)
    assert [r.isoformat() for r in runs] == [
        "2026-10-26T09:00:00-07:00",
        "2026-11-02T09:00:00-08:00",
        "2026-11-09T09:00:00-08:00",
    ]


# --- catch-up after a restart -----------------------------------------------------------------


def test_catch_up_inside_the_grace_period_sends_at_start() -> None:
    trigger = digest_trigger("mon 09:00", LA)
    now = datetime(2026, 11, 23, 14, 59, tzinfo=LA)  # 5h59m late, grace 6h
    decision = catch_up(trigger, now, timedelta(hours=6))
    assert decision == CatchUp("due", datetime(2026, 11, 23, 9, 0, tzinfo=LA))
    assert decision.period == "2026-W48"


def test_catch_up_outside_the_grace_period_waits_for_next_week() -> None:
    trigger = digest_trigger("mon 09:00", LA)
    now = datetime(2026, 11, 23, 15, 1, tzinfo=LA)
    decision = catch_up(trigger, now, timedelta(hours=6))
    assert decision.kind == "missed"
    assert decision.fire_time == datetime(2026, 11, 23, 9, 0, tzinfo=LA)
    assert next_fire_times(trigger, now, 1) == [datetime(2026, 11, 30, 9, 0, tzinfo=LA)]


def test_catch_up_when_no_digest_time_passed_recently() -> None:
    yearly = digest_trigger("0 9 1 1 *", LA)
    assert catch_up(yearly, datetime(2026, 6, 1, tzinfo=LA), timedelta(hours=6)).kind == "none"


def test_last_fire_time_across_the_spring_change() -> None:
    trigger = WallClockCronTrigger({"hour": "2", "minute": "30"}, LA)
    now = datetime(2026, 3, 8, 3, 10, tzinfo=LA)
    assert last_fire_time(trigger, now, timedelta(days=2)) == datetime(2026, 3, 8, 3, 0, tzinfo=LA)


def test_retry_backs_off_and_stops_at_the_end_of_the_grace_period() -> None:
    scheduled = datetime(2026, 11, 23, 9, 0, tzinfo=LA)
    grace = timedelta(hours=2)
    now = scheduled
    delays = []
    for attempt in range(10):
        when = retry_time(scheduled, attempt, now, grace)
        if when is None:
            break
        delays.append(int((when - now).total_seconds() // 60))
        now = when
    assert delays == [5, 10, 20, 40, 45]  # 09:05 09:15 09:35 10:15, last at 11:00 sharp


# --- schedule --print -------------------------------------------------------------------------


def test_print_shows_the_next_runs_and_exits(project: Project) -> None:
    project.append_config(SMTP + '[schedule]\nbuild_every = "10m"\nmisfire_grace_time = "3h"\n')
    result = project.run(
        "schedule", "--print", env={"KCRUSH_FEEDS_NOW": "2026-10-31T16:00:00+00:00"}
    )
    assert result.exit_code == 0, result.output
    assert result.output == (
        "times in America/Los_Angeles; now 2026-10-31T09:00:00-07:00\n"
        "build   every 10m: build the feeds\n"
        "        2026-10-31T09:00:00-07:00\n"
        "        2026-10-31T09:10:00-07:00\n"
        "        2026-10-31T09:20:00-07:00\n"
        "digest  'mon 09:00' in America/Los_Angeles: send the weekly digest "
        "(up to 3h late after a restart)\n"
        "        2026-11-02T09:00:00-08:00\n"
        "        2026-11-09T09:00:00-08:00\n"
        "        2026-11-16T09:00:00-08:00\n"
    )
    assert not (project.dir / "store.db").exists()  # --print touches nothing


def test_print_shows_a_catch_up_run_at_start(project: Project) -> None:
    project.append_config(SMTP)
    result = project.run(
        "schedule", "--print", "--count", "2", env={"KCRUSH_FEEDS_NOW": "2026-11-23T19:00:00+00:00"}
    )  # 11:00 PST
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "catching up 2026-11-23T09:00:00-08:00 at start" in lines[4]
    assert lines[5:] == ["        2026-11-23T11:00:00-08:00", "        2026-11-30T09:00:00-08:00"]


def test_print_without_smtp_says_the_digest_is_not_sent(project: Project) -> None:
    result = project.run("schedule", "--print", "--count", "1")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[3:] == ["digest  not sent: no [smtp] section"]


def test_describe_without_a_digest_section() -> None:
    plan = Plan(
        tz=LA, build_every=timedelta(minutes=15), grace=timedelta(hours=6), schedule=None, sources=2
    )
    jobs = describe(plan, datetime(2026, 11, 22, tzinfo=UTC), 1)
    assert [(j.name, j.description) for j in jobs] == [
        ("build", "every 15m: import 2 sources, then build"),
        ("digest", "not sent: no [digest] section"),
    ]


# --- the running service (real APScheduler threads, recording jobs) --------------------------


class RecordingJobs:
    """Jobs that record each call; ``build_body``/``send_body`` decide what a run does."""

    def __init__(
        self,
        build_body: Callable[[int], JobOutcome] | None = None,
        send_body: Callable[[int], JobOutcome] | None = None,
    ) -> None:
        self.builds: list[datetime] = []
        self.sends: list[datetime] = []
        self.build_body = build_body
        self.send_body = send_body
        self.lock = threading.Lock()

    def build(self, now: datetime, stop: threading.Event) -> JobOutcome:
        with self.lock:
            self.builds.append(now)
            n = len(self.builds)
        return self.build_body(n) if self.build_body else JobOutcome("ok", f"build {n}")

    def send(self, now: datetime, stop: threading.Event) -> JobOutcome:
        with self.lock:
            self.sends.append(now)
            n = len(self.sends)
        return self.send_body(n) if self.send_body else JobOutcome("ok", f"sent {n}")


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    # The CLI's setup_logging stops propagation at "kcrush_feeds": listen below it.
    logger = logging.getLogger("kcrush_feeds.schedule")
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # or the root handler would capture each record twice
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)
        logger.propagate = True


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def service(
    jobs: RecordingJobs,
    now: datetime,
    *,
    every: float = 3600,
    schedule: str | None = "mon 09:00",
    digest_status: DigestStatus | None = None,
) -> Service:
    plan = Plan(
        tz=LA, build_every=timedelta(seconds=every), grace=timedelta(hours=6), schedule=schedule
    )
    return Service(
        plan,
        jobs,
        clock=lambda: now,
        timer=lambda: datetime.now(UTC),
        digest_status=digest_status,
        retry_check=timedelta(seconds=0.1),
    )


def test_service_builds_at_start_and_every_interval(logs: pytest.LogCaptureFixture) -> None:
    jobs = RecordingJobs()
    svc = service(jobs, datetime(2026, 11, 25, 12, tzinfo=LA), every=1)
    svc.start()
    try:
        wait_for(lambda: len(jobs.builds) >= 3)
    finally:
        svc.shutdown()
    assert jobs.sends == []  # Wednesday noon: no digest due, none caught up
    messages = [r.getMessage() for r in logs.records]
    assert any(m.startswith("build: started") for m in messages)
    assert any(m.startswith("build: ok: build 1; next build at 20") for m in messages)
    assert messages[-1] == "schedule: stopped"


def test_a_failing_job_is_logged_and_runs_again(logs: pytest.LogCaptureFixture) -> None:
    def body(n: int) -> JobOutcome:
        if n == 1:
            raise DeliveryError("cannot read source https://example.invalid/: connection refused")
        if n == 2:
            raise ZeroDivisionError("a bug")
        return JobOutcome("ok", "fine again")

    jobs = RecordingJobs(build_body=body)
    svc = service(jobs, datetime(2026, 11, 25, 12, tzinfo=LA), every=1)
    svc.start()
    try:
        wait_for(lambda: len(jobs.builds) >= 3)
        wait_for(lambda: any("fine again" in r.getMessage() for r in logs.records))
    finally:
        svc.shutdown()
    messages = [r.getMessage() for r in logs.records]
    assert any("build: failed: cannot read source https://example.invalid/" in m for m in messages)
    assert any("build: failed: internal error: ZeroDivisionError: a bug" in m for m in messages)


def test_restart_inside_the_grace_period_sends_at_once(logs: pytest.LogCaptureFixture) -> None:
    now = datetime(2026, 11, 23, 10, 30, tzinfo=LA)  # 90 minutes after the digest time
    jobs = RecordingJobs()
    svc = service(jobs, now)
    svc.start()
    try:
        wait_for(lambda: len(jobs.sends) == 1)
        wait_for(
            lambda: any(r.getMessage().startswith("digest: next digest at") for r in logs.records)
        )
    finally:
        svc.shutdown()
    assert jobs.sends == [now]
    messages = [r.getMessage() for r in logs.records]
    assert any(
        "passed while schedule was not running; within the grace period of 6h: sending now" in m
        for m in messages
    )
    assert "digest: started (scheduled at 2026-11-23T09:00:00-08:00)" in messages
    assert "digest: next digest at 2026-11-30T09:00:00-08:00" in messages


def test_restart_after_the_grace_period_logs_the_missed_week(
    logs: pytest.LogCaptureFixture,
) -> None:
    now = datetime(2026, 11, 23, 16, 0, tzinfo=LA)  # 7 hours late
    jobs = RecordingJobs()
    svc = service(jobs, now, digest_status=lambda period: "missing")
    svc.start()
    time.sleep(0.3)
    svc.shutdown()
    assert jobs.sends == []
    missed = [r for r in logs.records if "schedule leaves that week" in r.getMessage()]
    assert len(missed) == 1 and missed[0].levelno == logging.WARNING
    assert (
        "the digest of 2026-W48 (2026-11-23T09:00:00-08:00) is not in the store (not sent, "
        "or nothing was new), and its time passed more than 6h ago" in missed[0].getMessage()
    )
    assert "the next digest is at 2026-11-30T09:00:00-08:00" in missed[0].getMessage()


def test_restart_after_a_sent_digest_says_so(logs: pytest.LogCaptureFixture) -> None:
    jobs = RecordingJobs()
    svc = service(jobs, datetime(2026, 11, 24, tzinfo=LA), digest_status=lambda period: "done")
    svc.start()
    svc.shutdown()
    assert jobs.sends == []
    assert "digest: the digest of 2026-W48 (2026-11-23T09:00:00-08:00) was sent" in [
        r.getMessage() for r in logs.records
    ]


def test_a_deferred_or_busy_digest_is_retried_within_the_grace_period(
    logs: pytest.LogCaptureFixture,
) -> None:
    def body(n: int) -> JobOutcome:
        if n == 1:
            raise BusyError("another kcrush-feeds is sending")
        return JobOutcome("deferred", "sent 3, deferred 1")

    jobs = RecordingJobs(send_body=body)
    now = datetime(2026, 11, 23, 9, 1, tzinfo=LA)
    svc = service(jobs, now)
    svc.start()
    try:
        wait_for(lambda: len(jobs.sends) == 1)
        wait_for(lambda: svc._retry is not None)
        assert svc._retry is not None
        in_five = datetime.now(UTC) + timedelta(minutes=5)
        assert abs(svc._retry[0] - in_five) < timedelta(seconds=30)
        # Pull the retry forward rather than wait five real minutes.
        svc._retry = (datetime.now(UTC), svc._retry[1])
        wait_for(lambda: len(jobs.sends) == 2)
        wait_for(lambda: sum("retrying at" in r.getMessage() for r in logs.records) == 2)
    finally:
        svc.shutdown()
    messages = [r.getMessage() for r in logs.records if "retrying at" in r.getMessage()]
    assert messages[0].startswith(
        "digest: deferred: another kcrush-feeds is sending "
        "(another run holds the lock); retrying at "
        "2026-11-23T09:06:00-08:00"
    )
    assert messages[1].startswith(
        "digest: deferred: sent 3, deferred 1; retrying at 2026-11-23T09:11:00-08:00"
    )  # the clock is pinned


def test_shutdown_waits_for_the_job_in_flight(logs: pytest.LogCaptureFixture) -> None:
    started = threading.Event()
    finished = threading.Event()
    seen_stop: list[bool] = []
    svc: Service

    def body(n: int) -> JobOutcome:
        started.set()
        time.sleep(0.5)
        seen_stop.append(svc.stop.is_set())
        finished.set()
        return JobOutcome("ok", "slow build")

    jobs = RecordingJobs(build_body=body)
    svc = service(jobs, datetime(2026, 11, 25, 12, tzinfo=LA))
    svc.start()
    assert started.wait(5)
    svc.shutdown()
    assert finished.is_set()
    assert seen_stop == [True]  # the job can see that a stop was asked for
    assert len(jobs.builds) == 1


def test_the_digest_state_comes_from_the_store(tmp_path: Path) -> None:
    with Store.open(tmp_path / "store.db") as store:
        assert digest_state(store, "2026-W47") == "empty"
        with store.transaction() as conn:
            conn.execute(
                "INSERT INTO digests (period, created_at, since, until, status) "
                "VALUES ('2026-W46', 0, 0, 0, 'done'), ('2026-W47', 0, 0, 0, 'sending')"
            )
        assert digest_state(store, "2026-W46") == "done"
        assert digest_state(store, "2026-W47") == "sending"
        assert digest_state(store, "2026-W48") == "missing"


def test_a_first_start_does_not_warn_about_a_missed_week(logs: pytest.LogCaptureFixture) -> None:
    svc = service(
        RecordingJobs(), datetime(2026, 11, 25, tzinfo=LA), digest_status=lambda p: "empty"
    )
    svc.start()
    svc.shutdown()
    assert not [r for r in logs.records if r.levelno >= logging.WARNING]
    assert "digest: no digest sent yet; the first one is at 2026-11-30T09:00:00-08:00" in [
        r.getMessage() for r in logs.records
    ]
