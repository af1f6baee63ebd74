"""One validating pass over the data: finiteness, sums and second moments.

It runs once per fit, before any CAVI work: it finds the first row holding NaN or
inf (so the error can name it, wherever it sits in a memmap), and accumulates the
shifted first and second moments that the priors' defaults (data mean, empirical
covariance) and the tied model's constant scatter need.
"""
import numpy as np
from numba import njit, prange

from .._config import BLOCK_ROWS, PARALLEL_JIT
from ._sums import lane_sum

_JIT = PARALLEL_JIT


def summary_size(D, full_scatter):
    """Length of a block's summary partials: ``[sum w, sum w y (D), second moments]``."""
    return 1 + D + (D * (D + 1) // 2 if full_scatter else D)


@njit(**_JIT)
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
    scratch : ndarray of shape (n_slots, D, >= block_rows), float64
        Work space; slot g serves the contiguous run of blocks ``g * nblocks // n_slots`` up to
        ``(g + 1) * nblocks // n_slots`` (any number of slots >= 1).
    block_rows : int
        Rows per block, passed at run time (nothing frozen into a cached kernel sizes or indexes
        a buffer the caller allocated).

    Returns
    -------
    first_bad : int
        Index (within the chunk) of the first row with a NaN or infinite value, or a
        negative or non-finite weight; -1 when there is none (``partials`` is then complete).
    """
    n, D = X.shape
    B = block_rows
    nblocks = (n + B - 1) // B
    n_slots = scratch.shape[0]
    bad = np.full(nblocks, -1, dtype=np.int64)
    for g in prange(n_slots):
        y = scratch[g]
        for b in range(g * nblocks // n_slots, (g + 1) * nblocks // n_slots):  # one stretch per thread
            start = b * B
            m = min(B, n - start)
            p = partials[b]
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
                if not ok and bad[b] < 0:
                    bad[b] = start + i
            if bad[b] >= 0:
                continue
            if has_weights:
                p[0] = lane_sum(weights, start, m)  # in a fixed order (see _sums)
                for a in range(D):
                    acc = 0.0
                    for i in range(m):
                        acc += weights[start + i] * y[a, i]
                    p[1 + a] = acc
            else:
                p[0] = m
                for a in range(D):
                    acc = 0.0
                    for i in range(m):
                        acc += y[a, i]
                    p[1 + a] = acc
            f = 1 + D
            for a in range(D):
                for e in range(a, D if full_scatter else a + 1):
                    acc = 0.0
                    if has_weights:
                        for i in range(m):
                            acc += weights[start + i] * y[a, i] * y[e, i]
                    else:
                        for i in range(m):
                            acc += y[a, i] * y[e, i]
                    p[f] = acc
                    f += 1
    for b in range(nblocks):
        if bad[b] >= 0:
            return bad[b]
    return -1


@njit(**_JIT)
def first_non_finite(X):
    """Index of the first row of X holding a NaN or an infinity, or -1 (no allocation beyond one int per block).

    Parameters
    ----------
    X : ndarray of shape (n, D), float32 or float64

    Returns
    -------
    int
    """
    n, D = X.shape
    B = BLOCK_ROWS
    nblocks = (n + B - 1) // B
    bad = np.full(nblocks, -1, dtype=np.int64)
    for b in prange(nblocks):
        for i in range(b * B, min(n, b * B + B)):
            ok = True
            for d in range(D):
                if not np.isfinite(np.float64(X[i, d])):
                    ok = False
            if not ok:
                bad[b] = i
                break
    for b in range(nblocks):
        if bad[b] >= 0:
            return bad[b]
    return -1
