"""``python -m bench [--size tiny|medium|full] [--only GROUP,...] [--repeat N]``.

Groups: startup, import, build, archive, send, render, inbound (default: all).

Generates the data (cached in ``--data-dir``), runs every measurement in a fresh
subprocess ``--repeat`` times next to its baseline, and prints the table of medians,
ratios to the baselines and peak memory, with the machine it ran on.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.data import DATA_VERSION
from bench.harness import Row, load, machine, notes, table

GROUPS = ("startup", "import", "build", "archive", "send", "render", "inbound")
INBOUND = {"tiny": 300, "medium": 2_000, "full": 10_000}  # DSNs in the Maildir


@dataclass(frozen=True)
class Sizes:
    records: int  # import and build
    rebuild: tuple[int, ...]  # store sizes for the no-change rebuild
    subscribers: int  # send and render
    memory: tuple[int, ...]  # subscriber counts for the send memory check


SIZES = {
    "tiny": Sizes(300, (300, 1_000), 60, (60, 300)),
    "medium": Sizes(20_000, (2_000, 20_000, 100_000), 2_000, (2_000, 20_000)),
    "full": Sizes(100_000, (10_000, 100_000, 1_000_000), 10_000, (10_000, 100_000)),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--only", default=",".join(GROUPS), help="comma-separated groups")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement")
    parser.add_argument("--data-dir", type=Path, default=Path(".bench-data"))
    parser.add_argument("--output", type=Path, help="also write the table (Markdown) here")
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="never apt-get install postfix for smtp-sink (aiosmtpd stands in when missing)",
    )
    args = parser.parse_args(argv)
    only = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = set(only) - set(GROUPS)
    if unknown:
        parser.error(f"unknown group(s) {sorted(unknown)}; choose from {', '.join(GROUPS)}")
    sizes = SIZES[args.size]
    data = (args.data_dir / f"{args.size}-v{DATA_VERSION}").resolve()
    repeat = max(1, args.repeat)
    started = time.perf_counter()
    load_before = load()
    rows: list[Row] = []
    for group in GROUPS:
        if group not in only:
            continue
        if group == "startup":
            from bench import startup

            rows += startup.rows(data / "startup", repeat)
        elif group == "import":
            from bench import imports

            rows += imports.rows(sizes.records, data / "import", repeat)
        elif group == "build":
            from bench import builds

            rows += builds.rows(sizes.records, sizes.rebuild, data / "build", repeat)
        elif group == "archive":
            from bench import archives

            rows += archives.rows(sizes.records, sizes.rebuild, data / "build", repeat)
        elif group == "send":
            from bench import sends

            rows += sends.rows(
                sizes.subscribers, sizes.memory, data / "send", repeat, install=not args.no_install
            )
        elif group == "render":
            from bench import renders

            rows += renders.rows(sizes.subscribers, data / "render", repeat)
        elif group == "inbound":
            from bench import inbound

            rows += inbound.rows(INBOUND[args.size], data / "inbound", repeat)
    elapsed = time.perf_counter() - started
    text = (
        f"kcrush-feeds benchmarks, size {args.size}, median of {repeat} run(s)\n"
        f"machine: {machine()}\n"
        f"load average: before {load_before}; after {load()}\n\n{table(rows)}\n\n"
        "vs base: median time per item over the baseline's (lower is better); "
        "peak MB: the highest VmHWM of the measuring process over the runs.\n"
        f"{notes(rows)}\n"
        f"total {elapsed:.0f} s\n"
    )
    print(text)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    failed = [r for r in rows if r.skipped.startswith("failed")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
