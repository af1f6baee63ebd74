"""The same bits on every x86-64 CPU with FMA, whatever its vector width, BLAS kernels or numpy SIMD loops.

One machine stands in for several: each child process (tests/_cpu_child.py) runs the same work under
another numba target (the host's CPU with 128-bit vectors preferred, and, on an AVX-512 machine, with
512-bit vectors allowed, and an AVX2 CPU's code), another OpenBLAS kernel set (``OPENBLAS_CORETYPE``) and numpy's SIMD loops
switched off (``NPY_DISABLE_CPU_FEATURES``), each with a cache directory of its own, and every output
must match the host run's byte for byte. A checkpoint written under one target resumes under another
and gives the uninterrupted fit's bits.
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).with_name("_cpu_child.py")

pytestmark = pytest.mark.slow


def _host():
    from llvmlite import binding

    binding.initialize_native_target()
    return binding.get_host_cpu_name(), binding.get_host_cpu_features()


def _numpy_dispatch():
    """The SIMD features numpy dispatches to at run time on this machine (what NPY_DISABLE_CPU_FEATURES can
    switch off)."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    return [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]


def variants():
    """name -> environment overrides. "host" changes nothing."""
    name, features = _host()
    if not features.get("fma"):
        pytest.skip("fastcavi's results are CPU-independent across CPUs with FMA; this one has none")
    flat = features.flatten()
    out = {"host": {},
           "narrow": {"NUMBA_CPU_NAME": name, "NUMBA_CPU_FEATURES": flat + ",+prefer-128-bit",
                      "OPENBLAS_CORETYPE": "Sandybridge",
                      "NPY_DISABLE_CPU_FEATURES": " ".join(_numpy_dispatch())}}
    if features.get("avx512f"):
        out["wide"] = {"NUMBA_CPU_NAME": name, "NUMBA_CPU_FEATURES": flat + ",-prefer-256-bit",
                       "OPENBLAS_CORETYPE": "SkylakeX"}
        # an AVX2 machine's code (no AVX-512 instruction at all), with its BLAS kernels
        out["avx2"] = {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": "", "OPENBLAS_CORETYPE": "Haswell",
                       "NPY_DISABLE_CPU_FEATURES": " ".join(f for f in _numpy_dispatch() if "512" in f or "V4" in f)}
    return out


