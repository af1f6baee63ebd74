"""Each row's nearest centre, streamed: k-means++'s draws, Lloyd's iterations, k-means||'s distances.

One kernel, :func:`nearest_blocks`, serves the three passes (its ``mode``), around one tile that finds the
nearest centre of ``TILE_ROWS`` rows (:func:`nearest_tile`):

* k-means++ (:func:`kmeanspp_draw`), one pass per new centre: classic k-means++ keeps every point's
  distance to its nearest centre (O(N) memory); here each pass recomputes that distance against the
  centres chosen so far and draws the next centre with probability proportional to it using exponential
  keys (Efraimidis & Spirakis): point ``i`` gets the key ``-log(u_i) / (w_i d_i**2)`` (``w_i = 1`` without
  weights) and the smallest key wins. ``u_i`` comes from a counter-based hash of (seed, round, row index)
  (:func:`~fastcavi._kernels.seeding.uniform_from_hash`), so the draw is the same for any chunking and
  thread count, and memory is O(K x D).
* Lloyd (:func:`lloyd_assign`): each row of a chunk to its nearest centre, with per-cluster weighted
  counts and sums. A Lloyd iteration is then one pass over the data with O(chunk + K x D) memory: the
  caller folds each chunk's block partials into an exact accumulator
  (:func:`fastcavi._kernels.exactsum.fold_segments`) and divides the sums by the counts.
* k-means|| (:func:`nearest_centre`): each row's squared distance to its nearest centre and that centre.

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

from .._config import BLOCK_ROWS, CACHE
from ._rows import load_columns
from ._threads import n_slots, run_slots
from .seeding import uniform_from_hash

_EXACT_JIT = dict(cache=CACHE, nogil=True, error_model="numpy")  # no fast-math flags (above)

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


#: What :func:`nearest_blocks` does with each row's nearest centre.
DRAW, LLOYD, NEAREST = 0, 1, 2

_NO_ROWS = np.empty(0, dtype=np.int64)  # the arrays a mode does not touch: of their types, never indexed
_NO_VALUES = np.empty(0)
_NO_BLOCKS = np.empty((0, 0))
_NO_WEIGHTS = np.empty(0)
_NO_WEIGHTS.flags.writeable = False  # weights are handed over read-only: one numba type


# One kernel for the three passes that find each row's nearest centre (k-means++'s draw, Lloyd's
# assignment, k-means||'s distances): as three kernels, each linked and optimised the nearest-centre
# tile again, and a first fit with the k-means start compiled two of them (1.2 s of CPU).
@njit(**_EXACT_JIT)
def nearest_blocks(X, shift, centres, weights, has_weights, mode, seed, stream, row0, partials, far, far_row, keys,
                   rows, d2, nearest, block_rows, b0, b1):
    """The nearest centre of each row of blocks ``b0 .. b1 - 1`` (one call per thread), and per ``mode``:

    * ``DRAW`` (:func:`kmeanspp_draw`): ``keys[b]`` and ``rows[b]`` get block b's best key and its row
      where it beats the earlier blocks of the run (they stay ``inf`` and -1 otherwise). The run's best key
      so far prunes its later blocks: the smallest key over the blocks, the first on ties, is still the
      smallest key over the rows.
    * ``LLOYD`` (:func:`~lloyd_assign`): ``partials[b]``, ``far[b]`` and
      ``far_row[b]``.
    * ``NEAREST`` (:func:`nearest_centre`): ``d2`` and ``nearest`` of each row.

    The scratch is allocated once per run, not per block (an allocation per 256 rows was a third of a
    pass at D = 2).
    """
    n, D = X.shape
    K = centres.shape[0]
    B = block_rows
    T = TILE_ROWS
    Y = np.empty((D, T))
    A = np.empty((4, T))
    best = np.empty(T)
    arg = np.empty(T, dtype=np.int64)
    u = np.empty(T)
    bound = np.empty(T)
    carried = np.inf  # DRAW: the run's best key so far; a row that cannot beat it cannot be the draw
    S = 2 + K + K * D
    for b in range(b0, b1):
        start = b * B
        stop = min(n, start + B)
        # the block's state: DRAW's best key and row, LLOYD's totals and farthest row
        best_key = carried
        best_row = -1
        total_w = 0.0
        total_wd2 = 0.0
        best_far = -1.0
        best_far_w = 0.0
        best_far_k = -1
        p = partials[b] if mode == LLOYD else Y[0]  # (LLOYD's output row; otherwise unused)
        if mode == LLOYD:
            for j in range(S):
                p[j] = 0.0
        for t0 in range(start, stop, T):
            m = min(T, stop - t0)
            nearest_tile(X, t0, m, shift, centres, Y, A, best, arg)  # one call site: inlined once
            if mode == DRAW:
                if has_weights:
                    for i in range(m):
                        best[i] *= weights[t0 + i]
                for i in range(m):
                    ui = uniform_from_hash(seed, stream, row0 + t0 + i)
                    u[i] = ui
                    bound[i] = (1.0 - ui) / best[i]  # +inf on a centre (or at weight 0)
                # -log(u) >= 1 - u, so a row whose bound (1 - u) / d2 on its key already exceeds the best key
                # cannot win: skip its log (a scalar libm call). The margin covers the rounding of both sides,
                # so the rows skipped are exactly rows that lose: the draw is unchanged.
                threshold = best_key * (1.0 + 1e-9)
                for i in range(m):
                    if best[i] > 0.0 and bound[i] <= threshold:
                        key = -np.log(u[i]) / best[i]
                        if key < best_key:
                            best_key = key
                            best_row = row0 + t0 + i
                            threshold = best_key * (1.0 + 1e-9)
            elif mode == LLOYD:
                for i in range(m):  # row by row, in row order
                    r = t0 + i
                    k = arg[i]
                    d2min = best[i]
                    w = weights[r] if has_weights else 1.0
                    total_w += w
                    total_wd2 += w * d2min
                    p[2 + k] += w
                    base = 2 + K + k * D
                    for d in range(D):  # y again from the row (contiguous), the same bits as Y[d, i]
                        p[base + d] += w * (np.float64(X[r, d]) - shift[d])
                    if w > 0.0 and d2min > best_far:
                        best_far = d2min
                        best_row = r
                        best_far_w = w
                        best_far_k = k
            else:
                for i in range(m):
                    d2[t0 + i] = best[i]
                    nearest[t0 + i] = arg[i]
        if mode == DRAW:
            if best_row >= 0:  # the block's best beats every earlier block's of the run
                keys[b] = best_key
                rows[b] = best_row
                carried = best_key
        elif mode == LLOYD:
            p[0] = total_w
            p[1] = total_wd2
            far[b, 0] = best_far
            far[b, 1] = best_far_w
            far[b, 2] = best_far_k
            far_row[b] = best_row


def kmeanspp_draw(X, shift, centres, seed, stream, row0, weights, has_weights):
    """Draw the row that becomes the next k-means++ centre, within one chunk.

    Parameters
    ----------
    X : ndarray of shape (n, D), float32 or float64, C-contiguous
        A chunk of rows; its first row is row ``row0`` of the data.
    shift : ndarray of shape (D,), float64
        Subtracted from each row (``centres`` are in the shifted coordinates).
    centres : ndarray of shape (j, D), float64
        Centres chosen so far (``j >= 1``).
    seed : uint64
        The random seed of this draw.
    stream : int
        Which draw this is (the round), so that rounds use independent numbers.
    row0 : int
        Global index of the chunk's first row.
    weights : ndarray of shape (n,), float64
        The rows' weights (read only when ``has_weights``; any 1-D array otherwise): a row is drawn
        with probability proportional to ``w d**2`` (scikit-learn's ``kmeans_plusplus`` with
        ``sample_weight``), so rows of weight 0 never are.
    has_weights : bool

    Returns
    -------
    key : float
        The smallest key in the chunk (``inf`` when every row of positive weight sits on a centre).
    row : int
        The global index of the row with that key (the first such row on ties), or -1.

    Notes
    -----
    The rows are taken a tile of ``TILE_ROWS`` at a time (:func:`nearest_blocks`, one contiguous run of blocks
    per thread), in three steps: each row's squared distance to its nearest centre (vectorised
    over the rows by :func:`nearest_tile`, from the tile's rows loaded as columns,
    and added up from 0 in feature order: a row-by-row sum over the features vectorised only by regrouping it,
    which would follow the CPU's vector width); each row's uniform and the lower bound
    ``(1 - u) / (w d**2)`` of its key, vectorised over the rows; then, row by row, the key
    ``-log(u) / (w d**2)``, correctly rounded, of only the rows whose bound does not already lose to the
    best key so far. A row's key depends on that row
    alone, and the draw is the smallest key (the first row on ties), so neither the split of the rows nor
    the order in which the parallel tasks run can change it.
    """
    n = X.shape[0]
    nblocks = (n + BLOCK_ROWS - 1) // BLOCK_ROWS
    keys = np.full(nblocks, np.inf)
    rows = np.full(nblocks, -1, dtype=np.int64)
    seed, stream, row0 = np.uint64(seed), np.int64(stream), np.int64(row0)
    run_slots(nearest_blocks, nblocks, n_slots(),
              lambda g: (X, shift, centres, weights, has_weights, DRAW, seed, stream, row0, _NO_BLOCKS, _NO_BLOCKS,
                         _NO_ROWS, keys, rows, _NO_VALUES, _NO_ROWS, np.int64(BLOCK_ROWS)))
    if nblocks == 0:
        return np.inf, -1
    b = int(np.argmin(keys))  # the first block of the smallest key
    return float(keys[b]), int(rows[b])


def stats_size(K, D):
    """Statistics per block: ``[sum w, sum w d2_min, sum w (K), sum w y (K, D)]``."""
    return 2 + K + K * D


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
    nblocks = (X.shape[0] + block_rows - 1) // block_rows
    run_slots(nearest_blocks, nblocks, n_slots(),
              lambda g: (X, shift, centres, weights, has_weights, LLOYD, np.uint64(0), np.int64(0), np.int64(0),
                         partials, far, far_row, _NO_VALUES, _NO_ROWS, _NO_VALUES, _NO_ROWS, np.int64(block_rows)))


def nearest_centre(X, shift, centres, d2, nearest):
    """Squared distance of each row to its nearest centre, and that centre's index (the first on ties).

    Parameters
    ----------
    X : ndarray of shape (n, D), float32 or float64, C-contiguous
    shift : ndarray of shape (D,), float64
        Subtracted from each row (``centres`` are in the shifted coordinates).
    centres : ndarray of shape (m, D), float64, m >= 1
    d2 : ndarray of shape (n,), float64
        Output.
    nearest : ndarray of shape (n,), int64
        Output.

    Notes
    -----
    Tiles of ``TILE_ROWS`` rows, contiguous runs of blocks of them on each thread (:func:`nearest_blocks`), go through
    :func:`nearest_tile`: vectorised over
    the rows, no branch per row and centre; each row's distance is added up in feature order as one row
    at a time would, so the result is the same bits for any split of the rows.
    """
    nblocks = (X.shape[0] + BLOCK_ROWS - 1) // BLOCK_ROWS
    run_slots(nearest_blocks, nblocks, n_slots(),
              lambda g: (X, shift, centres, _NO_WEIGHTS, False, NEAREST, np.uint64(0), np.int64(0), np.int64(0),
                         _NO_BLOCKS, _NO_BLOCKS, _NO_ROWS, _NO_VALUES, _NO_ROWS, d2, nearest, np.int64(BLOCK_ROWS)))
