"""Where CAVI starts: the initial means (k-means++, the seed's random assignments, random rows),
the initial state they give each family, and the state a warm start continues from.

Every method of choosing means streams over the data in chunks and draws its random numbers either
from ``rng`` (a handful per fit) or from a counter-based hash of the row index, so
the result depends on the seed alone: never on the chunk size or thread count.
"""
import numpy as np

from . import _progress
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
    tick = _progress.track("random assignments", source.n_samples)
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
        if tick is not None:
            tick(n)
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
        tick = _progress.track(f"k-means++ centre {j + 1}/{K}", source.n_samples)
        for row0, chunk in source.chunks(chunk_rows):
            key, row = kmeanspp_draw(chunk, shift, current, seed, j, row0)
            if key < best_key:
                best_key, best_row = key, row
            if tick is not None:
                tick(chunk.shape[0])
        if best_row < 0:
            best_row = rng.integers(source.n_samples)
        centres.append(source.rows([best_row])[0] - shift)
    return np.array(centres) + shift


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
