"""Committing send results as they arrive: the ``ResultWriter``.

Each result goes to the ``deliveries`` table (``store.deliveries.record_results``) the
moment the server has answered. ``ResultWriter`` does those writes from one background
thread with its own SQLite connection: while one commit waits for the disk
(``synchronous=FULL``), the event loop keeps the SMTP connections busy, and results that
arrive during a commit go into the next one (group commit). A sender waits for its result
to be committed before it takes its next message, so the uncommitted results are never
more than the sends in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from kcrush_feeds.model import Delivery
from kcrush_feeds.store.db import Store
from kcrush_feeds.store.deliveries import record_results


class ResultWriter:
    """Commits results from a writer thread, batching those that arrive together.

    ``await writer.record(delivery, now)`` returns once the row is durable. Use as an
    async context manager (or call ``close()``).
    """

    def __init__(self, path: Path, *, max_hard_bounces: int) -> None:
        self.max_hard_bounces = max_hard_bounces
        self._store = Store.open(path, create=False)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="results")
        self._waiting: list[tuple[Delivery, datetime, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.commits = 0  # fewer than written: results arriving together share a commit
        self.written = 0

    async def record(self, delivery: Delivery, now: datetime) -> None:
        """Write ``delivery``; return when it is committed."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._waiting.append((delivery, now, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        # shield: a cancelled sender must not cancel the commit others wait on.
        await asyncio.shield(done)

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        # No lingering for more results: a commit starts as soon as there is one, and
        # what arrives meanwhile shares the next. (Waiting 2 ms for company cost 10-20%
        # of the throughput: the senders wait for their commit.)
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await loop.run_in_executor(self._executor, self._write, batch)
            except BaseException as e:  # hand the error to every waiting sender
                for _, _, done in batch:
                    if not done.done():
                        done.set_exception(e)
                if not isinstance(e, Exception):
                    raise
            else:
                for _, _, done in batch:
                    if not done.done():
                        done.set_result(None)

    def _write(self, batch: list[tuple[Delivery, datetime, asyncio.Future[None]]]) -> None:
        now = max(moment for _, moment, _ in batch)
        record_results(
            self._store, [d for d, _, _ in batch], now, max_hard_bounces=self.max_hard_bounces
        )
        self.commits += 1
        self.written += len(batch)

    async def record_late(self, late: Sequence[tuple[Delivery, datetime]]) -> None:
        """Write results a failed commit left behind, in one more transaction."""
        loop = asyncio.get_running_loop()
        batch = [(d, moment, loop.create_future()) for d, moment in late]
        await loop.run_in_executor(self._executor, self._write, batch)
        for _, _, done in batch:
            done.cancel()  # nobody waits on these

    async def aclose(self) -> None:
        if self._flusher is not None:
            await self._flusher
        self.close()

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._store.close()

    async def __aenter__(self) -> ResultWriter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
