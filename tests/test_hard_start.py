"""The setup before the first sweep: the E-step kernel's hard nearest-mean mode, and the
statistics of a one-hot start taken from its K rows alone."""
import numpy as np
import pytest

import fastcavi
from fastcavi import _init
from fastcavi._models.coordinates import Coordinates
from fastcavi._passes import estep_chunk_rows, estep_pass, numba_threads
from fastcavi._io.sources import DataSource, WeightSource

TYPES = ["identity", "spherical", "diag", "full", "tied"]
KNOWN = np.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 0.5]])  # identity's known covariance


def _blobs(seed, n=3 * 4096 + 777, D=3, K=5):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(K, D)) * 3
    X = centres[rng.integers(K, size=n)] + rng.normal(size=(n, D)) + 50.0  # far from the origin: the shift matters
    return X, centres + 50.0 + rng.normal(size=(K, D)) * 0.5


def _model(X, K, covariance_type, **kw):
    return fastcavi.fit(X, K, covariance_type=covariance_type, init=X[:K], max_iter=1, tol=0, **kw).model


def _hard_stats(model, X, means, w=None, chunk_size=None, coords=None):
    """The statistics of the hard start as the fit takes them (the kernel's hard mode)."""
    source = DataSource(X)
    weights = None if w is None else WeightSource(w, source.n_samples)
    coords = model._coords if coords is None else coords
    rows = estep_chunk_rows(chunk_size, source, means.shape[0], model.layout)
    stats, _ = estep_pass(source, weights, coords, model.layout, None, rows, hard_means=coords.to_model(means))
    return stats


def _features(y, layout):
    D = y.shape[1]
    if layout == "full":
        a, b = np.triu_indices(D)
        return np.hstack((y, y[:, a] * y[:, b]))
    if layout == "linear":  # tied: no quadratic features
        return y
    return np.hstack((y, y * y))


def _reference(model, X, means, w):
    """NumPy: model coordinates, the argmin of the direct squared distances, one-hot, weighted sums.

    Returns the statistics ``[count, lse_sum, entropy, Nk, S]``, a scale for each, and each row's margin
    between its two nearest means relative to its distances' size.
    """
    y = model._coords.to_model(np.asarray(X, dtype=np.float64))  # x - shift (whitened for a known covariance)
    m = model._coords.to_model(means)
    d2 = ((y[:, None, :] - m[None, :, :]) ** 2).sum(axis=2)
    label = np.argmin(d2, axis=1)
    R = np.eye(m.shape[0])[label] * w[:, None]
    phi = _features(y, model.layout)
    S = R.T @ phi
    scale_S = np.abs(R).T @ np.abs(phi)
    values = np.concatenate(([w.sum(), 0.0, 0.0], R.sum(axis=0), S.ravel()))
    scale = np.concatenate(([w.sum(), 0.0, 0.0], R.sum(axis=0), scale_S.ravel()))
    order = np.sort(d2, axis=1)
    margin = (order[:, 1] - order[:, 0]) / (order[:, 1] + (y ** 2).sum(axis=1) + (m ** 2).sum(axis=1).max())
    return values, scale, margin


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("covariance_type", TYPES)
def test_hard_statistics_are_the_numpy_nearest_mean_sums(covariance_type, weighted, dtype):
    X, means = _blobs(1)
    X = X.astype(dtype)
    n, K = X.shape[0], means.shape[0]
    w = np.random.default_rng(2).uniform(0.0, 3.0, n) if weighted else np.ones(n)
    kw = dict(covariance=KNOWN) if covariance_type == "identity" else {}  # whitened coordinates
    model = _model(X, K, covariance_type, **kw)
    ref, scale, margin = _reference(model, X, means, w)
    # The kernel compares m.y - |m|^2/2 (its own rounding), NumPy |y - m|^2: they agree on every row whose two
    # nearest means differ by more than a few ulps of its distances. These data have no closer call:
    assert margin.min() > 1e-9
    stats = _hard_stats(model, X, means, w if weighted else None)
    # The same products added in another order: the kernel in float64 within blocks of 256 rows, then exactly;
    # NumPy's product in its own. Each error is at most a few hundred ulps of the sum of magnitudes: 1e-12.
    err = np.abs(stats.values - ref)
    assert np.all(err <= 1e-12 * scale), (err / np.maximum(scale, 1e-300)).max()
    assert stats.lse_sum == 0.0 and stats.entropy == 0.0


