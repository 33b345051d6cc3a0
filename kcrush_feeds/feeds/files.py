"""Writing what a build produces: atomically, only when the bytes changed, with a state file
that lets a no-op rebuild skip the rendering. Shared by the feeds, the archive and WebSub."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATE_VERSION = 1


def fingerprint_of(*parts: object) -> str:
    """A short stable digest of what a file is made from (JSON of ``parts``; other
    values, such as dates, by their ``str``): equal inputs, equal fingerprints."""
    payload = json.dumps(parts, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=16).hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory, fsynced,
    then renamed over ``path``: readers see the old file or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; a web server must be able to read the feeds.
        Path(tmp).chmod(0o644)
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
        raise


# What write_atomic's mkstemp leaves when the process dies before the rename (SIGKILL).
_TEMP_RE = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")
STALE_TEMP_AGE = 600.0  # seconds: older temp files belong to no running build


def remove_stale_temp_files(output_dir: Path, *, older_than: float) -> list[Path]:
    """Remove the temporary files of earlier, killed builds from ``output_dir`` and the
    feed directories in it; ``older_than`` is a wall-clock time (file mtimes are): a
    newer temp file may belong to a build running now."""
    removed: list[Path] = []
    directories = [output_dir]
    with contextlib.suppress(OSError):
        directories += [e for e in output_dir.iterdir() if e.is_dir() and not e.is_symlink()]
    for directory in directories:
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            if not _TEMP_RE.fullmatch(entry.name) or not entry.is_file(follow_symlinks=False):
                continue
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_mtime < older_than:
                    Path(entry.path).unlink()
                    removed.append(Path(entry.path))
    return removed


def same_bytes(path: Path, data: bytes) -> bool:
    """True when ``path`` holds exactly ``data`` (the size first: most changes differ there)."""
    try:
        if path.stat().st_size != len(data):
            return False
        return path.read_bytes() == data
    except FileNotFoundError:
        return False


@dataclass(slots=True)
class BuildState:
    """A build's state file: per file, the inputs fingerprint and the stat it was left with,
    so a no-op rebuild renders nothing and writes nothing."""

    path: Path
    files: dict[str, dict[str, Any]]
    dirty: bool = False

    @classmethod
    def load(cls, path: Path, keep: Callable[[str], object] | None = None) -> BuildState:
        """The state at ``path``; only the names ``keep`` accepts (all by default). A
        missing or damaged file is an empty state: every file is compared byte by byte."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") == STATE_VERSION and isinstance(data.get("files"), dict):
                files = {k: v for k, v in data["files"].items() if keep is None or keep(k)}
                return cls(path, files)
        except (OSError, ValueError, AttributeError):
            pass  # missing or damaged: start empty
        return cls(path, {})

    def fresh(self, name: str, inputs: str, target: Path) -> bool:
        known = self.files.get(name)
        if not known or known.get("inputs") != inputs:
            return False
        try:
            st = target.stat()
        except FileNotFoundError:
            return False
        return bool(st.st_size == known.get("size") and st.st_mtime_ns == known.get("mtime_ns"))

    def remember(self, name: str, inputs: str | None, target: Path) -> None:
        st = target.stat()
        entry = {"inputs": inputs, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        if self.files.get(name) != entry:
            self.files[name] = entry
            self.dirty = True

    def forget(self, name: str) -> None:
        if self.files.pop(name, None) is not None:
            self.dirty = True

    def save(self) -> None:
        if self.dirty:
            body = json.dumps({"version": STATE_VERSION, "files": self.files}, sort_keys=True)
            write_atomic(self.path, body.encode("utf-8") + b"\n")


def write_if_changed(target: Path, data: bytes) -> bool:
    """Write ``data`` atomically unless ``target`` already holds exactly it; True if written."""
    if same_bytes(target, data):
        return False
    write_atomic(target, data)
    return True
