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
from numba import njit, prange

from .._config import BLOCK_ROWS, CACHE, PARALLEL_JIT
from .exactsum import _insert_bits
from .kmeans import TILE_ROWS, nearest_tile

_JIT = PARALLEL_JIT


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


@njit(**_JIT)
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
    """
    n, D = X.shape
    J = centres.shape[0]
    B = BLOCK_ROWS
    nblocks = (n + B - 1) // B
    keys = np.full(nblocks, np.inf)
    rows = np.full(nblocks, -1, dtype=np.int64)
    for b in prange(nblocks):
        start = b * B
        stop = min(n, start + B)
        best = np.inf
        best_row = -1
        for i in range(start, stop):
            d2min = np.inf
            for j in range(J):
                d2 = 0.0
                for d in range(D):
                    t = np.float64(X[i, d]) - shift[d] - centres[j, d]
                    d2 += t * t
                d2min = min(d2min, d2)
            if has_weights:
                d2min *= weights[i]
            if d2min > 0.0:
                u = uniform_from_hash(seed, stream, row0 + i)
                # -log(u) >= 1 - u, so a row whose (1 - u) / d2 already reaches the best key cannot win:
                # skip its log (a scalar libm call, most of a pass). The margin covers the rounding of
                # both sides, so the rows skipped are exactly rows that lose: the draw is unchanged.
                if (1.0 - u) / d2min > best * (1.0 + 1e-9):
                    continue
                key = -np.log(u) / d2min
                if key < best:
                    best = key
                    best_row = row0 + i
        keys[b] = best
        rows[b] = best_row
    best = np.inf
    best_row = -1
    for b in range(nblocks):
        if keys[b] < best:
            best = keys[b]
            best_row = rows[b]
    return best, best_row


# -- k-means|| (Bahmani et al., 2012): the per-row steps, without fast-math --------------------------
# These kernels give each row a result that depends on that row alone (no reassociation, no
# vectorised maths library), so any split of the rows into chunks gives the same bits.

_EXACT_JIT = dict(cache=CACHE, nogil=True, error_model="numpy")


@njit(parallel=True, **_EXACT_JIT)
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
    Tiles of ``TILE_ROWS`` rows run in parallel through
    :func:`~fastcavi._kernels.kmeans.nearest_tile` (vectorised over the rows, no branch per row
    and centre); each row's distance is added up in feature order as one row at a time would, so
    the result is the same bits for any split of the rows.
    """
    n, D = X.shape
    T = TILE_ROWS
    ntiles = (n + T - 1) // T
    for t in prange(ntiles):
        Y = np.empty((D, T))
        A = np.empty((4, T))
        best = np.empty(T)
        arg = np.empty(T, dtype=np.int64)
        row0 = t * T
        m = min(T, n - row0)
        nearest_tile(X, row0, m, shift, centres, Y, A, best, arg)
        for i in range(m):
            d2[row0 + i] = best[i]
            nearest[row0 + i] = arg[i]


@njit(parallel=True, **_EXACT_JIT)
def hashed_uniforms(seed, stream, row0, out):
    """``out[i]`` = the uniform draw of (seed, stream, global row ``row0 + i``): see :func:`uniform_from_hash`."""
    for i in prange(out.shape[0]):
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
    """Add ``values[i]`` to statistic ``index[i]`` of the exact accumulator ``acc`` (:mod:`.exactsum`)."""
    bits = values.view(np.uint64)
    for i in range(values.shape[0]):
        _insert_bits(acc, index[i], bits[i])
