"""Where CAVI starts: the initial means (k-means++, the seed's random assignments, random rows),
the initial state they give each family, and the state a warm start continues from.

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
    from ._kernels.assignment import add_blocks, assignment_sums

    D = source.n_features
    seed = np.uint64(rng.integers(0, 2**63))
    seed_hash = _splitmix64(np.array([seed], dtype=np.uint64))[0]
    sums = np.zeros((K, D))
    counts = np.zeros(K)
    nblocks = -(-chunk_rows // BLOCK_ROWS)
    part, cnt = np.empty((nblocks, K, D)), np.empty((nblocks, K))
    for row0, chunk in source.chunks(chunk_rows):
        assignment_sums(chunk, row0, seed_hash, K, BLOCK_ROWS, part, cnt)
        add_blocks(part, cnt, -(-chunk.shape[0] // BLOCK_ROWS), sums, counts)  # in block order
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
    from ._kernels.seeding import kmeanspp_draw

    centres = [source.rows([rng.integers(source.n_samples)])[0] - shift]
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
        centres.append(source.rows([best_row])[0] - shift)
    return np.array(centres) + shift


#: Rows per NumPy block of :func:`nearest_mean_resp` (at most): its temporaries stay in cache and are reused.
_NEAREST_ROWS = 4096
#: ... and at most this many multiply-adds per block's product, below which OpenBLAS runs a product on
#: one thread (its SMP threshold, 65536 x 4): waking its threads for each small block cost more than
#: the product (measured: 4x slower at D = 16 than one thread).
_NEAREST_MADDS = 2**18


def nearest_mean_resp(means_model):
    """``given(row0, rows, shift)``: the hard assignment of each row to its nearest mean (model coordinates).

    Ties go to the lowest component index. The squared distances are NumPy's
    ``|y|^2 - (2 y) M^T + |m|^2`` (the same operations, row by row, whatever the chunk), computed
    in blocks of at most ``_NEAREST_ROWS`` rows in buffers that are reused; the one-hot (n, K) array
    ``given`` returns is also a buffer, overwritten by its next call.
    """
    means_model = np.asarray(means_model, dtype=np.float64)
    K, D = means_model.shape
    mm = np.einsum("kd,kd->k", means_model, means_model)
    mt = means_model.T
    B = max(64, min(_NEAREST_ROWS, _NEAREST_MADDS // (K * D)))
    y, y2, sq = np.empty((B, D)), np.empty((B, D)), np.empty(B)
    d2, nearest = np.empty((B, K)), np.empty(B, dtype=np.intp)
    offsets = np.arange(B) * K
    out = [np.empty((0, K))]

    def given(row0, rows, shift):
        n = rows.shape[0]
        if out[0].shape[0] < n:
            out[0] = np.empty((n, K))
        resp = out[0][:n]
        resp.fill(0.0)
        flat = resp.reshape(-1)
        for a in range(0, n, B):
            m = min(B, n - a)
            yb, y2b, sqb, d2b, lab = y[:m], y2[:m], sq[:m], d2[:m], nearest[:m]
            np.subtract(rows[a:a + m], shift, out=yb, dtype=np.float64)
            np.einsum("nd,nd->n", yb, yb, out=sqb)
            np.multiply(2.0, yb, out=y2b)
            np.matmul(y2b, mt, out=d2b)
            np.subtract(sqb[:, None], d2b, out=d2b)
            np.add(d2b, mm[None, :], out=d2b)
            np.argmin(d2b, axis=1, out=lab)
            flat[a * K + offsets[:m] + lab] = 1.0
        return resp

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


def initial_state(model, init, resp0, source, weights, K, rng, chunk_rows, summary):
    """The variational state CAVI starts from (see ``init`` and ``init_responsibilities`` in :func:`fit`)."""
    from . import engine
    from ._passes import estep_pass

    if resp0 is not None:  # scikit-learn's start: an M-step from given responsibilities
        return model.update(engine.responsibility_stats(model, source, resp0, sample_weight=weights,
                                                        chunk_size=chunk_rows))
    means = initial_means(init, source, K, rng, chunk_rows, summary)
    if model.covariance_type == "identity":
        return model.state_from_means(means)
    # the Wishart families start with an M-step from the hard assignment to the nearest initial mean
    given = nearest_mean_resp(model._coords.to_model(means))
    stats, _ = estep_pass(source, weights, model._coords, model.layout, engine._dummy_coeffs(model), chunk_rows,
                          given=given)
    return model.update(stats)


def initial_means(init, source, K, rng, chunk_rows, summary):
    """The initial means (K, D) in data coordinates, by the method ``init`` (or ``init`` itself)."""
    if isinstance(init, np.ndarray):
        return init
    if init == "random":
        return random_assignment_means(source, K, rng, chunk_rows)
    if init == "random_from_data":
        return random_rows(source, K, rng)
    return kmeans_plusplus(source, K, rng, chunk_rows, summary.mean)
