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
combos
    The kernels called directly with fixed inputs (the E-step's block partials, responsibilities and
    log-sum-exp, with and without row weights, computed or given responsibilities, the three feature
    layouts; the summary pass's block partials), for float32 and float64 data; then fits of every
    family, float32 and float64, weighted and unweighted, from a fixed start and from given
    responsibilities (the initial statistics pass), with predictions.
all
    ``fits`` then ``combos``, in one process.
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


def _read_only(a):
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a


def kernel_calls(out, n=20_000):
    """The E-step and summary kernels called directly on fixed inputs (the arguments a fit hands them)."""
    from fastcavi._kernels.estep import SUB_ROWS, estep, scratch_rows
    from fastcavi._kernels.summary import summarize, summary_scratch_rows, summary_size
    from fastcavi._models.base import feature_count

    rng = np.random.default_rng(7)
    X64 = data(seed=3, n=n)
    shift = X64.mean(0)
    w = _read_only(rng.uniform(0.2, 2.0, n))
    R = _read_only(rng.dirichlet(np.ones(K), n))
    B = 256
    nb = (n + B - 1) // B
    for dtype in (np.float32, np.float64):
        X = _read_only(X64.astype(dtype))
        for layout in ("diag", "full", "linear"):
            full, F = layout == "full", feature_count(D, layout)
            bias = rng.normal(size=K)
            W = rng.normal(size=(K, F)) * 0.1
            W[:, D:] = -np.abs(W[:, D:])  # concave logits, as a fit's are
            for weighted in (False, True):
                tag = f"kernel/{np.dtype(dtype).name}/{layout}/{'w' if weighted else 'uw'}"
                part = np.zeros((nb, summary_size(D, full)))
                summarize(X, shift, full, w, weighted, part, np.zeros((2, summary_scratch_rows(D), B)), B)
                out[f"{tag}/summary"] = part
                for mode in ("computed", "given", "hard"):
                    part = np.zeros((nb, 3 + K + K * F))
                    resp, lse = np.zeros((n, K)), np.zeros(n)
                    estep(X, shift, bias, W, full, w, weighted, mode == "given", mode == "hard", R, True, resp, lse,
                          part, np.zeros((2, scratch_rows(K, F), SUB_ROWS)), B)
                    name = f"{tag}/{mode}"
                    out[f"{name}/partials"] = part
                    out[f"{name}/resp"] = resp
                    out[f"{name}/lse"] = lse


def mode_combos(out, n=30_000):
    kernel_calls(out)
    X64 = data(seed=4, n=n)
    rng = np.random.default_rng(8)
    w = rng.uniform(0.2, 2.0, n)
    R = rng.dirichlet(np.ones(K), n)
    for dtype in (np.float32, np.float64):
        X = X64.astype(dtype)
        for wname, sw in (("uw", None), ("w", w)):
            for cov in COVARIANCE_TYPES:
                prefix = f"fit/{np.dtype(dtype).name}/{wname}/{cov}"
                r = fastcavi.fit(X, K, covariance_type=cov, max_iter=2, tol=0, init=X64[[0, 1000, 2000]],
                                 sample_weight=sw)
                store(out, f"{prefix}/init", r)
                out[f"{prefix}/init/predict_proba"] = r.predict_proba(X)
                out[f"{prefix}/init/score_samples"] = r.score_samples(X)
                r = fastcavi.fit(X, K, covariance_type=cov, max_iter=1, tol=0, init_responsibilities=R,
                                 sample_weight=sw)
                store(out, f"{prefix}/given", r)


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


def mode_all(out):
    mode_fits(out)
    mode_combos(out)


def main(mode, path):
    out = {}
    modes = {"fits": mode_fits, "threads": mode_threads, "combos": mode_combos, "all": mode_all,
             "concurrent": mode_concurrent}
    modes[mode](out)
    np.savez(path, **out)


if __name__ == "__main__":
    main(*sys.argv[1:])
