"""Fitting and predicting on Dask arrays, on the public engine (:mod:`fastcavi.engine`).

``fastcavi.fit(X, K, ...)`` hands a ``dask.array.Array`` over to :func:`fit` here, and
``FitResult.predict`` / ``predict_proba`` / ``score_samples`` hand one over to the lazy
functions below. This module imports dask; ``import fastcavi`` does not import it.

How a fit runs
--------------
* The CAVI loop runs on the client. Each sweep is one Dask graph: one task per row chunk
  of X calls :func:`fastcavi.engine.estep` on that chunk (with ``row_offset`` = the chunk's
  first global row) and returns ``Stats.to_array()``; the chunks' statistics are added
  through a fixed tree in chunk order (never in completion order). The small variational
  state enters the graph as one key per sweep (``dask.delayed`` of the model and state
  dicts); nothing is scattered, so a lost worker's tasks are recomputed from the graph.
* The validating pass and the data summary (about ``shift`` = the first row, read first)
  are a Dask reduction of :class:`fastcavi.engine.DataSummary` in the same way. An invalid
  value raises the local fit's ``ValueError`` naming the global row; when several chunks
  hold one, the first chunk's error wins (the reduction keeps the earliest, so the message
  does not depend on which task finished first).
* Statistics are exact and order-independent (:class:`fastcavi.engine.Stats`), so with row
  chunks that are whole multiples of :data:`fastcavi.engine.GRANULARITY` rows (the last may
  be shorter) a fit is bit for bit the local ``fastcavi.fit`` of the same rows from the same
  start; other chunkings agree to round-off (about 1e-15 relative). The result never depends
  on the number of workers, threads, or on task placement.

Initialisation: given means (``init=`` array), ``init_responsibilities`` (a Dask array
with X's row chunks, or an in-memory array), a warm start from a ``FitResult``,
``"random_from_data"`` (the same rows as the local fit for the same ``random_state``) and
``"k-means++"``, which on Dask is k-means|| (Bahmani et al., 2012; see
:func:`kmeans_parallel`): it gives other means than the local k-means++, so a fit started
by it equals the local fit started from the same means, not the local k-means++ fit.
``"random"`` (the seed's random assignments) is not offered on Dask.

Numba in workers: a task's kernels run on ``n_threads`` threads when given, else on the
worker's thread count when numba's threading layer serialises kernel calls (workqueue),
else on the worker's thread count divided among the tasks it is running (omp, tbb): a
worker never runs more numba threads than it has threads. Everything is capped by the
worker process's ``NUMBA_NUM_THREADS``.
"""
import math
import os
import threading
import warnings

import numpy as np

from . import _validation as V

__all__ = ["fit", "kmeans_parallel", "predict", "predict_proba", "score_samples", "task_threads", "warm_kernels"]

#: Children per node of the fixed reduction tree (chunk order is kept at every level).
FAN_IN = 8

#: Rounds of k-means|| and the oversampling factor (candidates drawn per round, in units of K).
KMEANS_PARALLEL_ROUNDS = 5
KMEANS_PARALLEL_OVERSAMPLING = 2.0

#: Rows per sub-block when distances to the k-means|| candidates are taken (bounds memory).
_DISTANCE_ROWS = 1 << 15


def is_dask_collection(obj) -> bool:
    """Whether ``obj`` is a Dask collection (checked by type, without importing dask)."""
    return type(obj).__module__.split(".")[0] == "dask"


# -- tasks' helpers -------------------------------------------------------------------------------

class _Failure:
    """A chunk's ``ValueError``, carried through the reduction as a value (the earliest chunk's wins)."""

    def __init__(self, error):
        self.error = error


def _catching(fn, *args):
    try:
        return fn(*args)
    except ValueError as exc:
        return _Failure(exc)


def _raise_failure(value):
    if isinstance(value, _Failure):
        raise value.error
    return value


