"""Setup: time to the end of the first sweep, per ``init``, as a multiple of one sweep of the same run.

For each case (N = 1e6, K = 8, float64: D = 2 spherical and D = 16 full) the group times one sweep
(the public engine's, bench/_public.py, on ``T`` threads) and ``fastcavi.fit(X, K, init=...,
max_iter=1, tol=0, n_threads=T)`` for every initialisation: "k-means++", "random",
"random_from_data", given means ("given": K fixed rows of X) and, where this fastcavi has them,
"k-means||" and "kmeans" (skipped otherwise). ``fit(max_iter=1)`` is everything before the first sweep (the
validating summary pass, the initial means, the initial statistics pass of the Wishart
families) plus one sweep (E-step pass, updates, ELBO: what the sweep benchmark times), so

    setup = fit(max_iter=1) - sweep,   reported as setup / sweep (the target: at most 2).

The numbers are in each fit's ``extra_info`` and in a table printed at the end. Run:
``pytest bench/test_setup.py --benchmark-only`` (``FASTCAVI_BENCH_N`` rows, default 1e6).
"""
import numpy as np
import pytest

import fastcavi

from _machine import K, THREADS, measured, record, start_means, summary_line, threaded_sweep
from conftest import N_ROWS

CASES = [("spherical", 2), ("full", 16)]
INITS = ["k-means++", "k-means||", "random", "random_from_data", "given", "kmeans"]
TABLE = f"setup: time to the end of the first sweep (N = {N_ROWS}, K = {K}, float64, {THREADS} threads)"


def _fit(X, covariance_type, init, max_iter=1):
    return fastcavi.fit(X, K, covariance_type=covariance_type, init=start_means(X) if init == "given" else init,
                        max_iter=max_iter, tol=0, random_state=0, n_threads=THREADS)


@pytest.mark.parametrize("covariance_type,D", CASES)
def test_setup_one_sweep(benchmark, blobs, covariance_type, D):
    """One sweep (the unit of the setup ratios)."""
    sweep = threaded_sweep(blobs(D, "float64"), covariance_type)
    benchmark.group = f"setup {covariance_type} D={D}"
    benchmark.extra_info["role"] = "sweep"
    benchmark.pedantic(sweep, rounds=7, warmup_rounds=1)
    record(benchmark, f"sweep {covariance_type} D={D}")


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("covariance_type,D", CASES)
def test_setup_first_sweep(benchmark, blobs, covariance_type, D, init):
    """fit(max_iter=1): setup plus one sweep; setup = that minus the sweep, as a multiple of the sweep."""
    X = blobs(D, "float64")
    try:
        _fit(X[:4 * 4096], covariance_type, init)  # compiles / loads every kernel this init needs
    except ValueError as error:
        if init in ("kmeans", "k-means||") and "init" in str(error):
            pytest.skip(f"this fastcavi has no init='kmeans' ({error})")
        raise
    benchmark.group = f"setup {covariance_type} D={D}"
    benchmark.extra_info.update(role="fastcavi", init=init)
    benchmark.pedantic(_fit, args=(X, covariance_type, init), rounds=3, warmup_rounds=1)
    t_fit = record(benchmark, f"fit {covariance_type} D={D} {init}")
    t_sweep = measured(f"sweep {covariance_type} D={D}", threaded_sweep(X, covariance_type), 7)
    setup = t_fit - t_sweep
    benchmark.extra_info.update(threads=THREADS, sweep_s=t_sweep, setup_s=setup, setup_in_sweeps=setup / t_sweep)
    summary_line(benchmark, TABLE,
                 f"{covariance_type:>9} D={D:<3} {init:<17} fit(max_iter=1) {t_fit * 1e3:9.1f} ms   sweep "
                 f"{t_sweep * 1e3:7.1f} ms   setup {setup * 1e3:9.1f} ms = x{setup / t_sweep:6.2f} sweeps")
