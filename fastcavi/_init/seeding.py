"""Initial means by seeding: k-means++, k-means||, the seed's random assignments, random rows.

Every method streams over the data in chunks and draws its random numbers either from ``rng`` (a
handful per fit) or from a counter-based hash of the row index, so the result depends on the seed
alone: never on the chunk size or thread count. Each is written against a ``run_pass`` function
(:func:`local_passes`, or the Dask fit's), so that the local fit and the Dask fit run the same code.
"""
import numpy as np

from .. import _progress
from .._config import BLOCK_ROWS

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x):
    """Vectorised splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def random_assignment_means(source, K, rng, chunk_rows):
    """The seed's initialisation: each row gets a uniformly random cluster; return the cluster means.

    Labels come from a hash of (seed, row index). Sums are taken per block of
    ``BLOCK_ROWS`` rows and added in block order (chunk-size invariant), in one compiled
    pass (:mod:`fastcavi._kernels.assignment`). A cluster
    that receives no row (only possible when N is tiny) gets a random row instead.

    Parameters
    ----------
    source : DataSource
    K : int
    rng : numpy.random.Generator
    chunk_rows : int

    Returns
    -------
    means : ndarray of shape (K, D), data coordinates
    """
    return random_assignment_passes(local_passes(source, None, chunk_rows), source.rows, source.n_samples, K, rng)


def random_assignment_passes(run_pass, read_rows, n_samples, K, rng):
    """:func:`random_assignment_means` over any row split: ``run_pass`` as in :func:`local_passes`.

    Each chunk returns its blocks' label sums and counts; they are added on the caller, block by
    block in row order, so that chunks of whole blocks (the local fit's, or a Dask array's aligned
    chunks) give the same bits.
    """
    seed = np.uint64(rng.integers(0, 2**63))
    blocks = run_pass(random_assignment_chunk, (seed, K), np.concatenate, "random assignments")
    from .._kernels.assignment import add_blocks

    D = blocks.shape[2] - 1
    sums = np.zeros((K, D))
    counts = np.zeros(K)
    add_blocks(np.ascontiguousarray(blocks[:, :, :D]), np.ascontiguousarray(blocks[:, :, D]), blocks.shape[0],
               sums, counts)  # in block order
    means = np.empty((K, D))
    for k in range(K):
        if counts[k] > 0:
            means[k] = sums[k] / counts[k]
        else:
            means[k] = read_rows([rng.integers(n_samples)])[0]
    return means


def random_assignment_chunk(chunk, weights, row0, seed, K):
    """One chunk's part of :func:`random_assignment_passes`: shape (blocks, K, D + 1), sums then the count.

    One compiled pass (:func:`fastcavi._kernels.assignment.assignment_sums`): each block's rows are
    added in row order from 0.0, so chunks of whole blocks give the same bits.
    """
    from .._kernels.assignment import assignment_sums
    from .._passes import _read_only

    n, D = chunk.shape
    nb = -(-n // BLOCK_ROWS)
    part, cnt = np.empty((nb, K, D)), np.empty((nb, K))
    seed_hash = _splitmix64(np.array([seed], dtype=np.uint64))[0]
    assignment_sums(_read_only(np.ascontiguousarray(chunk)), row0, seed_hash, K, BLOCK_ROWS, part, cnt)
    out = np.empty((nb, K, D + 1))
    out[:, :, :D] = part
    out[:, :, D] = cnt
    return out


def local_passes(source, weights, chunk_rows):
    """``run_pass(fn, args, combine, name=None)``: ``combine([fn(chunk, weights, row0, *args) for each chunk])``.

    The seeding methods below are written against such a function, so that the local fit (this
    one, chunk after chunk) and the Dask fit (one task per chunk, combined through a fixed tree in
    chunk order, :mod:`fastcavi.dask`) run the same code; ``combine`` is associative, so that the
    grouping does not matter. ``name`` names the pass in the progress output (:mod:`fastcavi._progress`).
    """
    def run_pass(fn, args, combine, name=None):
        wchunks = None if weights is None else weights.chunks(chunk_rows)
        tick = None if name is None else _progress.track(name, source.n_samples)
        parts = []
        for row0, chunk in source.chunks(chunk_rows):
            w = None if wchunks is None else next(wchunks)[1]
            parts.append(fn(chunk, w, row0, *args))
            if tick is not None:
                tick(chunk.shape[0])
        return combine(parts)

    return run_pass


def random_rows(source, K, rng):
    """K distinct rows drawn uniformly at random, as (K, D) float64 (the order of the draw)."""
    idx = rng.choice(source.n_samples, size=K, replace=False)
    order = np.argsort(idx)
    rows = np.empty((K, source.n_features))
    rows[order] = source.rows(idx[order])
    return rows


def kmeans_plusplus(source, K, rng, chunk_rows, shift, weights=None):
    """k-means++ seeding (Arthur & Vassilvitskii), one streaming pass per centre.

    The first centre is a uniformly random row; each next one is drawn with
    probability proportional to the squared distance to the nearest centre so far,
    with the compiled exponential-key sampler of :mod:`fastcavi._kernels.seeding`.
    With row weights (a :class:`~fastcavi._io.sources.WeightSource`), as scikit-learn's
    ``kmeans_plusplus`` with ``sample_weight``: the first centre is drawn in proportion
    to the weights (one more pass) and the next ones to ``w d**2``, so a row of weight 0
    is never a centre. When every row (of positive weight) coincides with a centre, the
    remaining centres are random rows.

    Returns
    -------
    centres : ndarray of shape (K, D), data coordinates
    """
    return kmeans_plusplus_rows(source, K, rng, chunk_rows, shift, weights)[1]


def kmeans_plusplus_rows(source, K, rng, chunk_rows, shift, weights=None):
    """:func:`kmeans_plusplus`, with the indices of the rows it chose.

    Returns
    -------
    rows : ndarray of shape (K,), int64
        The index of each centre's row.
    centres : ndarray of shape (K, D), data coordinates
    """
    return kmeans_plusplus_row_passes(local_passes(source, weights, chunk_rows), source.rows, source.n_samples, K,
                                      rng, shift, weights is not None)


def kmeans_plusplus_passes(run_pass, read_rows, n_samples, K, rng, shift, weighted=False):
    """:func:`kmeans_plusplus` over any row split (``run_pass`` as in :func:`local_passes`): the same bits."""
    return kmeans_plusplus_row_passes(run_pass, read_rows, n_samples, K, rng, shift, weighted)[1]


def kmeans_plusplus_row_passes(run_pass, read_rows, n_samples, K, rng, shift, weighted=False):
    """:func:`kmeans_plusplus_rows` over any row split (``run_pass`` as in :func:`local_passes`, whose chunks come
    with row weights when ``weighted``)."""
    first = -1
    if weighted:  # in proportion to the weights, as k-means||'s first candidate
        seed = np.uint64(rng.integers(0, 2**63))
        first = int(run_pass(first_candidate_chunk, (seed,), earliest_smallest_key, "k-means++ centre 1")[1])
    rows = [first if first >= 0 else int(rng.integers(n_samples))]
    centres = [read_rows(rows)[0] - shift]
    for j in range(1, K):
        seed = np.uint64(rng.integers(0, 2**63))
        current = np.ascontiguousarray(np.array(centres))
        best_row = int(run_pass(kmeanspp_chunk, (shift, current, seed, j), earliest_smallest_key,
                                f"k-means++ centre {j + 1}/{K}")[1])
        if best_row < 0:
            best_row = rng.integers(n_samples)
        rows.append(int(best_row))
        centres.append(read_rows([best_row])[0] - shift)
    return np.array(rows, dtype=np.int64), np.array(centres) + shift


def _read_only_weights(weights):
    """The chunk's weights as a read-only float64 array (one compiled kernel type), or the passes' placeholder."""
    from .._passes import _NO_WEIGHTS_IN, _read_only

    return _NO_WEIGHTS_IN if weights is None else _read_only(np.ascontiguousarray(weights, dtype=np.float64))


def kmeanspp_chunk(chunk, weights, row0, shift, centres, seed, j):
    """One chunk's k-means++ draw (in proportion to ``w d**2``): ``[key, row]`` (float64; row -1 when every
    row of positive weight sits on a centre)."""
    from .._kernels.nearest import kmeanspp_draw
    from .._passes import _read_only

    key, row = kmeanspp_draw(_read_only(np.ascontiguousarray(chunk)), np.array(shift, dtype=np.float64),
                             np.array(centres, dtype=np.float64), seed, j, row0, _read_only_weights(weights),
                             weights is not None)
    return np.array([key, row], dtype=np.float64)


def earliest_smallest_key(parts):
    """The ``[key, row]`` with the smallest key, the earliest part on ties (associative: any tree agrees)."""
    best = parts[0]
    for p in parts[1:]:
        if p[0] < best[0]:
            best = p
    return best


#: k-means||: rounds, and candidates drawn per round in units of K (Bahmani et al. use 5 and 2).
KMEANS_PARALLEL_ROUNDS = 5
KMEANS_PARALLEL_OVERSAMPLING = 2.0


def kmeans_parallel(run_pass, read_rows, n_samples, K, rng, shift, weighted, rounds=None, oversampling=None):
    """k-means|| seeding (Bahmani, Moseley, Vattani, Kumar and Vassilvitskii, 2012): ``rounds + 1`` passes
    (one more with weights).

    One row starts the candidate set (uniformly random; with weights, drawn in proportion to its
    weight, one pass). Each round takes the weighted cost ``phi = sum_n w_n d_n^2`` (``d_n``: the
    distance to the nearest candidate; summed exactly, so in any grouping) and adds every row
    independently with probability ``min(1, l w_n d_n^2 / phi)`` (``l = oversampling * K``), in one
    pass: the pass keeps, besides the cost, each chunk's few rows that the round could draw
    (:func:`cost_and_candidates_chunk`), and the draw among them follows once ``phi`` is known
    (:func:`draw_candidates`). A last pass weighs each candidate by the weight of the rows nearest
    to it; weighted k-means++ and Lloyd's iterations on the candidates (in memory) give the K
    means. Every random number of a pass is a hash of (seed, round, global row), so the local fit
    and any Dask chunking agree bit for bit.

    Parameters
    ----------
    run_pass : callable
        As made by :func:`local_passes` (or its Dask counterpart).
    read_rows : callable
        ``read_rows(sorted positions) -> (m, D) float64``.
    n_samples, K : int
    rng : numpy.random.Generator
    shift : ndarray of shape (D,)
        Distances are taken in ``x - shift`` coordinates (the data mean: keeps their precision).
    weighted : bool
        Whether the passes' chunks come with row weights.
    rounds : int, default :data:`KMEANS_PARALLEL_ROUNDS`
    oversampling : float, default :data:`KMEANS_PARALLEL_OVERSAMPLING`

    Returns
    -------
    means : ndarray of shape (K, D), data coordinates
    """
    rounds = KMEANS_PARALLEL_ROUNDS if rounds is None else int(rounds)
    ell = (KMEANS_PARALLEL_OVERSAMPLING if oversampling is None else float(oversampling)) * K
    shift = np.ascontiguousarray(shift, dtype=np.float64)
    seed = np.uint64(rng.integers(0, 2**63))
    if weighted:
        first = int(run_pass(first_candidate_chunk, (seed,), earliest_smallest_key, "k-means|| first candidate")[1])
    else:
        first = int(rng.integers(n_samples))
    centres = read_rows([first]) - shift
    for rnd in range(1, rounds + 1):
        phi, drawn = draw_candidates(run_pass(cost_and_candidates_chunk, (shift, centres, ell, seed, rnd),
                                              merge_candidates, f"k-means|| round {rnd}/{rounds}"), ell)
        if not phi > 0:
            break  # every row of positive weight sits on a candidate
        centres = np.concatenate((centres, drawn), axis=0)
    mass = exact_total(run_pass(assign_chunk, (shift, centres), merge_exact, "k-means|| candidate weights"))
    keep = mass > 0
    points, mass = centres[keep], mass[keep]
    if points.shape[0] < K:  # fewer distinct candidates than K: pad with random rows
        extra = np.sort(rng.choice(n_samples, size=K - points.shape[0], replace=False))
        return np.concatenate((points + shift, read_rows(extra)), axis=0)
    return weighted_kmeans(points, mass, K, rng) + shift


def _nearest(chunk, shift, centres):
    from .._kernels.nearest import nearest_centre
    from .._passes import _read_only

    n = chunk.shape[0]
    d2, nearest = np.empty(n), np.empty(n, dtype=np.int64)
    # read-only inputs, as in the passes: one compiled variant per float width (see fastcavi._compile)
    nearest_centre(_read_only(np.ascontiguousarray(chunk)), np.array(shift, dtype=np.float64),
                   np.array(centres, dtype=np.float64), d2, nearest)
    return d2, nearest


def _exact(values, index, size):
    from .._kernels.exactsum import EMPTY, WINDOW
    from .._kernels.seeding import exact_add_at
    from .._passes import _read_only

    acc = np.zeros((size, 1 + WINDOW), dtype=np.int64)
    acc[:, 0] = EMPTY
    exact_add_at(_read_only(np.ascontiguousarray(values, dtype=np.float64)),
                 np.ascontiguousarray(index, dtype=np.int64), acc)
    return acc


def merge_exact(parts):
    """The sum of exact accumulators (order and grouping do not matter)."""
    from .._kernels.exactsum import merge

    total = parts[0].copy()
    for p in parts[1:]:
        merge(total, p, total)
    return total


def exact_total(acc):
    """An exact accumulator rounded to float64, shape (S,)."""
    from .._kernels.exactsum import finalize

    out = np.empty(acc.shape[0])
    finalize(acc, out)
    return out


def _weights_of(weights, n):
    """The chunk's row weights (ones without weights), read-only float64: one compiled kernel type."""
    from .._passes import _read_only

    return _read_only(np.ones(n) if weights is None else np.ascontiguousarray(weights, dtype=np.float64))


