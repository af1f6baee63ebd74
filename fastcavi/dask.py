"""Fitting and predicting on Dask arrays, on the public engine (:mod:`fastcavi.engine`).

``fastcavi.fit(X, K, ...)`` hands a ``dask.array.Array`` over to :func:`fit` here, and
``FitResult.predict`` / ``predict_proba`` / ``score_samples`` hand one over to the lazy
functions :func:`predict`, :func:`predict_proba` and :func:`score_samples` (made in
:mod:`fastcavi._dask_blocks`, below :mod:`fastcavi.result`). This module imports dask on first
use; ``import fastcavi`` does not import it.

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

The data in memory (``persist``): X, converted once to the dtype the kernels take (float32
stays float32, everything else becomes float64) and with its columns in one chunk, is kept
in the cluster's memory for the whole fit (``client.persist``) when ``persist=True``, or with
``"auto"`` when it and the weights take at most :data:`PERSIST_FRACTION` of the workers'
total memory limit (without a distributed client: of this machine's available memory).
Every pass then reads memory instead of the source (a Zarr chunk is read and decompressed
once, not once per sweep). Persisted chunks are keys of the graph, not scattered data: a lost
worker's chunks are recomputed from their source. With ``persist=False`` every pass reads X
from its source. The result is the same bits either way.

Initialisation: given means (``init=`` array), ``init_responsibilities`` (a Dask array
with X's row chunks, or an in-memory array), a warm start from a ``FitResult``, and the
methods ``"k-means++"`` (one pass per component), ``"k-means||"`` (Bahmani et al., 2012: 11
passes whatever K), ``"random"`` and ``"random_from_data"``. They run the local fit's own
code (:mod:`fastcavi._init`), each pass one Dask reduction whose random numbers are hashes of
(seed, round, global row): with aligned chunks a default Dask fit is bit for bit the
default local fit (other chunkings: the same to round-off, and the same k-means++ and
k-means|| draws as long as no two keys tie within round-off).

Numba in workers: a task's kernels run on ``n_threads`` threads when given, else on the
worker's thread count when numba's threading layer serialises kernel calls (workqueue),
else on the worker's thread count divided among the tasks it is running (omp, tbb): a
worker never runs more numba threads than it has threads. Everything is capped by the
worker process's ``NUMBA_NUM_THREADS``.
"""
import os
import sys

import numpy as np

from . import _progress
from . import _validation as V
from ._dask_blocks import (DaskRows, _decode, _payload, is_dask_collection, predict,  # noqa: F401  (public here)
                           predict_proba, score_samples, task_threads)

__all__ = ["fit", "predict", "predict_proba", "score_samples", "task_threads", "warm_kernels"]

#: Children per node of the fixed reduction tree (chunk order is kept at every level). Each level
#: costs a sweep a scheduler round trip, and adding a part's statistics takes microseconds: up to 32
#: chunks are reduced by one task, 1024 by two levels.
FAN_IN = 32

#: ``persist="auto"`` keeps X (converted) and its weights in the cluster's memory when they take at
#: most this fraction of the workers' total memory limit (Dask starts spilling at 0.6 of it).
PERSIST_FRACTION = 0.4

#: The ``init`` methods a Dask fit offers (besides given means, responsibilities and warm starts).
DASK_INITS = ("k-means++", "k-means||", "kmeans", "random", "random_from_data")


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


