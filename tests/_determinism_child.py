"""The child process of tests/test_determinism_processes.py (not a test module: no ``test_`` prefix).

Run as ``python _determinism_child.py MODE OUT.npz``. It fits fastcavi in a fresh interpreter, under
the NUMBA_CACHE_DIR / NUMBA_NUM_THREADS / NUMBA_THREADING_LAYER its parent set, and saves every
result array to OUT.npz, which the parent compares byte for byte with another child's.

Modes
-----
fits
    Every covariance type (both weight priors for "full"), k-means++ seeding once, then
    ``predict_proba`` and ``score_samples`` of each result on the training data.
threads
    The fits of ``fits`` (without prediction) once for each ``n_threads`` in 1 .. NUMBA_NUM_THREADS,
    keys prefixed ``t<n>/``; then prediction with each ``n_threads``.
concurrent
    Eight fits on different data sets run by four Python threads at once (keys ``conc/``), then the
    same fits one after the other (keys ``serial/``).
"""
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import fastcavi

COVARIANCE_TYPES = ("identity", "spherical", "diag", "full", "tied")
FIELDS = ("elbo", "weights", "weight_concentration", "means", "mean_precision", "covariances", "precisions",
          "precisions_cholesky", "degrees_of_freedom")
N, D, K = 120_000, 4, 3  # 469 blocks of 256 rows: every thread has many blocks


def data(seed=0, n=N):
    """Three clusters 3 apart along the diagonal, standard normal noise."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, D)) + rng.integers(0, K, (n, 1)) * 3.0


def runs():
    """(name, fit keyword arguments) of the fits of one child: every family, a fixed start (no seeding)."""
    out = []
    for cov in COVARIANCE_TYPES:
        out.append((f"{cov}/dd", dict(covariance_type=cov)))
    out.append(("full/dp", dict(covariance_type="full", weight_concentration_prior_type="dirichlet_process")))
    out.append(("diag/kmeans", dict(covariance_type="diag", init="k-means++", random_state=5)))
    return out


def fit(X, kwargs, n_threads=None):
    kw = dict(max_iter=3, tol=0, init=X[[0, 1000, 2000]], n_threads=n_threads)
    kw.update(kwargs)
    return fastcavi.fit(X, K, **kw)


def store(out, prefix, r):
    for name in FIELDS:
        v = getattr(r, name)
        if v is None:
            continue
        if isinstance(v, tuple):
            for j, part in enumerate(v):
                out[f"{prefix}/{name}{j}"] = np.asarray(part)
        else:
            out[f"{prefix}/{name}"] = np.asarray(v)


def mode_fits(out):
    X = data()
    for name, kw in runs():
        r = fit(X, kw)
        store(out, name, r)
        if name.endswith("/dd"):
            out[f"{name}/predict_proba"] = r.predict_proba(X)
            out[f"{name}/score_samples"] = r.score_samples(X)


def mode_threads(out):
    import numba

    X = data()
    for t in range(1, numba.config.NUMBA_NUM_THREADS + 1):
        for name, kw in runs():
            r = fit(X, kw, n_threads=t)
            store(out, f"t{t}/{name}", r)
            if name == "full/dd":
                out[f"t{t}/{name}/predict_proba"] = r.predict_proba(X, n_threads=t)
                out[f"t{t}/{name}/score_samples"] = r.score_samples(X, n_threads=t)


def mode_concurrent(out):
    jobs = [(j, COVARIANCE_TYPES[j % len(COVARIANCE_TYPES)]) for j in range(8)]
    datasets = {j: data(seed=10 + j, n=40_000 + 256 * j + 7) for j, _ in jobs}

    def one(job):
        j, cov = job
        X = datasets[j]
        r = fit(X, dict(covariance_type=cov, max_iter=5))
        return r, r.predict_proba(X)

    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(one, jobs))
    serial = [one(job) for job in jobs]
    for (j, cov), (rc, pc), (rs, ps) in zip(jobs, concurrent, serial):
        store(out, f"conc/{j}-{cov}", rc)
        out[f"conc/{j}-{cov}/predict_proba"] = pc
        store(out, f"serial/{j}-{cov}", rs)
        out[f"serial/{j}-{cov}/predict_proba"] = ps


def main(mode, path):
    out = {}
    {"fits": mode_fits, "threads": mode_threads, "concurrent": mode_concurrent}[mode](out)
    np.savez(path, **out)


if __name__ == "__main__":
    main(*sys.argv[1:])
