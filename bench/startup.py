"""Start-up benchmark: wall time of ``--version``, ``--help`` and ``status`` on a small site.

Each is a whole fresh process, as cron or a shell starts it (the console script's own
two lines: import the CLI, call it). Baseline: ``python -c "import click"`` with the same
interpreter, measured alternately in the same run: the least any click program can cost.
Each sample is the median of ``INNER`` back-to-back starts, so one hiccup of a shared
machine does not make the sample. Targets (issue 15): ``--version`` and ``--help`` at most
2x the baseline, ``status`` at most 0.4 s.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import Row, measure

ROOT = Path(__file__).resolve().parent.parent
INNER = 5
CLI = "import sys; from kcrush_feeds.cli.main import main; sys.exit(main(prog_name='kcrush-feeds'))"
CASES = (("--version",), ("--help",), ("status",))


def prepare(data: Path) -> dict[str, Any]:
    """A small site: ``init``, then the 30 sample records imported (untimed)."""
    site = data / "site"
    config = site / "config.toml"
    if not config.exists():
        _cli(["init", str(site)])
        _cli(["--config", str(config), "import", str(ROOT / "examples" / "records.jsonl")])
    return {"config": str(config)}


def _cli(args: list[str]) -> None:
    subprocess.run([sys.executable, "-c", CLI, *args], check=True, capture_output=True)


def _median_start(command: list[str]) -> float:
    times = []
    for _ in range(INNER):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def product(params: dict[str, Any]) -> dict[str, Any]:
    args = ["--config", params["config"], *params["args"]]
    return {"seconds": _median_start([sys.executable, "-c", CLI, *args]), "count": 1}


def baseline(params: dict[str, Any]) -> dict[str, Any]:
    return {"seconds": _median_start([sys.executable, "-c", "import click"]), "count": 1}


def rows(data: Path, repeat: int) -> list[Row]:
    print("startup: preparing a small site ...", file=sys.stderr, flush=True)
    params = prepare(data)
    base = Row("startup", '  baseline: python -c "import click"', show_rate=False)
    out: list[Row] = []
    for args in CASES:
        name = " ".join(args)
        if args == ("status",):
            row = Row(
                "startup",
                f"startup: {name} (30 records)",
                baseline=base,
                target="<= 0.400 s",
                check=lambda r: r.seconds <= 0.4,
                show_rate=False,
            )
        else:
            row = Row(
                "startup",
                f"startup: {name}",
                baseline=base,
                target="time <= 2.00x",
                check=lambda r: (r.ratio or 99) <= 2.0,
                show_rate=False,
            )
        out.append(row)
    print("startup: --version, --help, status ...", file=sys.stderr, flush=True)
    for _ in range(repeat):
        # Baseline and product alternate, so a busy moment hits both alike.
        for args, row in zip(CASES, out, strict=True):
            measure(base, "bench.startup:baseline", params, 1)
            measure(row, "bench.startup:product", {**params, "args": list(args)}, 1)
    return [*out, base]
