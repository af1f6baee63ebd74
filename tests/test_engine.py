"""The public engine: an outside sweep equals fit bit for bit; warm starts; sample weights; serialisation."""
import math
import warnings

import numpy as np
import pytest

import fastcavi
from fastcavi import engine

TYPES = ["identity", "spherical", "diag", "full", "tied"]
G = engine.GRANULARITY


def _data(seed=0, N=3 * 4096 + 1234, D=3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, D)) * 4
    return centres[rng.integers(3, size=N)] + rng.normal(size=(N, D))


def _same_bits(a, b):
    for name in ("elbo", "weights", "means", "mean_precision", "covariances", "precisions_cholesky"):
        assert np.asarray(getattr(a, name)).tobytes() == np.asarray(getattr(b, name)).tobytes(), name


@pytest.mark.parametrize("wtype", ["dirichlet_distribution", "dirichlet_process"])
@pytest.mark.parametrize("cov", TYPES)
def test_outside_sweep_over_parts_equals_fit_bitwise(cov, wtype):
    X = _data()
    init = X[[0, 5000, 10000]]
    opts = dict(covariance_type=cov, weight_concentration_prior_type=wtype, init=init, tol=0)
    n = 4
    whole = fastcavi.fit(X, 3, max_iter=n + 1, **opts)
    r = fastcavi.fit(X, 3, max_iter=1, **opts)
    model, state = r.model, r.state
    elbos = list(r.elbo)
    for part_rows in ([G, 2 * G], [3 * G], [G, G, G]):  # parts of whole segments; the last takes the rest
        cuts = np.cumsum([0] + part_rows)
        parts = [X[a:b] for a, b in zip(cuts[:-1], cuts[1:])] + [X[cuts[-1]:]]
        stats = sum(engine.estep(model, state, part) for part in parts[::-1])  # any order
        assert stats == engine.estep(model, state, X)
    for _ in range(n):
        stats = sum(engine.estep(model, state, X[a:a + G]) for a in range(0, X.shape[0], G))
        state = model.update(stats)
        elbos.append(model.elbo(stats, state))
    assert np.asarray(elbos).tobytes() == whole.elbo.tobytes()
    assert state.means.tobytes() == whole.state.means.tobytes()
    assert np.asarray(state.mean_precision).tobytes() == whole.state.mean_precision.tobytes()


def test_stats_and_summary_serialise_exactly():
    X = _data()
    r = fastcavi.fit(X, 3, covariance_type="full", max_iter=2, tol=0, random_state=0)
    stats = engine.estep(r.model, r.state, X)
    flat = stats.to_array()
    assert flat.dtype == np.float64 and flat.ndim == 1
    back = engine.Stats.from_array(flat)
    assert back == stats and back.values.tobytes() == stats.values.tobytes()
    s = engine.summarize(X[:G]) + engine.summarize(X[G:], shift=X[0])
    assert engine.DataSummary.from_array(s.to_array()).values.tobytes() == s.values.tobytes()
    with pytest.raises(ValueError, match="Not a serialised"):
        engine.Stats.from_array(np.zeros(10))
    bad = flat.copy()
    bad[1] = 99
    with pytest.raises(ValueError, match="version"):
        engine.Stats.from_array(bad)
    with pytest.raises(ValueError, match="Corrupted"):
        engine.Stats.from_array(flat[:-3])


def test_model_and_state_round_trip_through_dicts():
    X = _data()
    for cov in TYPES:
        r = fastcavi.fit(X, 3, covariance_type=cov, max_iter=2, tol=0, random_state=0)
        model = engine.Model.from_dict(r.model.to_dict())
        assert model == r.model
        state = engine.State.from_dict(r.state.to_dict())
        s1, s2 = engine.estep(model, state, X), engine.estep(r.model, r.state, X)
        assert s1 == s2


def test_summary_merges_exactly_with_a_common_shift_and_by_chan_otherwise():
    X = _data() + 1e6
    whole = engine.summarize(X, shift=X[0])
    parts = [engine.summarize(X[a:a + G], shift=X[0]) for a in range(0, X.shape[0], G)]
    merged = sum(parts[::-1])
    assert merged.values.tobytes() == whole.values.tobytes()
    exact_mean = np.array([math.fsum(col) for col in X.T]) / X.shape[0]  # np.mean errs by ~4e-15 here
    np.testing.assert_allclose(whole.mean, exact_mean, rtol=2e-16)
    np.testing.assert_allclose(whole.scatter, np.cov(X.T, bias=True) * X.shape[0], rtol=1e-10)
    chan = sum(engine.summarize(X[a:a + G]) for a in range(0, X.shape[0], G))  # each part about its own row
    np.testing.assert_allclose(chan.mean, exact_mean, rtol=1e-15)
    np.testing.assert_allclose(chan.scatter, whole.scatter, rtol=1e-9)


