"""Streaming passes: data chunks -> compiled kernels -> exact, split-invariant accumulation.

Two passes exist: the validating summary pass (finiteness, weighted count, moments) and
the E-step pass (responsibilities and sufficient statistics, or the statistics of given
responsibilities). Both cut each chunk into blocks of ``BLOCK_ROWS`` rows computed in
parallel, fold the blocks of each segment of ``SEGMENT_ROWS`` rows left to right, and add
the segment sums into an exact accumulator: any split of the rows into whole segments
gives the same bits. Each pass reports the rows of every finished chunk to the progress
hook of :mod:`fastcavi._progress` when a reporter listens (one test per chunk otherwise).

Thread safety: the kernels run on fastcavi's own threads (:mod:`fastcavi._kernels._threads`),
not numba's threading layer, so passes of several Python threads run side by side under any
layer (numba's workqueue layer aborts the process on concurrent parallel kernels; fastcavi has
none).
"""
import contextlib
import threading

import numpy as np

from . import _progress
from ._config import BLOCK_ROWS, SEGMENT_ROWS
from ._models.base import Stats, feature_count, stats_size
from ._models.summary import DataSummary, summary_size

_SEGMENT_BLOCKS = SEGMENT_ROWS // BLOCK_ROWS
_CACHE = threading.local()  # the last E-step workspace of each Python thread, reused by the next pass
_NO_WEIGHTS = np.ones(1)
_NO_RESP = np.zeros((1, 1))
# Inputs are handed to the kernels read-only, placeholders included (a read-only array is another
# numba type: one type per argument means one compiled variant per kernel and data dtype).
_NO_WEIGHTS_IN = _NO_WEIGHTS.copy()
_NO_WEIGHTS_IN.flags.writeable = False
_NO_RESP_IN = _NO_RESP.copy()
_NO_RESP_IN.flags.writeable = False


def _read_only(a):
    """A read-only view of ``a`` (no copy)."""
    view = a.view()
    view.flags.writeable = False
    return view


@contextlib.contextmanager
def numba_threads(n_threads):
    """Run the block with numba's thread count set to ``n_threads`` (this Python thread only), restored after."""
    if n_threads is None:
        yield
        return
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(int(n_threads))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


#: Alignment in bytes of the kernels' scratch memory: a cache line, and the width of an AVX-512 vector.
SCRATCH_ALIGN = 64


