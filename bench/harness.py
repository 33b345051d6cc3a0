"""Run measurements in subprocesses, take medians, compare with baselines, print a table."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class BenchError(Exception):
    """A measurement could not run (its subprocess failed); the message says why."""


@dataclass(frozen=True)
class Sample:
    seconds: float
    count: int
    peak_mb: float
    extra: dict[str, Any]


@dataclass
class Row:
    """One line of the table: a product measurement or a baseline."""

    group: str  # "import", "build", ...
    label: str
    samples: list[Sample] = field(default_factory=list)
    baseline: Row | None = None  # the row this one is compared with
    target: str = ""  # e.g. "time <= 3.00x"
    check: Callable[[Row], bool | None] | None = None
    note: str = ""
    skipped: str = ""  # why it was not measured
    show_rate: bool = True  # False where "per second" means nothing (a no-change rebuild)

    @property
    def seconds(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def count(self) -> int:
        return self.samples[0].count if self.samples else 0

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("inf")

    @property
    def peak_mb(self) -> float:
        return max(s.peak_mb for s in self.samples)

    @property
    def ratio(self) -> float | None:
        """This row's median time per item over its baseline's (lower is better)."""
        base = self.baseline
        if base is None or not base.samples or not self.samples:
            return None
        return (self.seconds / self.count) / (base.seconds / base.count)

    @property
    def met(self) -> bool | None:
        if self.check is None or not self.samples:
            return None
        return self.check(self)


def run_case(target: str, params: dict[str, Any], *, timeout: float = 1800) -> Sample:
    """Run ``bench.worker`` for ``target`` once in a fresh Python process."""
    with tempfile.TemporaryDirectory(prefix="kcrush-bench-") as tmp:
        out = Path(tmp) / "result.json"
        proc = subprocess.run(
            [sys.executable, "-m", "bench.worker", target, json.dumps(params), str(out)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0 or not out.exists():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise BenchError(f"{target} failed (exit {proc.returncode}):\n{tail}")
        result = json.loads(out.read_text(encoding="utf-8"))
    seconds = float(result.pop("seconds"))
    count = int(result.pop("count"))
    peak = float(result.pop("peak_mb"))
    return Sample(seconds, count, peak, result)


def measure(row: Row, target: str, params: dict[str, Any], repeat: int) -> Row:
    """Run ``target`` ``repeat`` times into ``row`` (a failure is recorded, not raised)."""
    for _ in range(repeat):
        try:
            row.samples.append(run_case(target, params))
        except (BenchError, subprocess.TimeoutExpired) as e:
            row.samples.clear()
            row.skipped = f"failed: {str(e).strip().splitlines()[-1][:60]}"
            print(f"  {row.label}: {e}", file=sys.stderr)
            break
    return row


def machine() -> str:
    """nproc, the CPU model and the Python version, for the table's heading."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, "
        f"SQLite {__import__('sqlite3').sqlite_version}, {platform.system()} "
        f"{platform.release()}"
    )


def notes(rows: Sequence[Row]) -> str:
    """What the measured code reported besides time (sizes, summaries), one line a row."""
    lines = []
    for row in rows:
        extra = dict(row.samples[0].extra) if row.samples else {}
        if row.note:
            extra["note"] = row.note
        if extra:
            text = ", ".join(f"{k}: {v}" for k, v in extra.items())
            lines.append(f"- {row.label.strip()}: {text}")
    return "\n".join(lines)


def load() -> str:
    """The 1-minute load average and the number of CPUs, to judge how quiet the machine was."""
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def _fmt_rate(rate: float) -> str:
    if rate >= 100:
        return f"{rate:,.0f}"
    return f"{rate:,.1f}"


def table(rows: Sequence[Row]) -> str:
    """The result table (plain text that is also a Markdown table)."""
    header = ("measurement", "n", "median s", "per s", "vs base", "peak MB", "target", "met")
    lines: list[tuple[str, ...]] = [header]
    for row in rows:
        if row.skipped or not row.samples:
            lines.append((row.label, "", "", "", "", "", row.target, row.skipped or "not run"))
            continue
        ratio = row.ratio
        met = row.met
        lines.append(
            (
                row.label,
                f"{row.count:,}",
                f"{row.seconds:.3f}",
                _fmt_rate(row.rate) if row.show_rate else "",
                "" if ratio is None else f"{ratio:.3g}x",
                f"{row.peak_mb:.0f}",
                row.target,
                "" if met is None else ("yes" if met else "NO"),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    right = {1, 2, 3, 4, 5}

    def cell(i: int, text: str) -> str:
        return text.rjust(widths[i]) if i in right else text.ljust(widths[i])

    out = ["| " + " | ".join(cell(i, t) for i, t in enumerate(line)) + " |" for line in lines]
    out.insert(
        1,
        "|"
        + "|".join(
            ("-" * (w + 1) + ":" if i in right else "-" * (w + 2)) for i, w in enumerate(widths)
        )
        + "|",
    )
    return "\n".join(out)
