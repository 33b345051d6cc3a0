"""``import``: load records into the store."""

from __future__ import annotations

import json
from typing import get_args

import click

from kcrush_feeds import clock
from kcrush_feeds.cli.main import IMPORT_HELP, App, pass_app
from kcrush_feeds.cli.progress import progress
from kcrush_feeds.errors import UsageError
from kcrush_feeds.records.importer import ImportReport, import_files
from kcrush_feeds.records.readers import Format
from kcrush_feeds.sources.configured import Source, SourceReport, config_sources, import_sources

SHOW_AT_MOST = 200  # messages of each kind; the count of the rest is given


@click.command("import", short_help=IMPORT_HELP)
@click.argument("sources", nargs=-1, metavar="[SOURCE]...")
@click.option(
    "--wordpress",
    "wordpress",
    metavar="URL",
    multiple=True,
    help="A WordPress site to read through its REST API (repeatable). Incremental: only "
    "posts modified since the last import are asked for.",
)
@click.option(
    "--full",
    is_flag=True,
    help="Re-read WordPress sites from the start (withdrawing posts they no longer list) "
    "and fetch feeds even if unchanged.",
)
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
    app: App,
    sources: tuple[str, ...],
    wordpress: tuple[str, ...],
    full: bool,
    fmt: Format | None,
    strict: bool,
    as_json: bool,
) -> None:
    """Load records from SOURCE files (JSON array, JSON Lines or CSV; - for stdin),
    feeds (an http(s) SOURCE: RSS, Atom or JSON Feed) and WordPress sites (--wordpress).

    Re-importing a record with the same id updates it; unchanged records are not
    rewritten. Each rejected record is reported as FILE:LINE: field: reason, and the
    good records in the same file are still stored (unless --strict). With no SOURCE
    and no --wordpress, imports the [[sources]] of the config file. A source that
    fails does not stop the others. Exits 1 if any source failed or any record was
    rejected.
    """
    config = app.config
    files = [s for s in sources if not s.startswith(("http://", "https://"))]
    remote = [Source("wordpress", check_url(u).rstrip("/")) for u in wordpress]
    remote += [Source("feed", check_url(s)) for s in sources if s not in files]
    if not sources and not wordpress:
        remote = config_sources(config)
        if not remote:
            raise UsageError(
                "nothing to import: give SOURCE files or feed URLs, --wordpress URL, "
                f"or list [[sources]] in {config.path}"
            )
    if remote and (strict or fmt):
        raise UsageError("--strict and --format apply to files only, not to feeds or sites")
    source_reports = (
        import_sources(
            config,
            app.store,
            clock.now(),
            full=full,
            sources=remote,
            on_report=None if as_json else show_source,
        )
        if remote
        else []
    )
    if not files:
        if as_json:
            click.echo(
                json.dumps(
                    {"sources": [source_json(r) for r in source_reports]},
                    ensure_ascii=False,
                    indent=2,
                )
            )
        if not all(r.ok for r in source_reports):
            raise click.exceptions.Exit(1)
        return
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
    show_report(report, as_json=as_json, sources=source_reports)
    if not report.ok or not all(r.ok for r in source_reports):
        raise click.exceptions.Exit(1)


def check_url(url: str) -> str:
    if (
        not url.startswith(("http://", "https://"))
        or "://" not in url
        or not url.split("://", 1)[1].strip("/")
    ):
        raise UsageError(f"{url!r} is not an http(s) URL such as https://www.kcrush.com")
    return url


def show_source(report: SourceReport) -> None:
    """Per source: what it fetched and what changed (problems on stderr)."""
    source = report.source
    head = f"{source.label} ({source.kind})"
    if report.error is not None:
        click.echo(f"error: {head}: {report.error}", err=True)
        return
    for kind, problems in (("error", report.report.rejected), ("warning", report.report.warnings)):
        for problem in problems[:SHOW_AT_MOST]:
            click.echo(f"{kind}: {problem}", err=True)
        if len(problems) > SHOW_AT_MOST:
            click.echo(f"{kind}: ... and {len(problems) - SHOW_AT_MOST} more", err=True)
    line = f"{head}: {report.summary()}"
    if report.cursor and source.kind == "wordpress":
        line += f"; newest change {report.cursor}"
    click.echo(line)


def source_json(report: SourceReport) -> dict[str, object]:
    r = report.report
    return {
        "source": report.source.label,
        "kind": report.source.kind,
        "url": report.source.location,
        "ok": report.ok,
        "error": report.error,
        "fetched": report.fetched,
        "requests": report.requests,
        "pages": report.pages,
        "not_modified": report.not_modified,
        "added": r.added,
        "updated": r.updated,
        "unchanged": r.unchanged,
        "withdrawn": report.withdrawn,
        "restored": report.restored,
        "rejected": [str(p) for p in r.rejected],
        "warnings": [str(p) for p in r.warnings],
        "cursor": report.cursor,
    }


def show_report(
    report: ImportReport, *, as_json: bool, sources: list[SourceReport] | None = None
) -> None:
    if as_json:
        extra = {"sources": [source_json(r) for r in sources]} if sources else {}
        click.echo(
            json.dumps(
                {
                    **extra,
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