def warm_kernels(dtypes=("float64", "float32")):
    """Load the compiled kernels a Dask fit and its predictions use into this process.

    Run it once on every worker of a new cluster, ``client.run(fastcavi.dask.warm_kernels)``:
    the first worker of each machine compiles the kernels into numba's on-disk cache (every variant of
    both float widths: about 15 s of CPU on a 2-core EPYC; ``NUMBA_CACHE_DIR`` should be node-local), the
    others load them from it (under a second, import of fastcavi and numba included),
    so that no task of the first sweep waits for a compilation. It is
    :func:`fastcavi.compile_kernels` (every kernel variant), timed.

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

    from ._compile import compile_kernels

    start = time.perf_counter()
    compile_kernels(tuple(dtypes))
    return time.perf_counter() - start


def _combine(kind, *parts):
    """Add serialised statistics or summaries of consecutive chunks, in order (a failure passes through).

    ``kind``: "stats", "summary", or an associative function of the list of parts.
    """
    for p in parts:
        if isinstance(p, _Failure):
            return p  # the first in chunk order: the earliest failing rows
    if callable(kind):  # an associative combination of :mod:`fastcavi._init` (a seeding or Lloyd pass)
        return kind(list(parts))
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

class _DaskData(DaskRows):
    """X and its weights (as :class:`DaskRows` takes them) as lists of row blocks (Delayed) that the passes
    map and reduce, kept in the cluster's memory when :meth:`persist` says so."""

    def __init__(self, X, sample_weight=None):
        super().__init__(X, sample_weight)
        self.persisted = False
        self._delayed()

    def _delayed(self):
        self.blocks = list(self.X.to_delayed().ravel())
        self.wblocks = (list(self.weights.to_delayed().ravel()) if self.weights is not None
                        else [None] * len(self.blocks))

    @property
    def nbytes(self):
        """Bytes of X (converted) and its weights."""
        return int(self.X.nbytes) + (0 if self.weights is None else int(self.weights.nbytes))

    def persist(self, how, client):
        """Keep X and the weights in the cluster's memory when ``how`` (True, False or "auto") says so.

        Returns
        -------
        bool
            Whether they are persisted.
        """
        if how == "auto":
            room = _memory_for_persist(client)
            how = room is not None and self.nbytes <= PERSIST_FRACTION * room
        if how:
            import dask

            parts = (self.X,) if self.weights is None else (self.X, self.weights)
            kept = client.persist(parts) if client is not None else dask.persist(*parts)
            self.X = kept[0]
            if self.weights is not None:
                self.weights = kept[1]
            self._delayed()
            self.persisted = True
        return self.persisted

    def map_reduce(self, fn, args, kind, extra_blocks=None):
        """Compute-ready Delayed: ``fn(block, wblock, *args, row_offset[, extra])`` per chunk, reduced in order."""
        import dask

        task = dask.delayed(_catching, pure=True)
        extra = extra_blocks if extra_blocks is not None else [None] * len(self.blocks)
        parts = [task(fn, b, w, *args, off, e)
                 for b, w, off, n, e in zip(self.blocks, self.wblocks, self.offsets, self.row_chunks, extra) if n > 0]
        return _tree(parts, kind)


def _distributed_client(client):
    """``client``, or the distributed Client that is the current scheduler, or None (a local scheduler)."""
    if client is not None:
        return client
    if "distributed" not in sys.modules:  # no distributed Client can exist
        return None
    from dask.base import get_scheduler
    from distributed import Client

    owner = getattr(get_scheduler(), "__self__", None)
    return owner if isinstance(owner, Client) else None


def _memory_for_persist(client):
    """Bytes that ``persist="auto"`` weighs X against: the workers' total memory limit, or None.

    With a distributed client: the sum of its workers' ``memory_limit`` (None when a worker has
    none: an unbounded worker gives nothing to judge by, and the data is then streamed). With a
    local scheduler: this machine's available memory.
    """
    if client is not None:
        info = getattr(client, "scheduler_info", None)
        if info is None:
            return None
        try:
            workers = info(n_workers=-1)  # every worker (newer versions list the first 5 by default)
        except TypeError:  # older versions list them all and take no n_workers
            workers = info()
        limits = [w.get("memory_limit") for w in workers.get("workers", {}).values()]
        if not limits or not all(limits):
            return None
        return float(sum(limits))
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        return None


def _compute(obj, client):
    if client is not None:
        return client.compute(obj, sync=True)
    import dask

    with _progress.reporting(None):  # the tasks' passes (in threads that copy this context) report nothing
        return dask.compute(obj)[0]


def _read_rows(data, index, client):
    """Rows at sorted integer positions ``index``, float64 (as the local ``DataSource.rows``)."""
    rows = _compute(data.X[np.asarray(index, dtype=np.int64)], client)
    return np.asarray(rows, dtype=np.float64).reshape(len(index), data.n_features)


# -- per-chunk tasks ----------------------------------------------------------------------------

def _summary_task(block, wblock, shift, full_scatter, n_threads, chunk_size, row_offset, _extra):
    from . import engine

    # a chunk whose weights are all 0 is no error: the whole's sum is checked on the client
    summary = engine.summarize(block, wblock, shift=shift, full_scatter=full_scatter, n_threads=task_threads(n_threads),
                               chunk_size=chunk_size, row_offset=row_offset, check_weight_sum=False)
    return summary.to_array()


