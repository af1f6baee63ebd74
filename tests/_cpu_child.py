"""The child process of tests/test_cpu_independence.py (not a test module: no ``test_`` prefix).

Run as ``python _cpu_child.py MODE ...`` under the numba target, OpenBLAS kernel set and numpy SIMD
features its parent chose (``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES``, ``OPENBLAS_CORETYPE``,
``NPY_DISABLE_CPU_FEATURES``), with a cache directory of its own. It saves every output to an ``.npz``
file, which the parent compares byte for byte with another child's.

Modes
-----
outputs OUT.npz DIR
    Fits of every covariance type, float width and weight prior (with predictions), every start, the
    engine's ``summarize``, ``estep`` statistics, ``Model.update`` and ELBO, a model file and a
    checkpoint (written under ``DIR``), memoized and online streams, and a Dask fit.
checkpoint PATH
    Start the fit of :func:`resumable_fit` and stop it after 3 sweeps, with a checkpoint at PATH.
resume PATH OUT.npz
    Resume that fit from PATH, and save its result (to compare with the uninterrupted fit of
    ``outputs``, made under another CPU target).
"""
import dataclasses
import os
import sys

import numpy as np

import fastcavi
from fastcavi import engine

from _determinism_child import COVARIANCE_TYPES, store  # the script's folder is on sys.path

K = 3


def data(seed=0, n=9000, D=5):
    """Three clusters along the diagonal with unequal spreads."""
    rng = np.random.default_rng(seed)
    z = rng.integers(0, K, n)
    return rng.normal(size=(n, D)) * (0.6 + 0.4 * z[:, None]) + z[:, None] * 2.5 + rng.normal(size=D)


def fits(out):
    X64 = data()
    w = np.random.default_rng(1).uniform(0.2, 2.0, X64.shape[0])
    for dtype in (np.float64, np.float32):
        X = X64.astype(dtype)
        for prior in ("dirichlet_distribution", "dirichlet_process"):
            for cov in COVARIANCE_TYPES:
                prefix = f"fit/{np.dtype(dtype).name}/{prior}/{cov}"
                r = fastcavi.fit(X, K, covariance_type=cov, weight_concentration_prior_type=prior, max_iter=6,
                                 tol=0, random_state=0)
                store(out, prefix, r)
                out[f"{prefix}/predict_proba"] = r.predict_proba(X[:2000])
                out[f"{prefix}/score_samples"] = r.score_samples(X[:2000])
        prefix = f"fit/{np.dtype(dtype).name}/weighted/full"
        store(out, prefix, fastcavi.fit(X, K, covariance_type="full", sample_weight=w, max_iter=4, tol=0,
                                        random_state=0))
    X = X64
    D = X.shape[1]
    v = np.random.default_rng(3).normal(size=D)
    # a known covariance (the rows are whitened by it), made without BLAS, whose bits follow the CPU
    covariance = 0.5 * np.eye(D) + 0.3 * v[:, None] * v[None, :]
    for name, kw in (("known-covariance", dict(covariance_type="identity", covariance=covariance)),
                     ("exact-cavi", dict(covariance_type="full", exact_cavi=True)),
                     ("priors", dict(covariance_type="full", covariance_prior=covariance, mean_prior=X.mean(0) + 1,
                                     degrees_of_freedom_prior=D + 2.5, mean_precision_prior=0.3))):
        r = fastcavi.fit(X, K, max_iter=4, tol=0, random_state=0, **kw)
        store(out, f"fit/float64/{name}", r)
        out[f"fit/float64/{name}/score_samples"] = r.score_samples(X[:2000])
    R = np.random.default_rng(2).dirichlet(np.ones(K), X.shape[0])
    starts = {"kmeans": dict(init="kmeans"), "k-means||": dict(init="k-means||"), "random": dict(init="random"),
              "random_from_data": dict(init="random_from_data"), "means": dict(init=X[[0, 1, 2]]),
              "responsibilities": dict(init_responsibilities=R), "n_init": dict(n_init=3)}
    for name, kw in starts.items():
        for cov in ("diag", "full", "tied"):
            r = fastcavi.fit(X, K, covariance_type=cov, max_iter=3, tol=0, random_state=3, **kw)
            store(out, f"start/{name}/{cov}", r)