def first_candidate_chunk(chunk, weights, row0, seed):
    """k-means||'s first candidate within a chunk, drawn in proportion to the row weights: ``[key, row]``."""
    from .._kernels.seeding import weighted_key_draw

    key, row = weighted_key_draw(_weights_of(weights, chunk.shape[0]), seed, 0, row0)
    return np.array([key, row], dtype=np.float64)


def cost_and_candidates_chunk(chunk, weights, row0, shift, centres, ell, seed, rnd):
    """One k-means|| round over a chunk: its cost ``sum w d^2`` (to the nearest candidate) and the rows the round
    could draw.

    The round draws row n when its hashed uniform ``u_n < (ell / phi) w_n d_n^2``, with ``phi`` the cost
    of all rows, known only after the pass. The chunk's own cost is at most ``phi`` (a sum of some of
    its non-negative terms, and rounding is monotone), so the rows under ``(ell / own cost) w_n d_n^2``,
    computed in the same order of operations, include every row the round draws: about ``ell`` a
    chunk, whatever its size. :func:`draw_candidates` then draws among them exactly, so the draw is the
    one a second pass with ``phi`` would make.

    Returns
    -------
    tuple
        ``(cost, rows - shift, u, w, d^2)``: the chunk's cost as an exact accumulator, then the kept
        rows (shifted, in row order), their uniforms, weights and squared distances.
    """
    from .._kernels.seeding import hashed_uniforms

    d2, _ = _nearest(chunk, shift, centres)
    # without weights, w = 1 changes no bits: 1 * d2 is d2, and (s * 1) * d2 is s * d2
    w = None if weights is None else _weights_of(weights, d2.size)
    cost = _exact(d2 if w is None else w * d2, np.zeros(d2.size, dtype=np.int64), 1)
    own = exact_total(cost)[0]
    u = np.empty(d2.size)
    hashed_uniforms(seed, rnd, row0, u)
    keep = np.empty(0, dtype=np.int64)  # a cost of 0: no row can be drawn
    if own > 0:
        with np.errstate(over="ignore", invalid="ignore"):  # ell / a tiny cost: inf (inf * 0 is NaN: not kept)
            scale = ell / own
            keep = np.flatnonzero(u < (scale * d2 if w is None else scale * w * d2))
    w_keep = np.ones(keep.size) if w is None else w[keep]
    return cost, np.asarray(chunk[keep], dtype=np.float64) - shift, u[keep], w_keep, d2[keep]


