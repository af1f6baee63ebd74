"""k-means as scikit-learn's ``KMeans(n_init=1)`` runs it: k-means++ seeds, then Lloyd's iterations, one
compiled streaming pass each, from exact sums (the same centres for any chunk size and thread count)."""
import numpy as np

from .seeding import kmeans_plusplus


#: scikit-learn's ``KMeans`` defaults: at most 300 Lloyd iterations, and the tolerance on the
#: centres' total squared move is 1e-4 times the mean of the per-feature variances.
KMEANS_MAX_ITER = 300
KMEANS_TOL = 1e-4


def kmeans(source, weights, K, rng, chunk_rows, summary, max_iter=KMEANS_MAX_ITER):
    """k-means as scikit-learn's ``KMeans(n_init=1)``: k-means++ seeds, then Lloyd's iterations.

    Returns
    -------
    centres : ndarray of shape (K, D), data coordinates
    n_iter : int
        Lloyd iterations run.
    """
    from .._models.base import round_accumulator
    from .._passes import lloyd_pass

    shift = summary.mean
    seeds = kmeans_plusplus(source, K, rng, chunk_rows, shift, weights)
    workspace = None

    def one_pass(centres):
        nonlocal workspace
        acc, far, workspace = lloyd_pass(source, weights, centres, shift, chunk_rows, workspace)
        return np.array(round_accumulator(acc)), far

    return lloyd(one_pass, lambda i: source.rows([i])[0], seeds, shift, kmeans_tolerance(summary), max_iter)


def kmeans_tolerance(summary):
    """scikit-learn's ``KMeans`` tolerance: ``KMEANS_TOL`` times the mean per-feature (weighted) variance."""
    scatter = summary.scatter
    variances = (np.diag(scatter) if scatter.ndim == 2 else scatter) / summary.count
    return KMEANS_TOL * float(np.mean(variances))


def lloyd(one_pass, row, centres, shift, tol, max_iter=KMEANS_MAX_ITER):
    """Lloyd's iterations from ``centres``, one compiled streaming pass each.

    Each pass assigns every row to its nearest centre (ties: the lowest index) and takes the
    weighted mean of each cluster, from exact sums: the centres are the same bits for any
    chunk size and thread count. It stops when the centres' total squared move is at most
    ``tol`` (scikit-learn's rule; labels that stop changing give a move of exactly 0) or after
    ``max_iter`` iterations. An empty cluster is handled as scikit-learn does, one per
    iteration: the lowest-numbered empty cluster moves to the row of positive weight farthest
    from its centre (the lowest row index on ties), which leaves its old cluster; other empty
    clusters keep their centre until a later iteration.

    Parameters
    ----------
    one_pass : callable
        ``one_pass(centres) -> (sums, far)``: :func:`fastcavi._passes.lloyd_pass`'s sums (rounded)
        and farthest row, for centres in the coordinates ``x - shift``.
    row : callable
        ``row(i)``: row ``i`` of the data, float64, data coordinates.
    centres : ndarray of shape (K, D)
        Data coordinates.
    shift : ndarray of shape (D,)
        The point the passes work about (the data mean: keeps the sums accurate).
    tol : float
    max_iter : int

    Returns
    -------
    centres : ndarray of shape (K, D), data coordinates
    n_iter : int
    """
    K, D = centres.shape
    c = np.asarray(centres, dtype=np.float64) - shift
    it = 0
    for it in range(1, max_iter + 1):
        sums, (far, _, w, old) = one_pass(c)
        counts = sums[2:2 + K].copy()
        S1 = sums[2 + K:].reshape(K, D).copy()
        empty = np.flatnonzero(counts <= 0.0)
        if empty.size and far >= 0:  # scikit-learn's relocation of an empty cluster
            x = row(far) - shift
            S1[old] -= w * x
            counts[old] -= w
            S1[empty[0]] = w * x
            counts[empty[0]] = w
        new = c.copy()
        filled = counts > 0.0
        new[filled] = S1[filled] / counts[filled, None]
        move = float(np.sum((new - c) ** 2))
        c = new
        if move <= tol:
            break
    return c + shift, it


def lloyd_chunk(chunk, weights, row0, centres, shift, chunk_size=None):
    """One chunk's part of a Lloyd pass (:func:`fastcavi._passes.lloyd_pass`) over any row split (a Dask task's
    block): its exact sums and its farthest row, as one float64 array (:func:`merge_lloyd` adds up chunks').

    Returns
    -------
    ndarray
        The serialised exact accumulator of the sums, then ``[row, d2, weight, cluster]`` of the chunk's
        farthest row (its global index ``row0 + i``; -1 when every weight is 0).
    """
    from .._io.sources import DataSource, WeightSource
    from .._kernels.nearest import stats_size
    from .._models.base import accumulator_to_floats
    from .._passes import chunk_rows, lloyd_pass

    source = DataSource(chunk)
    weights = None if weights is None else WeightSource(weights, source.n_samples)
    K, D = centres.shape
    rows = chunk_rows(chunk_size, source, 8 * (D + 1 + stats_size(K, D)))
    acc, (far, d2, w, k), _ = lloyd_pass(source, weights, centres, shift, rows)
    return np.concatenate((accumulator_to_floats(acc), [row0 + far if far >= 0 else -1, d2, w, k]))


def merge_lloyd(parts):
    """Merge consecutive chunks' Lloyd sums exactly; the farthest row of the first chunk that has it wins ties."""
    from .._kernels.exactsum import WINDOW
    from .._models.base import accumulator_from_floats, accumulator_to_floats, merge_accumulators

    size = (parts[0].shape[0] - 4) // (1 + 2 * WINDOW)
    acc = accumulator_from_floats(parts[0][:-4], size)
    far = parts[0][-4:]
    for p in parts[1:]:
        acc = merge_accumulators(acc, accumulator_from_floats(p[:-4], size))
        if p[-4] >= 0 and p[-3] > far[1]:
            far = p[-4:]
    return np.concatenate((accumulator_to_floats(acc), far))


def lloyd_passes(run_pass, row, centres, shift, tol, chunk_size=None, max_iter=KMEANS_MAX_ITER):
    """:func:`lloyd` over any row split (``run_pass`` as in :func:`fastcavi._init.seeding.local_passes`): one pass
    of :func:`lloyd_chunk` an iteration, whose sums are merged exactly, so that the centres are those of the local
    passes over the same rows."""
    from .._kernels.exactsum import WINDOW
    from .._models.base import accumulator_from_floats, round_accumulator

    def one_pass(c):
        flat = run_pass(lloyd_chunk, (c, shift, chunk_size), merge_lloyd)
        acc = accumulator_from_floats(flat[:-4], (flat.shape[0] - 4) // (1 + 2 * WINDOW))
        far = flat[-4:]
        return np.array(round_accumulator(acc)), (int(far[0]), float(far[1]), float(far[2]), int(far[3]))

    return lloyd(one_pass, row, centres, shift, tol, max_iter)
