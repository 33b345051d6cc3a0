"""``build`` after a SIGKILL: the temp files of a killed build do not stay for good."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.project import EXAMPLES, Project

ENV = {"KCRUSH_FEEDS_NOW": "2024-03-01T00:00:00+00:00"}


def _leftover(directory: Path, name: str, age: float) -> Path:
    """A temp file exactly as write_atomic's mkstemp makes it, ``age`` seconds old."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    os.write(fd, b"<rss>half a fe")
    os.close(fd)
    then = time.time() - age
    os.utime(tmp, (then, then))
    return Path(tmp)


def test_a_build_removes_the_temp_files_of_earlier_killed_builds(project: Project) -> None:
    assert project.run("import", str(EXAMPLES / "records.jsonl"), env=ENV).exit_code == 0
    assert project.run("build", env=ENV).exit_code == 0
    out = project.config.output_dir
    stale = [_leftover(out / "all", "rss.xml", 3600), _leftover(out, "feeds.opml", 3600)]
    fresh = _leftover(out / "all", "atom.xml", 1)  # may be a build running right now
    other = out / "all" / ".notes.tmp"  # not ours: never touched
    other.write_text("x")
    os.utime(other, (time.time() - 3600,) * 2)
    assert project.run("build", env=ENV).exit_code == 0
    assert not any(p.exists() for p in stale)
    assert fresh.exists() and other.exists()


def test_sigkill_during_a_build_then_a_later_build_cleans_up(project: Project) -> None:
    """A real build process killed with SIGKILL; whatever it left is gone after the next
    build (once old enough to belong to no running build)."""
    assert project.run("import", str(EXAMPLES / "records.jsonl"), env=ENV).exit_code == 0
    process = subprocess.Popen(
        [sys.executable, "-m", "kcrush_feeds", "--config", str(project.config_path), "build"],
        env={**os.environ, **ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    out = project.config.output_dir
    out.mkdir(parents=True, exist_ok=True)
    _leftover(out, "feeds.opml", 3600)  # what a kill at the wrong moment leaves
    old = time.time() - 3600
    for path in out.rglob("*.tmp"):
        os.utime(path, (old, old))
    assert project.run("build", env=ENV).exit_code == 0
    assert list(out.rglob("*.tmp")) == []