def merge_candidates(parts):
    """:func:`cost_and_candidates_chunk`'s parts in order: the costs added exactly, the kept rows concatenated
    (associative: any tree agrees)."""
    return (merge_exact([p[0] for p in parts]),) + tuple(np.concatenate([p[i] for p in parts]) for i in range(1, 5))


def draw_candidates(candidates, ell):
    """A round's draw from its pass (:func:`merge_candidates`'s result): ``(phi, drawn rows - shift)``.

    ``phi`` is the total cost; row n is drawn when ``u_n < (ell / phi) w_n d_n^2`` (probability
    ``min(1, ell w_n d_n^2 / phi)``), in row order; none when ``phi`` is 0.
    """
    cost, rows, u, w, d2 = candidates
    phi = exact_total(cost)[0]
    if not phi > 0:
        return phi, rows[:0]
    return phi, rows[u < (ell / phi) * w * d2]


def assign_chunk(chunk, weights, row0, shift, centres):
    """A chunk's weight nearest to each candidate, as exact accumulators (one per candidate)."""
    _, nearest = _nearest(chunk, shift, centres)
    return _exact(_weights_of(weights, nearest.size), nearest, centres.shape[0])


def weighted_kmeans(points, weights, K, rng, max_iter=100):
    """Weighted k-means++ on in-memory ``points``, then weighted Lloyd iterations: (K, D)."""
    m = points.shape[0]
    zero = np.zeros(points.shape[1])
    chosen = [int(rng.choice(m, p=weights / weights.sum()))]
    d2, _ = _nearest(points, zero, points[chosen])
    for _ in range(1, K):
        p = weights * d2
        total = p.sum()
        j = int(rng.choice(m, p=p / total)) if total > 0 else int(rng.integers(m))
        chosen.append(j)
        d2 = np.minimum(d2, _nearest(points, zero, points[[j]])[0])
    centres = points[chosen].copy()
    for _ in range(max_iter):
        _, nearest = _nearest(points, zero, centres)
        mass = np.bincount(nearest, weights=weights, minlength=K)
        sums = np.stack([np.bincount(nearest, weights=weights * points[:, d], minlength=K)
                         for d in range(points.shape[1])], axis=1)
        moved = np.where(mass[:, None] > 0, sums / np.where(mass > 0, mass, 1.0)[:, None], centres)
        if np.array_equal(moved, centres):
            break
        centres = moved
    return centres
