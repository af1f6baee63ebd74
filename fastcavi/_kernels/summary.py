"""One validating pass over the data: finiteness, sums and second moments.

It runs once per fit, before any CAVI work: it finds the first row holding NaN or
inf (so the error can name it, wherever it sits in a memmap), and accumulates the
shifted first and second moments that the priors' defaults (data mean, empirical
covariance) and the tied model's constant scatter need.
"""
import numpy as np
from numba import njit, prange

from .._config import BLOCK_ROWS, CACHE, FASTMATH

_JIT = dict(parallel=True, fastmath=FASTMATH, cache=CACHE, nogil=True, error_model="numpy")


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
    totals : ndarray of shape (D + D*D,), float64
        Accumulated in place in block order: ``[sum_n y_n (D), sum_n y_n y_n^T (D, D)]``
        with ``y = x - shift``; only the diagonal when ``full_scatter`` is false.

    Returns
    -------
    first_bad : int
        Index (within the chunk) of the first row with a NaN or infinite value, or -1.
        When it is not -1, ``totals`` is left unchanged.
    """
    n, D = X.shape
    B = BLOCK_ROWS
    nblocks = (n + B - 1) // B
    S = D + D * D
    partials = np.zeros((nblocks, S))
    bad = np.full(nblocks, -1, dtype=np.int64)
    ys = np.empty((nblocks, D, B))
    for b in prange(nblocks):
        start = b * B
        m = min(B, n - start)
        y = ys[b]
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
            lo = a if full_scatter else a
            hi = D if full_scatter else a + 1
            for e in range(lo, hi):
                acc = 0.0
                for i in range(m):
                    acc += y[a, i] * y[e, i]
                p[D + a * D + e] = acc
    for b in range(nblocks):
        if bad[b] >= 0:
            return bad[b]
    for b in range(nblocks):
        for j in range(S):
            totals[j] += partials[b, j]
    return -1
