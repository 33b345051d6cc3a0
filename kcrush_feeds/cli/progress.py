"""Progress for long work: a bar on a terminal, plain log lines under cron.

With a known total, a bar with the count and an ETA. Without one (an import does not
know how many records a file holds until it has read them), an honest running count with
its rate, never a bar that is full from the first second.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, TextIO

import click

log = logging.getLogger("kcrush_feeds")
REDRAW = 0.1  # seconds between two redraws of the count on a terminal


class Progress(Protocol):
    def __call__(self, done: int) -> None: ...


@contextmanager
def progress(
    label: str, total: int | None = None, *, every: float = 10.0, unit: str = "records"
) -> Iterator[Progress]:
    """Yield a callable taking how many more items were done."""
    if sys.stderr.isatty() and log.isEnabledFor(logging.INFO):
        if total:
            with click.progressbar(
                length=total, label=label, file=sys.stderr, show_pos=True, show_eta=True
            ) as bar:
                yield lambda done: bar.update(done)
            return
        with _counter(label, unit, sys.stderr) as count_step:
            yield count_step
        return
    count = 0
    last = time.monotonic()

    def step(done: int) -> None:
        nonlocal count, last
        count += done
        if time.monotonic() - last >= every:
            last = time.monotonic()
            log.info("%s: %d%s", label, count, f" of {total}" if total else "")

    yield step


@contextmanager
def _counter(label: str, unit: str, out: TextIO) -> Iterator[Progress]:
    """``importing: 12,000 records (4,100/s)`` redrawn in place; the last count stays."""
    count = 0
    started = last = time.monotonic()

    def draw(now: float) -> None:
        elapsed = now - started
        rate = f" ({count / elapsed:,.0f}/s)" if elapsed > 0 else ""
        out.write(f"\r\x1b[K{label}: {count:,} {unit}{rate}")
        out.flush()

    def step(done: int) -> None:
        nonlocal count, last
        count += done
        now = time.monotonic()
        if now - last >= REDRAW:
            last = now
            draw(now)

    try:
        yield step
    finally:
        if count:
            draw(time.monotonic())
            out.write("\n")
            out.flush()
