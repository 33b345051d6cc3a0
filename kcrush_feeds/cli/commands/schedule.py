"""``schedule``: one long-running process that builds and sends on time (see scheduling)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from datetime import UTC, datetime
from types import FrameType

import click

from kcrush_feeds import clock
from kcrush_feeds.cli.main import SCHEDULE_HELP, App, pass_app
from kcrush_feeds.config import Config
from kcrush_feeds.errors import EXIT_OK, EXIT_TEMPFAIL
from kcrush_feeds.schedule.service import (
    JobOutcome,
    Ledger,
    LedgerState,
    Plan,
    Service,
    Status,
    describe,
    digest_state,
)
from kcrush_feeds.sources.configured import import_sources
from kcrush_feeds.store.db import Store

log = logging.getLogger("kcrush_feeds.schedule")
SHOW_AT_MOST = 5  # rejected records logged per source and run; the summary has the count


class CommandJobs:
    """The real job bodies; each run opens its own store connection (jobs run in threads)."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def build(self, now: datetime, stop: threading.Event) -> JobOutcome:
        """Import the configured sources (one log line each), then build the feeds."""
        with Store.open(self.config.database_path) as store:
            if self.config.sources:
                # A failing source is reported and the others still run (import_sources);
                # the build goes ahead with what the store holds.
                for report in import_sources(self.config, store, now):
                    log.log(
                        logging.INFO if report.ok else logging.WARNING,
                        "import: %s: %s",
                        report.source.label,
                        report.summary(),
                    )
                    for problem in report.report.rejected[:SHOW_AT_MOST]:
                        log.warning("import: %s: %s", report.source.label, problem)
                if stop.is_set():
                    return JobOutcome("ok", "imported; the build is left for the next start")
            from kcrush_feeds.feeds.build import build_feeds  # lazy, as in the build command (lxml)

            built = build_feeds(self.config, store, now)
        return JobOutcome("ok", built.summary())

    def send(self, now: datetime, stop: threading.Event) -> JobOutcome:
        """Send (or resume) this period's digest; the ledger and the send lock decide
        whether anything is left to send (cron may have sent it already)."""
        from kcrush_feeds.delivery.send import send_digest  # lazy: aiosmtplib and the composer

        with Store.open(self.config.database_path) as store:
            report = send_digest(self.config, store, now, stop=stop)
        code = report.exit_status
        status: Status = (
            "ok" if code == EXIT_OK else "deferred" if code == EXIT_TEMPFAIL else "failed"
        )
        return JobOutcome(status, report.summary())


def ledger(config: Config) -> Ledger:
    """What the store's digest ledger says about a period (see ``digest_state``)."""

    def state(period: str) -> LedgerState:
        with Store.open(config.database_path) as store:
            return digest_state(store, period)

    return state


@click.command(short_help=SCHEDULE_HELP)
@click.option(
    "--print", "print_only", is_flag=True, help="Show the next run times of each job and exit."
)
@click.option(
    "--count",
    default=3,
    show_default=True,
    type=click.IntRange(1, 100),
    help="With --print: how many run times to show per job.",
)
@pass_app
def schedule(app: App, print_only: bool, count: int) -> None:
    """Run in the foreground: build the feeds every schedule.build_every (importing the
    configured [[sources]] first) and send the weekly digest at digest.schedule, in
    site.timezone.

    \b
    Logs one line per event (job start, result, next run time) with ISO 8601 times.
    A failing job is logged and tried again at its next run. A digest whose time passed
    while schedule was not running is sent on start if it is less than
    schedule.misfire_grace_time late. SIGTERM or SIGINT (Ctrl-C) stops it after the work
    in flight, with exit status 0; a second signal stops it at once.
    """
    config = app.config
    plan = Plan.from_config(config)
    now = clock.now()
    if print_only:
        click.echo(
            f"times in {plan.tz.key}; now {now.astimezone(plan.tz).isoformat(timespec='seconds')}"
        )
        for job in describe(plan, now, count):
            click.echo(f"{job.name:<7} {job.description}")
            for when in job.next_runs:
                click.echo(f"        {when.isoformat(timespec='seconds')}")
        return
    # Fail now (exit 2) on what the jobs would fail on at every run: the store, and the
    # secrets the digest needs, rather than at the first digest.
    Store.open(config.database_path).close()
    if plan.schedule is not None:
        config.require_smtp().password()
        if config.subscriptions is not None:
            config.subscriptions.secret()
    _route_apscheduler_logs()
    service = Service(
        plan,
        CommandJobs(config),
        clock=clock.now,
        timer=lambda: datetime.now(UTC),
        ledger=ledger(config),
    )
    _stop_on_signals(service.stop)
    service.start()
    try:
        # A timeout keeps the main thread responsive to signals on every platform.
        while not service.stop.wait(1.0):
            pass
    finally:
        service.shutdown()


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("schedule: %s again: stopping at once", name)
            sys.exit(1)
        log.info(
            "schedule: %s received: stopping after the work in flight "
            "(send it again to stop at once)",
            name,
        )
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _route_apscheduler_logs() -> None:
    """APScheduler's errors go through our handler; its INFO chatter is dropped."""
    ours = logging.getLogger("kcrush_feeds")
    theirs = logging.getLogger("apscheduler")
    theirs.handlers[:] = list(ours.handlers)
    theirs.propagate = False
    theirs.setLevel(logging.ERROR)  # missed and skipped runs are logged by the Service
