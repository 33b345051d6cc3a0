"""Smoke run of the benchmarks: ``python -m bench --size tiny --repeat 1`` in a subprocess.

Timings are not checked (a shared machine makes them noise); what is checked is that every
measurement runs end to end and the table comes out with a number in every row.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.project import ROOT


def test_bench_tiny_prints_the_table(tmp_path: Path) -> None:
    out = tmp_path / "table.md"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--size",
            "tiny",
            "--repeat",
            "1",
            "--data-dir",
            str(tmp_path / "data"),
            "--output",
            str(out),
            "--no-install",  # a test installs nothing: without smtp-sink, aiosmtpd stands in
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout
    assert "machine: " in text and "Python " in text
    assert out.read_text(encoding="utf-8") in text + "\n"
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert "measurement" in lines[0] and "peak MB" in lines[0] and "vs base" in lines[0]
    labels = [line.split("|")[1].strip() for line in lines[1:]]
    # import is always measured: both cases and both baselines, with numbers.
    for wanted in ("import 300, empty store", "import 300, full store, 1% changed"):
        row = next(line for line in lines if wanted in line)
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert cells[1] == "300" and float(cells[2]) > 0 and cells[4].endswith("x"), row
    assert sum("baseline: json + sqlite3 executemany" in label for label in labels) == 2
    for group in ("build", "send", "render"):
        assert any(label.startswith(group) for label in labels), f"no {group} row"
    # Every row was measured: a row without a median (skipped, failed, not run) fails the test.
    for row in lines[1:]:
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert cells[2] and float(cells[2]) > 0, f"not measured: {row}"
    assert "failed:" not in text
