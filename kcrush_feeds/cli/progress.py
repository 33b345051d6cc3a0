"""Progress for long work: a bar on a terminal, plain log lines under cron."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import click

log = logging.getLogger("kcrush_feeds")


class Progress(Protocol):
    def __call__(self, done: int) -> None: ...


@contextmanager
def progress(label: str, total: int | None = None, *, every: float = 10.0) -> Iterator[Progress]:
    """Yield a callable taking how many more items were done."""
    if sys.stderr.isatty() and log.isEnabledFor(logging.INFO):
        with click.progressbar(
            length=total or 0, label=label, file=sys.stderr, show_pos=True
        ) as bar:
            yield lambda done: bar.update(done)
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
