"""Random numbers from a counter-based hash, and the seeding kernels that need no nearest centre.

Each random number of the seeding is a hash of (seed, round, row index) (:func:`uniform_from_hash`), so a
draw is the same for any chunking and thread count: the k-means++ draw
(:func:`fastcavi._kernels.nearest.kmeanspp_draw`) uses it for its keys, k-means|| here for its
per-row uniforms (:func:`hashed_uniforms`) and its first centre (:func:`weighted_key_draw`).
"""
import numpy as np
from numba import njit

from .._config import CACHE
from .exactsum import _insert_bits

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


# -- k-means|| (Bahmani et al., 2012): the per-row steps ----------------------------------------------


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