def padded_row(size, align=SCRATCH_ALIGN):
    """``size`` float64 values rounded up to a whole number of ``align``-byte lines."""
    per_line = align // 8
    return -(-size // per_line) * per_line


def aligned_empty(shape, align=SCRATCH_ALIGN):
    """An uninitialised C-contiguous float64 array whose first element sits on an ``align``-byte boundary.

    Parameters
    ----------
    shape : tuple of int
        Shape of the array.
    align : int, default SCRATCH_ALIGN
        Alignment in bytes, a multiple of 8.

    Returns
    -------
    ndarray of float64
        A view into a slightly larger buffer (which it keeps alive).

    Notes
    -----
    NumPy's allocator guarantees 16 bytes. The kernels' vector loads and stores run along the rows
    of their scratch slots (lengths that are multiples of 64 bytes), so an unaligned slot splits
    every full-width load across two cache lines: the E-step kernel ran 10-17% slower on scratch
    at 16 bytes past a 64-byte boundary (D = 2, and D = 16 full; one thread, interleaved calls).
    Alignment changes no result: the kernels' loops do not peel for alignment.
    """
    n = int(np.prod(shape, dtype=np.int64))
    pad = align // 8
    buf = np.empty(n + pad)
    start = (-buf.ctypes.data % align) // 8
    return buf[start:start + n].reshape(shape)


class Workspace:
    """Buffers the kernels reuse across chunks and sweeps (no allocation, no page faults per pass).

    Parameters
    ----------
    size : int
        Statistics per block. ``partials`` holds one row per block, padded to whole cache lines.
    chunk_rows : int
        The largest chunk that will be passed (a multiple of ``SEGMENT_ROWS``).
    slot_shape : tuple
        Shape of one slot of per-slot scratch memory.
    """

    def __init__(self, size, chunk_rows, slot_shape):
        import numba

        nblocks = -(-chunk_rows // BLOCK_ROWS)
        self.key = (size, chunk_rows, tuple(slot_shape))
        # Each block's row of partial sums starts on a cache line of its own (the kernels read only
        # its first ``size`` values), so no two threads ever write one line (false sharing). Measured
        # when blocks were dealt to the threads round-robin, every row next to another thread's: at 16
        # threads (16-vCPU Xeon, N = 1e7, padded and unpadded alternating) padding gained 5-7% in one
        # run and 0-1% in another; nothing at 2 or 8 threads. Now each thread takes a contiguous run of
        # blocks and only the rows at the runs' ends neighbour another thread's; the padding stays
        # (at most 7 values per block) so that the layout never depends on that.
        self.partials = aligned_empty((nblocks, padded_row(size)))
        self.segsums = np.empty((-(-nblocks // _SEGMENT_BLOCKS), size))
        self.segbits = self.segsums.view(np.uint64)
        # one slot per thread that can run (the slots' number cannot change a result)
        self.scratch = aligned_empty((numba.get_num_threads(),) + tuple(slot_shape))

    def fits(self, size, chunk_rows, slot_shape):
        import numba

        return (self.key == (size, chunk_rows, tuple(slot_shape))
                and self.scratch.shape[0] >= numba.get_num_threads())


def chunk_rows(chunk_size, source, bytes_per_row):
    """Rows per chunk: the user's ``chunk_size`` rounded up to whole segments, or what keeps about
    ``CHUNK_BYTES`` of working memory at ``bytes_per_row``; never more than the data holds."""
    from . import _validation as V
    from ._io.sources import round_chunk_rows

    rows = (source.default_chunk_rows(bytes_per_row) if chunk_size is None
            else round_chunk_rows(V.check_int("chunk_size", chunk_size, 1)))
    return min(rows, round_chunk_rows(source.n_samples))  # never a buffer larger than the data


def estep_chunk_rows(chunk_size, source, K, layout):
    """Rows per chunk of an E-step pass: the user's (rounded to whole segments) or about ``CHUNK_BYTES``.

    Per row: the converted row (D float64), responsibilities and log-sum-exp when they are
    returned (K + 1), and its share of the per-block partial sums.
    """
    D = source.n_features
    return chunk_rows(chunk_size, source, 8 * (D + K + 1) + 8 * stats_size(layout, K, D) // BLOCK_ROWS)


def summary_chunk_rows(chunk_size, source, n_moments):
    """Rows per chunk of the summary pass: the converted row and its share of the block partials."""
    D = source.n_features
    return chunk_rows(chunk_size, source, 8 * (2 * D + 2) + 8 * (1 + n_moments) // BLOCK_ROWS + 1)


def _fold(workspace, n, acc):
    from ._kernels.exactsum import fold_segments

    fold_segments(workspace.partials, -(-n // BLOCK_ROWS), _SEGMENT_BLOCKS, workspace.segsums, workspace.segbits, acc)


def raise_bad_row(chunk, weights, row0, bad):
    """Raise the error for row ``bad`` of ``chunk`` (a non-finite value, or a bad weight), if ``bad >= 0``."""
    if bad < 0:
        return
    row = np.asarray(chunk[bad], dtype=np.float64)
    bad_cols = np.flatnonzero(~np.isfinite(row))
    if bad_cols.size:
        col = int(bad_cols[0])
        what = "NaN" if np.isnan(row[col]) else "infinity or a value too large for dtype('float64')"
        raise ValueError(f"Input X contains {what} (first at row {row0 + bad}, column {col}).")
    w = float(weights[bad])
    if not np.isfinite(w):
        raise ValueError(f"sample_weight contains {'NaN' if np.isnan(w) else 'infinity'} (first at row {row0 + bad}).")
    raise ValueError(f"Negative values in data passed to sample_weight (first at row {row0 + bad}: {w!r}).")


def check_finite_chunk(chunk, row0):
    """The NaN/inf check alone, for one chunk of new data (before an E-step on it)."""
    from ._kernels.summary import first_non_finite

    raise_bad_row(chunk, None, row0, first_non_finite(chunk))


def summary_pass(source, weights, chunk_rows, shift, full_scatter, row_offset=0):
    """Validate every row (and weight) and accumulate the summary, in one streaming pass.

    Parameters
    ----------
    source : DataSource
    weights : WeightSource or None
    chunk_rows : int
    shift : ndarray of shape (D,)
    full_scatter : bool
    row_offset : int
        The global index of the source's first row (errors name global rows).

    Returns
    -------
    DataSummary

    Raises
    ------
    ValueError
        Naming the first row holding NaN or inf, or the first negative or non-finite weight.
    """
    from ._compile import build_in_background
    from ._kernels.summary import summarize, summary_scratch_rows

    build_in_background(getattr(source, "compute_dtype", "float64"))  # a first fit: the E-step compiles beside this pass
    D = source.n_features
    size = summary_size(D, full_scatter)
    summary = DataSummary(shift, full_scatter, source.n_samples)
    ws = Workspace(size, chunk_rows, (summary_scratch_rows(D), BLOCK_ROWS))
    shift = summary.shift.copy()  # writable: read-only arrays are another numba type
    wchunks = weights.chunks(chunk_rows) if weights is not None else None
    tick = _progress.track("validating pass", source.n_samples)
    for row0, chunk in source.chunks(chunk_rows):
        w = next(wchunks)[1] if wchunks is not None else _NO_WEIGHTS_IN
        raise_bad_row(chunk, w, row_offset + row0, summarize(chunk, shift, full_scatter, w, wchunks is not None,
                                                              ws.partials, ws.scratch, BLOCK_ROWS))
        _fold(ws, chunk.shape[0], summary._acc)
        if tick is not None:
            tick(chunk.shape[0])
    return summary


def nearest_mean_coeffs(means, layout):
    """The logit coefficients whose largest logit is the nearest of ``means``: ``(-|m_k|^2 / 2, [m_k, 0])``.

    ``m_k . y - |m_k|^2 / 2`` is ``-|y - m_k|^2 / 2`` up to ``|y|^2 / 2``, the same for every k.

    Parameters
    ----------
    means : ndarray of shape (K, D)
        In model coordinates.
    layout : {"diag", "full", "linear"}
        Which quadratic features the kernel computes (they get weight 0; "linear" has none).

    Returns
    -------
    bias : ndarray of shape (K,)
    W : ndarray of shape (K, F)
    """
    from ._models.base import feature_count

    means = np.asarray(means, dtype=np.float64)
    K, D = means.shape
    W = np.zeros((K, feature_count(D, layout)))
    W[:, :D] = means
    return -0.5 * np.sum(means * means, axis=1), W


def estep_pass(source, weights, coords, layout, coeffs, chunk_rows, *, outputs=None, given=None, hard_means=None,
               check_finite=False, workspace=None, row_offset=0):
    """One pass over the data: the statistics of q(z) for the logits ``coeffs`` (or of given responsibilities,
    or of the hard assignment to the nearest mean).

    Parameters
    ----------
    source : DataSource
    weights : WeightSource or None
    coords : Coordinates
    layout : {"diag", "full", "linear"}
        Which quadratic features the coefficients weigh (none for "linear").
    coeffs : tuple ``(bias (K,), W (K, F))``
    chunk_rows : int
        A multiple of ``SEGMENT_ROWS``.
    outputs : callable or None
        When given, called as ``outputs(row0, resp, lse, rows, shift)`` with each chunk's
        responsibilities (n, K) and log-sum-exp (n,), in buffers reused for the next chunk, and
        the chunk as the kernel saw it (model coordinates are ``rows - shift``).
    given : callable or None
        ``given(row0, rows, shift) -> (n, K) float64 C-contiguous``: use these responsibilities
        instead of computing them (then ``coeffs`` only gives K); ``rows - shift`` is the chunk
        in model coordinates.
    hard_means : ndarray of shape (K, D) or None
        When given, each row gets responsibility 1 for the nearest of these means (model
        coordinates; the lowest index on ties) and 0 for the others, in the kernel
        (:func:`nearest_mean_coeffs`, no (n, K) array); ``coeffs`` is then ignored (it may be None).
    check_finite : bool
        Check each chunk for NaN/inf (naming the row) before its kernel runs.
    workspace : Workspace or None
        Buffers to reuse (made here when missing or of the wrong size).
    row_offset : int
        The global index of the source's first row (errors name global rows).

    Returns
    -------
    stats : Stats
    workspace : Workspace
    """
    from ._compile import await_background
    from ._kernels.estep import SUB_ROWS, estep, scratch_rows

    await_background("estep", "estep_blocks", getattr(source, "compute_dtype", "float64"))

    hard = hard_means is not None
    if hard:
        if given is not None or outputs is not None:
            raise ValueError("estep_pass: hard_means goes with neither given nor outputs.")
        coeffs = nearest_mean_coeffs(hard_means, layout)
    bias, W = (np.array(c, dtype=np.float64, order="C") for c in coeffs)  # writable C copies: one numba type
    K, F = W.shape
    D = source.n_features
    if F != feature_count(D, layout):
        raise ValueError(f"E-step coefficients of {F} features for the {layout!r} layout at D={D} "
                         f"(it has {feature_count(D, layout)}).")
    size = stats_size(layout, K, D)
    slot_shape = (scratch_rows(K, F), SUB_ROWS)
    if workspace is None:
        workspace = getattr(_CACHE, "estep", None)
    if workspace is None or not workspace.fits(size, chunk_rows, slot_shape):
        workspace = Workspace(size, chunk_rows, slot_shape)
    _CACHE.estep = workspace  # repeated passes of one size (a sweep loop) allocate nothing
    stats = Stats(layout, K, D)
    want = outputs is not None
    resp_buf = np.empty((chunk_rows, K)) if want else _NO_RESP
    lse_buf = np.empty(chunk_rows) if want else _NO_WEIGHTS
    wchunks = weights.chunks(chunk_rows) if weights is not None else None
    tick = _progress.track("statistics of the starting responsibilities" if given is not None or hard
                           else "E-step pass", source.n_samples)
    for row0, chunk in source.chunks(chunk_rows):
        w = next(wchunks)[1] if wchunks is not None else _NO_WEIGHTS_IN
        if check_finite:
            check_finite_chunk(chunk, row_offset + row0)
        rows, shift = coords(chunk)
        n = rows.shape[0]
        resp_in = _read_only(given(row0, rows, shift)) if given is not None else _NO_RESP_IN
        resp, lse = (resp_buf[:n], lse_buf[:n]) if want else (resp_buf, lse_buf)
        estep(rows, shift, bias, W, layout == "full", w, wchunks is not None, given is not None, hard, resp_in,
              want, resp, lse, workspace.partials, workspace.scratch, BLOCK_ROWS)
        _fold(workspace, n, stats._acc)
        if want:
            outputs(row0, resp, lse, rows, shift)
        if tick is not None:
            tick(n)
    return stats, workspace


def lloyd_pass(source, weights, centres, shift, chunk_rows, workspace=None):
    """One Lloyd iteration's pass: each row to its nearest centre; per-cluster weighted counts and sums.

    Parameters
    ----------
    source : DataSource
    weights : WeightSource or None
    centres : ndarray of shape (K, D), float64
        In the coordinates ``x - shift``.
    shift : ndarray of shape (D,), float64
    chunk_rows : int
        A multiple of ``SEGMENT_ROWS``.
    workspace : Workspace or None
        Buffers to reuse across iterations (made here when missing or of the wrong size).

    Returns
    -------
    acc : ndarray of shape (2 + K + K D, 1 + WINDOW), int64
        Exact accumulators (:mod:`fastcavi._kernels.exactsum`) of ``[sum w, sum w d2_min, sum w
        per cluster (K), sum w y per cluster (K, D)]``: the same for any chunk size and thread
        count, and parts of whole segments merge into the whole's.
    far : tuple (row, d2, weight, cluster)
        The row of positive weight farthest from its centre (the lowest index on ties; -1 when
        every weight is 0), its squared distance, its weight and its cluster.
    workspace : Workspace
    """
    from ._kernels.nearest import lloyd_assign, stats_size
    from ._models.base import empty_accumulator

    K, D = centres.shape
    size = stats_size(K, D)
    if workspace is None or not workspace.fits(size, chunk_rows, (1,)):
        workspace = Workspace(size, chunk_rows, (1,))
    nblocks = -(-chunk_rows // BLOCK_ROWS)
    far_blocks, far_row = np.empty((nblocks, 3)), np.empty(nblocks, dtype=np.int64)
    centres = np.ascontiguousarray(centres, dtype=np.float64)
    shift = np.array(shift, dtype=np.float64)  # writable: read-only arrays are another numba type
    acc = empty_accumulator(size)
    far = (-1, -1.0, 0.0, -1)
    wchunks = weights.chunks(chunk_rows) if weights is not None else None
    for row0, chunk in source.chunks(chunk_rows):
        w = next(wchunks)[1] if wchunks is not None else _NO_WEIGHTS_IN
        n = chunk.shape[0]
        lloyd_assign(chunk, shift, centres, w, wchunks is not None, workspace.partials, far_blocks, far_row,
                     BLOCK_ROWS)
        _fold(workspace, n, acc)
        b = int(np.argmax(far_blocks[:-(-n // BLOCK_ROWS), 0]))  # the first block of the largest distance
        if far_row[b] >= 0 and far_blocks[b, 0] > far[1]:  # strictly: earlier rows win ties
            far = (row0 + int(far_row[b]), float(far_blocks[b, 0]), float(far_blocks[b, 1]),
                   int(far_blocks[b, 2]))
    return acc, far, workspace
