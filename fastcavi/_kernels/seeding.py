"""k-means++ seeding that streams: one pass over the data per new centre.

Classic k-means++ keeps every point's distance to its nearest centre (O(N)
memory). Here each pass recomputes that distance against the centres chosen so
far and draws the next centre with probability proportional to it using
exponential keys (Efraimidis & Spirakis): point ``i`` gets the key
``-log(u_i) / (w_i d_i**2)`` (``w_i = 1`` without weights) and the smallest key wins. ``u_i`` comes from a counter-based
hash of (seed, round, row index), so the draw is the same for any chunking and
thread count, and memory is O(K x D).
"""
import numpy as np
from numba import njit

from .._config import BLOCK_ROWS, CACHE
from ._threads import n_slots, run_slots
from .exactsum import _insert_bits
from .kmeans import TILE_ROWS, nearest_tile

# The kernels here are compiled without fast-math flags: each row's
# result (a distance, a key, a uniform) then depends on that row alone, with no reassociation and no
# vectorised maths library, so any split of the rows into chunks, and a process that compiled the kernel or
# loaded it from the cache, give the same bits.
_EXACT_JIT = dict(cache=CACHE, nogil=True, error_model="numpy")


@njit(inline="always")
def splitmix64(x):
    """The splitmix64 finaliser: a well-mixed 64-bit hash of ``x`` (uint64)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@njit(inline="always")
def uniform_from_hash(seed, stream, index):
    """A uniform draw in (0, 1) determined by (seed, stream, index) alone."""
    h = splitmix64(splitmix64(seed ^ splitmix64(np.uint64(stream))) + np.uint64(index))
    return (np.float64(h >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)


@njit(**_EXACT_JIT)
def draw_blocks(X, shift, centres, seed, stream, row0, weights, has_weights, keys, rows, b0, b1):
    """:func:`kmeanspp_draw` for blocks ``b0 .. b1 - 1`` (one call per thread): ``keys[b]`` and ``rows[b]`` get
    block b's best key and its row where it beats the earlier blocks of the run (they stay ``inf`` and -1
    otherwise).

    The scratch is allocated once per run, not per block (an allocation per 256 rows was a third of a
    pass at D = 2), and the run's best key so far prunes its later blocks: the smallest key over the
    blocks, the first on ties, is still the smallest key over the rows.
    """
    n, D = X.shape
    B = BLOCK_ROWS
    T = TILE_ROWS
    Y = np.empty((D, T))
    A = np.empty((4, T))
    d2 = np.empty(T)
    arg = np.empty(T, dtype=np.int64)
    u = np.empty(T)
    bound = np.empty(T)
    carried = np.inf  # the run's best key so far: a row that cannot beat it cannot be the draw
    for b in range(b0, b1):
        best = carried
        best_row = -1
        threshold = best * (1.0 + 1e-9)
        stop = min(n, (b + 1) * B)
        for t0 in range(b * B, stop, T):
            m = min(T, stop - t0)
            nearest_tile(X, t0, m, shift, centres, Y, A, d2, arg)
            if has_weights:
                for i in range(m):
                    d2[i] *= weights[t0 + i]
            for i in range(m):
                ui = uniform_from_hash(seed, stream, row0 + t0 + i)
                u[i] = ui
                bound[i] = (1.0 - ui) / d2[i]  # +inf on a centre (or at weight 0)
            # -log(u) >= 1 - u, so a row whose bound (1 - u) / d2 on its key already exceeds the best key cannot
            # win: skip its log (a scalar libm call). The margin covers the rounding of both sides, so the rows
            # skipped are exactly rows that lose: the draw is unchanged.
            threshold = best * (1.0 + 1e-9)
            for i in range(m):
                if d2[i] > 0.0 and bound[i] <= threshold:
                    key = -np.log(u[i]) / d2[i]
                    if key < best:
                        best = key
                        best_row = row0 + t0 + i
                        threshold = best * (1.0 + 1e-9)
        if best_row >= 0:  # the block's best beats every earlier block's of the run
            keys[b] = best
            rows[b] = best_row
            carried = best


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
    The rows are taken a tile of ``TILE_ROWS`` at a time (:func:`draw_blocks`, one contiguous run of blocks
    per thread), in three steps: each row's squared distance to its nearest centre (vectorised
    over the rows by :func:`~fastcavi._kernels.kmeans.nearest_tile`, from the tile's rows loaded as columns,
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
    run_slots(draw_blocks, nblocks, n_slots(),
              lambda g: (X, shift, centres, seed, stream, row0, weights, has_weights, keys, rows))
    if nblocks == 0:
        return np.inf, -1
    b = int(np.argmin(keys))  # the first block of the smallest key
    return float(keys[b]), int(rows[b])


# -- k-means|| (Bahmani et al., 2012): the per-row steps ----------------------------------------------


@njit(**_EXACT_JIT)
def nearest_tiles(X, shift, centres, d2, nearest, t0, t1):
    """:func:`nearest_centre` for tiles ``t0 .. t1 - 1`` of ``TILE_ROWS`` rows (one call per thread)."""
    n, D = X.shape
    T = TILE_ROWS
    Y = np.empty((D, T))
    A = np.empty((4, T))
    best = np.empty(T)
    arg = np.empty(T, dtype=np.int64)
    for t in range(t0, t1):
        row0 = t * T
        m = min(T, n - row0)
        nearest_tile(X, row0, m, shift, centres, Y, A, best, arg)
        for i in range(m):
            d2[row0 + i] = best[i]
            nearest[row0 + i] = arg[i]


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
    Tiles of ``TILE_ROWS`` rows, contiguous runs of them on each thread (:func:`nearest_tiles`), go through
    :func:`~fastcavi._kernels.kmeans.nearest_tile`: vectorised over
    the rows, no branch per row and centre; each row's distance is added up in feature order as one row
    at a time would, so the result is the same bits for any split of the rows.
    """
    ntiles = (X.shape[0] + TILE_ROWS - 1) // TILE_ROWS
    run_slots(nearest_tiles, ntiles, n_slots(), lambda g: (X, shift, centres, d2, nearest))


@njit(**_EXACT_JIT)
def hashed_uniforms(seed, stream, row0, out):
    """``out[i]`` = the uniform draw of (seed, stream, global row ``row0 + i``): see :func:`uniform_from_hash`."""
    for i in range(out.shape[0]):
        out[i] = uniform_from_hash(seed, stream, row0 + i)


@njit(**_EXACT_JIT)
def weighted_key_draw(weights, seed, stream, row0):
    """A row drawn with probability proportional to its weight (exponential keys ``-log(u_i) / w_i``).

    Returns
    -------
    key : float
        The smallest key (``inf`` when every weight is 0).
    row : int
        Its global row (the first on ties), or -1.
    """
    best = np.inf
    best_row = -1
    for i in range(weights.shape[0]):
        if weights[i] > 0.0:
            key = -np.log(uniform_from_hash(seed, stream, row0 + i)) / weights[i]
            if key < best:
                best = key
                best_row = row0 + i
    return best, best_row


@njit(**_EXACT_JIT)
def exact_add_at(values, index, acc):
    """Add ``values[i]`` to statistic ``index[i]`` of the exact accumulator ``acc`` (:mod:`.exactsum`), row by row.

    An exact accumulator's result does not depend on the order or the grouping of its insertions, so this is
    the sum of any split of the rows into parts.
    """
    bits = values.view(np.uint64)
    for i in range(values.shape[0]):
        _insert_bits(acc, index[i], bits[i])
