"""Cold start: a first fit in a fresh environment, next to one sweep, and what each kernel costs to compile.

Run from the repository root (quiet machine; nothing else running):

    pytest bench/test_cold_start.py --benchmark-only -s

Every round of the ``cold start`` group runs a new Python process whose ``NUMBA_CACHE_DIR`` is a new empty
directory: ``import fastcavi``, the data, the fit and a ``predict``, as a new user's first script does, so
the time is the whole process's wall time (imports, compiles, the fit). The ``warm start`` group runs the
same kind of process on a cache filled by ``fastcavi compile`` beforehand: a full-covariance float64 fit,
then a float32 fit. ``one sweep`` times a sweep of the same data in this process, kernels loaded, so the
closing table puts the two side by side.

``test_compile_report`` runs ``fastcavi compile`` in a fresh cache and records each kernel variant's
compile CPU seconds (from the command's own output) in the benchmark's ``extra_info``; it prints them
with ``-s``. Nothing here imports a private module of fastcavi.
"""
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import pytest

import fastcavi

N, D, K = 5000, 3, 5

FIRST_FIT = textwrap.dedent("""
    import warnings, numpy as np
    warnings.simplefilter("ignore")
    import fastcavi
    rng = np.random.default_rng(0)
    X = (rng.normal(size=({N}, {D})) + rng.integers(0, 4, size=({N}, 1)) * 3).astype({dtype!r})
    {fit}
""")

CASES = {
    "fit": "fastcavi.fit(X, {K}).predict(X)",
    "fit full": "fastcavi.fit(X, {K}, covariance_type='full').predict(X)",
    "estimator": "fastcavi.BayesianGaussianMixture(n_components={K}).fit(X).predict(X)",
}


def _script(case, dtype):
    return FIRST_FIT.format(N=N, D=D, dtype=dtype, fit=CASES[case].format(K=K))


def _run(script, cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def _fresh_cache():
    return (tempfile.mkdtemp(prefix="fastcavi-cold-"),), {}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", list(CASES))
def test_first_fit(benchmark, case, dtype):
    benchmark.group = "cold start"
    benchmark.extra_info.update(case=case, dtype=dtype, rows=N, features=D, components=K)
    script = _script(case, dtype)
    benchmark.pedantic(lambda cache: _run(script, cache), setup=_fresh_cache, rounds=3, iterations=1)


def test_warm_start(benchmark):
    """A process whose kernels are all in the cache: a full float64 fit, then a float32 fit, import included."""
    benchmark.group = "warm start"
    cache = tempfile.mkdtemp(prefix="fastcavi-warm-")
    subprocess.run([sys.executable, "-m", "fastcavi", "compile", "--quiet", "--jobs", "2"], check=True,
                   env=dict(os.environ, NUMBA_CACHE_DIR=cache), capture_output=True)
    script = _script("fit full", "float64") + "\n" + CASES["fit full"].format(K=K).replace("(X,", "(X.astype('float32'),")
    benchmark.pedantic(lambda: _run(script, cache), rounds=3, iterations=1)


def test_one_sweep(benchmark):
    """One sweep of the same data (full covariances), kernels loaded: the yardstick for the first fit."""
    benchmark.group = "one sweep"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, D)) + rng.integers(0, 4, size=(N, 1)) * 3
    start = fastcavi.fit(X, K, covariance_type="full", max_iter=2, tol=0, random_state=0)
    benchmark(lambda: fastcavi.fit(X, K, covariance_type="full", init=start, max_iter=1, tol=0))


_LINE = re.compile(r"^\s*(compiled|cached|in memory)\s+(\S+)\s+([0-9.]+) s CPU")


def test_compile_report(benchmark):
    """``fastcavi compile`` in a fresh cache: each kernel variant's compile CPU seconds, from its output."""
    benchmark.group = "compile every kernel"
    records = {}

    def build():
        cache = tempfile.mkdtemp(prefix="fastcavi-aot-")
        t0 = time.process_time()
        out = subprocess.run([sys.executable, "-m", "fastcavi", "compile"], check=True, capture_output=True,
                             text=True, env=dict(os.environ, NUMBA_CACHE_DIR=cache)).stdout
        for line in out.splitlines():
            m = _LINE.match(line)
            if m:
                records[m.group(2)] = float(m.group(3))
        return time.process_time() - t0

    benchmark.pedantic(build, rounds=1, iterations=1)
    benchmark.extra_info["compile_cpu_s"] = records
    benchmark.extra_info["compile_cpu_total_s"] = round(sum(records.values()), 2)
    print("\nkernel variant compile CPU seconds (fastcavi compile, fresh cache):")
    for name, seconds in records.items():
        print(f"  {name:45s} {seconds:6.2f}")
    print(f"  {'total':45s} {sum(records.values()):6.2f}")
