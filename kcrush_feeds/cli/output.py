"""What commands print that more than one command prints: problem lists and import reports."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import click

from kcrush_feeds.records.importer import ImportReport
from kcrush_feeds.sources.configured import SourceReport
from kcrush_feeds.text import show

SHOW_AT_MOST = 200  # problems of one kind shown; the count of the rest is given


def show_problems(groups: Iterable[tuple[str, Sequence[object]]]) -> None:
    """Print each group's problems on stderr as ``kind: problem``, at most SHOW_AT_MOST each."""
    for kind, problems in groups:
        for problem in problems[:SHOW_AT_MOST]:
            # A problem quotes the input (a field name, a value): no control codes out.
            click.echo(f"{kind}: {show(str(problem))}", err=True)
        if len(problems) > SHOW_AT_MOST:
            click.echo(f"{kind}: ... and {len(problems) - SHOW_AT_MOST} more", err=True)


def report_problems(report: ImportReport) -> list[tuple[str, Sequence[object]]]:
    """An import report's problems, as ``show_problems`` groups."""
    return [("error", report.rejected), ("warning", report.warnings)]


def source_json(report: SourceReport) -> dict[str, object]:
    """One configured source's import, as the JSON ``import --json`` prints."""
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


def echo_import_json(report: ImportReport | None, sources: Sequence[SourceReport]) -> None:
    """``import --json``: the sources' reports, then the files' report when files were read."""
    out: dict[str, object] = {"sources": [source_json(r) for r in sources]} if sources else {}
    if report is not None:
        out |= {
            "added": report.added,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "rejected": [str(p) for p in report.rejected],
            "warnings": [str(p) for p in report.warnings],
            "rolled_back": report.rolled_back,
        }
    else:
        out.setdefault("sources", [])
    click.echo(json.dumps(out, ensure_ascii=False, indent=2))
