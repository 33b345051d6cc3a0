"""``import``: load records into the store."""

from __future__ import annotations

from typing import get_args

import click

from kcrush_feeds import clock
from kcrush_feeds.cli.context import App, pass_app
from kcrush_feeds.cli.output import echo_import_json, report_problems, show_problems
from kcrush_feeds.cli.progress import progress
from kcrush_feeds.errors import UsageError
from kcrush_feeds.model import Source
from kcrush_feeds.records.importer import ImportReport, import_files
from kcrush_feeds.records.readers import Format
from kcrush_feeds.sources.configured import SourceReport, config_sources, import_sources
from kcrush_feeds.text import show


@click.command("import")
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
        if not as_json and any(r.report.added or r.report.updated for r in source_reports):
            warn_clashes(app)
        if as_json:
            echo_import_json(None, source_reports)
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
    if report.added or report.updated:
        warn_clashes(app)
    if not report.ok or not all(r.ok for r in source_reports):
        raise click.exceptions.Exit(1)


def warn_clashes(app: App) -> None:
    """Say now, not at the next build, when two record categories would share a feed."""
    from kcrush_feeds.errors import FeedError
    from kcrush_feeds.feeds.build import plan_feeds  # lazy: lxml and nh3
    from kcrush_feeds.feeds.slugs import CLASH_HINT

    clashes: list[str] = []
    try:
        plan_feeds(app.config, app.store, clashes)
    except FeedError:
        return  # two configured feeds: a config problem that build reports
    for clash in clashes:
        click.echo(
            f"warning: {clash}: build will write no feed for them\n  hint: {CLASH_HINT}",
            err=True,
        )


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
        click.echo(f"error: {show(f'{head}: {report.error}')}", err=True)
        return
    show_problems(report_problems(report.report))
    line = f"{head}: {report.summary()}"
    if report.cursor and source.kind == "wordpress":
        line += f"; newest change {report.cursor}"
    click.echo(line)


def show_report(
    report: ImportReport, *, as_json: bool, sources: list[SourceReport] | None = None
) -> None:
    if as_json:
        echo_import_json(report, sources or [])
        return
    show_problems(report_problems(report))
    click.echo(f"imported: {report.summary()}")
