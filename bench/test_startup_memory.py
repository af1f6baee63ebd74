"""Cold start (compilation, import) and peak memory of a streaming fit, each in a fresh process."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

FIT_SMALL = "import numpy as np, fastcavi; fastcavi.fit(np.random.default_rng(0).normal(size=(2000, 2)), 3, max_iter=3)"


def _python(code, env_extra=None):
    env = dict(os.environ)
    env.update(env_extra or {})
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=900)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_first_fit_in_a_new_process(benchmark, tmp_path_factory, cache):
    """Time to the end of a first small fit: 'cold' compiles every kernel it needs, 'warm' loads them."""
    cache_dir = str(tmp_path_factory.getbasetemp() / "numba_cache")
    if cache == "warm":
        _python(FIT_SMALL, {"NUMBA_CACHE_DIR": cache_dir})  # fill the cache
    else:
        import shutil

        shutil.rmtree(cache_dir, ignore_errors=True)
    benchmark.group = "first fit in a new process (compile vs cached)"
    benchmark.extra_info["role"] = "baseline" if cache == "cold" else "fastcavi"
    benchmark.pedantic(_python, args=(FIT_SMALL, {"NUMBA_CACHE_DIR": cache_dir}), rounds=1 if cache == "cold" else 3)


def test_import_time(benchmark):
    """``import fastcavi`` must not import numba or compile anything."""
    code = ("import time, sys; t = time.perf_counter(); import fastcavi; "
            "print(time.perf_counter() - t, 'numba' in sys.modules)")
    out = _python(code).split()
    assert out[1] == "False"
    benchmark.group = "import fastcavi"
    benchmark.pedantic(_python, args=(code,), rounds=5)


MEMORY_CHILD = textwrap.dedent("""
    import json, sys, threading, time
    import numpy as np, fastcavi

    def rss_anon():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    path, n = sys.argv[1], int(sys.argv[2])
    X = np.memmap(path, dtype=np.float32, mode="r", shape=(n, 2))
    fastcavi.fit(np.asarray(X[:5000]), 8, max_iter=2, random_state=0)   # compile/load kernels first
    base = rss_anon()
    peak = [base]
    stop = threading.Event()
    def poll():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_anon())
            time.sleep(0.005)
    t = threading.Thread(target=poll); t.start()
    t0 = time.perf_counter()
    r = fastcavi.fit(X, 8, max_iter=3, tol=0, random_state=0)
    dt = time.perf_counter() - t0
    stop.set(); t.join()
    print(json.dumps(dict(base=base, peak=peak[0], seconds=dt, n_iter=r.n_iter)))
""")


@pytest.mark.slow
def test_memmap_fit_peak_memory(benchmark, tmp_path):
    """Peak anonymous memory growth (RssAnon) of a k-means++ + 3-sweep fit on a 20,000,000 x 2 float32 memmap."""
    n = int(os.environ.get("FASTCAVI_BENCH_MEMMAP_N", 20_000_000))
    path = tmp_path / "big.f32"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=(n, 2))
    rng = np.random.default_rng(0)
    for start in range(0, n, 1_000_000):
        stop = min(n, start + 1_000_000)
        mm[start:stop] = rng.normal(size=(stop - start, 2)) + rng.integers(0, 8, size=(stop - start, 1)) * 3
    mm.flush()
    del mm
    result = {}

    def run():
        out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(path), str(n)],
                             capture_output=True, text=True, check=True)
        result.update(json.loads(out.stdout))

    benchmark.group = "memmap fit 20M x 2 float32"
    benchmark.pedantic(run, rounds=1)
    growth = (result["peak"] - result["base"]) / 2**20
    benchmark.extra_info.update(rss_anon_growth_mib=growth, fit_seconds=result["seconds"], rows=n)
    print(f"\nRssAnon growth during the fit: {growth:.1f} MiB (the data is {n * 8 / 2**20:.0f} MiB on disk); "
          f"fit took {result['seconds']:.2f} s")
