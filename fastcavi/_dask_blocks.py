"""Dask arrays below the Dask fit: what the lazy predictions of a fitted result need, and the fit builds on.

* :class:`DaskRows`: a Dask array X in the dtype the kernels take (float32 stays float32, everything
  else becomes float64, once, in the graph), its columns in one chunk, its row chunks with their
  global offsets, and sample weights aligned to them;
* :func:`_payload` and :func:`_decode`: the model and the state as one graph key (dicts of arrays),
  decoded once per process and key;
* :func:`task_threads`: the numba threads of a kernel call inside a Dask task;
* the lazy predictions (:func:`predict_proba`, :func:`predict`, :func:`score_samples`): one
  :func:`fastcavi.engine.estep` per block.

:mod:`fastcavi.dask`, the fit on Dask arrays (it makes a :class:`~fastcavi.FitResult`), is built on
this module and re-exports its public names; :mod:`fastcavi.result`, whose predictions on a Dask
array are made here, is above it. Like :mod:`fastcavi.dask`, it imports dask on first use only.
"""
import math
import os
import threading

import numpy as np

from . import _validation as V


def is_dask_collection(obj) -> bool:
    """Whether ``obj`` is a Dask collection (checked by type, without importing dask)."""
    return type(obj).__module__.split(".")[0] == "dask"


def task_threads(n_threads=None):
    """Numba threads for a kernel call inside a Dask task (see "Numba in workers" in :mod:`fastcavi.dask`).

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

    top = numba.config.NUMBA_NUM_THREADS
    if n_threads is not None:
        return max(1, min(int(n_threads), top))
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        worker = None
    if worker is not None:
        total = int(worker.state.nthreads) // max(1, int(worker.state.executing_count))
        return max(1, min(total, top))
    if threading.current_thread() is threading.main_thread():
        return None  # the synchronous scheduler
    import dask

    pool = dask.config.get("num_workers", None) or os.cpu_count() or 1
    return max(1, top // int(pool))  # a pool thread of the local threaded scheduler


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


# -- the data -------------------------------------------------------------------------------------

class DaskRows:
    """X (and its weights) as the kernels take them: row chunks with their global offsets.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
    sample_weight : dask.array.Array or array-like of shape (n_samples,), optional
        Rechunked to X's row chunks when they differ.
    """

    def __init__(self, X, sample_weight=None):
        import dask.array as da

        from ._io.sources import WeightSource, _compute_dtype, check_data_shape

        if not isinstance(X, da.Array):
            hint = (" (a Dask DataFrame: use df.to_dask_array(lengths=True))"
                    if type(X).__module__.startswith("dask.dataframe") else "")
            raise TypeError(f"fastcavi on Dask needs a dask.array.Array, got {type(X).__name__}{hint}.")
        if any(math.isnan(c) for c in X.shape):
            raise ValueError("X has unknown chunk sizes; call X.compute_chunk_sizes() (or "
                             "df.to_dask_array(lengths=True)) first.")
        check_data_shape(tuple(int(s) for s in X.shape))
        if X.dtype == object:
            raise ValueError("X cannot be read as a numeric 2-D array (it has dtype object).")
        compute_dtype = _compute_dtype(X.dtype)
        if X.dtype != compute_dtype:  # converted once here (in the graph), not in every pass's tasks
            X = X.astype(compute_dtype)
        if len(X.chunks[1]) > 1:
            X = X.rechunk({1: -1})
        self.X = X
        self.dtype = np.dtype(X.dtype)
        self.n_samples, self.n_features = (int(s) for s in X.shape)
        self.row_chunks = tuple(int(c) for c in X.chunks[0])
        self.offsets = tuple(int(o) for o in np.concatenate(([0], np.cumsum(self.row_chunks)[:-1])))
        self.weights = self.aligned(sample_weight, "sample_weight", WeightSource)
        if self.weights is not None and self.weights.dtype != np.float64:
            self.weights = self.weights.astype(np.float64)

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
    data = DaskRows(X)
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
