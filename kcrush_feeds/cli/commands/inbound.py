"""``inbound``: process returned mail (bounces, complaints, mailto unsubscribes)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kcrush_feeds import clock
from kcrush_feeds.cli.context import App, pass_app
from kcrush_feeds.errors import EXIT_FAILED
from kcrush_feeds.inbound.run import run_inbound


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@click.option(
    "--keep",
    metavar="MAILDIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="With '-': keep a message not understood in this Maildir (created) and exit 0, "
    "so an MTA pipe does not return it to its sender.",
)
@pass_app
def inbound(app: App, paths: tuple[Path, ...], as_json: bool, keep: Path | None) -> None:
    """Process returned mail from each PATH (a Maildir, an mbox file, one .eml file, or
    '-' for one message on stdin); with no PATH, from the [bounces.imap] mailbox.

    \b
    Hard bounces mark the subscriber bounced; soft bounces count (bounces.soft_limit
    within bounces.soft_window do the same); complaints and unsubscribe requests
    unsubscribe. Understood messages move to cur/ (Maildir) or processed_folder (IMAP);
    the rest stay where they were. An mbox is only read.
    Exit status: 0 every message understood; 1 some were not (kept); 2 usage or config.
    An MTA pipe: "|kcrush-feeds -c /etc/kcrush/config.toml inbound --keep DIR -".
    """
    report = run_inbound(app.config, app.store, list(paths), clock.now(), keep=keep)
    if as_json:
        click.echo(json.dumps({**report.as_dict(), "problems": report.problems}, indent=2))
    else:
        click.echo(f"inbound: {report.summary()}")
    if report.not_understood > report.kept:
        raise click.exceptions.Exit(EXIT_FAILED)
