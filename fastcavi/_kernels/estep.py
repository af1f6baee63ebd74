"""Single-pass E-step kernels: responsibilities and sufficient statistics.

Each kernel makes one pass over a chunk of rows and, for every row, computes the
variational logits of the K components, their log-sum-exp, the responsibilities,
and adds the row's contribution to the sufficient statistics the posterior
updates and the ELBO need. Nothing of size N x K outlives a block of rows unless
the caller asks for the responsibilities (``want_resp``).

Determinism: the chunk is cut into blocks of ``BLOCK_ROWS`` rows. Blocks run in
parallel, each writes its own float64 partial sums, and the partials are then
added to ``totals`` one block at a time, in block order. Chunks always start on a
block boundary, so the order of every floating-point addition is fixed by the
row index alone: results are bitwise identical for any thread count and chunk
size.

Layout inside a block is "components x rows" so that the innermost loops run
over contiguous rows and vectorise, the exponential included
(:func:`~fastcavi._kernels._fastexp.exp_nonpos`).

Memory: the caller passes a ``partials`` array (one row per block of the largest
chunk) and a ``scratch`` array (one slot per thread, indexed by
``numba.get_thread_id()``), both reused across chunks and sweeps, so a pass
allocates nothing and touches no fresh pages. A slot's contents are rewritten
for every block, so which thread runs which block cannot change any result.

These kernels validate nothing: shapes, dtypes and finiteness are the caller's
job (:mod:`fastcavi._validation`, :mod:`fastcavi._sources`).
"""
import numba
import numpy as np
from numba import njit, prange

from .._config import BLOCK_ROWS, CACHE, FASTMATH
from ._fastexp import exp_nonpos

_JIT = dict(parallel=True, fastmath=FASTMATH, cache=CACHE, nogil=True, error_model="numpy")


@njit(inline="always", fastmath=FASTMATH)
def _normalise_block(L, mx, s, m, K):
    """Turn logits ``L[:, :m]`` into responsibilities in place.

    Parameters
    ----------
    L : ndarray of shape (K, BLOCK_ROWS)
        Logits on entry, responsibilities on exit (first ``m`` columns).
    mx, s : ndarray of shape (BLOCK_ROWS,)
        Scratch; on exit ``mx`` holds each row's log-sum-exp.
    m : int
        Number of valid rows in the block.
    K : int
        Number of components.

    Returns
    -------
    lse_sum : float
        Sum of the rows' log-sum-exp, added in row order.
    """
    for i in range(m):
        mx[i] = L[0, i]
    for k in range(1, K):
        for i in range(m):
            mx[i] = max(mx[i], L[k, i])
    for i in range(m):
        s[i] = 0.0
    for k in range(K):
        for i in range(m):
            e = exp_nonpos(L[k, i] - mx[i])
            L[k, i] = e
            s[i] += e
    lse_sum = 0.0
    for i in range(m):
        mx[i] = mx[i] + np.log(s[i])
        lse_sum += mx[i]
        s[i] = 1.0 / s[i]
    for k in range(K):
        for i in range(m):
            L[k, i] *= s[i]
    return lse_sum


@njit(inline="always", fastmath=FASTMATH)
def _load_block(X, start, m, shift, xt):
    """Copy rows ``start:start+m`` of X, minus ``shift``, transposed into ``xt`` (float64)."""
    D = X.shape[1]
    for i in range(m):
        for d in range(D):
            xt[d, i] = np.float64(X[start + i, d]) - shift[d]


@njit(inline="always")
def _write_resp(L, mx, start, m, K, resp, lse):
    for i in range(m):
        lse[start + i] = mx[i]
        for k in range(K):
            resp[start + i, k] = L[k, i]


@njit(inline="always")
def _fold(partials, nblocks, S, totals):
    """Add the blocks' partial sums to ``totals`` one block at a time, in block order."""
    for b in range(nblocks):
        for j in range(S):
            totals[j] += partials[b, j]


def scratch_rows(kernel, K, D):
    """Rows of BLOCK_ROWS float64 a thread's scratch slot needs for ``kernel``."""
    return K + 2 * D + 2 if kernel == "diag" else K + D + 4


