"""Bitwise determinism across processes, caches, thread counts and concurrent callers.

Every test runs fastcavi in child processes (``tests/_determinism_child.py``) with their own
``NUMBA_CACHE_DIR`` (under pytest's tmp_path), ``NUMBA_NUM_THREADS`` and, for one test,
``NUMBA_THREADING_LAYER``; ``FASTCAVI_NO_CACHE`` is unset so that the kernels are cached on disk.
The children save every result array to an ``.npz`` and the results are compared byte for byte.

What they pin down:

* a cache built under NUMBA_NUM_THREADS=1 and loaded under 8, or built under 8 and loaded under 1,
  must run (no heap corruption from buffers sized by the thread count frozen at compile time) and
  give the results of a fresh-cache run;
* the process that compiles the kernels and a later one that loads them from the cache give the
  same bits;
* so do they for float32 and float64 data, with and without row weights, in every covariance family,
  from given responsibilities and in predictions, and so do the E-step and summary kernels called
  directly (their block partials: a sum of the row weights was once regrouped differently by the
  two processes);
* ``n_threads=1 .. 4`` in one process give the same bits, on any machine (a 1-CPU runner too);
* fits run by several Python threads at once, under the workqueue threading layer (which is not
  thread-safe) and under the default one, finish and give the bits of the same fits run serially.

Compiling the kernels takes ~30-50 s of one core, so the children are few: two compile (one per
cache directory, started together by a module-scoped fixture: compiling is single-threaded, so on
two cores they take the time of one), the others load from those caches.
"""
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
CHILD = TESTS / "_determinism_child.py"
TIMEOUT = 600

#: Variables of the parent's environment that would change what a child does.
_CLEARED = ("FASTCAVI_NO_CACHE", "NUMBA_CACHE_DIR", "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER",
            "NUMBA_DISABLE_JIT", "NUMBA_DEFAULT_NUM_THREADS", "OMP_NUM_THREADS")


def _env(cache_dir, threads, layer=None):
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    env["NUMBA_CACHE_DIR"] = str(cache_dir)
    env["NUMBA_NUM_THREADS"] = str(threads)
    if layer is not None:
        env["NUMBA_THREADING_LAYER"] = layer
    # this checkout's fastcavi, whatever is installed
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return env


def _exit_status(code):
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name} (shell exit status {128 - code})"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class _Child:
    """A child process running ``mode``, its output going to files (children may run side by side)."""

    def __init__(self, mode, out, cache_dir, threads, layer=None):
        self.mode, self.out = mode, Path(out)
        self.where = f"NUMBA_NUM_THREADS={threads}, NUMBA_CACHE_DIR={cache_dir}" + (
            f", NUMBA_THREADING_LAYER={layer}" if layer else "")
        self.stderr = self.out.with_suffix(".stderr")
        with open(self.stderr, "w") as err:
            self.proc = subprocess.Popen([sys.executable, str(CHILD), mode, str(out)], env=_env(cache_dir, threads, layer),
                                         cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=err, text=True)

    def result(self):
        """The child's saved arrays; fail with its stderr unless it exits 0 within TIMEOUT seconds."""
        try:
            code = self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"child '{self.mode}' ({self.where}) ran past {TIMEOUT} s:\n{self.stderr.read_text()[-6000:]}")
        if code != 0:
            pytest.fail(f"child '{self.mode}' ({self.where}) failed, {_exit_status(code)}; stderr:\n"
                        f"{self.stderr.read_text()[-6000:]}", pytrace=False)
        with np.load(self.out) as f:
            return {k: f[k] for k in f.files}


def _child(mode, out, cache_dir, threads, layer=None):
    """Run the child in ``mode`` and return its saved arrays; fail with its stderr if it does not exit 0."""
    return _Child(mode, out, cache_dir, threads, layer).result()


def _describe(x, y):
    """How two arrays of the same dtype and shape differ."""
    if x.dtype != y.dtype or x.shape != y.shape:
        return f"{x.dtype}{x.shape} vs {y.dtype}{y.shape}"
    if x.dtype == np.float64:
        ix, iy = x.view(np.int64), y.view(np.int64)
        ne = ix != iy
        # distance in units in the last place (both finite and of one sign, as results are here)
        ulps = np.abs(ix[ne].astype(object) - iy[ne].astype(object)) if ne.any() else [0]
        rel = np.max(np.abs(x[ne] - y[ne]) / np.maximum(np.abs(x[ne]), np.finfo(float).tiny))
        first = np.unravel_index(np.argmax(ne), x.shape)
        return (f"{ne.sum()} of {x.size} values differ, up to {max(ulps)} ulp (relative {rel:.2g}); "
                f"first at {tuple(int(i) for i in first)}: {x[first]!r} vs {y[first]!r}")
    return f"{np.count_nonzero(x != y)} of {x.size} values differ"


def assert_bitwise_equal(a, b, what, keys=None):
    """Every array of ``a`` has the bytes of its namesake in ``b`` (``keys``: a -> b key map, optional)."""
    if keys is None:
        only = sorted(set(a) ^ set(b))
        assert not only, f"{what}: arrays saved by one child only: {only[:10]}"
        keys = {k: k for k in a}
    bad = []
    for ka, kb in keys.items():
        x, y = a[ka], b[kb]
        if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
            bad.append(f"  {ka}: {_describe(x, y)}")
    if bad:
        pytest.fail(f"{what}: {len(bad)} of {len(keys)} arrays differ in their bits:\n" + "\n".join(bad), pytrace=False)


