"""``schedule``: one long-running process that builds and sends on time (see schedule/)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from kcrush_feeds import clock
from kcrush_feeds.cli.context import App, pass_app
from kcrush_feeds.schedule.jobs import ConfiguredJobs, check_ready, digest_status
from kcrush_feeds.schedule.plan import Plan, describe
from kcrush_feeds.schedule.service import Service


@click.command()
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
    check_ready(config, plan)
    Service(
        plan,
        ConfiguredJobs(config),
        clock=clock.now,
        timer=lambda: datetime.now(UTC),
        digest_status=digest_status(config),
    ).run()