def _estep_task(block, wblock, payload, n_threads, chunk_size, row_offset, _extra):
    from . import engine

    model, state = _decode(payload)
    stats = engine.estep(model, state, block, sample_weight=wblock, n_threads=task_threads(n_threads),
                         chunk_size=chunk_size, check_finite=False, row_offset=row_offset)
    return stats.to_array()


def _given_stats_task(block, wblock, payload, means, n_threads, chunk_size, row_offset, resp_block):
    """Statistics of given responsibilities (``resp_block``, or drawn: ``means`` a :class:`fastcavi._init.HashedUniform`)
    or of the hard assignment to the nearest of ``means`` (an array, data coordinates)."""
    from . import engine

    model, _ = _decode(payload)
    threads = task_threads(n_threads)
    if resp_block is not None:
        R = np.asarray(resp_block)
        V.check_resp_chunk(np.ascontiguousarray(R, dtype=np.float64), row_offset)
        stats = engine.responsibility_stats(model, block, R, sample_weight=wblock, n_threads=threads,
                                            chunk_size=chunk_size)
    elif callable(means):  # the estimator's start from drawn responsibilities, for this block's global rows
        stats = means.stats(model, block, wblock, row_offset=row_offset, n_threads=threads, chunk_size=chunk_size)
    else:
        stats = engine.nearest_mean_stats(model, block, means, sample_weight=wblock, n_threads=threads,
                                          chunk_size=chunk_size)
    return stats.to_array()


def lloyd_dask(data, seeds, shift, tol, client=None, n_threads=None, chunk_size=None, max_iter=None):
    """Lloyd's iterations (:func:`fastcavi._init.lloyd`) on Dask: one reduction a pass, exact sums.

    The sums are merged exactly (:func:`fastcavi._init.lloyd_passes`), so the centres are those of the
    local passes over the same rows.

    Returns
    -------
    centres : ndarray of shape (K, D), data coordinates
    n_iter : int
    """
    from ._init import KMEANS_MAX_ITER, lloyd_passes

    return lloyd_passes(_run_pass(data, client, n_threads), lambda i: _read_rows(data, [i], client)[0], seeds, shift,
                        tol, chunk_size, KMEANS_MAX_ITER if max_iter is None else max_iter)


# -- seeding: the local fit's own code, one Dask reduction per pass -------------------------------

def _seed_task(block, wblock, fn, args, n_threads, row_offset, _extra):
    """``fn(chunk, weights, row0, *args)`` of :mod:`fastcavi._init` on one chunk (its numba threads as a sweep's)."""
    from . import engine

    weights = None if wblock is None else np.ascontiguousarray(wblock, dtype=np.float64)
    with engine.kernel_threads(task_threads(n_threads)):
        return fn(np.ascontiguousarray(block), weights, row_offset, *args)


def _run_pass(data, client, n_threads):
    """The Dask ``run_pass(fn, args, combine)`` of :func:`fastcavi._init.local_passes`: one reduction per pass."""
    def run_pass(fn, args, combine, name=None):  # no progress: the passes run on the workers
        final = data.map_reduce(_seed_task, (fn, args, n_threads), combine)
        return _raise_failure(_compute(final, client))

    return run_pass


# -- fit ----------------------------------------------------------------------------------------

