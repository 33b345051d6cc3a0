"""``subscribers add / update / remove / list / import / export``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from kcrush_feeds import clock
from kcrush_feeds.catalogue import Catalogue
from kcrush_feeds.cli.context import App, pass_app
from kcrush_feeds.cli.output import show_problems
from kcrush_feeds.subscriptions.subscribers import (
    STATUSES,
    Status,
    SubscriberError,
    add_subscriber,
    check_categories,
    count_by_status,
    export_subscribers,
    import_subscribers,
    iter_subscribers,
    remove_subscriber,
    update_subscriber,
)

_status_choice = click.Choice(STATUSES)


@click.group()
def subscribers() -> None:
    """Manage the digest's subscribers (add, update, remove, list, import, export)."""


def _categories(app: App, values: tuple[str, ...]) -> tuple[str, ...] | None:
    return check_categories(Catalogue.from_config(app.config), values)


@subscribers.command()
@click.argument("email")
@click.option("--name", default="", help="Display name (used in the greeting and To:).")
@click.option(
    "--category",
    "categories",
    multiple=True,
    metavar="SLUG",
    help="A digest category (feed slug) to receive; repeat for several. Default: all.",
)
@click.option(
    "--status",
    type=_status_choice,
    default="active",
    show_default=True,
    help="'pending' waits for the subscriber to confirm.",
)
@pass_app
def add(app: App, email: str, name: str, categories: tuple[str, ...], status: Status) -> None:
    """Add EMAIL as a subscriber."""
    added = add_subscriber(
        app.store,
        email,
        name=name,
        categories=_categories(app, categories),
        status=status,
        now=clock.now(),
    )
    chosen = ", ".join(added.categories) if added.categories else "all categories"
    click.echo(f"added {added.email} ({added.status}; {chosen})")


@subscribers.command()
@click.argument("email")
@click.option("--name", default=None, help="New display name ('' clears it).")
@click.option(
    "--category", "categories", multiple=True, metavar="SLUG", help="Replace the categories."
)
@click.option("--all-categories", is_flag=True, help="Receive every digest category.")
@click.option("--status", type=_status_choice, default=None, help="New status.")
@pass_app
def update(
    app: App,
    email: str,
    name: str | None,
    categories: tuple[str, ...],
    all_categories: bool,
    status: Status | None,
) -> None:
    """Change the name, categories or status of EMAIL.

    Unlike an import, this may re-activate an address that unsubscribed: do that only
    when its owner asked you to.
    """
    if categories and all_categories:
        raise SubscriberError("give --category or --all-categories, not both")
    store = app.store
    now = clock.now()
    if categories:
        updated = update_subscriber(
            store, email, now=now, name=name, status=status, categories=_categories(app, categories)
        )
    elif all_categories:
        updated = update_subscriber(
            store, email, now=now, name=name, status=status, categories=None
        )
    else:
        updated = update_subscriber(store, email, now=now, name=name, status=status)
    chosen = ", ".join(updated.categories) if updated.categories else "all categories"
    click.echo(f"updated {updated.email} ({updated.status}; {chosen})")


@subscribers.command()
@click.argument("email")
@click.option(
    "--forget",
    is_flag=True,
    help="Delete the address and its delivery history instead of marking it unsubscribed.",
)
@pass_app
def remove(app: App, email: str, forget: bool) -> None:
    """Stop sending to EMAIL (it stays, as unsubscribed, so no import brings it back)."""
    removed = remove_subscriber(app.store, email, now=clock.now(), forget=forget)
    click.echo(f"{'deleted' if forget else 'unsubscribed'} {removed.email}")


@subscribers.command("list")
@click.option("--status", type=_status_choice, default=None, help="Only this status.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON, for scripts.")
@pass_app
def list_command(app: App, status: str | None, as_json: bool) -> None:
    """List subscribers: address, status, categories, name."""
    found = list(iter_subscribers(app.store, status=status))
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "id": s.id,
                        "email": s.email,
                        "name": s.name,
                        "status": s.status,
                        "categories": None if s.categories is None else list(s.categories),
                    }
                    for s in found
                ],
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    if not found:
        click.echo("no subscribers" + (f" with status {status}" if status else ""))
        return
    width = max(len(s.email) for s in found)
    for s in found:
        chosen = ",".join(s.categories) if s.categories else "(all)"
        click.echo(f"{s.email:<{width}}  {s.status:<12}  {chosen:<32}  {s.name}".rstrip())
    counts = count_by_status(app.store)
    click.echo(f"{len(found)} shown; " + ", ".join(f"{n} {k}" for k, n in counts.items() if n))


@subscribers.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path, allow_dash=True))
@click.option(
    "--status",
    "default_status",
    type=_status_choice,
    default="active",
    show_default=True,
    help="Status of rows whose status cell is empty.",
)
@pass_app
def import_command(app: App, file: Path, default_status: Status) -> None:
    """Merge subscribers from a CSV FILE (email,name,categories,status; - for stdin).

    categories holds digest category slugs joined with '|' (empty: all). Addresses are
    merged case-insensitively; an address that unsubscribed or bounced is never
    re-activated (it is reported). Bad rows are reported as FILE:LINE: column: reason and
    the good ones are still imported; exits 1 if any row was rejected.
    """
    catalogue = Catalogue.from_config(app.config)
    text = sys.stdin if str(file) == "-" else None
    report = import_subscribers(
        app.store,
        "<stdin>" if text else file,
        catalogue,
        now=clock.now(),
        text=text,
        default_status=default_status,
    )
    show_problems(
        [("error", report.rejected), ("warning", report.warnings), ("kept", report.kept_stopped)]
    )
    click.echo(f"subscribers: {report.summary()}")
    if not report.ok:
        raise click.exceptions.Exit(1)


@subscribers.command()
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file (default: standard output).",
)
@click.option("--status", type=_status_choice, default=None, help="Only this status.")
@pass_app
def export(app: App, out: Path | None, status: str | None) -> None:
    """Write subscribers as CSV, in the format 'subscribers import' reads."""
    if out is None:
        export_subscribers(app.store, sys.stdout, status=status)
        return
    with out.open("w", encoding="utf-8", newline="") as f:
        count = export_subscribers(app.store, f, status=status)
    click.echo(f"wrote {count} subscribers to {out}", err=True)
