"""One Lloyd iteration of k-means, streamed: assign each row of a chunk to its nearest centre and
accumulate per-cluster weighted counts and sums.

A Lloyd iteration is then one pass over the data with O(chunk + K x D) memory: the caller
folds each chunk's block partials into an exact accumulator
(:func:`fastcavi._kernels.exactsum.fold_segments`) and divides the sums by the counts.

Determinism: the chunk is cut into blocks of ``block_rows`` rows that run in parallel; each
block writes its own float64 partials, added in row order, so a block's partials depend on
its rows alone, and the exact fold makes every split of the rows into whole segments give
the same bits. The kernel is compiled without fast-math flags: a reassociated sum could be
vectorised differently in a process that compiled it and in one that loaded it from the cache
(see :mod:`fastcavi._kernels.estep`), and a squared distance that differs in its last bit can
move a row to another cluster.

The kernel validates nothing: shapes, dtypes and finiteness are the caller's job.
"""
import numpy as np
from numba import njit, prange

from .._config import CACHE

_JIT = dict(parallel=True, cache=CACHE, nogil=True, error_model="numpy")


def stats_size(K, D):
    """Statistics per block: ``[sum w, sum w d2_min, sum w (K), sum w y (K, D)]``."""
    return 2 + K + K * D


@njit(**_JIT)
def lloyd_assign(X, shift, centres, weights, has_weights, partials, far, far_row, block_rows):
    """Assign each row of a chunk to its nearest centre; per-block weighted counts and sums.

    Parameters
    ----------
    X : ndarray of shape (n, D), float32 or float64, C-contiguous
        A chunk of rows.
    shift : ndarray of shape (D,), float64
        Subtracted from every row first (``centres`` are in these coordinates).
    centres : ndarray of shape (K, D), float64
        The current centres. A row goes to the centre with the smallest squared distance
        ``sum_d (y_d - c_kd)**2``; ties go to the lowest index.
    weights : ndarray of shape (n,), float64
        Row weights (read only when ``has_weights``; any 1-D array otherwise).
    has_weights : bool
    partials : ndarray of shape (>= n_blocks, stats_size(K, D)), float64
        Output: row b holds block b's ``[sum w, sum w d2_min, sum w per cluster (K),
        sum w y per cluster (K, D)]``, each added up in row order within the block.
    far : ndarray of shape (>= n_blocks, 3), float64
        Output: per block, the row of positive weight farthest from its centre (the first one on
        ties): its squared distance (-1 when the block has no row of positive weight), its weight
        and its cluster.
    far_row : ndarray of shape (>= n_blocks,), int64
        Output: the index (in the chunk) of that row (-1 when none).
    block_rows : int
        Rows per block (``BLOCK_ROWS``), passed at run time.
    """
    n, D = X.shape
    K = centres.shape[0]
    B = block_rows
    nblocks = (n + B - 1) // B
    S = 2 + K + K * D
    for b in prange(nblocks):
        p = partials[b]
        for j in range(S):
            p[j] = 0.0
        y = np.empty(D)
        best_far = -1.0
        best_far_row = -1
        best_far_w = 0.0
        best_far_k = -1
        for i in range(b * B, min(n, (b + 1) * B)):
            for d in range(D):
                y[d] = np.float64(X[i, d]) - shift[d]
            nearest = 0
            d2min = np.inf
            for k in range(K):
                d2 = 0.0
                for d in range(D):
                    t = y[d] - centres[k, d]
                    d2 += t * t
                if d2 < d2min:
                    d2min = d2
                    nearest = k
            w = weights[i] if has_weights else 1.0
            p[0] += w
            p[1] += w * d2min
            p[2 + nearest] += w
            base = 2 + K + nearest * D
            for d in range(D):
                p[base + d] += w * y[d]
            if w > 0.0 and d2min > best_far:
                best_far = d2min
                best_far_row = i
                best_far_w = w
                best_far_k = nearest
        far[b, 0] = best_far
        far[b, 1] = best_far_w
        far[b, 2] = best_far_k
        far_row[b] = best_far_row
