"""``send``: the weekly digest to every subscriber, over SMTP, exactly once."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import click

from kcrush_feeds import clock
from kcrush_feeds.cli.context import App, pass_app
from kcrush_feeds.cli.progress import Progress, progress
from kcrush_feeds.delivery.send import send_digest
from kcrush_feeds.errors import UsageError
from kcrush_feeds.text import show, show_lines

SHOW_AT_MOST = 20  # failed deliveries listed; the rest are in `status` and the store


@click.command()
@click.option(
    "--dry-run",
    "dry_run",
    is_flag=False,
    flag_value="dry-run",
    default=None,
    metavar="[DIR]",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write every message that would be sent as .eml into DIR (default ./dry-run); "
    "send nothing, mark nothing.",
)
@click.option(
    "--to",
    "test_address",
    metavar="ADDRESS",
    default=None,
    help="Send one test copy of the whole digest to ADDRESS; mark nothing.",
)
@pass_app
def send(app: App, dry_run: Path | None, test_address: str | None) -> None:
    """Send this week's digest to every active subscriber who has something in it.

    \b
    Safe to run at any time, and again: each subscriber gets each digest once, even
    after a crash or a kill. A second run in the same week sends nothing and says why.
    Exit status: 0 done; 75 some deliveries were deferred (temporary SMTP failures)
    and the next run retries them; 1 some failed for good (or the run failed).
    """
    if dry_run is not None and test_address is not None:
        raise UsageError("--dry-run and --to cannot be used together")
    with ExitStack() as stack:
        bar: list[Progress] = []

        def on_total(n: int) -> None:
            bar.append(stack.enter_context(progress("sending", n)))

        def step(n: int) -> None:
            if bar:
                bar[0](n)

        report = send_digest(
            app.config,
            app.store,
            clock.now(),
            dry_run_dir=dry_run,
            test_address=test_address,
            progress=step,
            total=on_total,
        )
    for recipient, reply in report.failures[:SHOW_AT_MOST]:
        # The reply is the SMTP server's own text: no control codes onto the terminal.
        click.echo(f"warning: {recipient}: {show(reply)}", err=True)
    if len(report.failures) > SHOW_AT_MOST:
        click.echo(f"warning: ... and {len(report.failures) - SHOW_AT_MOST} more", err=True)
    click.echo(show_lines(report.summary()))
    if report.exit_status:
        raise click.exceptions.Exit(report.exit_status)