def fit(X, n_components, *, covariance_type="identity", covariance=None,
        weight_concentration_prior_type="dirichlet_distribution", weight_concentration_prior=None,
        mean_precision_prior=None, mean_prior=None, degrees_of_freedom_prior=None, covariance_prior=None,
        reg_covar=1e-6, exact_cavi=False, init="k-means++", init_responsibilities=None,
        max_iter=100, tol=1e-8, tol_type="relative", n_init=1, random_state=None,
        n_threads=None, chunk_size=None, callback=None, sample_weight=None, checkpoint=None, resume=None,
        client=None, persist="auto"):
    """:func:`fastcavi.fit` on a Dask array: the same parameters, the same :class:`~fastcavi.FitResult`.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
        Known chunk sizes. Row chunks that are whole multiples of
        ``fastcavi.engine.GRANULARITY`` (4096) rows give bit for bit the local fit.
    n_components : int
    init : {"k-means++", "k-means||", "kmeans", "random", "random_from_data"}, ndarray of shape (K, D), or FitResult
        The local fit's methods, on the same code: the same means as the local fit (bit for bit
        with aligned chunks); ``"kmeans"`` runs Lloyd's iterations as one reduction each
        (:func:`lloyd_dask`, exact sums) from the k-means++ seeds. The estimator's
        ``init_params`` draw the local fit's responsibilities. Other methods raise a ValueError
        naming these.
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
    persist : {"auto", True, False}, default "auto"
        Keep X (converted once to float32/float64) and the weights in the cluster's memory for
        the whole fit (True), read them from their source on every pass (False), or keep them
        when they take at most :data:`PERSIST_FRACTION` of the workers' total memory limit
        ("auto"; workers without a limit: streamed; local schedulers: this machine's available
        memory). See the module docstring. The result does not depend on it.
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
    from . import _init, engine
    from ._driver import checkpoint as _checkpoint
    from ._driver.loop import run_restarts
    from ._init import HashedUniform, OneHotRows, ResponsibilityStart, kmeans_tolerance, warm_state
    from .result import FitResult, fitted_result

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
    if isinstance(init, str) and init not in DASK_INITS:
        raise ValueError(f"init={init!r} is not supported on Dask arrays yet; the methods on Dask are "
                         f"{', '.join(map(repr, DASK_INITS))} (or given means, init_responsibilities or a FitResult).")
    resp = data.aligned(init_responsibilities, "init_responsibilities", V.check_init_responsibilities, (K,))
    resp_blocks = None if resp is None else list(resp.to_delayed().ravel())
    data.persist(checked["persist"], _distributed_client(client))  # before the first pass: read X once

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
        run_pass, read_rows = _run_pass(data, client, n_threads), (lambda index: _read_rows(data, index, client))
        if isinstance(init, ResponsibilityStart):  # the estimator's: the local fit's draws
            if init.method == "random":
                return model.update(given_stats(HashedUniform(rng.integers(0, 2**63), K)))
            if init.method == "random_from_data":
                given = OneHotRows(rng.choice(N, size=K, replace=False), K)
            else:  # "k-means++": one-hot on the seed rows
                given = OneHotRows(_init.kmeans_plusplus_row_passes(run_pass, read_rows, N, K, rng, summary.mean,
                                                                    data.weights is not None)[0], K)
            # the statistics of the K rows alone, as the local fit's
            w = None if data.weights is None else np.asarray(_compute(data.weights[given.index], client), np.float64)
            return model.update(given.stats(model, read_rows(given.index).astype(data.dtype), w, summary))
        if isinstance(init, np.ndarray):
            means = init
        elif init == "random_from_data":
            idx = rng.choice(N, size=K, replace=False)
            order = np.argsort(idx)
            means = np.empty((K, D))
            means[order] = read_rows(idx[order])
        elif init == "random":
            means = _init.random_assignment_passes(run_pass, read_rows, N, K, rng)
        elif init == "k-means||":
            means = _init.kmeans_parallel(run_pass, read_rows, N, K, rng, summary.mean, data.weights is not None)
        else:
            means = _init.kmeans_plusplus_passes(run_pass, read_rows, N, K, rng, summary.mean, data.weights is not None)
            if init == "kmeans":  # Lloyd's iterations from the k-means++ seeds, as the local fit
                means = lloyd_dask(data, means, summary.mean, kmeans_tolerance(summary), client, n_threads,
                                   chunk_size)[0]
        return model.state_from_means(means) if covariance_type == "identity" else model.update(given_stats(means))

    fixed_start = warm is not None or resp is not None or isinstance(init, np.ndarray)
    fingerprint = _checkpoint.prepare(saved, checked["checkpoint"], checked["resume"], (N, D), data.dtype, summary,
                                      model, arguments, checked)
    n_runs = 1 if fixed_start else n_init
    with _progress.stage(_progress.SWEEP, max_sweeps=max_iter, runs=n_runs, rows=N):  # the sweeps' rows/s, time left
        best = run_restarts(sweep, model, initial_state, n_runs=n_runs, max_iter=max_iter, tol=tol,
                            tol_is_relative=tol_type == "relative", callback=callback, rng=rng, warm_state=state0,
                            warm_elbo=previous, saved=saved, checkpoint=checked["checkpoint"], fingerprint=fingerprint)
    return fitted_result(model, best, history, tol, stacklevel=3)