def engine_calls(out):
    X = data(seed=5, n=12_288)
    w = np.random.default_rng(6).uniform(0.2, 2.0, X.shape[0])
    for full in (False, True):
        s = engine.summarize(X, w, full_scatter=full)
        out[f"summarize/{full}/sums"] = s.to_array()
        out[f"summarize/{full}/shift"] = s.shift
    for cov in COVARIANCE_TYPES:
        r = fastcavi.fit(X, K, covariance_type=cov, init=X[[0, 5, 9]], max_iter=1, tol=0)
        model, state = r.model, r.state
        for sweep in range(3):
            stats = engine.estep(model, state, X[:8192]) + engine.estep(model, state, X[8192:], sample_weight=None)
            out[f"engine/{cov}/{sweep}/stats"] = stats.to_array()
            state = model.update(stats)
            for field in dataclasses.fields(state):
                v = getattr(state, field.name)
                if v is not None:
                    out[f"engine/{cov}/{sweep}/state/{field.name}"] = np.asarray(v)
            out[f"engine/{cov}/{sweep}/elbo"] = np.asarray(model.elbo(stats, state))


def files(out, directory):
    X = data(seed=7)
    r = fastcavi.fit(X, K, covariance_type="full", max_iter=4, tol=0, random_state=0,
                     checkpoint=os.path.join(directory, "fit.ckpt"))
    path = os.path.join(directory, "model.npz")
    r.save(path)
    for kind, p in (("model", path), ("checkpoint", os.path.join(directory, "fit.ckpt"))):
        with np.load(p, allow_pickle=False) as f:
            for key in f.files:
                out[f"file/{kind}/{key}"] = f[key]
    out["file/model/predict_proba"] = fastcavi.load(path).predict_proba(X[:1000])


def streams(out):
    from fastcavi.stream import StreamingCAVI

    X = data(seed=8, n=16_384)
    parts = [X[i:i + 4096] for i in range(0, X.shape[0], 4096)]
    for method in ("memoized", "online"):
        for cov in ("diag", "full"):
            kw = dict(total_samples=X.shape[0]) if method == "online" else {}
            s = StreamingCAVI.from_batch(parts[0], K, covariance_type=cov, learning_method=method,
                                         random_state=0, **kw)
            for lap in range(2):
                for i, part in enumerate(parts):
                    s.partial_fit(part, batch_id=i if method == "memoized" else None)
            store(out, f"stream/{method}/{cov}", s.result())


def dask_fit(out):
    import dask
    import dask.array as da

    X = data(seed=9, n=20_480)
    with dask.config.set(scheduler="threads"):
        r = fastcavi.fit(da.from_array(X, chunks=(4096, X.shape[1])), K, covariance_type="full", max_iter=4,
                         tol=0, init=X[[0, 1, 2]])
    store(out, "dask/full", r)


def resumable_fit(**kw):
    X = data(seed=11)
    return fastcavi.fit(X, K, covariance_type="tied", max_iter=6, tol=0, random_state=4, **kw)


class Stop(Exception):
    pass


def main(mode, *args):
    out = {}
    if mode == "outputs":
        path, directory = args
        fits(out)
        engine_calls(out)
        files(out, directory)
        streams(out)
        dask_fit(out)
        store(out, "resumable", resumable_fit())
    elif mode == "checkpoint":
        def stop(it, elbo, change):
            if it == 3:
                raise Stop

        try:
            resumable_fit(checkpoint=args[0], callback=stop)
        except Stop:
            return
        raise AssertionError("the fit was not stopped")
    elif mode == "resume":
        ckpt, path = args
        store(out, "resumable", resumable_fit(resume=ckpt))
    np.savez(path, **out)


if __name__ == "__main__":
    main(*sys.argv[1:])
