"""The variational state CAVI starts from: from the initial means (:mod:`.seeding`, :mod:`.lloyd`), from
scikit-learn's starts from responsibilities (:class:`ResponsibilityStart`), from given responsibilities, and the
state a warm start continues from."""
import numpy as np

from .._validation import ResponsibilityStart
from .lloyd import kmeans
from .seeding import (_splitmix64, kmeans_parallel, kmeans_plusplus, kmeans_plusplus_rows, local_passes,
                      random_assignment_means, random_rows)


def warm_state(previous, model):
    """The previous result's state in this model's coordinates (means move with the shift; exact when equal)."""
    from dataclasses import replace

    from ..engine import freeze_state

    state = previous.state
    old = previous.model
    if np.array_equal(old.shift, model.shift) and _same_whitening(old, model):
        return state
    means = model._coords.to_model(old._coords.to_data(state.means))
    return freeze_state(replace(state, means=means))


def _same_whitening(a, b):
    wa, wb = a.to_dict()["whiten"], b.to_dict()["whiten"]
    return (wa is None and wb is None) or (wa is not None and wb is not None and np.array_equal(wa, wb))


class OneHotRows:
    """``given(row0, rows, shift)``: responsibility 1 of component k on row ``rows_k`` alone, 0 elsewhere.

    A fit takes their statistics from the K rows alone (:meth:`stats`), locally and on Dask.
    """

    def __init__(self, rows, K):
        self.rows = np.asarray(rows, dtype=np.int64)
        self.index = np.unique(self.rows)  # the rows with a nonzero responsibility, sorted
        self.K = int(K)

    def __call__(self, row0, rows, shift):
        n = rows.shape[0]
        R = np.zeros((n, self.K))
        for k, i in enumerate(self.rows):
            if row0 <= i < row0 + n:
                R[i - row0, k] = 1.0
        return R

    def stats(self, model, X, weights, summary):
        """The statistics of these responsibilities over all the data, from the rows they name alone.

        Every other row has responsibility 0 and adds nothing but its weight to the count, which is
        taken from ``summary``: the rest is one given-responsibility pass over the rows at
        ``self.index``, and equals the pass over all rows (each sum has one nonzero term; a known
        covariance's whitening of K rows and of a chunk may round differently, in principle).

        Parameters
        ----------
        model : Model
        X : ndarray of shape (m, D)
            The rows at ``self.index``, in that order, in the data's compute dtype.
        weights : ndarray of shape (m,) or None
            Their weights.
        summary : DataSummary
            Of all the data: its weighted count is the statistics' (bitwise a pass's without
            weights; with weights it may differ in the last bit, the two kernels adding the
            weights in other groups; no update reads it).

        Returns
        -------
        Stats
        """
        from .. import engine
        from .._io.sources import DataSource, WeightSource
        from .._models.base import Stats
        from .._passes import estep_chunk_rows, estep_pass

        source = DataSource(X)
        w = None if weights is None else WeightSource(weights, source.n_samples)
        R = np.zeros((self.index.size, self.K))
        R[np.searchsorted(self.index, self.rows), np.arange(self.K)] = 1.0

        def given(row0, chunk, shift):
            return R[row0:row0 + chunk.shape[0]]

        chunk_rows = estep_chunk_rows(None, source, self.K, model.layout)
        stats, _ = estep_pass(source, w, model._coords, model.layout, engine._dummy_coeffs(model), chunk_rows,
                              given=given)
        acc = stats._acc.copy()
        acc[0] = summary._acc[0]
        return Stats(model.layout, self.K, model.n_features, acc)


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

    def stats(self, model, X, weights=None, *, row_offset=0, n_threads=None, chunk_size=None):
        """The statistics of these responsibilities over the rows of X, in one given-responsibility pass.

        Parameters
        ----------
        model : Model
        X : DataSource or array-like of shape (n, D)
            All the data, or a part of it (a Dask task's block) whose first row is row ``row_offset``.
        weights : WeightSource or array-like of shape (n,), optional
        row_offset : int, default 0
            The global index of X's first row: the draws are those of the global rows.
        n_threads, chunk_size : int, optional
            As in :func:`fastcavi.engine.estep`; results do not depend on them.

        Returns
        -------
        Stats
            Additive over parts of the data, as the E-step's.
        """
        from .. import engine
        from .._io.sources import DataSource, WeightSource
        from .._passes import estep_chunk_rows, estep_pass, numba_threads

        source = X if isinstance(X, DataSource) else DataSource(X)
        if weights is not None and not isinstance(weights, WeightSource):
            weights = WeightSource(weights, source.n_samples)

        def given(row0, rows, shift):  # the rows of X, numbered globally
            return self(row_offset + row0, rows, shift)

        chunk_rows = estep_chunk_rows(chunk_size, source, self.K, model.layout)
        with numba_threads(n_threads):
            stats, _ = estep_pass(source, weights, model._coords, model.layout, engine._dummy_coeffs(model),
                                  chunk_rows, given=given)
        return stats


def start_responsibilities(start, source, K, rng, chunk_rows, shift, weights=None):
    """The ``given`` responsibilities of a :class:`ResponsibilityStart` (draws from ``rng``)."""
    if start.method == "random":
        return HashedUniform(rng.integers(0, 2**63), K)
    if start.method == "random_from_data":
        return OneHotRows(rng.choice(source.n_samples, size=K, replace=False), K)
    return OneHotRows(kmeans_plusplus_rows(source, K, rng, chunk_rows, shift, weights)[0], K)


def initial_state(model, init, resp0, source, weights, K, rng, chunk_rows, summary):
    """The variational state CAVI starts from (see ``init`` and ``init_responsibilities`` in :func:`fit`)."""
    from .. import engine

    if resp0 is not None:  # scikit-learn's start: an M-step from given responsibilities
        return model.update(engine.responsibility_stats(model, source, resp0, sample_weight=weights,
                                                        chunk_size=chunk_rows))
    if isinstance(init, ResponsibilityStart):  # the estimator's: an M-step from drawn responsibilities
        given = start_responsibilities(init, source, K, rng, chunk_rows, summary.mean, weights)
        if isinstance(given, OneHotRows):  # statistics of K rows: no pass over the others
            w = None if weights is None else weights.values_at(given.index)
            return model.update(given.stats(model, source.rows(given.index).astype(source.compute_dtype), w, summary))
        return model.update(given.stats(model, source, weights, chunk_size=chunk_rows))
    means = initial_means(init, source, K, rng, chunk_rows, summary, weights)
    if model.covariance_type == "identity":
        return model.state_from_means(means)
    # the Wishart families start with an M-step from the hard assignment to the nearest initial mean
    return model.update(engine.nearest_mean_stats(model, source, means, sample_weight=weights, chunk_size=chunk_rows))


def initial_means(init, source, K, rng, chunk_rows, summary, weights=None):
    """The initial means (K, D) in data coordinates, by the method ``init`` (or ``init`` itself)."""
    if isinstance(init, np.ndarray):
        return init
    if init == "random":
        return random_assignment_means(source, K, rng, chunk_rows)
    if init == "random_from_data":
        return random_rows(source, K, rng)
    if init == "k-means||":
        return kmeans_parallel(local_passes(source, weights, chunk_rows), source.rows, source.n_samples, K, rng,
                               summary.mean, weights is not None)
    if init == "kmeans":
        return kmeans(source, weights, K, rng, chunk_rows, summary)[0]
    return kmeans_plusplus(source, K, rng, chunk_rows, summary.mean, weights)
