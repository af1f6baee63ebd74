"""A linear map of the rows, ``out[i] = A (x_i - shift)``, with each sum in a fixed order.

The model layer needs two per-row maps: whitening by a known covariance's Cholesky factor
(``A = L^-1``) and tied's common quadratic term (``z = P^T y``, then ``-|z|^2 / 2``). A matrix
product (BLAS) or a triangular solve (LAPACK) there would give other bits on another CPU:
OpenBLAS picks its kernels for the CPU at run time. Here ``out[i, e] = sum_d A[e, d] y_d`` adds
the terms in the order ``d = 0, 1, ...`` (the loop over ``e`` vectorises; no sum is regrouped), and
:func:`squared_norms` adds up ``out[i, e]**2`` in the order of ``e`` without writing ``out``.
"""
import numpy as np
from numba import njit

from .._config import BLOCK_ROWS, CACHE, FASTMATH
from ._threads import n_slots, run_slots


@njit(fastmath=FASTMATH, nogil=True, cache=CACHE, error_model="numpy")
def transform_blocks(X, shift, AT, squared, out, block_rows, b0, b1):
    """:func:`transform` (or, ``squared``, :func:`squared_norms`) for blocks ``b0 .. b1 - 1`` (one call per
    thread); ``AT`` is ``A`` transposed, (D, E)."""
    n, D = X.shape
    E = AT.shape[1]
    z = np.empty(E)
    for i in range(b0 * block_rows, min(n, b1 * block_rows)):
        for e in range(E):
            z[e] = 0.0
        for d in range(D):
            y = np.float64(X[i, d]) - shift[d]
            for e in range(E):
                z[e] += AT[d, e] * y
        if squared:
            q = 0.0
            for e in range(E):
                q += z[e] * z[e]
            out[i, 0] = q
        else:
            for e in range(E):
                out[i, e] = z[e]


def _run(X, shift, A, squared, out):
    # the numba types the registry compiles (fastcavi._compile): read-only data, writable float64 copies
    X = X.view()
    X.flags.writeable = False
    AT = np.array(np.asarray(A, dtype=np.float64).T, order="C")
    shift = np.array(shift, dtype=np.float64)
    nblocks = (X.shape[0] + BLOCK_ROWS - 1) // BLOCK_ROWS
    run_slots(transform_blocks, nblocks, n_slots(), lambda g: (X, shift, AT, squared, out, np.int64(BLOCK_ROWS)))
    return out


def transform(X, shift, A, out):
    """``out[i] = A (X[i] - shift)`` for every row, each sum in the order of the columns of ``A``.

    Parameters
    ----------
    X : ndarray of shape (n, D), float32 or float64, C-contiguous
    shift : ndarray of shape (D,), float64
    A : ndarray of shape (E, D), float64
    out : ndarray of shape (n, E), float64, C-contiguous
        Written in place, and returned.
    """
    return _run(X, shift, A, False, out)


def squared_norms(X, shift, A):
    """``|A (X[i] - shift)|^2`` for every row: :func:`transform`'s rows, their squares added in order.

    Parameters
    ----------
    X : ndarray of shape (n, D), float32 or float64, C-contiguous
    shift : ndarray of shape (D,), float64
    A : ndarray of shape (E, D), float64

    Returns
    -------
    ndarray of shape (n,), float64
    """
    return _run(X, shift, A, True, np.empty((X.shape[0], 1)))[:, 0]