def task_threads(n_threads=None):
    """Numba threads for a kernel call inside a Dask task (see the module docstring).

    Parameters
    ----------
    n_threads : int or None
        The user's explicit choice (capped by this process's ``NUMBA_NUM_THREADS``).

    Returns
    -------
    int or None
        None: numba's default (all of this process's threads).
    """
    import numba

    from ._passes import _KERNEL_LOCK, kernel_guard

    top = numba.config.NUMBA_NUM_THREADS
    if n_threads is not None:
        return max(1, min(int(n_threads), top))
    serialised = kernel_guard() is _KERNEL_LOCK
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        worker = None
    if worker is not None:
        total = int(worker.state.nthreads)
        if not serialised:
            total //= max(1, int(worker.state.executing_count))
        return max(1, min(total, top))
    if threading.current_thread() is threading.main_thread() or serialised:
        return None  # the synchronous scheduler, or kernels that run one at a time anyway
    import dask

    pool = dask.config.get("num_workers", None) or os.cpu_count() or 1
    return max(1, top // int(pool))  # a pool thread of the local threaded scheduler


def warm_kernels(dtypes=("float64", "float32")):
    """Load the compiled kernels a Dask fit and its predictions use into this process.

    Run it once on every worker of a new cluster, ``client.run(fastcavi.dask.warm_kernels)``:
    the first worker of each machine compiles the kernels into numba's on-disk cache (10-60 s;
    ``NUMBA_CACHE_DIR`` should be node-local), the others load them from it (about a second),
    so that no task of the first sweep waits for a compilation.

    Parameters
    ----------
    dtypes : sequence of str, default ("float64", "float32")
        The data types to load kernels for (each float width is compiled separately).

    Returns
    -------
    float
        Seconds spent.
    """
    import time

    from .api import fit as local_fit

    start = time.perf_counter()
    rng = np.random.default_rng(0)
    for dtype in dtypes:
        X = rng.normal(size=(512, 2)).astype(dtype)
        for covariance_type in ("diag", "full"):
            r = local_fit(X, 2, covariance_type=covariance_type, init=X[:2].astype(np.float64), max_iter=1, tol=0,
                          sample_weight=np.ones(512))
            r.predict_proba(X)
    return time.perf_counter() - start


_DECODED = {}
_DECODED_LOCK = threading.Lock()


def _decode(payload):
    """``(Model, State)`` from the sweep's key (decoded once per process and sweep)."""
    from .engine import Model, State

    token, model_dict, state_dict = payload
    hit = _DECODED.get(token)
    if hit is None:
        hit = (Model.from_dict(model_dict), None if state_dict is None else State.from_dict(state_dict))
        with _DECODED_LOCK:
            if len(_DECODED) >= 8:
                _DECODED.clear()
            _DECODED[token] = hit
    return hit


def _payload(model, state=None):
    """One graph key holding the model and state as dicts of arrays."""
    import dask
    from dask.base import tokenize

    model_dict = model.to_dict()
    state_dict = None if state is None else state.to_dict()
    token = tokenize(model_dict, state_dict)
    return dask.delayed((token, model_dict, state_dict), name="fastcavi-model-state-" + token, traverse=False)


def _combine(kind, *parts):
    """Add serialised statistics or summaries of consecutive chunks, in order (a failure passes through)."""
    for p in parts:
        if isinstance(p, _Failure):
            return p  # the first in chunk order: the earliest failing rows
    if kind == "array":
        return np.sum(np.stack(parts), axis=0) if len(parts) > 1 else parts[0]
    if kind == "candidates":
        return np.concatenate(parts, axis=0)
    if kind == "lloyd":
        return _combine_lloyd(parts)
    from .engine import DataSummary, Stats

    cls = Stats if kind == "stats" else DataSummary
    total = cls.from_array(parts[0])
    for p in parts[1:]:
        total = total + cls.from_array(p)
    return total.to_array()


def _tree(parts, kind):
    """A fixed reduction tree over ``parts`` (Delayed, in chunk order), ``FAN_IN`` children a node."""
    import dask

    combine = dask.delayed(_combine, pure=True)
    while len(parts) > 1:
        parts = [combine(kind, *parts[i:i + FAN_IN]) if len(parts[i:i + FAN_IN]) > 1 else parts[i]
                 for i in range(0, len(parts), FAN_IN)]
    return parts[0]


# -- the data -------------------------------------------------------------------------------------

class _DaskData:
    """X (and its weights) as a list of row blocks with their global offsets.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
    sample_weight : dask.array.Array or array-like of shape (n_samples,), optional
        Rechunked to X's row chunks when they differ.
    """

    def __init__(self, X, sample_weight=None):
        import dask.array as da

        from ._sources import WeightSource, _compute_dtype

        if not isinstance(X, da.Array):
            hint = (" (a Dask DataFrame: use df.to_dask_array(lengths=True))"
                    if type(X).__module__.startswith("dask.dataframe") else "")
            raise TypeError(f"fastcavi on Dask needs a dask.array.Array, got {type(X).__name__}{hint}.")
        if any(math.isnan(c) for c in X.shape):
            raise ValueError("X has unknown chunk sizes; call X.compute_chunk_sizes() (or "
                             "df.to_dask_array(lengths=True)) first.")
        V.check_data_shape(tuple(int(s) for s in X.shape))
        if X.dtype == object:
            raise ValueError("X cannot be read as a numeric 2-D array (it has dtype object).")
        _compute_dtype(X.dtype)
        if len(X.chunks[1]) > 1:
            X = X.rechunk({1: -1})
        self.X = X
        self.dtype = np.dtype(X.dtype)
        self.n_samples, self.n_features = (int(s) for s in X.shape)
        self.row_chunks = tuple(int(c) for c in X.chunks[0])
        self.offsets = tuple(int(o) for o in np.concatenate(([0], np.cumsum(self.row_chunks)[:-1])))
        self.weights = self.aligned(sample_weight, "sample_weight", WeightSource)
        self.blocks = list(X.to_delayed().ravel())
        self.wblocks = (list(self.weights.to_delayed().ravel()) if self.weights is not None
                        else [None] * len(self.blocks))

    def aligned(self, values, name, check_local, trailing=()):
        """``values`` (Dask or in memory) as a Dask array with X's row chunks, or None."""
        import dask.array as da

        if values is None:
            return None
        N = self.n_samples
        if is_dask_collection(values):
            if not isinstance(values, da.Array):
                raise TypeError(f"{name} on Dask must be a dask.array.Array, got {type(values).__name__}.")
            if values.dtype.kind not in "fiub":
                raise ValueError(f"{name} must hold real numbers, but its dtype is {values.dtype}.")
            shape = (N,) + tuple(trailing)
            if any(math.isnan(c) for c in values.shape) or tuple(values.shape) != shape:
                raise ValueError(f"{name} should have the shape {shape}, but got {values.shape}.")
        else:  # in memory (or a .npy path, for the weights): checked as the local fit checks it
            checked = check_local(values, N, *trailing)
            values = checked._data if hasattr(checked, "_data") else np.asarray(checked)
            values = da.from_array(values, chunks=(self.row_chunks,) + tuple((t,) for t in trailing))
        chunks = (self.row_chunks,) + tuple((t,) for t in trailing)
        return values if values.chunks == chunks else values.rechunk(chunks)

    def map_reduce(self, fn, args, kind, extra_blocks=None):
        """Compute-ready Delayed: ``fn(block, wblock, *args, row_offset[, extra])`` per chunk, reduced in order."""
        import dask

        task = dask.delayed(_catching, pure=True)
        extra = extra_blocks if extra_blocks is not None else [None] * len(self.blocks)
        parts = [task(fn, b, w, *args, off, e)
                 for b, w, off, n, e in zip(self.blocks, self.wblocks, self.offsets, self.row_chunks, extra) if n > 0]
        return _tree(parts, kind)


def _compute(obj, client):
    if client is not None:
        return client.compute(obj, sync=True)
    import dask

    return dask.compute(obj)[0]


def _read_rows(data, index, client):
    """Rows at sorted integer positions ``index``, float64 (as the local ``DataSource.rows``)."""
    rows = _compute(data.X[np.asarray(index, dtype=np.int64)], client)
    return np.asarray(rows, dtype=np.float64).reshape(len(index), data.n_features)


# -- per-chunk tasks ----------------------------------------------------------------------------

def _summary_task(block, wblock, shift, full_scatter, n_threads, chunk_size, row_offset, _extra):
    # the pass itself, not engine.summarize: a chunk whose weights are all 0 is no error (the whole may not be)
    from ._passes import numba_threads, summary_chunk_rows, summary_pass
    from ._sources import DataSource, WeightSource

    source = DataSource(block)
    weights = None if wblock is None else WeightSource(wblock, source.n_samples)
    D = source.n_features
    F = D * (D + 1) // 2 if full_scatter else D
    chunk_rows = summary_chunk_rows(chunk_size, source, D + F)
    with numba_threads(task_threads(n_threads)):
        summary = summary_pass(source, weights, chunk_rows, np.asarray(shift, dtype=np.float64), full_scatter,
                               row_offset=row_offset)
    return summary.to_array()


def _estep_task(block, wblock, payload, n_threads, chunk_size, row_offset, _extra):
    from . import engine

    model, state = _decode(payload)
    stats = engine.estep(model, state, block, sample_weight=wblock, n_threads=task_threads(n_threads),
                         chunk_size=chunk_size, check_finite=False, row_offset=row_offset)
    return stats.to_array()


def _given_stats_task(block, wblock, payload, means, n_threads, chunk_size, row_offset, resp_block):
    """Statistics of given responsibilities (``resp_block``) or of the hard nearest-mean assignment."""
    from . import _init, engine
    from ._sources import DataSource

    model, _ = _decode(payload)
    if callable(means):  # the estimator's start from drawn responsibilities (_init.OneHotRows, HashedUniform)
        from ._passes import estep_chunk_rows, estep_pass, numba_threads
        from ._sources import WeightSource

        source = DataSource(block)
        weights = None if wblock is None else WeightSource(wblock, source.n_samples)
        chunk_rows = estep_chunk_rows(chunk_size, source, model.n_components, model.layout)

        def given(row0, rows, shift):  # rows of this block, numbered globally
            return means(row_offset + row0, rows, shift)

        with numba_threads(task_threads(n_threads)):
            stats, _ = estep_pass(source, weights, model._coords, model.layout, engine._dummy_coeffs(model),
                                  chunk_rows, given=given)
        return stats.to_array()
    if resp_block is not None:
        R = np.asarray(resp_block)
        V.check_resp_chunk(np.ascontiguousarray(R, dtype=np.float64), row_offset)
    else:
        rows, shift = model._coords(DataSource(block)._convert(block))
        R = _init.nearest_mean_resp(model._coords.to_model(means))(row_offset, rows, shift)
    return engine.responsibility_stats(model, block, R, sample_weight=wblock, n_threads=task_threads(n_threads),
                                       chunk_size=chunk_size).to_array()


def _lloyd_task(block, wblock, centres, shift, n_threads, chunk_size, row_offset, _extra):
    """One Lloyd pass over a chunk: its exact sums (serialised) and its farthest row (global index)."""
    from ._kernels.kmeans import stats_size
    from ._models.base import accumulator_to_floats
    from ._passes import chunk_rows, lloyd_pass, numba_threads
    from ._sources import DataSource, WeightSource

    source = DataSource(block)
    weights = None if wblock is None else WeightSource(wblock, source.n_samples)
    K, D = centres.shape
    rows = chunk_rows(chunk_size, source, 8 * (D + 1 + stats_size(K, D)))
    with numba_threads(task_threads(n_threads)):
        acc, (far, d2, w, k), _ = lloyd_pass(source, weights, centres, shift, rows)
    return np.concatenate((accumulator_to_floats(acc), [row_offset + far if far >= 0 else -1, d2, w, k]))


def _combine_lloyd(parts):
    """Merge consecutive chunks' Lloyd sums exactly; the farthest row of the first chunk that has it wins ties."""
    from ._kernels.exactsum import WINDOW
    from ._models.base import accumulator_from_floats, accumulator_to_floats, merge_accumulators

    size = (parts[0].shape[0] - 4) // (1 + 2 * WINDOW)
    acc = accumulator_from_floats(parts[0][:-4], size)
    far = parts[0][-4:]
    for p in parts[1:]:
        acc = merge_accumulators(acc, accumulator_from_floats(p[:-4], size))
        if p[-4] >= 0 and p[-3] > far[1]:
            far = p[-4:]
    return np.concatenate((accumulator_to_floats(acc), far))


def lloyd_dask(data, seeds, shift, tol, client=None, n_threads=None, chunk_size=None, max_iter=None):
    """Lloyd's iterations (:func:`fastcavi._init.lloyd`) on Dask: one reduction a pass, exact sums.

    The sums are merged exactly, so the centres are those of the local passes over the same rows.

    Returns
    -------
    centres : ndarray of shape (K, D), data coordinates
    n_iter : int
    """
    from ._init import KMEANS_MAX_ITER, lloyd
    from ._kernels.exactsum import WINDOW
    from ._models.base import accumulator_from_floats, round_accumulator

    def one_pass(centres):
        flat = _compute(data.map_reduce(_lloyd_task, (centres, shift, n_threads, chunk_size), "lloyd"), client)
        flat = _raise_failure(flat)
        acc = accumulator_from_floats(flat[:-4], (flat.shape[0] - 4) // (1 + 2 * WINDOW))
        far = flat[-4:]
        return np.array(round_accumulator(acc)), (int(far[0]), float(far[1]), float(far[2]), int(far[3]))

    return lloyd(one_pass, lambda i: _read_rows(data, [i], client)[0], seeds, shift, tol,
                 KMEANS_MAX_ITER if max_iter is None else max_iter)


# -- k-means|| ----------------------------------------------------------------------------------

def _sq_distances(y, centres):
    """Squared distance of each row of ``y`` to its nearest centre, and that centre's index."""
    cc = np.einsum("kd,kd->k", centres, centres)
    d2 = np.empty(y.shape[0])
    nearest = np.empty(y.shape[0], dtype=np.int64)
    for i in range(0, y.shape[0], _DISTANCE_ROWS):
        part = y[i:i + _DISTANCE_ROWS]
        full = np.einsum("nd,nd->n", part, part)[:, None] - 2.0 * part @ centres.T + cc[None, :]
        nearest[i:i + _DISTANCE_ROWS] = np.argmin(full, axis=1)
        d2[i:i + _DISTANCE_ROWS] = np.maximum(full[np.arange(part.shape[0]), nearest[i:i + _DISTANCE_ROWS]], 0.0)
    return d2, nearest


def _shifted(block, shift):
    return np.asarray(block, dtype=np.float64) - shift


def _weight_of(wblock, n):
    return np.ones(n) if wblock is None else np.asarray(wblock, dtype=np.float64)


def _cost_task(block, wblock, shift, centres, row_offset, _extra):
    d2, _ = _sq_distances(_shifted(block, shift), centres)
    return np.array([np.dot(_weight_of(wblock, d2.size), d2)])


def _sample_task(block, wblock, shift, centres, scale, seed, rnd, row_offset, _extra):
    """Rows drawn independently with probability ``min(1, scale * w d^2)``; the stream is (seed, round, row0)."""
    y = _shifted(block, shift)
    d2, _ = _sq_distances(y, centres)
    u = np.random.default_rng([seed, rnd, row_offset]).random(d2.size)
    return y[u < scale * _weight_of(wblock, d2.size) * d2]


def _assign_task(block, wblock, shift, centres, row_offset, _extra):
    _, nearest = _sq_distances(_shifted(block, shift), centres)
    return np.bincount(nearest, weights=_weight_of(wblock, nearest.size), minlength=centres.shape[0])


def _weighted_kmeanspp(points, weights, K, rng):
    """k-means++ on weighted points (in memory), then weighted Lloyd iterations; returns (K, D)."""
    m = points.shape[0]
    chosen = [int(rng.choice(m, p=weights / weights.sum()))]
    d2, _ = _sq_distances(points, points[chosen])
    for _ in range(1, K):
        p = weights * d2
        total = p.sum()
        j = int(rng.choice(m, p=p / total)) if total > 0 else int(rng.integers(m))
        chosen.append(j)
        d2 = np.minimum(d2, _sq_distances(points, points[[j]])[0])
    centres = points[chosen].copy()
    for _ in range(100):
        _, nearest = _sq_distances(points, centres)
        mass = np.bincount(nearest, weights=weights, minlength=K)
        sums = np.stack([np.bincount(nearest, weights=weights * points[:, d], minlength=K)
                         for d in range(points.shape[1])], axis=1)
        moved = np.where(mass[:, None] > 0, sums / np.where(mass > 0, mass, 1.0)[:, None], centres)
        if np.array_equal(moved, centres):
            break
        centres = moved
    return centres


def kmeans_parallel(data, K, rng, shift, client=None, rounds=None, oversampling=None):
    """k-means|| seeding (Bahmani, Moseley, Vattani, Kumar and Vassilvitskii, 2012) as Dask reductions.

    One uniformly random row starts the candidate set. Each round takes the weighted cost
    ``phi = sum_n w_n d_n^2`` (``d_n``: distance to the nearest candidate; one pass), then
    adds every row independently with probability ``min(1, l w_n d_n^2 / phi)`` (``l =
    oversampling * K``; a second pass). Each chunk draws from its own stream, seeded from
    ``(seed, round, first row of the chunk)``, so the draw depends on the seed and the rows
    only, not on which worker ran what. A last pass weighs every candidate by the weight
    of the rows nearest to it; weighted k-means++ and Lloyd's iterations on the candidates
    (in memory, on the client) give the K means.

    Parameters
    ----------
    data : _DaskData
    K : int
    rng : numpy.random.Generator
    shift : ndarray of shape (D,)
        Distances are taken in ``x - shift`` coordinates (the data mean: keeps their precision).
    client : distributed.Client, optional
    rounds : int, default :data:`KMEANS_PARALLEL_ROUNDS`
    oversampling : float, default :data:`KMEANS_PARALLEL_OVERSAMPLING`

    Returns
    -------
    means : ndarray of shape (K, D)
        In data coordinates.
    """
    rounds = KMEANS_PARALLEL_ROUNDS if rounds is None else rounds
    ell = (KMEANS_PARALLEL_OVERSAMPLING if oversampling is None else oversampling) * K
    seed = int(rng.integers(0, 2**63))
    N = data.n_samples
    first = _weighted_row(data, rng, client) if data.weights is not None else int(rng.integers(N))
    centres = _read_rows(data, [first], client) - shift
    for rnd in range(rounds):
        phi = float(_raise_failure(_compute(data.map_reduce(_cost_task, (shift, centres), "array"), client))[0])
        if not phi > 0:
            break  # every row of positive weight sits on a candidate
        drawn = _compute(data.map_reduce(_sample_task, (shift, centres, ell / phi, seed, rnd), "candidates"), client)
        centres = np.concatenate((centres, _raise_failure(drawn)), axis=0)
    weights = _raise_failure(_compute(data.map_reduce(_assign_task, (shift, centres), "array"), client))
    keep = weights > 0
    points, weights = centres[keep], weights[keep]
    if points.shape[0] < K:  # fewer distinct candidates than K: pad with random rows
        extra = np.sort(rng.choice(N, size=K - points.shape[0], replace=False))
        return np.concatenate((points + shift, _read_rows(data, extra, client)), axis=0)
    return _weighted_kmeanspp(points, weights, K, rng) + shift


def _weighted_row(data, rng, client):
    """A row index drawn with probability proportional to its weight (two small reads)."""
    w = data.weights.astype(np.float64)
    sums = _compute(w.map_blocks(_block_sum, chunks=((1,) * len(data.row_chunks),), dtype=np.float64), client)
    cum = np.cumsum(sums)
    target = rng.random() * float(cum[-1])
    c = int(min(np.searchsorted(cum, target, side="right"), len(sums) - 1))
    while sums[c] <= 0:  # the draw fell on the end of the weight: the last chunk of positive weight
        c -= 1
    start = data.offsets[c]
    block = np.asarray(_compute(w[start:start + data.row_chunks[c]], client), dtype=np.float64)
    within = np.cumsum(block)
    i = int(min(np.searchsorted(within, target - (cum[c - 1] if c > 0 else 0.0), side="right"), block.size - 1))
    while block[i] <= 0 and i > 0:
        i -= 1
    return start + i


def _block_sum(b):
    return np.array([np.sum(b)])


# -- fit ----------------------------------------------------------------------------------------

def fit(X, n_components, *, covariance_type="identity", covariance=None,
        weight_concentration_prior_type="dirichlet_distribution", weight_concentration_prior=None,
        mean_precision_prior=None, mean_prior=None, degrees_of_freedom_prior=None, covariance_prior=None,
        reg_covar=1e-6, exact_cavi=False, init="k-means++", init_responsibilities=None,
        max_iter=100, tol=1e-8, tol_type="relative", n_init=1, random_state=None,
        n_threads=None, chunk_size=None, callback=None, sample_weight=None, checkpoint=None, resume=None,
        client=None):
    """:func:`fastcavi.fit` on a Dask array: the same parameters, the same :class:`~fastcavi.FitResult`.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
        Known chunk sizes. Each sweep reads it once (``X.persist()`` first if it fits in the
        cluster's memory and its source is slow). Row chunks that are whole multiples of
        ``fastcavi.engine.GRANULARITY`` (4096) rows give bit for bit the local fit.
    n_components : int
    init : {"k-means++", "kmeans", "random_from_data"}, ndarray of shape (K, D), or FitResult
        ``"k-means++"`` is k-means|| here (:func:`kmeans_parallel`); ``"kmeans"`` continues
        from those seeds with Lloyd's iterations (:func:`lloyd_dask`, one reduction each);
        ``"random_from_data"`` draws the same rows as the local fit; ``"random"`` is not
        supported on Dask. The estimator's ``init_params`` "random" and "random_from_data"
        draw the local fit's responsibilities; its "k-means++" is not supported on Dask.
    init_responsibilities : dask.array.Array or array-like of shape (n_samples, K), optional
        Rechunked to X's row chunks. Errors name the global row.
    n_threads : int, optional
        Numba threads per task (default: the worker's threads, see the module docstring).
    chunk_size : int, optional
        Rows per kernel call inside a task (the engine's ``chunk_size``); results do not depend on it.
    sample_weight : dask.array.Array or array-like of shape (n_samples,), optional
        Rechunked to X's row chunks when they differ.
    checkpoint, resume : str or os.PathLike, optional
        As in :func:`fastcavi.fit`: checkpoints after every sweep, and a bitwise resume (the
        Dask fit and the local fit share the loop that writes and reads them).
    client : distributed.Client, optional
        Where to compute; default: the current Dask scheduler.
    **others
        As in :func:`fastcavi.fit`.

    Returns
    -------
    FitResult

    Raises
    ------
    ValueError
        As :func:`fastcavi.fit` does, with global row numbers.
    TypeError
        When X is not a dask array (a Dask DataFrame: use ``to_dask_array(lengths=True)``).
    """
    from . import engine
    from . import _checkpoint
    from ._driver import run_restarts
    from ._init import HashedUniform, OneHotRows, ResponsibilityStart, kmeans_tolerance, warm_state
    from .result import FitResult

    from . import options as declared

    arguments = declared.given(locals())
    # the per-row inputs may be dask arrays: they are checked by _DaskData, chunk by chunk, not here
    local = dict(arguments, sample_weight=None, init_responsibilities=None)
    checked = declared.check(local)  # every check that needs neither the data nor its shape
    data = _DaskData(X, sample_weight)
    N, D = data.n_samples, data.n_features
    V.check_n_samples(N, checked["n_components"])
    checked = declared.check(local, shape=(N, D), checked=checked)  # the checks that need (N, D)
    K, covariance_type, init = checked["n_components"], checked["covariance_type"], checked["init"]
    max_iter, tol, tol_type, n_init = checked["max_iter"], checked["tol"], checked["tol_type"], checked["n_init"]
    n_threads, chunk_size, rng, callback = (checked["n_threads"], checked["chunk_size"], checked["random_state"],
                                            checked["callback"])
    saved = None if checked["resume"] is None else _checkpoint.read(checked["resume"])  # before any pass
    warm = init if isinstance(init, FitResult) else None
    if warm is None and isinstance(init, str) and init == "random":
        raise ValueError("init='random' (the seed's random assignments) is not supported on Dask arrays; "
                         "use 'k-means++' (k-means|| on Dask), 'random_from_data', given means or "
                         "init_responsibilities.")
    if isinstance(init, ResponsibilityStart) and init.method == "k-means++":
        raise ValueError("init_params='k-means++' (one-hot on the k-means++ seed rows) is not supported on Dask "
                         "arrays; use 'kmeans', 'random' or 'random_from_data'.")
    resp = data.aligned(init_responsibilities, "init_responsibilities", V.check_init_responsibilities, (K,))
    resp_blocks = None if resp is None else list(resp.to_delayed().ravel())

    first = _read_rows(data, [0], client)[0]
    shift = first if np.all(np.isfinite(first)) else np.zeros(D)  # the summary pass names the bad row
    summary = _compute(data.map_reduce(_summary_task, (shift, covariance_type in ("full", "tied"), n_threads,
                                                       chunk_size), "summary"), client)
    summary = engine.DataSummary.from_array(_raise_failure(summary))
    if data.weights is not None:
        V.check_weight_total(summary.count)
    model = engine.Model._from_checked(checked, summary)

    def sweep(state):
        final = data.map_reduce(_estep_task, (_payload(model, state), n_threads, chunk_size), "stats")
        return engine.Stats.from_array(_raise_failure(_compute(final, client)))

    def given_stats(means):
        final = data.map_reduce(_given_stats_task, (_payload(model), means, n_threads, chunk_size), "stats",
                                extra_blocks=resp_blocks if means is None else None)
        return engine.Stats.from_array(_raise_failure(_compute(final, client)))

    previous, history, state0 = None, np.zeros(0), None
    if warm is not None:
        state0 = warm_state(warm, model)
        if warm.model == model:
            previous, history = float(warm.elbo[-1]), np.asarray(warm.elbo)

    def initial_state():
        if resp is not None:
            return model.update(given_stats(None))
        if isinstance(init, ResponsibilityStart):  # the estimator's: "random" or "random_from_data"
            given = (HashedUniform(rng.integers(0, 2**63), K) if init.method == "random"
                     else OneHotRows(rng.choice(N, size=K, replace=False), K))
            return model.update(given_stats(given))
        if isinstance(init, np.ndarray):
            means = init
        elif init == "random_from_data":
            idx = rng.choice(N, size=K, replace=False)
            order = np.argsort(idx)
            means = np.empty((K, D))
            means[order] = _read_rows(data, idx[order], client)
        else:
            means = kmeans_parallel(data, K, rng, summary.mean, client)
            if init == "kmeans":  # Lloyd's iterations from the k-means|| seeds
                means = lloyd_dask(data, means, summary.mean, kmeans_tolerance(summary), client, n_threads,
                                   chunk_size)[0]
        return model.state_from_means(means) if covariance_type == "identity" else model.update(given_stats(means))

    fixed_start = warm is not None or resp is not None or isinstance(init, np.ndarray)
    fingerprint = _checkpoint.prepare(saved, checked["checkpoint"], checked["resume"], (N, D), data.dtype, summary,
                                      model, arguments, checked)
    best = run_restarts(sweep, model, initial_state, n_runs=1 if fixed_start else n_init, max_iter=max_iter, tol=tol,
                        tol_is_relative=tol_type == "relative", callback=callback, rng=rng, warm_state=state0,
                        warm_elbo=previous, saved=saved, checkpoint=checked["checkpoint"], fingerprint=fingerprint)
    state, elbos, converged = best
    if tol > 0 and not converged:
        from .exceptions import ConvergenceWarning  # made on first use: it may import scikit-learn

        warnings.warn("Best performing initialization did not converge. Try different init parameters, "
                      "or increase max_iter, tol, or check for degenerate data.", ConvergenceWarning,
                      stacklevel=3)
    return FitResult.from_state(model, state, np.concatenate((history, elbos)), converged)


# -- prediction ---------------------------------------------------------------------------------

def _predict_block(block, payload, what, n_threads, chunk_size, block_info=None):
    from . import engine

    model, state = _decode(payload)
    n, K = block.shape[0], model.n_components
    if n == 0:
        return np.empty((0, K) if what == "proba" else (0,), dtype=np.int64 if what == "predict" else np.float64)
    row_offset = int(block_info[0]["array-location"][0][0]) if block_info else 0
    resp = np.empty((n, K)) if what != "score" else None
    lse = np.empty(n)
    engine.estep(model, state, block, responsibilities=resp, log_density=lse, n_threads=task_threads(n_threads),
                 chunk_size=chunk_size, row_offset=row_offset)
    bad = np.flatnonzero(~np.isfinite(lse))
    if bad.size:
        raise ValueError(f"Row {row_offset + int(bad[0])} of X has a non-finite log-density under the model "
                         "(its values overflow: they are far outside the fitted components' scale).")
    if what == "proba":
        return resp
    if what == "predict":
        return np.argmax(resp, axis=1).astype(np.int64)
    return lse


def _lazy(result, X, what, n_threads, chunk_size):
    data = _DaskData(X)
    V.check_features(data.n_features, result.n_features)
    n_threads = V.check_n_threads(n_threads)
    chunk_size = None if chunk_size is None else V.check_int("chunk_size", chunk_size, 1)
    payload = _payload(result.model, result.state)
    if what == "proba":
        return data.X.map_blocks(_predict_block, payload, what, n_threads, chunk_size, dtype=np.float64,
                                 chunks=(data.row_chunks, (result.n_components,)), name="fastcavi-predict-proba")
    return data.X.map_blocks(_predict_block, payload, what, n_threads, chunk_size, drop_axis=1,
                             dtype=np.int64 if what == "predict" else np.float64, chunks=(data.row_chunks,),
                             name="fastcavi-predict" if what == "predict" else "fastcavi-score-samples")


def predict_proba(result, X, *, n_threads=None, chunk_size=None):
    """Lazy responsibilities ``q(z_n = k)`` of a Dask array's rows: a Dask array of shape (n_samples, K).

    Parameters
    ----------
    result : FitResult
    X : dask.array.Array of shape (n_samples, n_features)
    n_threads, chunk_size : int, optional
        As in :func:`fit`.

    Returns
    -------
    dask.array.Array of shape (n_samples, K), float64
        X's row chunks; each block is one :func:`fastcavi.engine.estep` call, equal to the
        local ``predict_proba`` of the same rows. A NaN or inf raises the local error, with the global row.
    """
    return _lazy(result, X, "proba", n_threads, chunk_size)


def predict(result, X, *, n_threads=None, chunk_size=None):
    """Lazy most responsible component of each row: a Dask array of shape (n_samples,), int64.

    Parameters
    ----------
    result : FitResult
    X : dask.array.Array of shape (n_samples, n_features)
    n_threads, chunk_size : int, optional

    Returns
    -------
    dask.array.Array of shape (n_samples,), int64
    """
    return _lazy(result, X, "predict", n_threads, chunk_size)


def score_samples(result, X, *, n_threads=None, chunk_size=None):
    """Lazy per-row variational log-density (scikit-learn's ``score_samples``): shape (n_samples,).

    Parameters
    ----------
    result : FitResult
    X : dask.array.Array of shape (n_samples, n_features)
    n_threads, chunk_size : int, optional

    Returns
    -------
    dask.array.Array of shape (n_samples,), float64
    """
    return _lazy(result, X, "score", n_threads, chunk_size)
