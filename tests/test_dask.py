"""fastcavi on Dask arrays: equal to the local fit, lazy predictions, global-row errors, workers.

Fast cases run on the synchronous scheduler; the cluster cases share one LocalCluster of two
worker processes (one thread each).
"""
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")

import fastcavi  # noqa: E402
from fastcavi import engine  # noqa: E402

TYPES = ["identity", "spherical", "diag", "full", "tied"]
K = 3


def _data(n_per=6000, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [5.0, 5.0, 0.0], [0.0, 6.0, 3.0]])
    X = np.concatenate([rng.normal(size=(n_per, 3)) + c for c in centres])
    return X[rng.permutation(X.shape[0])]


X = _data()  # 18,000 rows: 4 full segments and a short one
M0 = X[[0, 1, 2]] + np.array([[0.1, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 0.1]])
ALIGNED = 2 * engine.GRANULARITY  # chunks of 8192 rows: 8192, 8192, 1616


@pytest.fixture
def sync():
    with dask.config.set(scheduler="synchronous"):
        yield


def _same_result(a, b):
    """Bitwise equality of two FitResults: ELBO trace, every state array, the public parameters."""
    assert np.array_equal(a.elbo, b.elbo)
    sa, sb = a.state.to_dict(), b.state.to_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert np.array_equal(sa[k], sb[k]), k
    assert np.array_equal(a.means, b.means) and np.array_equal(a.covariances, b.covariances)
    assert a.model == b.model and a.converged == b.converged


def _relative(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))


@pytest.mark.parametrize("covariance_type", TYPES)
def test_aligned_chunks_bitwise_equal_local_fit(sync, covariance_type):
    local = fastcavi.fit(X, K, covariance_type=covariance_type, init=M0, max_iter=6, tol=0)
    dX = da.from_array(X, chunks=(ALIGNED, 3))
    _same_result(fastcavi.fit(dX, K, covariance_type=covariance_type, init=M0, max_iter=6, tol=0), local)
    # columns split in two chunks and float32 data: rechunked per row block, still bitwise
    X32 = X.astype(np.float32)
    local32 = fastcavi.fit(X32, K, covariance_type=covariance_type, init=M0, max_iter=3, tol=0)
    dX32 = da.from_array(X32, chunks=(engine.GRANULARITY, 2))
    _same_result(fastcavi.fit(dX32, K, covariance_type=covariance_type, init=M0, max_iter=3, tol=0), local32)


@pytest.mark.parametrize("covariance_type", ["identity", "full", "tied"])
def test_unaligned_chunks_within_1e12(sync, covariance_type):
    local = fastcavi.fit(X, K, covariance_type=covariance_type, init=M0, max_iter=6, tol=0)
    r = fastcavi.fit(da.from_array(X, chunks=(5000, 3)), K, covariance_type=covariance_type, init=M0,
                     max_iter=6, tol=0)
    assert _relative(r.elbo, local.elbo) < 1e-12
    for name in ("means", "covariances", "weights", "precisions"):
        assert _relative(getattr(r, name), getattr(local, name)) < 1e-12, name


def test_weights_responsibilities_random_rows_and_convergence_bitwise(sync):
    rng = np.random.default_rng(1)
    w = rng.integers(0, 3, size=X.shape[0]).astype(np.float64)
    R = np.eye(K)[rng.integers(0, K, X.shape[0])]
    dX = da.from_array(X, chunks=(ALIGNED, 3))
    # weights with other row chunks than X (rechunked), in memory or on Dask
    for weights in (w, da.from_array(w, chunks=3000)):
        local = fastcavi.fit(X, K, covariance_type="full", init=M0, sample_weight=w, max_iter=4, tol=0)
        _same_result(fastcavi.fit(dX, K, covariance_type="full", init=M0, sample_weight=weights, max_iter=4, tol=0),
                     local)
    for resp in (R, da.from_array(R, chunks=(5000, K))):
        local = fastcavi.fit(X, K, covariance_type="diag", init_responsibilities=R, max_iter=4, tol=0)
        _same_result(fastcavi.fit(dX, K, covariance_type="diag", init_responsibilities=resp, max_iter=4, tol=0),
                     local)
    # the same random rows as the local fit, and a run to convergence (the same stopping sweep)
    local = fastcavi.fit(X, K, covariance_type="spherical", init="random_from_data", random_state=5, n_init=2)
    r = fastcavi.fit(dX, K, covariance_type="spherical", init="random_from_data", random_state=5, n_init=2)
    _same_result(r, local)
    assert r.converged
    # a warm start continues bitwise as the local one
    first = fastcavi.fit(X, K, covariance_type="full", init=M0, max_iter=2, tol=0)
    _same_result(fastcavi.fit(dX, K, covariance_type="full", init=first, max_iter=3, tol=0),
                 fastcavi.fit(X, K, covariance_type="full", init=first, max_iter=3, tol=0))


