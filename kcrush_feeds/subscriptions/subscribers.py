"""Subscribers: who gets the digest, with which categories, in which state.

Addresses are validated and normalised with email-validator (syntax only, no DNS: a
newsletter tool must work offline and must not leak who subscribes to a resolver).
``email_key`` (the lower-cased normalised address) is what makes two spellings of one
address the same subscriber. Status: ``pending`` (waits for confirmation), ``active``,
``paused``, ``unsubscribed``, ``bounced``. An import never brings an ``unsubscribed`` or
``bounced`` address back: it is reported instead.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TextIO, get_args

from email_validator import EmailNotValidError, validate_email

from kcrush_feeds.catalogue import Catalogue
from kcrush_feeds.csvcells import neutralise, restore
from kcrush_feeds.errors import InputError, UsageError
from kcrush_feeds.model import Subscriber, email_key
from kcrush_feeds.records.importer import Problem
from kcrush_feeds.store import subscribers as store_subscribers
from kcrush_feeds.store.db import Store
from kcrush_feeds.text import strip_controls

Status = Literal["pending", "active", "paused", "unsubscribed", "bounced"]
STATUSES: tuple[Status, ...] = get_args(Status)
# An address in one of these states asked (or the mail system told us) to stop: only the
# subscriber themselves, through a confirmed link, can undo that, never an import.
STOPPED: frozenset[str] = frozenset({"unsubscribed", "bounced"})
CSV_COLUMNS = ("email", "name", "categories", "status")
MAX_NAME = 200


class SubscriberError(UsageError):
    """An address, name, category or status given for a subscriber is not acceptable."""


# --- values ------------------------------------------------------------------------------


def normalize_email(value: str) -> str:
    """The normalised address, or ``SubscriberError`` saying what is wrong with it."""
    text = value.strip()
    if not text:
        raise SubscriberError("the address is empty")
    try:
        # No SMTPUTF8: the digest's headers are 7-bit, so the local part must be ASCII
        # (an internationalised domain is kept, in its ASCII form).
        result = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as e:
        raise SubscriberError(str(e)) from e
    return str(result.ascii_email or result.normalized)


def clean_name(value: str | None) -> str:
    """A display name safe for a ``To:`` header: no line breaks or control characters."""
    if not value:
        return ""
    text, _ = strip_controls(value)
    if "\n" in text or "\r" in text:
        raise SubscriberError("the name contains a line break")
    text = " ".join(text.split())
    if len(text) > MAX_NAME:
        raise SubscriberError(f"the name is {len(text)} characters; the limit is {MAX_NAME}")
    return text


def check_status(value: str) -> Status:
    if value not in STATUSES:  # narrowing: a Status from here on
        raise SubscriberError(f"{value!r} is not a status (one of {', '.join(STATUSES)})")
    return value


def check_categories(catalogue: Catalogue, values: Iterable[str] | None) -> tuple[str, ...] | None:
    """Validated digest categories, de-duplicated in order; None or empty means all."""
    if values is None:
        return None
    out: list[str] = []
    for value in values:
        value = value.strip()
        if not value:
            continue
        try:
            slug = catalogue.check(value)
        except ValueError as e:
            raise SubscriberError(str(e)) from e
        if slug not in out:
            out.append(slug)
    return tuple(out) or None


# --- reading -----------------------------------------------------------------------------


def get_subscriber(store: Store, email: str) -> Subscriber | None:
    """The subscriber with this address (any case), or None."""
    return store_subscribers.get_by_email(store, email)


def get_subscriber_by_id(store: Store, subscriber_id: int) -> Subscriber | None:
    return store_subscribers.get_by_id(store, subscriber_id)


def iter_subscribers(store: Store, *, status: str | None = None) -> Iterator[Subscriber]:
    """Subscribers in id order (optionally only one status), streamed from the store."""
    if status is not None:
        check_status(status)
    return store_subscribers.iter_all(store, status=status)


def count_by_status(store: Store) -> dict[str, int]:
    """How many subscribers are in each status (every status listed, zero included)."""
    counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
    counts.update(store_subscribers.count_by_status(store))
    return counts


# --- writing -----------------------------------------------------------------------------


def add_subscriber(
    store: Store,
    email: str,
    *,
    name: str = "",
    categories: tuple[str, ...] | None = None,
    status: Status = "active",
    now: datetime,
    origin: str = "cli",
) -> Subscriber:
    """Add a new subscriber; ``SubscriberError`` if the address is invalid or already known.

    ``categories`` must already be validated (``check_categories``).
    """
    try:
        address = normalize_email(email)
        name = clean_name(name)
    except SubscriberError as e:
        raise SubscriberError(f"{email.strip()!r}: {e.message}") from e
    check_status(status)
    with store.transaction():
        existing = get_subscriber(store, address)
        if existing is not None:
            raise SubscriberError(
                f"{existing.email} is already a subscriber ({existing.status})",
                hint="change it with 'kcrush-feeds subscribers update'",
            )
        new_id = store_subscribers.insert(store, address, name, status, categories, now, origin)
    return Subscriber(new_id, address, name, status, categories)


_UNSET: Any = object()


def update_subscriber(
    store: Store,
    email: str,
    *,
    now: datetime,
    name: str | None = None,
    categories: tuple[str, ...] | None = _UNSET,
    status: Status | None = None,
    only_from: Iterable[str] | None = None,
) -> Subscriber:
    """Change what is given (``categories=None`` means all categories); the new subscriber.

    This is the explicit path (the CLI, or ``serve`` after a signed link): unlike an import
    it may re-activate an address that unsubscribed. With ``only_from``, nothing changes
    unless the current status is one of those, and the subscriber comes back as it is.
    """
    with store.transaction():
        current = get_subscriber(store, email)
        if current is None:
            raise SubscriberError(f"{email}: no such subscriber")
        if only_from is not None and current.status not in set(only_from):
            return current  # checked inside the transaction: no race with another change
        new_name = store_subscribers.KEEP if name is None else clean_name(name)
        new_status = status if status is not None and status != current.status else None
        if new_status is not None:
            check_status(new_status)
        store_subscribers.update(
            store,
            current.id,
            now,
            name=new_name,
            categories=store_subscribers.KEEP if categories is _UNSET else categories,
            status=store_subscribers.KEEP if new_status is None else new_status,
            # An explicit re-activation starts the hard-bounce count afresh; an import not.
            reset_bounces=new_status == "active",
        )
    updated = get_subscriber_by_id(store, current.id)
    assert updated is not None
    return updated


def subscribe_pending(
    store: Store,
    email: str,
    *,
    name: str = "",
    categories: tuple[str, ...] | None = None,
    now: datetime,
    origin: str = "web",
) -> tuple[Subscriber, str | None]:
    """The subscribe form, in one transaction: (the subscriber, the status it had before).

    A new address, or one that unsubscribed or bounced, becomes ``pending`` (it must
    confirm again); a pending one takes the new name and categories. An ``active`` or
    ``paused`` one is left exactly as it is: a form proves nothing about who sent it.
    """
    address = normalize_email(email)
    name = clean_name(name)
    with store.transaction():
        current = get_subscriber(store, address)
        if current is None:
            new_id = store_subscribers.insert(
                store, address, name, "pending", categories, now, origin
            )
            return Subscriber(new_id, address, name, "pending", categories), None
        if current.status in ("active", "paused"):
            return current, current.status
        store_subscribers.update(
            store,
            current.id,
            now,
            name=name or current.name,
            categories=categories,
            status="pending",
        )
    kept_name = name or current.name
    return Subscriber(current.id, current.email, kept_name, "pending", categories), current.status


def remove_subscriber(
    store: Store, email: str, *, now: datetime, forget: bool = False
) -> Subscriber:
    """Stop mail to ``email`` (status ``unsubscribed``, remembered so no import brings it
    back); with ``forget``, delete the subscriber and their delivery history instead."""
    current = get_subscriber(store, email)
    if current is None:
        raise SubscriberError(f"{email}: no such subscriber")
    if not forget:
        return update_subscriber(store, email, now=now, status="unsubscribed")
    with store.transaction():
        store_subscribers.delete(store, current.id)
    return current


# --- CSV import and export ---------------------------------------------------------------


@dataclass(slots=True)
class SubscriberImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_stopped: list[Problem] = field(default_factory=list)  # not re-activated
    rejected: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected

    def summary(self) -> str:
        return (
            f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
            f"{len(self.kept_stopped)} kept unsubscribed/bounced, "
            f"{len(self.rejected)} rejected"
        )


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    email: str
    name: str | None  # None: the column is absent, keep what is stored
    categories: tuple[str, ...] | None
    has_categories: bool
    status: Status | None


def import_subscribers(
    store: Store,
    source: Path | str,
    catalogue: Catalogue,
    *,
    now: datetime,
    text: TextIO | None = None,
    default_status: Status = "active",
) -> SubscriberImportReport:
    """Merge a CSV file (email, name, categories, status) into the subscribers.

    Rows are checked one by one; a bad row is reported as ``FILE:LINE: column: reason`` and
    the good rows are still imported, in one transaction. Duplicates in the file are merged
    case-insensitively (the last row wins). An address stored as unsubscribed or bounced is
    never re-activated by an import: it is reported in ``kept_stopped``.
    """
    label = str(source)
    report = SubscriberImportReport()
    if text is not None:
        rows = _read_rows(text, label, catalogue, report)
    else:
        try:
            with Path(source).open(encoding="utf-8-sig", newline="") as handle:
                rows = _read_rows(handle, label, catalogue, report)
        except OSError as e:
            raise InputError(label, f"cannot read: {e.strerror}") from e
    with store.transaction():
        for key, row in rows.items():
            _merge(store, key, row, label, report, now, default_status)
    return report


def _read_rows(
    handle: TextIO, label: str, catalogue: Catalogue, report: SubscriberImportReport
) -> dict[str, _Row]:
    rows: dict[str, _Row] = {}
    reader = csv.DictReader(handle)
    try:
        columns = [c.strip().lower() for c in (reader.fieldnames or [])]
        if "email" not in columns:
            raise InputError(
                label,
                "the header row has no 'email' column",
                line=1,
                hint="columns: " + ",".join(CSV_COLUMNS),
            )
        reader.fieldnames = columns
        for record in reader:
            line = reader.line_num
            # Cells an export neutralised against spreadsheet formulas get their value back.
            record = {k: restore(v) if isinstance(v, str) else v for k, v in record.items()}
            try:
                row = _parse_row(record, line, catalogue)
            except _RowError as e:
                report.rejected.append(Problem(label, line, f"{e.column}: {e.reason}"))
                continue
            key = email_key(row.email)
            if key in rows:
                report.warnings.append(
                    Problem(
                        label,
                        line,
                        f"email: {row.email} repeats line {rows[key].line}; the later row wins",
                    )
                )
            rows[key] = row
    except csv.Error as e:
        raise InputError(label, f"not valid CSV: {e}", line=reader.line_num) from e
    except UnicodeDecodeError as e:
        raise InputError(label, "not UTF-8 text") from e
    return rows


class _RowError(Exception):
    def __init__(self, column: str, reason: str) -> None:
        super().__init__(f"{column}: {reason}")
        self.column = column
        self.reason = reason


def _parse_row(record: dict[str | Any, Any], line: int, catalogue: Catalogue) -> _Row:
    def cell(name: str) -> str | None:
        value = record.get(name)
        return None if value is None else str(value)

    raw_email = cell("email") or ""
    try:
        email = normalize_email(raw_email)
    except SubscriberError as e:
        raise _RowError(
            "email", f"{raw_email.strip()!r}: {e.message}" if raw_email.strip() else e.message
        ) from e
    try:
        name = None if cell("name") is None else clean_name(cell("name"))
    except SubscriberError as e:
        raise _RowError("name", e.message) from e
    raw_categories = cell("categories")
    try:
        categories = (
            None
            if raw_categories is None
            else check_categories(catalogue, raw_categories.split("|"))
        )
    except SubscriberError as e:
        raise _RowError("categories", e.message) from e
    raw_status = (cell("status") or "").strip().lower()
    try:
        status = check_status(raw_status) if raw_status else None
    except SubscriberError as e:
        raise _RowError("status", e.message) from e
    return _Row(line, email, name, categories, raw_categories is not None, status)


def _merge(
    store: Store,
    key: str,
    row: _Row,
    label: str,
    report: SubscriberImportReport,
    now: datetime,
    default_status: Status,
) -> None:
    existing = get_subscriber(store, key)
    if existing is None:
        store_subscribers.insert(
            store,
            row.email,
            row.name or "",
            row.status or default_status,
            row.categories,
            now,
            "import",
        )
        report.added += 1
        return
    if existing.status in STOPPED:
        wanted = row.status or default_status
        if wanted not in STOPPED:
            report.kept_stopped.append(
                Problem(
                    label,
                    row.line,
                    f"email: {existing.email} is {existing.status}; "
                    "an import does not subscribe it again",
                )
            )
        else:
            report.unchanged += 1
        return
    name = existing.name if row.name is None else row.name
    categories = existing.categories if not row.has_categories else row.categories
    status = row.status or existing.status
    if (name, categories, status) == (existing.name, existing.categories, existing.status):
        report.unchanged += 1
        return
    # An import never resets the hard-bounce count: only an explicit change does.
    store_subscribers.update(
        store, existing.id, now, name=name, categories=categories, status=status
    )
    report.updated += 1


def export_subscribers(store: Store, out: TextIO, *, status: str | None = None) -> int:
    """Write subscribers as CSV (the import format) to ``out``; how many were written."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for s in iter_subscribers(store, status=status):
        cells = [s.email, s.name, "|".join(s.categories or ()), s.status]
        writer.writerow([neutralise(cell) for cell in cells])
        count += 1
    return count
