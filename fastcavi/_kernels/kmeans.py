"""One Lloyd iteration of k-means, streamed: assign each row of a chunk to its nearest centre and
accumulate per-cluster weighted counts and sums.

A Lloyd iteration is then one pass over the data with O(chunk + K x D) memory: the caller
folds each chunk's block partials into an exact accumulator
(:func:`fastcavi._kernels.exactsum.fold_segments`) and divides the sums by the counts.

Determinism: the chunk is cut into blocks of ``block_rows`` rows, contiguous runs of them on each
thread (:mod:`fastcavi._kernels._threads`); each
block writes its own float64 partials, added in row order, so a block's partials depend on
its rows alone, and the exact fold makes every split of the rows into whole segments give
the same bits. The kernel is compiled without fast-math flags: a reassociated sum could be
vectorised differently in a process that compiled it and in one that loaded it from the cache
(see :mod:`fastcavi._kernels.estep`), and a squared distance that differs in its last bit can
move a row to another cluster.

Speed: the distances and the nearest centre are found for a tile of ``TILE_ROWS`` rows at a
time, the rows innermost (:func:`nearest_tile`), so the loops vectorise and the choice of the
nearest centre is a select, not a branch (a branch on the nearest of 8 well-mixed clusters is
mispredicted most of the time: the row-at-a-time loop took about 10 ms per 1e6 rows on 2 threads
at D = 2, some 60 cycles a row). Each
row's distance is the same sequence of operations as one row at a time, so the bits are the
same; only the accumulation then goes row by row, in row order.

The kernel validates nothing: shapes, dtypes and finiteness are the caller's job.
"""
import numpy as np
from numba import njit

from .._config import CACHE
from ._rows import load_columns

_JIT = dict(cache=CACHE, nogil=True, error_model="numpy")

#: Rows per tile of :func:`nearest_tile` (a multiple of the widest vector, 8 float64).
TILE_ROWS = 64


#: Options of the helpers that every nearest-centre kernel calls: each compiled once (float64 tiles, for
#: either data width), not inlined into each kernel, and with no Python entry point (nothing to build for
#: calls from Python). Inlined, the tile code went through numba and LLVM in each of the three kernels that
#: use it, per float width: 4-7 s of CPU per kernel.
_HELPER = dict(cache=CACHE, nogil=True, error_model="numpy", no_cpython_wrapper=True, no_cfunc_wrapper=True)


@njit(inline="always")
def nearest_tile(X, row0, m, shift, centres, Y, A, best, arg):
    """:func:`nearest_of_columns` of rows ``row0 .. row0 + m - 1`` of ``X`` (minus ``shift``), loaded into ``Y``."""
    load_columns(X, row0, m, shift, Y)
    nearest_of_columns(Y, m, X.shape[1], centres, A, best, arg)


@njit(**_HELPER)
def nearest_of_columns(Y, m, D, centres, A, best, arg):
    """The nearest centre of the ``m`` rows of the tile ``Y[:D, :m]`` (columns: a row's D values), vectorised
    over the rows.

    ``best[i]`` gets the smallest squared
    distance ``sum_d (Y[d, i] - centres[k, d])**2`` and ``arg[i]`` its centre ``k`` (the lowest on
    ties; 0 and ``inf`` when every distance is NaN). Each distance is added up from 0 in ``d`` order,
    the sequence of operations of a row-at-a-time loop, so it has the same bits (in a kernel
    compiled without fast-math flags).

    One centre at a time, over 4 features at a time (then the remaining features one by one), rows
    innermost, so that the loops vectorise with each row's running distance in a register across 4
    features. (Four centres at a time read the tile a quarter as often, but their unrolled loops took
    four times as long to compile, in a pass that runs a few times per fit.) ``Y`` is (>= D, >= m),
    ``A`` (>= 1, >= m), the others (>= m,): the caller's scratch.
    """
    K = centres.shape[0]
    D4 = D // 4 * 4
    for i in range(m):
        best[i] = np.inf
        arg[i] = 0
    dist = A[0]
    for k in range(K):
        for i in range(m):  # the sum starts from 0, as a row-at-a-time loop's does
            dist[i] = 0.0
        for f0 in range(0, D4, 4):
            a0, a1, a2, a3 = centres[k, f0], centres[k, f0 + 1], centres[k, f0 + 2], centres[k, f0 + 3]
            for i in range(m):
                y0 = Y[f0, i]
                y1 = Y[f0 + 1, i]
                y2 = Y[f0 + 2, i]
                y3 = Y[f0 + 3, i]
                s = dist[i] + (y0 - a0) * (y0 - a0)
                s += (y1 - a1) * (y1 - a1)
                s += (y2 - a2) * (y2 - a2)
                dist[i] = s + (y3 - a3) * (y3 - a3)
        for d in range(D4, D):
            a0 = centres[k, d]
            for i in range(m):
                y0 = Y[d, i]
                dist[i] += (y0 - a0) * (y0 - a0)
        for i in range(m):  # in centre order: strict < keeps the lowest index on ties
            closer = dist[i] < best[i]
            best[i] = dist[i] if closer else best[i]
            arg[i] = k if closer else arg[i]


def stats_size(K, D):
    """Statistics per block: ``[sum w, sum w d2_min, sum w (K), sum w y (K, D)]``."""
    return 2 + K + K * D


@njit(**_JIT)
def lloyd_blocks(X, shift, centres, weights, has_weights, partials, far, far_row, block_rows, b0, b1):
    """:func:`lloyd_assign` for blocks ``b0 .. b1 - 1`` (one call per thread)."""
    n, D = X.shape
    K = centres.shape[0]
    B = block_rows
    S = 2 + K + K * D
    T = TILE_ROWS
    Y = np.empty((D, T))
    A = np.empty((4, T))
    best = np.empty(T)
    arg = np.empty(T, dtype=np.int64)
    for b in range(b0, b1):
        p = partials[b]
        for j in range(S):
            p[j] = 0.0
        total_w = 0.0
        total_wd2 = 0.0
        best_far = -1.0
        best_far_row = -1
        best_far_w = 0.0
        best_far_k = -1
        stop = min(n, (b + 1) * B)
        for row0 in range(b * B, stop, T):
            m = min(T, stop - row0)
            nearest_tile(X, row0, m, shift, centres, Y, A, best, arg)
            for i in range(m):  # row by row, in row order
                r = row0 + i
                nearest = arg[i]
                d2min = best[i]
                w = weights[r] if has_weights else 1.0
                total_w += w
                total_wd2 += w * d2min
                p[2 + nearest] += w
                base = 2 + K + nearest * D
                for d in range(D):  # y again from the row (contiguous), the same bits as Y[d, i]
                    p[base + d] += w * (np.float64(X[r, d]) - shift[d])
                if w > 0.0 and d2min > best_far:
                    best_far = d2min
                    best_far_row = r
                    best_far_w = w
                    best_far_k = nearest
        p[0] = total_w
        p[1] = total_wd2
        far[b, 0] = best_far
        far[b, 1] = best_far_w
        far[b, 2] = best_far_k
        far_row[b] = best_far_row


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
    partials : ndarray of shape (>= n_blocks, >= stats_size(K, D)), float64
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
    from ._threads import n_slots, run_slots

    nblocks = (X.shape[0] + block_rows - 1) // block_rows
    run_slots(lloyd_blocks, nblocks, n_slots(),
              lambda g: (X, shift, centres, weights, has_weights, partials, far, far_row, np.int64(block_rows)))