def test_threaded_scheduler_concurrent_tasks_same_bits():
    """Tasks of one process running kernels at once (numba's layer, whatever it is, must not abort)."""
    local = fastcavi.fit(X, K, covariance_type="tied", init=M0, max_iter=4, tol=0)
    dX = da.from_array(X, chunks=(engine.GRANULARITY, 3))
    for n_threads in (None, 1):
        with dask.config.set(scheduler="threads", num_workers=3):
            r = fastcavi.fit(dX, K, covariance_type="tied", init=M0, max_iter=4, tol=0, n_threads=n_threads)
        _same_result(r, local)


def test_estimator_fits_and_predicts_dask_arrays(sync):
    dX = da.from_array(X, chunks=(ALIGNED, 3))
    est = fastcavi.BayesianGaussianMixture(n_components=K, init_params="random_from_data", random_state=0,
                                           max_iter=5)
    local = fastcavi.BayesianGaussianMixture(n_components=K, init_params="random_from_data", random_state=0,
                                             max_iter=5)
    est.fit(dX)
    local.fit(X)
    _same_result(est.result_, local.result_)
    labels = est.predict(dX)
    assert isinstance(labels, da.Array) and np.array_equal(labels.compute(), local.predict(X))


INITS = ["k-means++", "k-means||", "kmeans", "random", "random_from_data"]


@pytest.mark.parametrize("init", INITS)
def test_every_init_method_equals_the_local_one(sync, init):
    """Each init runs the local code, one Dask reduction a pass: bitwise with aligned chunks, with or without weights."""
    w = np.random.default_rng(4).integers(0, 3, size=X.shape[0]).astype(np.float64)
    dX = da.from_array(X, chunks=(ALIGNED, 3))
    for weights in (None, w):
        opts = dict(covariance_type="diag", init=init, random_state=7, max_iter=3, tol=0, sample_weight=weights)
        local = fastcavi.fit(X, K, **opts)
        _same_result(fastcavi.fit(dX, K, **opts), local)
        # other chunks: the draws are hashes of global rows, the sums exact or per block: the same to round-off
        other = fastcavi.fit(da.from_array(X, chunks=(5000, 3)), K, **opts)
        assert _relative(other.means, local.means) < 1e-12
    if init.startswith("k-means"):  # the seedings find the three clusters (a fit from them converges to them)
        fitted = fastcavi.fit(dX, K, covariance_type="diag", init=init, random_state=7).means
        truth = np.array([[0.0, 0.0, 0.0], [5.0, 5.0, 0.0], [0.0, 6.0, 3.0]])
        found = fitted[np.argsort(fitted[:, 0] * 10 + fitted[:, 1])]
        assert np.max(np.abs(found - truth[np.argsort(truth[:, 0] * 10 + truth[:, 1])])) < 0.1


def test_default_dask_fit_is_the_default_local_fit(sync):
    """No init given (k-means++ on both), n_init=2, to convergence: bit for bit, on aligned chunks."""
    dX = da.from_array(X, chunks=(ALIGNED, 3))
    for covariance_type in ("identity", "full"):
        local = fastcavi.fit(X, K, covariance_type=covariance_type, random_state=11, n_init=2)
        _same_result(fastcavi.fit(dX, K, covariance_type=covariance_type, random_state=11, n_init=2), local)


