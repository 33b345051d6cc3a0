"""Import records from files into the store, and report what happened to each.

Records are normalised one at a time and written in batches; a bad record is reported as
``FILE:LINE: field: reason`` and the good ones in the same file are still stored, unless
``strict`` makes the whole run one all-or-nothing transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from kcrush_feeds.errors import InputError, RecordError
from kcrush_feeds.model import Record
from kcrush_feeds.records.normalize import normalize
from kcrush_feeds.records.readers import BadLine, Format, RawRecord, open_source, read_records
from kcrush_feeds.store import records as store_records
from kcrush_feeds.store.db import Store
from kcrush_feeds.store.staging import StagedRecords

BATCH = 2_000
KEEP_PROBLEMS = 1_000  # messages of each kind kept in memory; the rest are only counted


class Problems(list["Problem"]):
    """A list of problems that keeps the first ``KEEP_PROBLEMS`` and counts the rest.

    ``len()`` is the full count; iterating and slicing give the kept ones. A file of a
    million bad lines costs a thousand messages of memory, not a million.
    """

    def __init__(self) -> None:
        super().__init__()
        self.dropped = 0

    def append(self, problem: Problem) -> None:
        if super().__len__() < KEEP_PROBLEMS:
            super().append(problem)
        else:
            self.dropped += 1

    def extend(self, problems: Iterable[Problem]) -> None:
        for problem in problems:
            self.append(problem)

    def __len__(self) -> int:
        return super().__len__() + self.dropped


@dataclass(frozen=True, slots=True)
class Problem:
    """One message about one place in the input: ``FILE:LINE: field: reason``."""

    source: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.message}"


@dataclass(slots=True)
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Problem] = field(default_factory=Problems)
    warnings: list[Problem] = field(default_factory=Problems)
    rolled_back: bool = False
    # id -> (file, line) where it was first seen in this import, over all its files
    first_seen: dict[str, tuple[str, int]] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return not self.rejected

    def count(self, changes: Iterable[str]) -> None:
        for change in changes:
            if change == "added":
                self.added += 1
            elif change == "updated":
                self.updated += 1
            else:
                self.unchanged += 1

    def summary(self) -> str:
        text = (
            f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
            f"{len(self.rejected)} rejected"
        )
        if self.rolled_back:
            text += " (--strict: nothing was stored)"
        return text


def import_files(
    store: Store,
    names: Iterable[str],
    *,
    tz: tzinfo,
    now: datetime,
    fmt: Format | None = None,
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import every file in ``names`` (``-`` is standard input)."""
    report = ImportReport()
    names = list(names)
    with store.bulk():
        _import_all(store, names, fmt, tz, now, report, progress, strict=strict)
    return report


def _import_all(
    store: Store,
    names: list[str],
    fmt: Format | None,
    tz: tzinfo,
    now: datetime,
    report: ImportReport,
    progress: Callable[[int], None] | None,
    *,
    strict: bool,
) -> None:
    if strict:
        # Read and check everything into a staging area that takes no lock on the store;
        # take the write lock only to move the records in (a concurrent send or subscribe
        # waits for that move, not for the whole input).
        staged = StagedRecords(store)
        try:
            for name in names:
                _import_one(store, name, fmt, tz, now, report, progress, stage=staged)
            if report.rejected:
                report.rolled_back = True
                return
            with store.transaction():
                for source, records in staged.batches(BATCH):
                    report.count(store_records.upsert(store, records, source=source, now=now))
        finally:
            staged.clear()
        return
    for name in names:
        _import_one(store, name, fmt, tz, now, report, progress)


def import_records(
    store: Store,
    records: Iterable[tuple[str, int | None, Record]],
    *,
    source: str,
    now: datetime,
    report: ImportReport,
) -> None:
    """Store already-normalised records (from WordPress or a feed) in batches."""
    batch: dict[str, Record] = {}
    for _, _, record in records:
        batch[record.id] = record
        if len(batch) >= BATCH:
            _flush(store, batch, source, now, report)
    _flush(store, batch, source, now, report)


def _import_one(
    store: Store,
    name: str,
    fmt: Format | None,
    tz: tzinfo,
    now: datetime,
    report: ImportReport,
    progress: Callable[[int], None] | None,
    *,
    stage: StagedRecords | None = None,
) -> None:
    label = "<stdin>" if name == "-" else name
    batch: dict[str, Record] = {}
    first_seen = report.first_seen
    try:
        stream = open_source(name)
        with stream if name != "-" else nullcontext(stream):
            for item in read_records(label, stream, fmt):
                if isinstance(item, BadLine):
                    report.rejected.append(
                        Problem(label, item.line, f"{item.field}: {item.reason}")
                    )
                    continue
                record = _normalise(label, item, tz, report)
                if record is None:
                    continue
                seen = first_seen.setdefault(record.id, (label, item.line))
                if seen != (label, item.line):
                    where = f"line {seen[1]}" if seen[0] == label else f"{seen[0]}:{seen[1]}"
                    report.warnings.append(
                        Problem(
                            label,
                            item.line,
                            f"id: {record.id!r} appeared already on {where}; "
                            "this later record replaces it",
                        )
                    )
                batch[record.id] = record
                if len(batch) >= BATCH:
                    _flush(store, batch, label, now, report, stage=stage)
                    if progress:
                        progress(BATCH)
    except InputError as e:
        report.rejected.append(Problem(label, e.line, e.reason))
    finally:
        count = len(batch)
        _flush(store, batch, label, now, report, stage=stage)
        if progress and count:
            progress(count)


def _normalise(label: str, item: RawRecord, tz: tzinfo, report: ImportReport) -> Record | None:
    try:
        record, warnings = normalize(item.data, tz)
    except RecordError as e:
        report.rejected.append(Problem(label, item.line, str(e)))
        return None
    report.warnings.extend(Problem(label, item.line, w) for w in warnings)
    return record


def _flush(
    store: Store,
    batch: dict[str, Record],
    source: str,
    now: datetime,
    report: ImportReport,
    *,
    stage: StagedRecords | None = None,
) -> None:
    if not batch:
        return
    records = list(batch.values())
    batch.clear()
    if stage is not None:
        stage.add(records, source=source)
        return
    with store.transaction():
        report.count(store_records.upsert(store, records, source=source, now=now))
