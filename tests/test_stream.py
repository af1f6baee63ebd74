"""Streaming VI (fastcavi.stream, BayesianGaussianMixture.partial_fit) against fastcavi.fit on all the rows.

Every pass here runs on one thread (``n_threads=1``): results do not depend on the thread
count, and on a loaded 2-core machine small parallel passes mostly wait on each other.
"""
import numpy as np
import pytest

import fastcavi
from fastcavi.engine import Stats
from fastcavi.stream import StreamingCAVI

T1 = dict(n_threads=1)
PARAMS = ("weights", "means", "mean_precision", "covariances", "degrees_of_freedom")


def _blobs(N, seed=0):
    """Four well-separated anisotropic Gaussian clusters in 2-D (the fixed points are found fast)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0], [8.0, 8.0]])
    A = np.eye(2) + 0.4 * np.random.default_rng(99).normal(size=(4, 2, 2))
    z = rng.integers(4, size=N)
    return centres[z] + np.einsum("nij,nj->ni", A[z], rng.normal(size=(N, 2)))


def _assert_same_parameters(a, b, rtol, permute=False):
    """Each parameter of results a and b within ``rtol`` relative to the largest entry of b's array.

    (Relative to the array's scale, not entry by entry: a mean near 0 has no relative precision.)
    ``permute``: match a's components to b's first (nearest means), for runs from different starts.
    """
    K = b.means.shape[0]
    perm = np.arange(K)
    if permute:
        perm = np.argmin(((b.means[:, None, :] - a.means[None, :, :]) ** 2).sum(-1), axis=1)
        assert sorted(perm) == list(range(K))
    for name in PARAMS:
        x, y = getattr(a, name), getattr(b, name)
        if y is None:
            assert x is None
            continue
        x, y = np.asarray(x), np.asarray(y)
        if x.ndim and x.shape[0] == K and not (name == "covariances" and a.covariance_type == "tied"):
            x = x[perm]
        err = np.max(np.abs(x - y)) / np.max(np.abs(y))
        assert err <= rtol, (name, err)


def _max_rel(a, b):
    return max(np.max(np.abs(np.asarray(getattr(a, n)) - np.asarray(getattr(b, n)))) / np.max(np.abs(getattr(b, n)))
               for n in PARAMS if getattr(b, n) is not None)


def test_stats_from_values_and_scaled_are_exact():
    rng = np.random.default_rng(0)
    for layout, K, D in (("diag", 3, 2), ("full", 2, 3), ("linear", 3, 2)):
        size = Stats.zeros(layout, K, D).size
        v = rng.normal(size=size) * 10.0 ** rng.integers(-30, 30, size=size)
        s = Stats.from_values(layout, K, D, v)
        assert np.array_equal(s.values, v)
        assert np.array_equal(s.scaled(0.5).values, v * 0.5)  # a power of 2: exact
        assert np.array_equal(s.scaled(3.0).values, v * 3.0)  # one rounding, as the float product
        assert Stats.from_array(s.to_array()) == s
        assert np.array_equal((s + s.scaled(2.0)).values, v * 3.0)  # exact sums: 3 v rounded once
        with pytest.raises(ValueError, match="expected"):
            Stats.from_values(layout, K, D, v[:-1])


# -- memoized VI ------------------------------------------------------------------------------------
@pytest.mark.parametrize("cov", ["identity", "full", "tied", "diag", "spherical"])
def test_memoized_laps_reach_fits_fixed_point(cov):
    """10 fixed batches, the same model and initial state as fit: the fixed point of fit, monotone ELBO.

    fit is warm-started from its own first sweep (r1); the stream starts from the same state
    and model (priors and shift from all rows; tied: its total scatter is rebuilt from the
    batches). Both run until their parameters stop moving (CAVI converges linearly: the
    tolerance 1e-8 is some 1e5 above the round-off of the parameters, ~1e-13 measured).
    """
    X = _blobs(10 * 2048)
    batches = np.split(X, 10)
    options = {} if cov == "identity" else dict(exact_cavi=True)  # exact coordinate ascent: a monotone ELBO
    r1 = fastcavi.fit(X, 4, covariance_type=cov, random_state=0, max_iter=1, tol=0, **options, **T1)
    ref = fastcavi.fit(X, 4, covariance_type=cov, init=r1, max_iter=100, tol=0, **options, **T1)
    stream = StreamingCAVI(r1.model, r1.state, **T1)
    previous = None
    for lap in range(200):
        for b, batch in enumerate(batches):
            assert stream.partial_fit(batch, batch_id=b) == b
        current = stream.result()
        if previous is not None and _max_rel(current, previous) < 1e-12:
            break
        previous = current
    assert stream.batch_ids == list(range(10))
    _assert_same_parameters(stream.result(), ref, 1e-8)
    # the ELBO is fit's, and never goes down once every batch is stored (round-off: 1e-12 relative)
    elbo = stream.elbo
    assert abs(elbo[-1] - ref.elbo[-1]) <= 1e-9 * abs(ref.elbo[-1])
    assert np.all(np.diff(elbo[9:]) >= -1e-12 * np.abs(elbo[10:]))
    assert stream.total_stats.count == pytest.approx(X.shape[0], rel=1e-15)


@pytest.mark.parametrize("cov", ["full", "tied"])
def test_partial_fit_laps_equal_fit_with_the_same_priors(cov):
    """The estimator: partial_fit laps (initialised on batch 0) reach the fit on all rows.

    The priors are given explicitly, so that they do not come from the first batch; the
    model's shift does differ (batch 0's mean against all rows'), which moves no public
    parameter; tied rebuilds its total scatter about that shift from the batches.
    """
    X = _blobs(8 * 2048, seed=1)
    batches = np.split(X, 8)
    priors = dict(mean_prior=X.mean(0), covariance_prior=np.cov(X.T) if cov in ("full", "tied") else None,
                  weight_concentration_prior_type="dirichlet_distribution", n_components=4,
                  covariance_type=cov, random_state=1, reg_covar=0.0, **T1)
    ref = fastcavi.BayesianGaussianMixture(max_iter=100, tol=0, **priors).fit(X)
    assert np.all(ref.weights_ > 0.2)  # the global optimum, all 4 clusters (some seeds merge two: local optima)
    est = fastcavi.BayesianGaussianMixture(**priors)
    for lap in range(150):
        before = None if lap == 0 else est.result_
        for b, batch in enumerate(batches):
            est.partial_fit(batch, batch_id=b)
        if before is not None and _max_rel(est.result_, before) < 1e-12:
            break
    _assert_same_parameters(est.result_, ref.result_, 1e-8, permute=True)
    assert est.n_iter_ == len(est.lower_bounds_) == (lap + 1) * 8
    np.testing.assert_allclose(est.score_samples(X), ref.score_samples(X), rtol=1e-8)


@pytest.mark.parametrize("cov", ["full", "tied"])
def test_replacing_a_batch_forgets_its_old_version(cov):
    """A batch first seen in a wrong version, then replaced by batch_id, ends as if never seen."""
    X = _blobs(6 * 2048, seed=2)
    batches = np.split(X, 6)
    r1 = fastcavi.fit(X, 4, covariance_type=cov, random_state=0, max_iter=1, tol=0, **T1)
    a = StreamingCAVI(r1.model, r1.state, **T1)
    b = StreamingCAVI(r1.model, r1.state, **T1)
    wrong = batches[3][:1000] * 1.5 + 3.0  # another size, another place
    for i, batch in enumerate(batches):
        a.partial_fit(wrong if i == 3 else batch, batch_id=i)
        b.partial_fit(batch, batch_id=i)
    a.partial_fit(batches[3], batch_id=3)
    assert a.batch_ids == b.batch_ids == list(range(6))
    for lap in range(100):
        for i, batch in enumerate(batches):
            a.partial_fit(batch, batch_id=i)
            b.partial_fit(batch, batch_id=i)
        if _max_rel(a.result(), b.result()) < 1e-12:
            break
    _assert_same_parameters(a.result(), b.result(), 1e-8)
    assert a.total_stats.count == b.total_stats.count == X.shape[0]
    if cov == "tied":  # the total scatter forgot the wrong version too
        np.testing.assert_allclose(a.model.to_dict()["total_scatter"], b.model.to_dict()["total_scatter"],
                                   rtol=1e-12)


@pytest.mark.parametrize("method", ["memoized", "online"])
@pytest.mark.parametrize("cov", ["full", "tied", "diag"])
def test_integer_weights_equal_repeated_rows(method, cov):
    """Weighted batches: weight w counts a row w times (statistics equal to round-off, so states too)."""
    X = _blobs(4 * 1500, seed=3)
    w = np.random.default_rng(4).integers(0, 4, size=X.shape[0]).astype(float)
    r1 = fastcavi.fit(X, 4, covariance_type=cov, random_state=0, max_iter=1, tol=0, sample_weight=w, **T1)
    opts = dict(learning_method=method, total_samples=float(w.sum()), **T1)
    weighted = StreamingCAVI(r1.model, r1.state, **opts)
    repeated = StreamingCAVI(r1.model, r1.state, **opts)
    for lap in range(3 if method == "memoized" else 1):
        for i, (xb, wb) in enumerate(zip(np.split(X, 4), np.split(w, 4))):
            weighted.partial_fit(xb, sample_weight=wb, batch_id=i if method == "memoized" else None)
            repeated.partial_fit(np.repeat(xb, wb.astype(int), axis=0), batch_id=i if method == "memoized" else None)
    _assert_same_parameters(weighted.result(), repeated.result(), 1e-10)
    np.testing.assert_allclose(weighted.elbo, repeated.elbo, rtol=1e-10)


def test_weighted_partial_fit_in_the_estimator():
    X = _blobs(3 * 1000, seed=5)
    w = np.random.default_rng(6).integers(1, 3, size=X.shape[0]).astype(float)
    est = fastcavi.BayesianGaussianMixture(n_components=4, random_state=0, **T1)
    for i, (xb, wb) in enumerate(zip(np.split(X, 3), np.split(w, 3))):
        est.partial_fit(xb, sample_weight=wb, batch_id=i)
    assert est.stream_.total_stats.count == w.sum()
    with pytest.raises(ValueError, match="sample_weight"):
        est.partial_fit(X[:10], sample_weight=np.ones(9))


# -- errors leave everything as it was ------------------------------------------------------------
def _snapshot(est):
    """Identities of every attribute (nothing is changed in place) plus the stream's stored arrays, bitwise."""
    s = est.stream_
    return (dict(vars(est)), dict(vars(s)), list(s._elbo), [s.batch_stats(i).to_array() for i in s.batch_ids],
            est.score_samples(_blobs(300, seed=9)))


def _assert_unchanged(est, snap):
    now = _snapshot(est)
    for before, after in zip(snap[:2], now[:2]):
        assert before.keys() == after.keys()
        for k in before:
            assert before[k] is after[k], k
    assert snap[2] == now[2]
    assert all(np.array_equal(x, y) for x, y in zip(snap[3], now[3])) and len(snap[3]) == len(now[3])
    assert np.array_equal(snap[4], now[4])


@pytest.mark.parametrize("method", ["memoized", "online"])
@pytest.mark.parametrize("cov", ["full", "tied"])
def test_a_bad_batch_leaves_the_model_unchanged(method, cov):
    X = _blobs(3000, seed=7)
    est = fastcavi.BayesianGaussianMixture(n_components=4, covariance_type=cov, random_state=0,
                                           learning_method=method, total_samples=3000.0, **T1)
    est.partial_fit(X[:1500])
    est.partial_fit(X[1500:])
    snap = _snapshot(est)
    with pytest.raises(ValueError, match="X has 3 features, but BayesianGaussianMixture is expecting 2 features"):
        est.partial_fit(np.ones((100, 3)))
    _assert_unchanged(est, snap)
    bad = X[:1500].copy()
    bad[700, 1] = np.nan
    with pytest.raises(ValueError) as from_fit:
        fastcavi.fit(bad, 4, covariance_type=cov)
    for batch_id in ((None, 0) if method == "memoized" else (None,)):  # a new batch, and a replacement
        with pytest.raises(ValueError) as from_partial_fit:
            est.partial_fit(bad, batch_id=batch_id)
        assert str(from_partial_fit.value) == str(from_fit.value)
        assert str(from_fit.value) == "Input X contains NaN (first at row 700, column 1)."
        _assert_unchanged(est, snap)
    w = np.ones(1500)
    w[3] = -1.0
    with pytest.raises(ValueError) as from_fit:
        fastcavi.fit(X[:1500], 4, covariance_type=cov, sample_weight=w)
    with pytest.raises(ValueError) as from_partial_fit:
        est.partial_fit(X[:1500], sample_weight=w)
    assert str(from_partial_fit.value) == str(from_fit.value)
    _assert_unchanged(est, snap)
    if method == "online":
        with pytest.raises(ValueError, match="batch_id applies to learning_method='memoized'"):
            est.partial_fit(X[:1500], batch_id=0)
        _assert_unchanged(est, snap)


def test_a_bad_first_batch_leaves_the_estimator_unfitted():
    est = fastcavi.BayesianGaussianMixture(n_components=2, **T1)
    bad = _blobs(100)
    bad[5, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        est.partial_fit(bad)
    assert not hasattr(est, "result_") and not hasattr(est, "stream_")
    with pytest.raises(ValueError, match="learning_decay"):
        fastcavi.BayesianGaussianMixture(n_components=2, learning_decay=0.3, **T1).partial_fit(_blobs(100))


# -- stochastic VI --------------------------------------------------------------------------------
def _online_vs_fit(n_rows, batch_rows, seed):
    """Mean held-out log-likelihood per row: online VI over a stream seen once, and the full fit."""
    X = _blobs(n_rows, seed=seed)
    held_out = _blobs(20000, seed=seed + 1000)
    common = dict(n_components=4, covariance_type="full", random_state=1, **T1)  # 0: a local optimum on batch 0
    full = fastcavi.BayesianGaussianMixture(max_iter=200, **common).fit(X)
    assert np.all(full.weights_ > 0.2)  # the reference found the 4 clusters (not a merged local optimum)
    online = fastcavi.BayesianGaussianMixture(learning_method="online", total_samples=float(n_rows), **common)
    for start in range(0, n_rows, batch_rows):
        online.partial_fit(X[start:start + batch_rows])
    assert online.n_iter_ == n_rows // batch_rows
    return online.score(held_out), full.score(held_out)


def test_online_vi_seen_once_matches_the_full_fit():
    """2e5 rows in batches of 1e4, seen once: held-out log-likelihood per row within 1% of the full fit's."""
    ll_online, ll_full = _online_vs_fit(200_000, 10_000, seed=11)
    assert abs(ll_online - ll_full) <= 0.01 * abs(ll_full), (ll_online, ll_full)


@pytest.mark.slow
def test_online_vi_two_million_rows():
    """A stream of 2e6 rows in batches of 1e4, seen once (the size streaming is meant for)."""
    ll_online, ll_full = _online_vs_fit(2_000_000, 10_000, seed=12)
    assert abs(ll_online - ll_full) <= 0.01 * abs(ll_full), (ll_online, ll_full)


def test_online_steps_are_the_moving_average_of_rescaled_statistics():
    """The SVI step, recomputed with the engine: S <- (1 - rho_t) S + rho_t (N / |B|) S_B, rho_t = (t + tau)^-kappa."""
    from fastcavi import engine

    X = _blobs(3 * 1000, seed=8)
    parts = np.split(X, 3)
    r1 = fastcavi.fit(parts[0], 4, covariance_type="full", random_state=1, max_iter=1, tol=0, **T1)
    N, tau, kappa = 5e4, 4.0, 0.6
    stream = StreamingCAVI(r1.model, r1.state, learning_method="online", total_samples=N, learning_offset=tau,
                           learning_decay=kappa, **T1)
    state, S = r1.state, None
    for t, part in enumerate(parts):
        S_B = engine.estep(r1.model, state, part, **T1)
        rho = 1.0 if t == 0 else (t + tau) ** -kappa
        step = S_B.values * (N / len(part))
        S = step if t == 0 else (1 - rho) * S + rho * step
        state = r1.model.update(Stats.from_values("full", 4, 2, S))
        assert stream.partial_fit(part) is None
        assert stream.learning_rate(t) == pytest.approx(rho) or t == 0
        np.testing.assert_allclose(stream.total_stats.values, S, rtol=1e-12)
        np.testing.assert_allclose(stream.state.means, state.means, rtol=1e-12)
    assert stream.batch_ids == [] and stream.n_updates == 3


def test_batches_from_npy_files_and_memmaps_equal_arrays(tmp_path):
    X = _blobs(2 * 4096, seed=10)
    parts = np.split(X, 2)
    paths = []
    for i, part in enumerate(parts):
        paths.append(str(tmp_path / f"shard{i}.npy"))
        np.save(paths[-1], part.astype(np.float32))
    r1 = fastcavi.fit(X, 3, covariance_type="diag", random_state=0, max_iter=1, tol=0, **T1)
    from_files = StreamingCAVI(r1.model, r1.state, **T1)
    from_arrays = StreamingCAVI(r1.model, r1.state, **T1)
    for lap in range(2):
        for i in range(2):
            from_files.partial_fit(paths[i] if lap == 0 else np.load(paths[i], mmap_mode="r"), batch_id=i)
            from_arrays.partial_fit(parts[i].astype(np.float32), batch_id=i)
    assert np.array_equal(from_files.elbo, from_arrays.elbo)
    assert np.array_equal(from_files.state.means, from_arrays.state.means)


def test_fit_ends_a_stream_and_the_estimator_predicts_between_calls():
    X = _blobs(3000, seed=13)
    est = fastcavi.BayesianGaussianMixture(n_components=4, covariance_type="diag", random_state=1, **T1)
    est.partial_fit(X[:1500])
    first = est.predict_proba(X)  # predicts after the first call
    est.partial_fit(X[1500:])
    assert est.stream_.batch_ids == [0, 1] and est.n_iter_ == 2 and len(est.lower_bounds_) == 2
    assert not np.array_equal(first, est.predict_proba(X))  # refreshed by the second batch
    np.testing.assert_array_equal(est.predict_proba(X), est.stream_.result().predict_proba(X, **T1))
    old = est.stream_
    est.fit(X)
    est.partial_fit(X[:1000])  # a new stream, initialised on this batch
    assert est.stream_ is not old and est.stream_.batch_ids == [0] and est.n_iter_ == 1


def test_a_drop_of_the_elbo_on_a_revisit_raises_and_changes_nothing():
    """A revisit of the same rows is exact coordinate ascent: fit's decrease check applies.

    The drop is simulated by raising the stored last ELBO; a batch with other rows under a
    known id (a new objective) is not checked.
    """
    X = _blobs(3000, seed=14)
    r1 = fastcavi.fit(X, 4, covariance_type="full", random_state=1, max_iter=1, tol=0, exact_cavi=True, **T1)
    stream = StreamingCAVI(r1.model, r1.state, **T1)
    stream.partial_fit(X[:1500], batch_id="a")
    stream.partial_fit(X[1500:], batch_id="b")
    stream._elbo[-1] += 1e3
    before = dict(vars(stream)), list(stream._elbo)
    with pytest.raises(fastcavi.ELBODecreaseError, match="revisit of batch 'a'"):
        stream.partial_fit(X[:1500], batch_id="a")
    assert all(vars(stream)[k] is v for k, v in before[0].items()) and stream._elbo == before[1]
    stream.partial_fit(X[:1400], batch_id="a")  # other rows: a new objective, not compared
    assert stream.n_updates == 3
