"""Where CAVI starts: the initial means (k-means++, k-means, the seed's random assignments, random
rows), scikit-learn's starts from responsibilities (:class:`ResponsibilityStart`), the initial
state they give each family, and the state a warm start continues from.

Every method of choosing means streams over the data in chunks and draws its random numbers either
from ``rng`` (a handful per fit) or from a counter-based hash of the row index, so
the result depends on the seed alone: never on the chunk size or thread count.
"""
import numpy as np

from ._config import BLOCK_ROWS

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
    ``BLOCK_ROWS`` rows and added in block order (chunk-size invariant). A cluster
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
    D = source.n_features
    seed = np.uint64(rng.integers(0, 2**63))
    sums = np.zeros((K, D))
    counts = np.zeros(K)
    for row0, chunk in source.chunks(chunk_rows):
        n = chunk.shape[0]
        idx = np.arange(row0, row0 + n, dtype=np.uint64)
        labels = (_splitmix64(idx ^ _splitmix64(np.full(n, seed))) % np.uint64(K)).astype(np.int64)
        block = (np.arange(n) // BLOCK_ROWS)
        nb = int(block[-1]) + 1
        key = block * K + labels
        x = chunk.astype(np.float64, copy=False)
        part = np.stack([np.bincount(key, weights=x[:, d], minlength=nb * K) for d in range(D)], axis=1)
        part = part.reshape(nb, K, D)
        cnt = np.bincount(key, minlength=nb * K).reshape(nb, K)
        for b in range(nb):
            sums += part[b]
            counts += cnt[b]
    means = np.empty((K, D))
    for k in range(K):
        if counts[k] > 0:
            means[k] = sums[k] / counts[k]
        else:
            means[k] = source.rows([rng.integers(source.n_samples)])[0]
    return means


def random_rows(source, K, rng):
    """K distinct rows drawn uniformly at random, as (K, D) float64 (the order of the draw)."""
    idx = rng.choice(source.n_samples, size=K, replace=False)
    order = np.argsort(idx)
    rows = np.empty((K, source.n_features))
    rows[order] = source.rows(idx[order])
    return rows


def kmeans_plusplus(source, K, rng, chunk_rows, shift):
    """k-means++ seeding (Arthur & Vassilvitskii), one streaming pass per centre.

    The first centre is a uniformly random row; each next one is drawn with
    probability proportional to the squared distance to the nearest centre so far,
    with the compiled exponential-key sampler of :mod:`fastcavi._kernels.seeding`.
    When every row coincides with a centre (fewer distinct rows than K), the
    remaining centres are random rows.

    Returns
    -------
    centres : ndarray of shape (K, D), data coordinates
    """
    return kmeans_plusplus_rows(source, K, rng, chunk_rows, shift)[1]


def kmeans_plusplus_rows(source, K, rng, chunk_rows, shift):
    """:func:`kmeans_plusplus`, with the indices of the rows it chose.

    Returns
    -------
    rows : ndarray of shape (K,), int64
        The index of each centre's row.
    centres : ndarray of shape (K, D), data coordinates
    """
    from ._kernels.seeding import kmeanspp_draw

    rows = [int(rng.integers(source.n_samples))]
    centres = [source.rows(rows)[0] - shift]
    for j in range(1, K):
        seed = np.uint64(rng.integers(0, 2**63))
        current = np.ascontiguousarray(np.array(centres))
        best_key, best_row = np.inf, -1
        for row0, chunk in source.chunks(chunk_rows):
            key, row = kmeanspp_draw(chunk, shift, current, seed, j, row0)
            if key < best_key:
                best_key, best_row = key, row
        if best_row < 0:
            best_row = rng.integers(source.n_samples)
        rows.append(int(best_row))
        centres.append(source.rows([best_row])[0] - shift)
    return np.array(rows, dtype=np.int64), np.array(centres) + shift


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
    from ._models.base import round_accumulator
    from ._passes import lloyd_pass

    shift = summary.mean
    seeds = kmeans_plusplus(source, K, rng, chunk_rows, shift)
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


def nearest_mean_resp(means_model):
    """``given(row0, rows, shift)``: the hard assignment of each row to its nearest mean (model coordinates).

    Ties go to the lowest component index.
    """
    means_model = np.asarray(means_model, dtype=np.float64)
    K = means_model.shape[0]
    eye = np.eye(K)
    mm = np.einsum("kd,kd->k", means_model, means_model)

    def given(row0, rows, shift):
        y = np.asarray(rows, dtype=np.float64) - shift
        d2 = np.einsum("nd,nd->n", y, y)[:, None] - 2.0 * y @ means_model.T + mm[None, :]
        return np.ascontiguousarray(eye[np.argmin(d2, axis=1)])

    return given


def warm_state(previous, model):
    """The previous result's state in this model's coordinates (means move with the shift; exact when equal)."""
    from dataclasses import replace

    from .engine import freeze_state

    state = previous.state
    old = previous.model
    if np.array_equal(old.shift, model.shift) and _same_whitening(old, model):
        return state
    means = model._coords.to_model(old._coords.to_data(state.means))
    return freeze_state(replace(state, means=means))


def _same_whitening(a, b):
    wa, wb = a.to_dict()["whiten"], b.to_dict()["whiten"]
    return (wa is None and wb is None) or (wa is not None and wb is not None and np.array_equal(wa, wb))


class ResponsibilityStart:
    """scikit-learn's starts (the estimator's ``init_params``): an M-step from responsibilities.

    Internal: :func:`fastcavi._validation.estimator_init_params` makes one from
    ``init_params`` and passes it to :func:`fastcavi.fit` as ``init``. The responsibilities are
    drawn afresh for every initialisation (:func:`start_responsibilities`):

    * ``"k-means++"``: one-hot on the K rows k-means++ seeding chooses (row ``i_k`` is
      component k's only row; every other row has responsibility 0);
    * ``"random_from_data"``: the same on K distinct rows drawn uniformly;
    * ``"random"``: soft, uniform draws normalised per row, from a hash of (seed, row, k).

    Parameters
    ----------
    method : {"k-means++", "random", "random_from_data"}
    """

    METHODS = ("k-means++", "random", "random_from_data")

    __slots__ = ("method",)

    def __init__(self, method):
        if method not in self.METHODS:
            raise ValueError(f"Unknown responsibility start {method!r}; expected one of {self.METHODS}.")
        self.method = method

    def __eq__(self, other):
        return isinstance(other, ResponsibilityStart) and other.method == self.method

    def __hash__(self):
        return hash(("ResponsibilityStart", self.method))

    def __repr__(self):
        return f"ResponsibilityStart({self.method!r})"


class OneHotRows:
    """``given(row0, rows, shift)``: responsibility 1 of component k on row ``rows_k`` alone, 0 elsewhere.

    Picklable (a Dask task builds its chunk's responsibilities with it).
    """

    def __init__(self, rows, K):
        self.rows = np.asarray(rows, dtype=np.int64)
        self.K = int(K)

    def __call__(self, row0, rows, shift):
        n = rows.shape[0]
        R = np.zeros((n, self.K))
        for k, i in enumerate(self.rows):
            if row0 <= i < row0 + n:
                R[i - row0, k] = 1.0
        return R


class HashedUniform:
    """``given(row0, rows, shift)``: uniform draws in (0, 1) normalised per row (scikit-learn's "random").

    The draw of (row i, component k) is a hash of (seed, i K + k): the same for any chunking.
    Picklable.
    """

    def __init__(self, seed, K):
        self.seed = np.uint64(seed)
        self.K = int(K)

    def __call__(self, row0, rows, shift):
        n, K = rows.shape[0], self.K
        index = np.arange(row0, row0 + n, dtype=np.uint64)[:, None] * np.uint64(K) + np.arange(K, dtype=np.uint64)
        h = _splitmix64(_splitmix64(index ^ _splitmix64(np.full(1, self.seed))))
        u = ((h >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)
        total = u[:, 0].copy()
        for k in range(1, K):  # a fixed order per row, whatever the chunk
            total += u[:, k]
        return np.ascontiguousarray(u / total[:, None])


def start_responsibilities(start, source, K, rng, chunk_rows, shift):
    """The ``given`` responsibilities of a :class:`ResponsibilityStart` (draws from ``rng``)."""
    if start.method == "random":
        return HashedUniform(rng.integers(0, 2**63), K)
    if start.method == "random_from_data":
        return OneHotRows(rng.choice(source.n_samples, size=K, replace=False), K)
    return OneHotRows(kmeans_plusplus_rows(source, K, rng, chunk_rows, shift)[0], K)


def initial_state(model, init, resp0, source, weights, K, rng, chunk_rows, summary):
    """The variational state CAVI starts from (see ``init`` and ``init_responsibilities`` in :func:`fit`)."""
    from . import engine
    from ._passes import estep_pass

    if resp0 is not None:  # scikit-learn's start: an M-step from given responsibilities
        return model.update(engine.responsibility_stats(model, source, resp0, sample_weight=weights,
                                                        chunk_size=chunk_rows))
    if isinstance(init, ResponsibilityStart):  # the estimator's: an M-step from drawn responsibilities
        given = start_responsibilities(init, source, K, rng, chunk_rows, summary.mean)
    else:
        means = initial_means(init, source, K, rng, chunk_rows, summary, weights)
        if model.covariance_type == "identity":
            return model.state_from_means(means)
        # the Wishart families start with an M-step from the hard assignment to the nearest initial mean
        given = nearest_mean_resp(model._coords.to_model(means))
    stats, _ = estep_pass(source, weights, model._coords, model.layout, engine._dummy_coeffs(model), chunk_rows,
                          given=given)
    return model.update(stats)


def initial_means(init, source, K, rng, chunk_rows, summary, weights=None):
    """The initial means (K, D) in data coordinates, by the method ``init`` (or ``init`` itself)."""
    if isinstance(init, np.ndarray):
        return init
    if init == "random":
        return random_assignment_means(source, K, rng, chunk_rows)
    if init == "random_from_data":
        return random_rows(source, K, rng)
    if init == "kmeans":
        return kmeans(source, weights, K, rng, chunk_rows, summary)[0]
    return kmeans_plusplus(source, K, rng, chunk_rows, summary.mean)
