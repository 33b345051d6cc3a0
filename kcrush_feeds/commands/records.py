"""``import``: load records into the store."""

from __future__ import annotations

import json
from typing import get_args

import click

from .. import clock
from ..cli import App, pass_app
from ..importer import ImportReport, import_files
from ..readers import Format
from ..ui import progress

SHOW_AT_MOST = 200  # messages of each kind; the count of the rest is given


@click.command("import")
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(get_args(Format)),
    help="Input format (default: from the file extension or its first character).",
)
@click.option(
    "--strict",
    is_flag=True,
    help="All or nothing: if any record is rejected, store none of the batch.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_app
def import_command(
    app: App, sources: tuple[str, ...], fmt: Format | None, strict: bool, as_json: bool
) -> None:
    """Load records from SOURCE files (JSON array, JSON Lines or CSV; - for stdin).

    Re-importing a record with the same id updates it; unchanged records are not
    rewritten. Each rejected record is reported as FILE:LINE: field: reason, and the
    good records in the same file are still stored (unless --strict). Exits 1 if any
    record was rejected.
    """
    config = app.config
    with progress("importing") as step:
        report = import_files(
            app.store,
            sources,
            tz=config.site.tz,
            now=clock.now(),
            fmt=fmt,
            strict=strict,
            progress=step,
        )
    show_report(report, as_json=as_json)
    if not report.ok:
        raise click.exceptions.Exit(1)


def show_report(report: ImportReport, *, as_json: bool) -> None:
    if as_json:
        click.echo(
            json.dumps(
                {
                    "added": report.added,
                    "updated": report.updated,
                    "unchanged": report.unchanged,
                    "rejected": [str(p) for p in report.rejected],
                    "warnings": [str(p) for p in report.warnings],
                    "rolled_back": report.rolled_back,
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    for kind, problems in (("error", report.rejected), ("warning", report.warnings)):
        for problem in problems[:SHOW_AT_MOST]:
            click.echo(f"{kind}: {problem}", err=True)
        if len(problems) > SHOW_AT_MOST:
            click.echo(f"{kind}: ... and {len(problems) - SHOW_AT_MOST} more", err=True)
    click.echo(f"imported: {report.summary()}")