@pytest.mark.parametrize("D", [1, 2, 16, 40])
@pytest.mark.parametrize("covariance_type", ["spherical", "full"])
def test_hard_statistics_in_any_dimension(D, covariance_type):
    # Feature counts that are and are not multiples of the kernel's tiles of 4, K = 7 (padded to 8).
    X, means = _blobs(10 + D, n=2 * 4096 + 5, D=D, K=7)
    w = np.random.default_rng(D).uniform(0.0, 2.0, X.shape[0])
    model = _model(X, 7, covariance_type)
    ref, scale, margin = _reference(model, X, means, w)
    assert margin.min() > 1e-9
    err = np.abs(_hard_stats(model, X, means, w).values - ref)
    assert np.all(err <= 1e-12 * scale), (err / np.maximum(scale, 1e-300)).max()


def test_ties_go_to_the_lowest_component():
    # Exact ties (every value an integer or a half: the logits are exact): a repeated mean, and a row
    # halfway between two means. np.argmin of the distances picks the lowest index; so must the kernel.
    X = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0], [0.5, 0.5], [-1.0, -1.0]] * 2000)
    means = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    model = _model(X, 4, "diag")
    stats = _hard_stats(model, X, means, coords=Coordinates(np.zeros(2)))  # exact coordinates: no shift
    labels = np.argmin(((X[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert labels[:5].tolist() == [0, 1, 0, 0, 0]
    np.testing.assert_array_equal(stats.Nk, np.bincount(labels, minlength=4))
    np.testing.assert_array_equal(stats.S1, np.stack([X[labels == k].sum(0) for k in range(4)]))


@pytest.mark.parametrize("covariance_type", ["spherical", "full"])
def test_hard_statistics_do_not_depend_on_chunk_size_or_threads(covariance_type):
    X, means = _blobs(3, n=5 * 4096 + 99)
    w = np.random.default_rng(4).uniform(0.0, 2.0, X.shape[0])
    model = _model(X, means.shape[0], covariance_type)
    kept = X.copy()
    ref = _hard_stats(model, X, means, w).values.tobytes()
    for chunk_size, threads in [(4096, 1), (8192, 2), (3 * 4096, 1), (None, 2)]:
        with numba_threads(threads):
            assert _hard_stats(model, X, means, w, chunk_size).values.tobytes() == ref
    np.testing.assert_array_equal(X, kept)  # the caller's data is only read


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("covariance_type", ["identity", "diag", "full"])
def test_one_hot_rows_statistics_from_k_rows_equal_the_full_pass(covariance_type, weighted, dtype):
    X, _ = _blobs(5)
    X = X.astype(dtype)
    n, K = X.shape[0], 5
    w = np.random.default_rng(6).uniform(0.5, 2.0, n) if weighted else None
    kw = dict(covariance=KNOWN) if covariance_type == "identity" else {}  # whitened coordinates
    model = _model(X, K, covariance_type, sample_weight=w, **kw)
    source = DataSource(X)
    weights = None if w is None else WeightSource(w, n)
    given = _init.OneHotRows([9000, 17, 12000, 17, 4096], K)  # out of order, one row twice, a segment's first
    summary = fastcavi.engine.summarize(X, sample_weight=w, shift=X[0])
    full, _ = estep_pass(source, weights, model._coords, model.layout, fastcavi.engine._dummy_coeffs(model), 4096,
                         given=given)
    rows = source.rows(given.index).astype(source.compute_dtype)
    fast = given.stats(model, rows, None if weights is None else weights.values_at(given.index), summary)
    # Every statistic but the count has one nonzero term per component: the same bits. The count is the
    # summary's: exactly N without weights; with weights the summary kernel groups them otherwise (1 ulp).
    assert fast.values[1:].tobytes() == full.values[1:].tobytes()
    if weighted:
        np.testing.assert_allclose(fast.count, full.count, rtol=4e-16)
    else:
        assert fast.count == full.count == n
    assert fast.Nk.tolist() == (np.ones(K) if w is None else w[given.rows]).tolist()  # component k: row rows_k


@pytest.mark.parametrize("method", ["k-means++", "random_from_data", "random"])
def test_estimator_starts_on_dask_equal_the_local_fit(method):
    # The one-hot starts read their K rows (and weights) on Dask as locally: bitwise with aligned chunks.
    dask = pytest.importorskip("dask")
    import dask.array as da

    X, _ = _blobs(7, n=2 * 8192 + 1616)
    w = np.random.default_rng(8).integers(0, 3, size=X.shape[0]).astype(np.float64)
    for weights in (None, w):
        opts = dict(covariance_type="full", init=_init.ResponsibilityStart(method), random_state=3, max_iter=2,
                    tol=0, sample_weight=weights)
        local = fastcavi.fit(X, 5, **opts)
        with dask.config.set(scheduler="synchronous"):
            r = fastcavi.fit(da.from_array(X, chunks=(8192, 3)), 5, **opts)
        assert r.elbo.tobytes() == local.elbo.tobytes()
        assert r.means.tobytes() == local.means.tobytes()
        assert r.covariances.tobytes() == local.covariances.tobytes()