@pytest.fixture(scope="module")
def compiling_children(tmp_path_factory):
    """The two children that compile the kernels into fresh caches, started together.

    Compiling is single-threaded, so the two run side by side in about the time of one. One runs
    under NUMBA_NUM_THREADS=1 and compiles everything (``all``: the fits and the float32 / weighted
    combinations); the other compiles the fits' kernels under 8.
    """
    under_1, under_8 = tmp_path_factory.mktemp("cache_built_under_1"), tmp_path_factory.mktemp("cache_built_under_8")
    children = {1: (under_1, _Child("all", under_1 / "compile.npz", under_1 / "numba", threads=1)),
                8: (under_8, _Child("fits", under_8 / "compile.npz", under_8 / "numba", threads=8))}
    yield children
    for _, child in children.values():  # a failed test must not leave a child running
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait()


@pytest.fixture(scope="module")
def built_under_1(compiling_children):
    """A cache directory filled by a child under NUMBA_NUM_THREADS=1, and that child's (fresh-cache) results."""
    d, child = compiling_children[1]
    return d, child.result()


@pytest.fixture(scope="module")
def built_under_8(compiling_children):
    """A cache directory filled by a child under NUMBA_NUM_THREADS=8, and that child's (fresh-cache) results."""
    d, child = compiling_children[8]
    return d, child.result()


def test_cache_built_under_1_thread_runs_under_8(built_under_1, tmp_path):
    # 8 threads may be more than the machine has: numba allows it, and the thread ids then reach 7.
    d, fresh = built_under_1
    loaded = _child("all", tmp_path / "run.npz", d / "numba", threads=8)
    assert_bitwise_equal(loaded, fresh, "cache built under 1 thread, run under 8 vs the fresh-cache run")


def test_cache_built_under_8_threads_runs_under_1(built_under_8, tmp_path):
    d, fresh = built_under_8
    loaded = _child("fits", tmp_path / "run.npz", d / "numba", threads=1)
    assert_bitwise_equal(loaded, fresh, "cache built under 8 threads, run under 1 vs the fresh-cache run")


def test_fresh_cache_runs_agree_across_thread_counts(built_under_1, built_under_8):
    # two compiling processes, 1 and 8 threads: no extra child (the fits, which both ran)
    assert_bitwise_equal(built_under_8[1], built_under_1[1], "fresh-cache runs under 8 and under 1 thread",
                         keys={k: k for k in built_under_8[1]})


def test_compiling_run_and_cached_run_are_bitwise_equal(built_under_8, tmp_path):
    # the same thread count as the compiling child: only compile-vs-load differs
    d, compiled = built_under_8
    cached = _child("fits", tmp_path / "run.npz", d / "numba", threads=8)
    assert_bitwise_equal(cached, compiled, "run loading the kernels from the cache vs the run that compiled them")


def test_thread_count_invariance_in_one_process(built_under_8, tmp_path):
    # n_threads = 1, 2, 3, 4 in one child under NUMBA_NUM_THREADS=4, whatever the machine's CPU count
    # (tests/test_invariance.py's in-process test skips on a 1-CPU runner). The cache was built under 8.
    d, _ = built_under_8
    r = _child("threads", tmp_path / "run.npz", d / "numba", threads=4)
    one = {k[len("t1/"):]: k for k in r if k.startswith("t1/")}
    assert one and len(one) * 4 == len(r)
    t1 = {k: r[v] for k, v in one.items()}
    for t in (2, 3, 4):
        assert_bitwise_equal(t1, r, f"n_threads=1 vs n_threads={t}", keys={k: f"t{t}/{k}" for k in one})


@pytest.mark.parametrize("layer", [None, "workqueue"], ids=["default_layer", "workqueue"])
def test_concurrent_fits_from_python_threads(layer, built_under_8, tmp_path):
    # four Python threads fitting at once; numba's workqueue layer aborts the process when two
    # threads launch parallel kernels at the same time unless fastcavi serialises the launches
    d, _ = built_under_8
    r = _child("concurrent", tmp_path / "run.npz", d / "numba", threads=4, layer=layer)
    conc = {k[len("conc/"):]: k for k in r if k.startswith("conc/")}
    assert conc and len(conc) * 2 == len(r)
    assert_bitwise_equal({k: r[v] for k, v in conc.items()}, r, "concurrent fits vs the same fits run serially",
                         keys={k: f"serial/{k}" for k in conc})


def test_compiling_run_and_cached_run_agree_for_every_dtype_weighting_and_start(built_under_1, tmp_path):
    # float32 and float64, weighted and unweighted, every family, computed and given responsibilities,
    # predictions, and the kernels called directly: the compiling child and a child loading its cache
    # under the same thread count (only compile-vs-load differs)
    d, compiled = built_under_1
    cached = _child("all", tmp_path / "cached.npz", d / "numba", threads=1)
    assert sum(k.startswith(("fit/", "kernel/")) for k in compiled) > 200
    assert_bitwise_equal(cached, compiled, "float32/float64, weighted/unweighted: cached run vs compiling run")
