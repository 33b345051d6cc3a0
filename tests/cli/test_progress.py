"""The progress display on a real terminal (a pty): an honest count, never "N/0"."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

from tests.support.project import ROOT, Project


def _on_a_terminal(args: list[str], cwd: Path) -> str:
    """Run the CLI with stderr on a pty (stdout to a pipe); what the terminal showed."""
    leader, follower = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kcrush_feeds", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=follower,
        cwd=cwd,
        env=env,
    )
    os.close(follower)
    shown = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            proc.kill()
            raise AssertionError("no output within 60 s")
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    assert proc.wait(timeout=60) == 0, shown
    os.close(leader)
    return shown.decode("utf-8", "replace")


def test_import_on_a_terminal_counts_with_a_rate_and_no_empty_bar(project: Project) -> None:
    lines = "".join(
        json.dumps(
            {
                "url": f"https://www.kcrush.com/p/{i}",
                "title": f"Story {i}",
                "published": "2024-02-01T10:00:00Z",
                "categories": ["K-Pop Articles"],
            }
        )
        + "\n"
        for i in range(20000)
    )
    path = project.write("many.jsonl", lines)
    shown = _on_a_terminal(["--config", str(project.config_path), "import", str(path)], project.dir)
    assert "/0" not in shown, shown[-500:]
    last = shown.replace("\r", "\n").strip().splitlines()[-1]
    assert "importing: 20,000 records (" in last and "/s)" in last, shown[-500:]