@pytest.mark.parametrize("cov", TYPES)
def test_warm_start_continues_bit_for_bit(cov, tmp_path):
    X = _data()
    opts = dict(covariance_type=cov, tol=0, random_state=1)
    whole = fastcavi.fit(X, 3, max_iter=7, **opts)
    first = fastcavi.fit(X, 3, max_iter=3, **opts)
    _same_bits(fastcavi.fit(X, 3, max_iter=4, init=first, **opts), whole)
    loaded = fastcavi.load(first.save(tmp_path / "m"))  # the model file holds the whole state
    _same_bits(fastcavi.fit(X, 3, max_iter=4, init=loaded, **opts), whole)


def test_warm_start_mismatch_is_refused():
    X = _data()
    r = fastcavi.fit(X, 3, max_iter=2, tol=0, random_state=0)
    with pytest.raises(ValueError, match="warm-start"):
        fastcavi.fit(X, 4, init=r)
    with pytest.raises(ValueError, match="warm-start"):
        fastcavi.fit(X, 3, covariance_type="diag", init=r)


def test_estimator_warm_start():
    X = _data()
    est = fastcavi.BayesianGaussianMixture(n_components=3, covariance_type="diag", max_iter=2, tol=0,
                                           random_state=0, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X)
        est.fit(X)
    whole = fastcavi.BayesianGaussianMixture(n_components=3, covariance_type="diag", max_iter=4, tol=0,
                                             random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole.fit(X)
    assert est.n_iter_ == 2 and est.lower_bounds_ == whole.lower_bounds_
    np.testing.assert_array_equal(est.means_, whole.means_)


@pytest.mark.parametrize("cov", TYPES)
def test_integer_weights_equal_repeated_rows(cov):
    X = _data(N=3000)
    rng = np.random.default_rng(4)
    w = rng.integers(0, 4, size=X.shape[0])
    init = X[[1, 1000, 2000]] if w[[1, 1000, 2000]].all() else X[np.flatnonzero(w)[[0, 900, 1800]]]
    opts = dict(covariance_type=cov, init=init, max_iter=15, tol=0)
    weighted = fastcavi.fit(X, 3, sample_weight=w, **opts)
    repeated = fastcavi.fit(np.repeat(X, w, axis=0), 3, **opts)
    # the same sums, grouped differently: round-off, measured ~1e-13 relative over 15 sweeps
    np.testing.assert_allclose(weighted.elbo, repeated.elbo, rtol=1e-11)
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(getattr(weighted, name), getattr(repeated, name), rtol=1e-9, atol=1e-11)


def test_zero_weights_drop_rows():
    X = _data(N=3000)
    keep = np.ones(X.shape[0], bool)
    keep[::3] = False
    opts = dict(covariance_type="full", init=X[[1, 1000, 2000]], max_iter=10, tol=0)
    a = fastcavi.fit(X, 3, sample_weight=keep.astype(float), **opts)
    b = fastcavi.fit(X[keep], 3, **opts)
    np.testing.assert_allclose(a.elbo, b.elbo, rtol=1e-11)
    np.testing.assert_allclose(a.means, b.means, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("bad,match", [(-1.0, "Negative values in data passed to sample_weight \\(first at row 17"),
                                       (np.nan, "sample_weight contains NaN \\(first at row 17"),
                                       (np.inf, "sample_weight contains infinity \\(first at row 17")])
def test_bad_weights_are_named(bad, match):
    X = _data(N=500)
    w = np.ones(500)
    w[17] = bad
    w[40] = bad
    with pytest.raises(ValueError, match=match):
        fastcavi.fit(X, 3, sample_weight=w)
    with pytest.raises(ValueError, match=match):
        engine.summarize(X, w)


def test_weights_of_wrong_shape_or_all_zero():
    X = _data(N=500)
    with pytest.raises(ValueError, match=r"sample_weight.shape == \(499,\), expected \(500,\)"):
        fastcavi.fit(X, 3, sample_weight=np.ones(499))
    with pytest.raises(ValueError, match="1D array"):
        fastcavi.fit(X, 3, sample_weight=np.ones((500, 1)))
    with pytest.raises(ValueError, match="Sample weights must contain at least one non-zero number"):
        fastcavi.fit(X, 3, sample_weight=np.zeros(500))


def test_estep_outputs_match_predictions():
    X = _data()
    for cov in TYPES:
        r = fastcavi.fit(X, 3, covariance_type=cov, max_iter=3, tol=0, random_state=0)
        R, lse = np.empty((X.shape[0], 3)), np.empty(X.shape[0])
        engine.estep(r.model, r.state, X, responsibilities=R, log_density=lse)
        np.testing.assert_array_equal(R, r.predict_proba(X))
        np.testing.assert_array_equal(lse, r.score_samples(X))


def test_model_file_errors(tmp_path):
    X = _data(N=500)
    r = fastcavi.fit(X, 2, max_iter=2, random_state=0)
    path = r.save(tmp_path / "m")
    data = dict(np.load(path))
    data["format_version"] = np.array(99)
    np.savez(tmp_path / "future.npz", **data)
    with pytest.raises(ValueError, match="format version is 99"):
        fastcavi.load(tmp_path / "future.npz")
    del data["state__means"]
    data["format_version"] = np.array(2)
    np.savez(tmp_path / "broken.npz", **data)
    with pytest.raises(ValueError, match="corrupted"):
        fastcavi.load(tmp_path / "broken.npz")
    data["format_version"] = np.array(1)
    np.savez(tmp_path / "old.npz", **data)
    with pytest.raises(ValueError, match="hold no variational state"):
        fastcavi.load(tmp_path / "old.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="not a fastcavi model file"):
        fastcavi.load(tmp_path / "junk.npz")
    np.save(tmp_path / "x.npy", X)
    with pytest.raises(ValueError, match="not a fastcavi model file"):
        fastcavi.load(tmp_path / "x.npy")


def test_errors_name_the_global_row_of_a_part():
    X = _data()
    r = fastcavi.fit(X, 3, max_iter=1, tol=0, random_state=0)
    part = X[2 * G:3 * G].copy()
    part[5, 1] = np.nan
    with pytest.raises(ValueError, match=rf"NaN \(first at row {2 * G + 5}, column 1\)"):
        engine.summarize(part, row_offset=2 * G)
    with pytest.raises(ValueError, match=rf"NaN \(first at row {2 * G + 5}, column 1\)"):
        engine.estep(r.model, r.state, part, row_offset=2 * G)


@pytest.mark.parametrize("cov", ["spherical", "full", "tied"])
def test_a_wishart_fit_from_means_starts_with_an_update_from_nearest_mean_stats(cov):
    X = _data()
    w = np.random.default_rng(4).uniform(0.5, 2.0, X.shape[0])
    M0 = X[[0, 5000, 10000]]
    r = fastcavi.fit(X, 3, covariance_type=cov, init=M0, sample_weight=w, max_iter=1, tol=0)
    model = r.model
    parts = [slice(0, G), slice(G, X.shape[0])]
    stats0 = sum(engine.nearest_mean_stats(model, X[p], M0, sample_weight=w[p], n_threads=1) for p in parts)
    assert stats0.to_array().tobytes() == engine.nearest_mean_stats(model, X, M0, sample_weight=w).to_array().tobytes()
    state1 = model.update(engine.estep(model, model.update(stats0), X, sample_weight=w))
    assert all(np.array_equal(a, b) for a, b in zip(state1.to_dict().values(), r.state.to_dict().values()))
    with pytest.raises(ValueError, match=r"'means' must be a finite real array of shape \(3, 3\)"):
        engine.nearest_mean_stats(model, X, M0[:2])


def test_a_part_may_have_weights_that_sum_to_zero():
    X = _data(N=500)
    with pytest.raises(ValueError, match="Sample weights must contain at least one non-zero number"):
        engine.summarize(X, np.zeros(500))
    part = engine.summarize(X, np.zeros(500), check_weight_sum=False)
    assert part.count == 0.0
    assert (part + engine.summarize(X, np.ones(500), shift=part.shift)).count == 500.0


def test_kernel_threads_sets_numba_threads_for_the_block_and_restores_them():
    numba = pytest.importorskip("numba")
    before = numba.get_num_threads()
    with engine.kernel_threads(1):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before
    with engine.kernel_threads(None):
        assert numba.get_num_threads() == before
    with pytest.raises(ValueError, match="n_threads"):
        engine.kernel_threads(0)
