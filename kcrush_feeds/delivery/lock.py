"""One runner at a time: an advisory ``flock`` on a file next to the database.

``flock`` locks belong to the open file: the kernel releases them when the process
ends, however it ends (``kill -9``, a power cut takes the lock with it), so a stale
lock never blocks the next cron run. The file keeps the holder's pid only to make the
message for the second runner useful.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kcrush_feeds.errors import BusyError

POLL = 0.05  # seconds between two tries while waiting


def lock_path(database: Path, name: str) -> Path:
    """``store.db`` -> ``store.db.send.lock``: next to the database it protects."""
    return database.with_name(f"{database.name}.{name}.lock")


@contextmanager
def run_lock(database: Path, name: str = "send", *, wait: float = 5.0) -> Iterator[Path]:
    """Hold the ``name`` lock of ``database`` for the block.

    Waits up to ``wait`` seconds for a runner that is finishing, then raises
    ``BusyError`` naming the process that holds the lock.
    """
    path = lock_path(database, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    # 0600: the file says who runs what; nobody else on the machine needs to read it.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_pid(fd)
                    who = f" (pid {holder})" if holder else ""
                    raise BusyError(
                        f"another 'kcrush-feeds {name}' is running{who} on {database}; "
                        "it delivers this digest, so this run does nothing",
                        hint=f"the lock is {path}; it is released when that process ends",
                    ) from None
                time.sleep(POLL)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def holder(database: Path, name: str = "send") -> int | None:
    """The pid of the process holding the ``name`` lock now (0 if unknown), else None.

    Read-only: does not create the lock file, and releases at once what it tests with.
    """
    try:
        fd = os.open(lock_path(database, name), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
