"""One validating pass over the data: finiteness, sums and second moments.

It runs once per fit, before any CAVI work: it finds the first row holding NaN or
inf (so the error can name it, wherever it sits in a memmap), and accumulates the
shifted first and second moments that the priors' defaults (data mean, empirical
covariance) and the tied model's constant scatter need.
"""
import numpy as np
from numba import njit

from .._config import BLOCK_ROWS, CACHE, FASTMATH
from ._lanes import diagonal4, tile4x1, tile4x4
from ._sums import lane_sum
from ._threads import run_slots

_JIT = dict(fastmath=FASTMATH, nogil=True, cache=CACHE, error_model="numpy")


def summary_size(D, full_scatter):
    """Length of a block's summary partials: ``[sum w, sum w y (D), second moments]``."""
    return 1 + D + (D * (D + 1) // 2 if full_scatter else D)


def summary_scratch_rows(D):
    """Rows of ``block_rows`` float64 one thread's scratch slot needs: ``y`` and ``w y`` (D rounded up to a
    multiple of 4 each) and a row of ones."""
    D4 = (D + 3) // 4 * 4
    return 2 * D4 + 1


@njit(**_JIT)
def summarize_blocks(X, shift, full_scatter, weights, has_weights, partials, y, block_rows, b0, b1):
    """:func:`summarize` for blocks ``b0 .. b1 - 1`` (one call per thread), with ``y`` of shape
    ``(>= summary_scratch_rows(D), >= block_rows)`` as scratch: the first bad row of those blocks, or -1.

    The sums over the rows run in four lanes (:mod:`~fastcavi._kernels._lanes`: the same bits for any vector
    width), on ``y = x - shift`` (rows ``0 .. D4``; rows ``D .. D4`` and the columns from ``m`` up to a multiple
    of 4 zero) and, weighted, ``w y`` (rows ``D4 .. 2 D4``), against a row of ones for the first moments.
    """
    n, D = X.shape
    B = block_rows
    D4 = (D + 3) // 4 * 4
    wy = D4 if has_weights else 0  # the rows summed against y and the ones: w y, or y itself
    ones = 2 * D4
    for i in range(B):
        y[ones, i] = 1.0
    for d in range(D, D4):
        for i in range(B):
            y[d, i] = 0.0
            y[D4 + d, i] = 0.0
    first_bad = -1
    for b in range(b0, b1):
        start = b * B
        m = min(B, n - start)
        m4 = (m + 3) // 4 * 4
        p = partials[b]
        bad = -1
        for i in range(m):
            ok = True
            for d in range(D):
                v = np.float64(X[start + i, d])
                if not np.isfinite(v):
                    ok = False
                y[d, i] = v - shift[d]
            if has_weights:
                w = weights[start + i]
                if not (np.isfinite(w) and w >= 0.0):
                    ok = False
            if not ok and bad < 0:
                bad = start + i
        if bad >= 0:
            if first_bad < 0:
                first_bad = bad
            continue
        for d in range(D):
            for i in range(m, m4):
                y[d, i] = 0.0
        if has_weights:
            p[0] = lane_sum(weights, start, m)  # in a fixed order (see _sums)
            for d in range(D):
                for i in range(m):
                    y[D4 + d, i] = weights[start + i] * y[d, i]
                for i in range(m, m4):
                    y[D4 + d, i] = 0.0
        else:
            p[0] = m
        for a0 in range(0, D4, 4):
            col = tile4x1(y, wy + a0, y, ones, m4)
            for r in range(4):
                if a0 + r < D:
                    p[1 + a0 + r] = col[r]
        base = 1 + D
        if full_scatter:  # the upper triangle, row-major: entry (a, e) at base + a D - a (a - 1) / 2 + e - a
            for a0 in range(0, D4, 4):
                for e0 in range(a0, D4, 4):
                    tile = tile4x4(y, wy + a0, y, e0, m4)
                    for r in range(4):
                        a = a0 + r
                        for c in range(4):
                            e = e0 + c
                            if a <= e < D:
                                p[base + a * D - a * (a - 1) // 2 + e - a] = tile[4 * r + c]
        else:
            for a0 in range(0, D4, 4):
                diag = diagonal4(y, wy + a0, y, a0, m4)
                for r in range(4):
                    if a0 + r < D:
                        p[base + a0 + r] = diag[r]
    return first_bad


def summarize(X, shift, full_scatter, weights, has_weights, partials, scratch, block_rows):
    """Weighted moments of a chunk about ``shift``, per block, and the first bad row.

    Parameters
    ----------
    X : ndarray of shape (n, D), float32 or float64, C-contiguous
        A chunk of rows.
    shift : ndarray of shape (D,), float64
        Moments are taken of ``y = x - shift`` (for precision far from the origin).
    full_scatter : bool
        Second moments ``w y_a y_b, a <= b`` (upper triangle, row-major) rather than ``w y_d**2``.
    weights : ndarray of shape (n,), float64
        Row weights, read when ``has_weights``.
    has_weights : bool
    partials : ndarray of shape (>= n_blocks, >= summary_size(D, full_scatter)), float64
        Output: block b's sums ``[sum w, sum w y, second moments]``, in row order.
    scratch : ndarray of shape (n_slots, >= summary_scratch_rows(D), >= block_rows), float64
        Work space; slot g serves the contiguous run of blocks ``g * nblocks // n_slots`` up to
        ``(g + 1) * nblocks // n_slots`` (any number of slots >= 1).
    block_rows : int
        Rows per block (``BLOCK_ROWS``, a multiple of 4: the lanes read whole groups of 4 columns),
        passed at run time (nothing frozen into a cached kernel sizes or indexes a buffer the caller
        allocated).

    Returns
    -------
    first_bad : int
        Index (within the chunk) of the first row with a NaN or infinite value, or a
        negative or non-finite weight; -1 when there is none (``partials`` is then complete).
    """
    nblocks = (X.shape[0] + block_rows - 1) // block_rows
    firsts = run_slots(summarize_blocks, nblocks, scratch.shape[0],
                       lambda g: (X, shift, full_scatter, weights, has_weights, partials, scratch[g],
                                  np.int64(block_rows)))
    for bad in firsts:  # slot g's blocks all come before slot g + 1's
        if bad is not None and bad >= 0:
            return bad
    return -1


@njit(**_JIT)
def first_non_finite_blocks(X, block_rows, b0, b1):
    """The first row of blocks ``b0 .. b1 - 1`` of X holding a NaN or an infinity, or -1."""
    n, D = X.shape
    for i in range(b0 * block_rows, min(n, b1 * block_rows)):
        for d in range(D):
            if not np.isfinite(np.float64(X[i, d])):
                return i
    return -1


def first_non_finite(X):
    """Index of the first row of X holding a NaN or an infinity, or -1 (no allocation).

    Parameters
    ----------
    X : ndarray of shape (n, D), float32 or float64

    Returns
    -------
    int
    """
    from ._threads import n_slots

    nblocks = (X.shape[0] + BLOCK_ROWS - 1) // BLOCK_ROWS
    for bad in run_slots(first_non_finite_blocks, nblocks, n_slots(), lambda g: (X, np.int64(BLOCK_ROWS))):
        if bad is not None and bad >= 0:
            return bad
    return -1
