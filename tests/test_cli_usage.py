"""A first-time user's ordinary mistakes get usage errors and plain messages (issue 15)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT, Project


def _cli(project: Project, *args: str) -> list[str]:
    return [sys.executable, "-m", "kcrush_feeds", "--config", str(project.config_path), *args]


@pytest.mark.parametrize(
    "args",
    [("status",), ("subscribers", "list"), ("subscribers", "export")],
    ids=" ".join,
)
def test_a_closed_pipe_ends_a_listing_quietly(project: Project, args: tuple[str, ...]) -> None:
    """`status | head -1`: the reader went away; exit 0 and say nothing (a real pipe)."""
    project.run("import", str(EXAMPLES / "records.jsonl"))
    project.run("subscribers", "import", str(EXAMPLES / "subscribers.csv"))
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte: every write is EPIPE
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        proc = subprocess.run(
            _cli(project, *args), stdout=write, stderr=subprocess.PIPE, env=env, timeout=60
        )
    finally:
        os.close(write)
    assert proc.stderr.decode() == ""
    assert proc.returncode == 0


def test_a_closed_pipe_with_head(project: Project) -> None:
    """The same through a shell pipeline, as the user types it."""
    project.run("import", str(EXAMPLES / "records.jsonl"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = " ".join(_cli(project, "status")) + " | head -1; echo ${PIPESTATUS[0]} >&2"
    proc = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.stdout.startswith("store:")
    assert proc.stderr.strip() == "0"


@pytest.mark.parametrize("week", ["2024-W60", "2024-W00", "2021-W53", "2024-w9"])
def test_preview_of_a_week_that_does_not_exist_is_a_usage_error(
    project: Project, week: str, tmp_path: Path
) -> None:
    result = project.run("preview", "--week", week, "--out", str(tmp_path / "p"))
    assert result.exit_code == 2, result.output
    assert "internal error" not in result.output
    assert week in result.output
    if week == "2021-W53":
        assert "2021-W01 to 2021-W52" in result.output
    elif week != "2024-w9":
        assert "2024-W01 to 2024-W52" in result.output
