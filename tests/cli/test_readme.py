"""README.md's "Getting started" works when pasted: the block runs as written, in bash.

The one substitution: its first line (make a virtual environment and ``pip install .``)
is stood in for by a link to the environment running this test, which was made the same
way, so the test does not download the dependencies again. Everything after it, the
activation included, runs as a reader would paste it, with a PATH that does not already
hold ``kcrush-feeds``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.project import ROOT

INSTALL = "python3 -m venv .venv && .venv/bin/pip install ."


def getting_started() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Getting started", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "no ```sh block under Getting started"
    return match.group(1).strip().splitlines()


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="needs to run inside a virtualenv")
def test_getting_started_runs_as_written(tmp_path: Path) -> None:
    lines = getting_started()
    assert lines[0] == INSTALL, "the block's first line changed: update this test"
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    venv_bin = str(Path(sys.prefix) / "bin")
    path = os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KCRUSH_", "VIRTUAL_ENV"))}
    env["PATH"] = path
    assert shutil.which("kcrush-feeds", path=path) is None, "kcrush-feeds is on PATH already"
    script = "set -euo pipefail\n" + "\n".join(lines[1:]) + "\n"
    proc = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "imported: 30 added, 0 updated, 0 unchanged, 0 rejected" in out
    assert "records:  30" in out
    assert "digest 2024-W09 (not yet created; computed for this preview): 30 of 30 items" in out
    preview = tmp_path / "site" / "preview" / "digest-2024-W09.txt"
    assert "published from January 18, 2023 to February 26, 2024" in preview.read_text(
        encoding="utf-8"
    )
