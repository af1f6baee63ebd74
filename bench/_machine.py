"""Shared helpers of the groups that measure fastcavi against the machine (roofline, setup).

Every reference time (NumPy's exp and log, a read of the data, OpenBLAS dgemm, one sweep) is
timed in the same process and run as what it is compared with. A benchmark test that times a
reference records its median here; a later test that needs it and finds it missing (a ``-k``
selection) times it itself with :func:`median_seconds`.
"""
import os
import time

import numpy as np

#: Threads the sweeps (numba) and dgemm (OpenBLAS, via threadpoolctl) use: the 2 of the development machine.
THREADS = int(os.environ.get("FASTCAVI_BENCH_THREADS", 2))
K = 8

MEASURED = {}  # key -> median seconds, filled by the benchmark tests of this run


def median_seconds(fn, rounds=5):
    """Median wall time of ``rounds`` calls of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def record(benchmark, key):
    """Store the median the benchmark just measured under ``key`` and return it."""
    MEASURED[key] = float(benchmark.stats.stats.median)
    return MEASURED[key]


def measured(key, fn, rounds=5):
    """The median recorded under ``key`` in this run, or (when that test did not run) timed now."""
    if key not in MEASURED:
        MEASURED[key] = median_seconds(fn, rounds)
    return MEASURED[key]


def start_means(X):
    """K distinct rows of X (a fixed draw) as float64: every sweep and fit here starts from them."""
    rng = np.random.default_rng(0)
    return X[rng.choice(X.shape[0], K, replace=False)].astype(np.float64)


def threaded_sweep(X, covariance_type):
    """``run``: one sweep of the public engine (bench/_public.py) on ``THREADS`` numba threads."""
    import numba

    from _public import model_and_state, sweep

    model, state = model_and_state(X, K, covariance_type, means=start_means(X))

    def run():
        previous = numba.get_num_threads()
        numba.set_num_threads(THREADS)
        try:
            return sweep(model, state, X)[0]
        finally:
            numba.set_num_threads(previous)

    return run


def summary_line(benchmark, table, line):
    """Ask conftest's terminal summary to print ``line`` under the heading ``table``."""
    benchmark.extra_info["table"] = table
    benchmark.extra_info["line"] = line
