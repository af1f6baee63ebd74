"""Benchmark fixtures and a closing table of fastcavi/baseline ratios per group.

Run: ``pytest bench --benchmark-only`` (add ``--benchmark-autosave`` to keep the run,
``--benchmark-compare`` to compare with the last saved one).
"""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

N_ROWS = int(os.environ.get("FASTCAVI_BENCH_N", 1_000_000))


@pytest.fixture(scope="session")
def blobs():
    """Data sets of N_ROWS rows from 8 Gaussian blobs, by (D, dtype)."""
    cache = {}

    def make(D, dtype):
        key = (D, np.dtype(dtype).name)
        if key not in cache:
            rng = np.random.default_rng(D)
            centres = rng.normal(size=(8, D)) * 4
            X = centres[rng.integers(8, size=N_ROWS)] + rng.normal(size=(N_ROWS, D))
            cache[key] = np.ascontiguousarray(X, dtype=dtype)
        return cache[key]

    return make


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    groups, tables = {}, {}
    for bench in session.benchmarks:
        if bench.stats is None or not bench.stats.rounds:
            continue
        if "table" in bench.extra_info:  # the machine-referenced groups (roofline, setup): one line each
            tables.setdefault(bench.extra_info["table"], []).append(bench.extra_info["line"])
        role = bench.extra_info.get("role")
        groups.setdefault(bench.group, {})[role] = bench.stats.median
    lines = []
    for group, roles in sorted(groups.items(), key=lambda kv: str(kv[0])):
        if "fastcavi" in roles and "baseline" in roles:
            ratio = roles["baseline"] / roles["fastcavi"]
            lines.append(f"{group:<40} fastcavi {roles['fastcavi'] * 1e3:10.2f} ms   "
                         f"baseline {roles['baseline'] * 1e3:10.2f} ms   speed-up x{ratio:7.1f}")
    if lines:
        terminalreporter.write_sep("-", "fastcavi vs baseline (medians, same run)")
        for line in lines:
            terminalreporter.write_line(line)
    for table, rows in tables.items():
        terminalreporter.write_sep("-", table)
        for line in rows:
            terminalreporter.write_line(line)