def test_kmeans_parallel_weights_and_candidates(sync):
    """k-means||: a row of weight 0 is never a candidate (a far outlier here); repeatable; the local draws."""
    Xo = np.concatenate((X, [[1e3, 1e3, 1e3]]))
    w = np.r_[np.ones(X.shape[0]), 0.0]
    r = fastcavi.fit(da.from_array(Xo, chunks=(ALIGNED, 3)), K, covariance_type="diag", sample_weight=w,
                     random_state=0, init="k-means||", max_iter=2, tol=0)
    assert np.all(np.abs(r.means) < 10)
    _same_result(r, fastcavi.fit(Xo, K, covariance_type="diag", sample_weight=w, random_state=0, init="k-means||",
                                 max_iter=2, tol=0))
    # with weight 1 the outlier is far from every other row: the first round's cost makes it a candidate
    from fastcavi import _init

    run_pass = _init.local_passes(fastcavi._io.sources.DataSource(Xo), None, engine.GRANULARITY)
    seen = []

    def recording(fn, args, combine, name=None):
        out = run_pass(fn, args, combine, name)
        if fn is _init.cost_and_candidates_chunk:  # (shift, centres, ell, seed, round)
            seen.append(_init.draw_candidates(out, args[2])[1] + args[0])
        return out

    _init.kmeans_parallel(recording, fastcavi._io.sources.DataSource(Xo).rows, Xo.shape[0], K,
                          np.random.default_rng(0), Xo.mean(axis=0), False)
    drawn = np.concatenate(seen)
    assert len(seen) == _init.KMEANS_PARALLEL_ROUNDS and 2 <= drawn.shape[0] <= 10 * 2 * K * len(seen)
    assert any(np.array_equal(row, Xo[-1]) for row in drawn)


def test_persisted_and_streamed_fits_are_the_same_bits(sync):
    """persist=True reads each chunk once; persist=False reads it every pass; "auto" keeps this small X."""
    reads = []

    def counted(block):
        if block.shape[0]:  # (not dask's call on an empty block, when the graph is made)
            reads.append(block.shape[0])
        return block

    X32 = X.astype(np.float32)  # converted once (float32 is kept as it is; int16 becomes float64)
    results = {}
    for persist in (True, False, "auto"):
        reads.clear()
        dX = da.from_array(X, chunks=(ALIGNED, 3)).map_blocks(counted, dtype=X.dtype)
        results[persist] = fastcavi.fit(dX, K, covariance_type="full", random_state=2, max_iter=4, tol=0,
                                        persist=persist)
        n_reads = len(reads)
        # 3 chunks, read once; streamed: the summary, 2 k-means++ draws, the start's M-step and 4 sweeps
        assert (n_reads == 3) if persist else (n_reads >= 3 * 8)
    _same_result(results[True], results[False])
    _same_result(results["auto"], fastcavi.fit(X, K, covariance_type="full", random_state=2, max_iter=4, tol=0))
    for persist in (True, False):
        r = fastcavi.fit(da.from_array(X32, chunks=(ALIGNED, 3)), K, init=M0, max_iter=3, tol=0, persist=persist)
        _same_result(r, fastcavi.fit(X32, K, init=M0, max_iter=3, tol=0))
        Xi = np.round(X * 100).astype(np.int16)
        r = fastcavi.fit(da.from_array(Xi, chunks=(ALIGNED, 3)), K, init=M0 * 100, max_iter=3, tol=0, persist=persist)
        _same_result(r, fastcavi.fit(Xi, K, init=M0 * 100, max_iter=3, tol=0))
    with pytest.raises(ValueError, match="'persist' parameter must be 'auto', True or False"):
        fastcavi.fit(da.from_array(X, chunks=(ALIGNED, 3)), K, init=M0, persist="always")


