"""Run one measurement in this (fresh) process: ``python -m bench.worker MOD:FUNC PARAMS OUT``.

``FUNC(params)`` does its own untimed setup, times the work and returns a dict with at
least ``seconds`` and ``count``. The worker adds ``peak_mb``, this process's high-water
resident memory (``VmHWM``), and writes the result as JSON to ``OUT``: stdout stays free
for whatever the measured code prints.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path


def peak_mb() -> float:
    """The peak resident set size of this process so far, in MB (Linux ``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str]) -> int:
    target, params, out = argv
    module_name, func_name = target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    result = dict(func(json.loads(params)))
    result["peak_mb"] = peak_mb()
    Path(out).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