def run_child(tmp_path, variant, env_overrides, *args):
    env = dict(os.environ)
    env.update(env_overrides)
    env["NUMBA_CACHE_DIR"] = str(tmp_path / f"cache-{variant}")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    env["PYTHONWARNINGS"] = "ignore"
    proc = subprocess.run([sys.executable, str(CHILD), *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, f"{variant}: {proc.stderr[-4000:]}"


def load(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def mismatches(a, b):
    """The keys whose arrays differ in bytes (or exist in one only), with the largest relative difference."""
    out = []
    for k in sorted(set(a) | set(b)):
        if k not in a or k not in b:
            out.append(f"{k}: missing")
        elif a[k].dtype != b[k].dtype or a[k].shape != b[k].shape or a[k].tobytes() != b[k].tobytes():
            rel = ""
            if a[k].dtype.kind == "f" and a[k].shape == b[k].shape:
                d = np.abs(a[k].astype(np.float64) - b[k])
                rel = f" (max relative difference {np.max(d / np.maximum(np.abs(a[k]), 1e-300)):.1e})"
            out.append(f"{k}{rel}")
    return out


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cpu")
    results = {}
    for variant, env in variants().items():
        (tmp / variant).mkdir()
        run_child(tmp, variant, env, "outputs", tmp / f"{variant}.npz", tmp / variant)
        results[variant] = load(tmp / f"{variant}.npz")
    return tmp, results


def test_every_output_is_the_same_under_every_cpu_target(outputs):
    _, results = outputs
    host = results["host"]
    assert len(host) > 500
    for variant, got in results.items():
        bad = mismatches(host, got)
        assert not bad, f"{variant}: {len(bad)} of {len(host)} outputs differ from the host's: " + "; ".join(bad[:20])


def test_a_checkpoint_resumes_under_another_cpu_target(outputs):
    tmp, results = outputs
    envs = variants()
    ckpt = tmp / "narrow.ckpt"
    run_child(tmp, "narrow", envs["narrow"], "checkpoint", ckpt)
    run_child(tmp, "host", envs["host"], "resume", ckpt, tmp / "resumed.npz")
    resumed = load(tmp / "resumed.npz")
    whole = {k: v for k, v in results["host"].items() if k.startswith("resumable/")}
    assert resumed.keys() == whole.keys()
    assert not mismatches(whole, resumed)


def test_a_checkpoint_from_a_cpu_without_fma_is_refused_naming_the_arithmetic(outputs):
    # numba's generic x86-64 target has no FMA: a multiply-add is rounded twice there, so its bits differ, and
    # resuming its checkpoint on this CPU is refused for that reason, not for "other data"
    tmp, _ = outputs
    ckpt = tmp / "generic.ckpt"
    run_child(tmp, "generic", {"NUMBA_CPU_NAME": "generic", "NUMBA_CPU_FEATURES": ""}, "checkpoint", ckpt)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp / "cache-host"),
               PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    proc = subprocess.run([sys.executable, str(CHILD), "resume", str(ckpt), str(tmp / "refused.npz")], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode != 0
    assert "written on a CPU of another kind (x86_64 without FMA; this one is x86_64 with FMA)" in proc.stderr
    assert "data content differs" not in proc.stderr


def test_a_dask_fit_on_workers_compiled_for_different_cpus_is_the_local_fit():
    # two workers, one running numba's 128-bit code for this CPU and one an AVX2 CPU's code, each with its own
    # kernel cache, hold the chunks of one array: the fit is the local fit (this process's code) bit for bit
    pytest.importorskip("distributed")
    import dask.array as da
    from distributed import Client, LocalCluster, wait

    import fastcavi

    variant = variants()
    targets = [variant["narrow"]] + ([variant["avx2"]] if "avx2" in variant else [variant["narrow"]])
    with tempfile.TemporaryDirectory() as tmp, LocalCluster(n_workers=0, dashboard_address=":0") as cluster:
        workers = []
        for i, target in enumerate(targets):
            env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(tmp, f"cache{i}"),
                       NUMBA_CPU_NAME=target["NUMBA_CPU_NAME"], NUMBA_CPU_FEATURES=target["NUMBA_CPU_FEATURES"],
                       PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
            workers.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker",
                                             cluster.scheduler_address, "--nthreads", "1", "--no-dashboard"],
                                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        try:
            with Client(cluster) as client:
                client.wait_for_workers(2, timeout=120)
                assert sorted(client.run(lambda: os.environ["NUMBA_CPU_NAME"]).values()) == \
                    sorted(t["NUMBA_CPU_NAME"] for t in targets)
                rng = np.random.default_rng(0)
                X = rng.normal(size=(8, 6))[rng.integers(8, size=40960)] * 3 + rng.normal(size=(40960, 6))
                chunks = client.persist(da.from_array(X, chunks=(4096, 6)))
                wait(chunks)
                client.rebalance(chunks)
                assert all(client.has_what().values()), "both workers hold chunks"
                for cov in ("full", "tied", "diag"):
                    local = fastcavi.fit(X, 5, covariance_type=cov, init=X[:5], max_iter=5, tol=0)
                    remote = fastcavi.fit(chunks, 5, covariance_type=cov, init=X[:5], max_iter=5, tol=0,
                                          client=client, persist=False)
                    for name in ("elbo", "weights", "means", "covariances", "precisions_cholesky"):
                        assert np.asarray(getattr(local, name)).tobytes() == \
                            np.asarray(getattr(remote, name)).tobytes(), (cov, name)
        finally:
            for w in workers:
                w.terminate()
                w.wait(timeout=30)
