"""``digest list | show | approve | edit``: the digests, and the editor's hand on the next one."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

import click

from kcrush_feeds import clock
from kcrush_feeds.cli.context import App, pass_app
from kcrush_feeds.delivery.lock import run_lock
from kcrush_feeds.digest import desk
from kcrush_feeds.digest.editing import PINNED_SECTION
from kcrush_feeds.errors import UsageError
from kcrush_feeds.model import sections_of
from kcrush_feeds.store import editorial as store_editorial

LOCK_WAIT = 5.0  # seconds an edit waits for a send that is finishing

week_argument = click.argument("week", required=False, metavar="[WEEK]")


@click.group(short_help="The digests, and the editor's hand on the next one.")
def digest() -> None:
    """The digests, and the editor's hand on the next one (WEEK: e.g. 2026-W49,
    default the current week)."""


@digest.command("list")
@pass_app
def list_command(app: App) -> None:
    """Every digest with its state, items and deliveries, newest first."""
    rows = list(store_editorial.list_digests(app.store))
    if not rows:
        click.echo("no digests yet")
        return
    click.echo(f"{'WEEK':<9} {'STATE':<18} {'ITEMS':>5} {'SENT':>7} {'DEFERRED':>8} {'FAILED':>6}")
    for row in rows:
        state = desk.state_of(app.config, row.status, row.sent, row.editorial)
        items = row.items - len(row.editorial.drops)
        click.echo(
            f"{row.period:<9} {state:<18} {items:>5} {row.sent:>7} {row.deferred:>8} "
            f"{row.failed:>6}"
        )


@digest.command()
@week_argument
@pass_app
def show(app: App, week: str | None) -> None:
    """The items in order (pins first, drops marked), the note, the subject, the state."""
    now = clock.now()
    period = desk.parse_week(week, app.config, now)
    found = desk.view(app.config, app.store, period, now)
    if found is None:
        click.echo(f"{period}: nothing new, no digest")
        return
    _print(found)


def _print(found: desk.DeskView) -> None:
    row = found.row
    click.echo(f"digest {found.period}: {found.state}")
    if found.stored:
        detail = f"revision {row.revision}"
        if row.proof_sent_at is not None:
            detail += f", proof of revision {row.proof_revision} sent {row.proof_sent_at:%F %R} UTC"
        if row.approved:
            detail += f", approved by {row.approved_by}"
        click.echo(f"  {detail}")
    click.echo(f"subject: {row.subject or '(from the subject template)'}")
    if found.editorial.note is not None:
        click.echo("note:")
        for line in found.editorial.note.text.splitlines():
            click.echo(f"  {line}" if line else "")
    shown = {item.record_id for item in found.edited.items}
    click.echo(f"items: {len(found.edited.items)} of {len(found.original.items)}")
    for title, items in sections_of(found.edited.items):
        click.echo(f"  [{title}]")
        for item in items:
            mark = "pin " if item.section == PINNED_SECTION else "    "
            click.echo(f"  {mark} {item.record_id}  {item.title}")
    dropped = [item for item in found.original.items if item.record_id not in shown]
    if dropped:
        click.echo("  [dropped]")
        for item in dropped:
            click.echo(f"  drop {item.record_id}  {item.title}")


@digest.command()
@week_argument
@pass_app
def approve(app: App, week: str | None) -> None:
    """Approve the digest for sending (with approval = "required")."""
    now = clock.now()
    period = desk.parse_week(week, app.config, now)
    with run_lock(app.config.database_path, "send", wait=LOCK_WAIT):
        found = desk.approve(app.config, app.store, period, now, by=_who())
    click.echo(f"approved digest {found.period} (revision {found.row.revision})")
    click.echo("the next 'kcrush-feeds send' (or the schedule's next try) sends it")


@digest.command()
@week_argument
@click.option(
    "--note",
    "note_file",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default=None,
    metavar="FILE",
    help="The editor's note (Markdown; - for stdin); an empty file removes it.",
)
@click.option("--subject", default=None, metavar="TEXT", help="The subject line ('' resets it).")
@click.option(
    "--pin", "pins", multiple=True, metavar="RECORD_ID", help="Open with it (repeatable: in order)."
)
@click.option("--drop", "drops", multiple=True, metavar="RECORD_ID", help="Leave it out.")
@click.option("--clear", is_flag=True, help="Remove the note, subject, pins and drops first.")
@pass_app
def edit(
    app: App,
    week: str | None,
    note_file: Path | None,
    subject: str | None,
    pins: tuple[str, ...],
    drops: tuple[str, ...],
    clear: bool,
) -> None:
    """Change the digest before it goes out (creating it, frozen as send would, if need be).

    Refused once its first message was accepted. An edit after the proof sends a new one.
    """
    now = clock.now()
    period = desk.parse_week(week, app.config, now)
    if not (note_file or subject is not None or pins or drops or clear):
        raise UsageError("nothing to change: give --note, --subject, --pin, --drop or --clear")
    note = None
    if note_file is not None:
        try:
            note = (
                sys.stdin.read() if str(note_file) == "-" else note_file.read_text(encoding="utf-8")
            )
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"--note {note_file}: cannot read: {e}") from e
    # The send lock: an edit never lands in the middle of a run that composed already.
    with run_lock(app.config.database_path, "send", wait=LOCK_WAIT):
        found = desk.edit(
            app.config,
            app.store,
            period,
            now,
            note=note,
            subject=subject,
            pins=pins,
            drops=drops,
            clear=clear,
        )
    _print(found)


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"
