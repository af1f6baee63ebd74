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
