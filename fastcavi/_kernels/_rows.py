"""Rows of a chunk into columns of a tile: the first step of every kernel that vectorises over rows.

The kernels compute across rows (the rows innermost, so that the loops vectorise), from a tile
``Y[d, i]`` of the chunk's rows transposed. Reading column ``d`` of a row-major chunk directly
(``X[row0 + i, d]`` over ``i``) is a load with a run-time stride, which LLVM turns into a gather
or scalar loads: at D = 2 this took 1.8 ms per 1e6 rows on 2 threads, five times a read of the
data. :func:`load_columns` instead reads the tile's rows as one contiguous stretch of the
flattened chunk, with a constant stride for D <= 3 (interleaved loads that LLVM vectorises with
shuffles: 0.3 ms at D = 2) and row by row for wider rows (contiguous along each row: a read at
memory speed).

The values are those of ``np.float64(X[row0 + i, d]) - shift[d]``, bit for bit.
"""
import numpy as np
from numba import njit

from .._config import CACHE


# Compiled on its own (per float width) and called once per tile, not inlined: its strided loops are
# the costliest code to vectorise in the nearest-centre kernels, and each kernel inlined it twice.
@njit(cache=CACHE, nogil=True, error_model="numpy", no_cpython_wrapper=True, no_cfunc_wrapper=True)
def load_columns(X, row0, m, shift, Y):
    """``Y[d, i] = float64(X[row0 + i, d]) - shift[d]`` for ``d < D``, ``i < m``.

    Parameters
    ----------
    X : ndarray of shape (n, D), float32 or float64, C-contiguous
    row0, m : int
        The tile's first row and its number of rows (``row0 + m <= n``).
    shift : ndarray of shape (D,), float64
    Y : ndarray of shape (>= D, >= m), float64
        Output.
    """
    n, D = X.shape
    Xs = X.reshape(n * D)[D * row0:D * (row0 + m)]
    if D == 1:
        s0 = shift[0]
        for i in range(m):
            Y[0, i] = np.float64(Xs[i]) - s0
    elif D == 2:
        s0, s1 = shift[0], shift[1]
        for i in range(m):
            Y[0, i] = np.float64(Xs[2 * i]) - s0
            Y[1, i] = np.float64(Xs[2 * i + 1]) - s1
    elif D == 3:
        s0, s1, s2 = shift[0], shift[1], shift[2]
        for i in range(m):
            Y[0, i] = np.float64(Xs[3 * i]) - s0
            Y[1, i] = np.float64(Xs[3 * i + 1]) - s1
            Y[2, i] = np.float64(Xs[3 * i + 2]) - s2
    else:
        for i in range(m):
            for d in range(D):
                Y[d, i] = np.float64(Xs[D * i + d]) - shift[d]
