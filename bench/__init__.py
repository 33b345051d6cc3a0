"""Benchmarks for kcrush-feeds: ``python -m bench`` (``make bench``).

Each measurement runs in its own subprocess, several times, next to a baseline measured
in the same run; the table shows medians, the ratio to the baseline and the peak memory
(VmHWM) of the measuring process. See docs/bench.md.
"""