@njit(**_JIT)
def estep_diag(X, shift, bias, W1, W2, want_resp, resp, lse, partials, scratch, totals):
    """E-step for logits that are linear in ``x`` and ``x**2`` (identity, spherical, diag, tied).

    The logit of row ``x`` (after subtracting ``shift``) and component ``k`` is
    ``bias[k] + sum_d W1[k, d] x_d + W2[k, d] x_d**2``.

    Parameters
    ----------
    X : ndarray of shape (n, D), float32 or float64, C-contiguous
        A chunk of rows starting on a block boundary.
    shift : ndarray of shape (D,), float64
        Subtracted from every row before anything else (data centring, for precision).
    bias, W1, W2 : ndarrays of shape (K,), (K, D), (K, D), float64
        Coefficients of the logits.
    want_resp : bool
        Whether to write each row's responsibilities and log-sum-exp.
    resp : ndarray of shape (n, K), float64
        Output responsibilities when ``want_resp`` (else any shape, untouched).
    lse : ndarray of shape (n,), float64
        Output log-sum-exp of the logits when ``want_resp``.
    partials : ndarray of shape (>= n_blocks, >= 1 + K + 2 K D), float64
        Work space for the blocks' partial sums.
    scratch : ndarray of shape (n_threads_max, >= K + 2 D + 2, BLOCK_ROWS), float64
        Per-thread work space.
    totals : ndarray of shape (1 + K + 2 K D,), float64
        Accumulated in place, block by block in order:
        ``[sum_n lse_n, N_k (K), sum_n r_nk x_n (K, D), sum_n r_nk x_n**2 (K, D)]``.
    """
    n, D = X.shape
    K = bias.shape[0]
    B = BLOCK_ROWS
    nblocks = (n + B - 1) // B
    S = 1 + K + 2 * K * D
    for b in prange(nblocks):
        start = b * B
        m = min(B, n - start)
        slot = scratch[numba.get_thread_id()]
        L = slot[:K]
        xt = slot[K:K + 2 * D]
        mx = slot[K + 2 * D]
        s = slot[K + 2 * D + 1]
        p = partials[b]
        _load_block(X, start, m, shift, xt)
        for d in range(D):
            for i in range(m):
                xt[D + d, i] = xt[d, i] * xt[d, i]
        for k in range(K):
            bk = bias[k]
            for i in range(m):
                L[k, i] = bk
            for d in range(D):
                w1 = W1[k, d]
                w2 = W2[k, d]
                for i in range(m):
                    L[k, i] += xt[d, i] * w1 + xt[D + d, i] * w2
        p[0] = _normalise_block(L, mx, s, m, K)
        for k in range(K):
            acc = 0.0
            for i in range(m):
                acc += L[k, i]
            p[1 + k] = acc
            for f in range(2 * D):  # every entry of p[:S] is written: no zeroing needed
                acc = 0.0
                for i in range(m):
                    acc += L[k, i] * xt[f, i]
                if f < D:
                    p[1 + K + k * D + f] = acc
                else:
                    p[1 + K + K * D + k * D + (f - D)] = acc
        if want_resp:
            _write_resp(L, mx, start, m, K, resp, lse)
    _fold(partials, nblocks, S, totals)


@njit(**_JIT)
def estep_full(X, shift, bias, A, c, want_resp, resp, lse, partials, scratch, totals):
    """E-step for per-component full precision matrices.

    The logit of row ``x`` (after subtracting ``shift``) and component ``k`` is
    ``bias[k] - 0.5 * |x A_k - c_k|**2`` with ``A_k`` upper triangular (a scaled
    Cholesky factor of the expected precision, ``E[Lambda_k] = A_k A_k^T``).

    Parameters
    ----------
    X : ndarray of shape (n, D), float32 or float64, C-contiguous
        A chunk of rows starting on a block boundary.
    shift : ndarray of shape (D,), float64
        Subtracted from every row first.
    bias : ndarray of shape (K,), float64
    A : ndarray of shape (K, D, D), float64
        Upper-triangular factors; only ``A[k, d, j]`` with ``d <= j`` is read.
    c : ndarray of shape (K, D), float64
        ``(m_k - shift) A_k``.
    want_resp : bool
        Whether to write responsibilities and log-sum-exp.
    resp : ndarray of shape (n, K), float64
    lse : ndarray of shape (n,), float64
    partials : ndarray of shape (>= n_blocks, >= 1 + K + K D + K D D), float64
        Work space for the blocks' partial sums.
    scratch : ndarray of shape (n_threads_max, >= K + D + 4, BLOCK_ROWS), float64
        Per-thread work space.
    totals : ndarray of shape (1 + K + K D + K D D,), float64
        Accumulated in place, block by block in order: ``[sum_n lse_n, N_k,
        sum_n r_nk x_n (K, D), sum_n r_nk x_n x_n^T (K, D, D), upper triangle only]``.
    """
    n, D = X.shape
    K = bias.shape[0]
    B = BLOCK_ROWS
    nblocks = (n + B - 1) // B
    S = 1 + K + K * D + K * D * D
    for b in prange(nblocks):
        start = b * B
        m = min(B, n - start)
        slot = scratch[numba.get_thread_id()]
        L = slot[:K]
        xt = slot[K:K + D]
        mx = slot[K + D]
        s = slot[K + D + 1]
        acc_row = slot[K + D + 2]
        rx = slot[K + D + 3]
        p = partials[b]
        _load_block(X, start, m, shift, xt)
        for k in range(K):
            for i in range(m):
                s[i] = 0.0
            for j in range(D):
                cj = c[k, j]
                for i in range(m):
                    acc_row[i] = -cj
                for d in range(j + 1):
                    a = A[k, d, j]
                    for i in range(m):
                        acc_row[i] += xt[d, i] * a
                for i in range(m):
                    s[i] += acc_row[i] * acc_row[i]
            bk = bias[k]
            for i in range(m):
                L[k, i] = bk - 0.5 * s[i]
        p[0] = _normalise_block(L, mx, s, m, K)
        o1 = 1 + K
        o2 = 1 + K + K * D
        for k in range(K):
            acc = 0.0
            for i in range(m):
                acc += L[k, i]
            p[1 + k] = acc
            for a in range(D):
                acc = 0.0
                for i in range(m):
                    rx[i] = L[k, i] * xt[a, i]
                    acc += rx[i]
                p[o1 + k * D + a] = acc
                for e in range(a):
                    p[o2 + (k * D + a) * D + e] = 0.0  # lower triangle: not accumulated
                for e in range(a, D):
                    acc = 0.0
                    for i in range(m):
                        acc += rx[i] * xt[e, i]
                    p[o2 + (k * D + a) * D + e] = acc
        if want_resp:
            _write_resp(L, mx, start, m, K, resp, lse)
    _fold(partials, nblocks, S, totals)