def test_predictions_are_lazy_and_equal_local(sync):
    r = fastcavi.fit(X, K, covariance_type="full", init=M0, max_iter=5, tol=0)
    Xn = _data(n_per=3000, seed=2)
    for chunks in ((ALIGNED, 3), (3001, 2)):
        dX = da.from_array(Xn, chunks=chunks)
        p, proba, score = r.predict(dX), r.predict_proba(dX), r.score_samples(dX)
        assert all(isinstance(a, da.Array) for a in (p, proba, score))
        assert p.dtype == np.int64 and proba.shape == (Xn.shape[0], K) and score.shape == (Xn.shape[0],)
        assert np.array_equal(p.compute(), r.predict(Xn))
        assert np.array_equal(proba.compute(), r.predict_proba(Xn))
        assert np.array_equal(score.compute(), r.score_samples(Xn))
    bad = Xn.copy()
    bad[7000, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN \(first at row 7000, column 2\)"):
        r.predict(da.from_array(bad, chunks=(4096, 3))).compute()
    with pytest.raises(ValueError, match="2 features"):
        r.predict(da.from_array(Xn[:, :2], chunks=4096))


def test_bad_input_errors_name_the_global_row(sync):
    bad = X.copy()
    bad[9000, 1] = np.nan
    bad[15000, 0] = np.inf  # a later chunk fails too: the earliest chunk's error wins, whatever ran first
    for chunks in ((4096, 3), (1000, 3)):
        with pytest.raises(ValueError, match=r"Input X contains NaN \(first at row 9000, column 1\)"):
            fastcavi.fit(da.from_array(bad, chunks=chunks), K, init=M0)
    dX = da.from_array(X, chunks=(4096, 3))
    w = np.ones(X.shape[0])
    w[12345] = -1.0
    with pytest.raises(ValueError, match=r"sample_weight \(first at row 12345"):
        fastcavi.fit(dX, K, init=M0, sample_weight=da.from_array(w, chunks=4096))
    with pytest.raises(ValueError, match="Sample weights must contain at least one non-zero number"):
        fastcavi.fit(dX, K, init=M0, sample_weight=da.zeros(X.shape[0], chunks=4096))
    R = np.full((X.shape[0], K), 1.0 / K)
    R[10001] = [1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="'init_responsibilities' row 10001 "):
        fastcavi.fit(dX, K, covariance_type="full", init_responsibilities=da.from_array(R, chunks=(4096, K)))
    with pytest.raises(ValueError, match="should have the shape"):
        fastcavi.fit(dX, K, init_responsibilities=da.ones((X.shape[0], 2), chunks=4096))
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        fastcavi.fit(dX[dX[:, 0] > 0], K, init=M0)
    with pytest.raises(ValueError, match="Complex data"):
        fastcavi.fit(dX.astype(np.complex128), K, init=M0)
    with pytest.raises(ValueError, match="Expected 2D array"):
        fastcavi.fit(dX[:, 0], K, init=M0)
    with pytest.raises(ValueError, match="'client' is for Dask arrays only"):
        fastcavi.fit(X, K, init=M0, client=object())


def test_an_init_dask_does_not_offer_is_refused_before_any_read(sync, monkeypatch):
    """A local-only method (as a compiled k-means would be) names the methods Dask offers, before reading X."""
    import fastcavi._validation as V

    monkeypatch.setattr(V, "INIT_METHODS", V.INIT_METHODS + ("local-only",))
    reads = []

    def counted(block):
        reads.append(block.shape[0])
        return block

    dX = da.from_array(X, chunks=(ALIGNED, 3)).map_blocks(counted, dtype=X.dtype)
    reads.clear()
    import re

    from fastcavi.dask import DASK_INITS

    assert DASK_INITS == ("k-means++", "k-means||", "kmeans", "random", "random_from_data")
    with pytest.raises(ValueError, match=r"init='local-only' is not supported on Dask arrays yet; the methods on "
                                         r"Dask are " + re.escape(", ".join(map(repr, DASK_INITS)))):
        fastcavi.fit(dX, K, init="local-only")
    assert reads == []


def test_zarr_and_hdf5_input(sync, tmp_path):
    zarr = pytest.importorskip("zarr")
    local = fastcavi.fit(X, K, covariance_type="diag", init=M0, max_iter=4, tol=0)
    z = zarr.open_array(str(tmp_path / "x.zarr"), mode="w", shape=X.shape, chunks=(4096, 3), dtype="f8")
    z[:] = X
    _same_result(fastcavi.fit(da.from_zarr(str(tmp_path / "x.zarr")), K, covariance_type="diag", init=M0,
                              max_iter=4, tol=0), local)
    bad = zarr.open_array(str(tmp_path / "bad.zarr"), mode="w", shape=X.shape, chunks=(1000, 3), dtype="f8")
    bad[:] = X
    bad[16123, 2] = np.nan  # in chunk 16 of the store
    with pytest.raises(ValueError, match=r"NaN \(first at row 16123, column 2\)"):
        fastcavi.fit(da.from_zarr(str(tmp_path / "bad.zarr")), K, init=M0)
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("x", data=X, chunks=(4096, 3))
    with h5py.File(tmp_path / "x.h5", "r") as f:
        _same_result(fastcavi.fit(da.from_array(f["x"], chunks=(8192, 3)), K, covariance_type="diag", init=M0,
                                  max_iter=4, tol=0), local)


def test_import_fastcavi_imports_neither_dask_nor_numba():
    code = "import sys, fastcavi; print(sorted(m for m in ('dask', 'numba') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- a LocalCluster of two worker processes -----------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cl:
        yield cl


@pytest.fixture(scope="module")
def client(cluster):
    distributed = pytest.importorskip("distributed")
    with distributed.Client(cluster, set_as_default=False) as c:
        yield c


def test_cluster_fit_equals_local_and_one_vs_two_workers(cluster, client):
    local = fastcavi.fit(X, K, covariance_type="full", init=M0, max_iter=5, tol=0)
    dX = da.from_array(X, chunks=(engine.GRANULARITY, 3))
    two = fastcavi.fit(dX, K, covariance_type="full", init=M0, max_iter=5, tol=0, client=client)
    _same_result(two, local)
    seeded = fastcavi.fit(dX, K, covariance_type="full", random_state=3, max_iter=5, tol=0, client=client)
    _same_result(seeded, fastcavi.fit(X, K, covariance_type="full", random_state=3, max_iter=5, tol=0))
    # a task's numba threads follow its worker's thread count (one here), and an explicit n_threads wins
    from fastcavi.dask import task_threads, warm_kernels

    warmed = client.run(warm_kernels, ("float64",))  # loads from the on-disk cache the fits above filled
    assert len(warmed) == 2 and all(t >= 0 for t in warmed.values())
    assert client.submit(task_threads, pure=False).result() == 1
    assert client.submit(task_threads, 1, pure=False).result() == 1
    first = sorted(client.scheduler_info()["workers"])[0]
    one = fastcavi.fit(dX, K, covariance_type="full", init=M0, max_iter=5, tol=0, client=_Pinned(client, first))
    _same_result(one, local)
    with dask.config.set(scheduler="synchronous"):
        _same_result(fastcavi.fit(dX, K, covariance_type="full", random_state=3, max_iter=5, tol=0), seeded)
    proba = local.predict_proba(dX)
    assert np.array_equal(client.compute(proba, sync=True), local.predict_proba(X))
    distributed = pytest.importorskip("distributed")
    with distributed.Client(cluster):  # no client=: the current scheduler (this default client)
        _same_result(fastcavi.fit(dX, K, covariance_type="full", init=M0, max_iter=5, tol=0), local)


class _Pinned:
    """A client whose every computation runs on one worker (the 1-worker run of the same graphs)."""

    def __init__(self, client, worker):
        self._client, self._worker = client, worker

    def compute(self, obj, sync=False):
        return self._client.compute(obj, sync=sync, workers=[self._worker], allow_other_workers=False)

    def persist(self, obj):
        return self._client.persist(obj, workers=[self._worker], allow_other_workers=False)

    def scheduler_info(self, **kwargs):
        return self._client.scheduler_info(**kwargs)


def test_cluster_persist_auto_judges_the_workers_memory_limits(cluster, client, monkeypatch):
    """"auto" persists what takes at most PERSIST_FRACTION of the workers' total memory limit, else streams."""
    import fastcavi.dask as fd

    limits = [w["memory_limit"] for w in client.scheduler_info(n_workers=-1)["workers"].values()]
    assert len(limits) == 2 and fd._memory_for_persist(client) == sum(limits)
    dX = da.from_array(X, chunks=(engine.GRANULARITY, 3))
    assert fd._DaskData(dX).persist("auto", client)
    monkeypatch.setattr(fd, "PERSIST_FRACTION", 0.99 * X.nbytes / sum(limits))
    assert not fd._DaskData(dX).persist("auto", client)
    assert fd._DaskData(dX).persist(True, client)
    # a default client (no client=) is found as the current scheduler, and its workers hold the chunks
    distributed = pytest.importorskip("distributed")
    with distributed.Client(cluster) as default:
        assert fd._distributed_client(None) is default
        data = fd._DaskData(dX)
        assert data.persist(True, fd._distributed_client(None))
        distributed.wait(data.X)  # persist returns at once; the chunks are read in the background
        held = {k for keys in default.has_what().values() for k in keys}
        assert {b.key for b in data.blocks} <= held


@pytest.mark.parametrize("persist", [False, True])
def test_cluster_fit_survives_a_worker_killed_during_sweep_2(cluster, client, persist, tmp_path):
    """A worker process killed (SIGKILL) at sweep 2: the fit finishes, bit for bit the same.

    Streamed (every block takes 0.3 s to read): the worker dies in the middle of sweep 2, whose
    lost tasks are run again. Persisted: the chunks are read once, so sweeps are fast; the worker
    dies as sweep 2 starts (from the callback of sweep 1), holding persisted chunks, which are lost
    with it and recomputed from their source (0.3 s each): persisted data are keys of the graph,
    not scattered data.
    """
    import signal

    local = fastcavi.fit(X, K, covariance_type="diag", init=M0, max_iter=4, tol=0)

    log = str(tmp_path / "reads")  # every block read, stamped with CLOCK_MONOTONIC (the same in every process)

    def slow(block):  # each block takes 0.3 s to read, so that a streamed sweep lasts about a second
        time.sleep(0.3)
        if block.shape[0]:
            with open(log, "a") as fh:
                fh.write(f"{time.monotonic()!r}\n")
        return block

    dX = da.from_array(X, chunks=(engine.GRANULARITY, 3)).map_blocks(slow, dtype=X.dtype)
    pids = client.run(os.getpid)
    victim = sorted(pids)[0]
    marks = {}

    def kill():
        marks["kill"] = time.monotonic()
        os.kill(pids[victim], signal.SIGKILL)

    def kill_soon():
        time.sleep(0.4)
        kill()

    def callback(it, elbo, change):
        marks[it] = time.monotonic()
        if it == 1 and persist:
            held = client.has_what()[victim]
            marks["held"] = sum(1 for key in held if str(key).find(dX.name) >= 0)
            kill()  # before sweep 2 starts: its chunks are gone
        elif it == 1:
            threading.Thread(target=kill_soon, daemon=True).start()

    r = fastcavi.fit(dX, K, covariance_type="diag", init=M0, max_iter=4, tol=0, client=client, callback=callback,
                     persist=persist)
    assert marks[1] <= marks["kill"] < marks[2]  # the kill fell after sweep 1 and before sweep 2 ended
    if persist:  # the victim held persisted chunks; sweep 2 read them again (0.3 s each); sweeps 3-4 did not
        assert marks["held"] >= 1
        with open(log) as fh:
            reads = np.array([float(line) for line in fh])
        n_blocks = len(dX.chunks[0])
        again = reads[reads > marks["kill"]]
        assert np.sum(reads <= marks[1]) == n_blocks  # read once, for the first pass, then held in memory
        assert 1 <= again.size <= marks["held"] and np.all(again < marks[2])  # the lost chunks, read in sweep 2
    _same_result(r, local)
    client.wait_for_workers(2, timeout=120)  # the nanny restarted it (slow on a loaded machine)
    assert pids[victim] not in client.run(os.getpid).values()


def test_cli_scheduler_worker_processes_open_npy_and_hdf5_themselves(cluster, tmp_path):
    """``fastcavi fit --scheduler``: the graph carries a path, each worker process opens the file (same bits)."""
    h5py = pytest.importorskip("h5py")
    from fastcavi.cli import main

    np.save(tmp_path / "x.npy", X)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("x", data=X)
    local = fastcavi.fit(X, K, covariance_type="diag", init="random_from_data", random_state=1, max_iter=3, tol=0)
    for i, data in enumerate((str(tmp_path / "x.npy"), f"{tmp_path / 'x.h5'}:/x")):
        out = tmp_path / f"m{i}.npz"
        assert main(["fit", data, "-k", str(K), "--covariance-type", "diag", "--init", "random_from_data", "--seed",
                     "1", "--max-iter", "3", "--tol", "0", "--quiet", "--scheduler", cluster.scheduler_address,
                     "--chunk-rows", str(engine.GRANULARITY), "--out", str(out)]) == 0
        _same_result(fastcavi.load(out), local)


def test_dask_fit_checkpoints_and_resumes_bitwise(tmp_path):
    # the Dask fit runs the local fit's restart loop: the same checkpoints, the same bitwise resume
    X = np.random.default_rng(0).normal(size=(3 * 8192, 2))
    dX = da.from_array(X, chunks=(8192, -1))
    opts = dict(covariance_type="full", n_init=2, max_iter=4, tol=0, random_state=3, init="random_from_data")
    with dask.config.set(scheduler="synchronous"):
        whole = fastcavi.fit(dX, 3, **opts)
        path = tmp_path / "fit.ckpt"

        class Stop(Exception):
            pass

        calls = []

        def stop_after_six(it, elbo, change):
            calls.append(it)
            if len(calls) == 6:
                raise Stop

        with pytest.raises(Stop):
            fastcavi.fit(dX, 3, checkpoint=path, callback=stop_after_six, **opts)
        resumed = fastcavi.fit(dX, 3, resume=path, **opts)
    assert resumed.elbo.tobytes() == whole.elbo.tobytes()
    assert resumed.means.tobytes() == whole.means.tobytes()
    # and a local resume of the same data refuses nothing: the fingerprint is the data's, not the engine's
    local = fastcavi.fit(X, 3, resume=path, **opts)
    assert local.elbo.tobytes() == whole.elbo.tobytes()


def test_parquet_dask_dataframe_equals_local_fit(sync, tmp_path):
    """A Dask DataFrame read from Parquet, through ``to_dask_array(lengths=True)``."""
    pd = pytest.importorskip("pandas", reason="the Parquet path needs pandas (dask[dataframe])")
    pytest.importorskip("pyarrow", reason="writing and reading Parquet needs pyarrow (pip install pyarrow)")
    dd = pytest.importorskip("dask.dataframe", reason="the Parquet path needs dask[dataframe]")
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    local = fastcavi.fit(X, K, covariance_type="full", init=M0, max_iter=4, tol=0)
    for rows, bitwise in ((ALIGNED, True), (5000, False)):  # partitions of 8192 rows (aligned) or 5000
        path = tmp_path / f"x{rows}"
        path.mkdir()
        for i, start in enumerate(range(0, X.shape[0], rows)):
            frame.iloc[start:start + rows].to_parquet(path / f"part.{i:03d}.parquet", engine="pyarrow")
        dX = dd.read_parquet(str(path), engine="pyarrow").to_dask_array(lengths=True)
        assert dX.chunks[0][0] == rows
        r = fastcavi.fit(dX, K, covariance_type="full", init=M0, max_iter=4, tol=0)
        if bitwise:
            _same_result(r, local)
        else:
            assert _relative(r.elbo, local.elbo) < 1e-12
            for name in ("means", "covariances", "weights"):
                assert _relative(getattr(r, name), getattr(local, name)) < 1e-12, name
