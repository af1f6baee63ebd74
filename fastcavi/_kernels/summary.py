"""One validating pass over the data: finiteness, sums and second moments.

It runs once per fit, before any CAVI work: it finds the first row holding NaN or
inf (so the error can name it, wherever it sits in a memmap), and accumulates the
shifted first and second moments that the priors' defaults (data mean, empirical
covariance) and the tied model's constant scatter need.
"""
import numba
import numpy as np
from numba import njit, prange

from .._config import BLOCK_ROWS, PARALLEL_JIT

_JIT = PARALLEL_JIT


@njit(**_JIT)
def summarize(X, shift, full_scatter, totals):
    """Moments of a chunk about ``shift`` and the first non-finite row.

    Parameters
    ----------
    X : ndarray of shape (n, D), float32 or float64, C-contiguous
        A chunk of rows starting on a block boundary.
    shift : ndarray of shape (D,), float64
        Moments are taken of ``X - shift`` (for precision far from the origin).
    full_scatter : bool
        Accumulate the full ``D x D`` scatter (upper triangle) rather than its diagonal.
    totals : ndarray of shape (D + D*D,) or (2 D,), float64
        Accumulated in place in block order: ``[sum_n y_n (D), sum_n y_n y_n^T (D, D)]``
        with ``y = x - shift``, or ``[sum_n y_n, sum_n y_n**2]`` when ``full_scatter`` is false.

    Returns
    -------
    first_bad : int
        Index (within the chunk) of the first row with a NaN or infinite value, or -1.
        When it is not -1, ``totals`` is left unchanged.
    """
    n, D = X.shape
    B = BLOCK_ROWS
    nblocks = (n + B - 1) // B
    S = D + (D * D if full_scatter else D)
    partials = np.zeros((nblocks, S))
    bad = np.full(nblocks, -1, dtype=np.int64)
    ys = np.empty((numba.config.NUMBA_NUM_THREADS, D, B))  # one slot per thread
    for b in prange(nblocks):
        start = b * B
        m = min(B, n - start)
        y = ys[numba.get_thread_id()]
        p = partials[b]
        for i in range(m):
            ok = True
            for d in range(D):
                v = np.float64(X[start + i, d])
                if not np.isfinite(v):
                    ok = False
                y[d, i] = v - shift[d]
            if not ok and bad[b] < 0:
                bad[b] = start + i
        if bad[b] >= 0:
            continue
        for a in range(D):
            acc = 0.0
            for i in range(m):
                acc += y[a, i]
            p[a] = acc
            if full_scatter:
                for e in range(a, D):
                    acc = 0.0
                    for i in range(m):
                        acc += y[a, i] * y[e, i]
                    p[D + a * D + e] = acc
            else:
                acc = 0.0
                for i in range(m):
                    acc += y[a, i] * y[a, i]
                p[D + a] = acc
    for b in range(nblocks):
        if bad[b] >= 0:
            return bad[b]
    for b in range(nblocks):
        for j in range(S):
            totals[j] += partials[b, j]
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
