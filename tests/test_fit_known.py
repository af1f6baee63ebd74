"""fastcavi.fit for the known-covariance (seed) model against the NumPy reference CAVI."""
import numpy as np
import pytest

from naive import identity_cavi

import fastcavi

CASES = [  # (D, K, N)
    (1, 1, 50), (1, 4, 300), (2, 8, 500), (5, 3, 400), (16, 32, 600), (32, 5, 300), (64, 7, 300),
]


def _data(rng, N, D, K_true=3, spread=4.0):
    centres = rng.normal(size=(K_true, D)) * spread
    return centres[rng.integers(K_true, size=N)] + rng.normal(size=(N, D))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("D,K,N", CASES)
def test_fit_matches_reference(D, K, N, dtype):
    rng = np.random.default_rng(1000 * D + K)
    X = _data(rng, N, D).astype(dtype)
    init = X[rng.choice(N, K, replace=False)].astype(np.float64) + 0.1
    alpha = rng.uniform(0.5, 2.0, size=K)
    m0 = rng.normal(size=D)
    n = 12
    ref, st = identity_cavi(X.astype(np.float64), init, alpha, 0.7, m0, n)
    r = fastcavi.fit(X, K, init=init, weight_concentration_prior=alpha, mean_precision_prior=0.7,
                     mean_prior=m0, max_iter=n, tol=0)
    # The reference sums N x K terms in another order: agreement to ~1e-12 relative is round-off.
    np.testing.assert_allclose(r.elbo, ref[1:], rtol=1e-10)
    np.testing.assert_allclose(r.means, st["means"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(r.weight_concentration, st["alpha_tilde"], rtol=1e-9)
    np.testing.assert_allclose(r.mean_precision, st["nu_tilde"], rtol=1e-9)


@pytest.mark.parametrize("kind", ["scalar", "diagonal", "full"])
def test_known_covariance_matches_reference(kind):
    rng = np.random.default_rng(7)
    D, K, N = 3, 4, 400
    X = _data(rng, N, D) * np.array([1.0, 3.0, 0.5]) + 100.0
    cov = {"scalar": 2.5,
           "diagonal": np.array([0.5, 4.0, 0.3]),
           "full": (lambda a: a @ a.T + 0.5 * np.eye(D))(rng.normal(size=(D, D)))}[kind]
    cov_matrix = np.diag(np.broadcast_to(cov, (D,))) if np.ndim(cov) < 2 else cov
    init = X[:K] + 0.3
    m0 = np.full(D, 100.0)
    ref, st = identity_cavi(X, init, np.ones(K), 0.5, m0, 10, cov=cov_matrix)
    r = fastcavi.fit(X, K, covariance=cov, init=init, mean_precision_prior=0.5, mean_prior=m0,
                     max_iter=10, tol=0)
    np.testing.assert_allclose(r.elbo, ref[1:], rtol=1e-10)
    np.testing.assert_allclose(r.means, st["means"], rtol=1e-9)
    np.testing.assert_allclose(r.mean_precision, st["nu_tilde"], rtol=1e-9)
    np.testing.assert_allclose(r.covariances, cov_matrix, rtol=1e-12)


def _seed_data():
    from fastcavi._demo import seed_case  # the embedded copy, checked against the recorded run (test_seed.py)

    case = seed_case()
    nu = float(case["nu"])
    return case["X"], case["init_means"], nu, float(case["phi"]) / nu, 31


def _blob_data():
    rng = np.random.default_rng(3)
    X = _data(rng, 600, 2, K_true=3, spread=6.0)
    return X, X[rng.choice(600, 10, replace=False)], 1.0, np.zeros(2), 150


@pytest.mark.parametrize("data, gamma", [("seed", 0.1), ("seed", 1.0), ("seed", 5.0), ("blobs", 0.1), ("blobs", 2.0)])
def test_dirichlet_process_on_the_seed_model_matches_reference(data, gamma):
    # The seed's model with the truncated stick-breaking prior, from the seed's start (given initial means,
    # q(pi) = prior), against the NumPy reference (naive.identity_cavi with the stick-breaking q(pi)): the
    # ELBO after every sweep, the final q(v) = Beta(a, b), q(mu), weights_ and a final E-step. Measured:
    # ELBO 5.6e-15 relative, parameters 1.1e-15 (checked at 5e-13, 1e-13); responsibilities 8.4e-15 (at 1e-12).
    from naive import identity_expected_loglik, responsibilities, stick_breaking_expected_log, stick_breaking_weights

    X, init, nu, m0, n = _seed_data() if data == "seed" else _blob_data()
    K = init.shape[0]
    ref, st = identity_cavi(X.astype(np.float64), init, gamma, nu, m0, n, weight_prior_type="dirichlet_process")
    assert np.all(np.diff(ref) >= -1e-14 * np.abs(ref).max())  # the reference is coordinate ascent
    r = fastcavi.fit(X, K, init=init, weight_concentration_prior_type="dirichlet_process",
                     weight_concentration_prior=gamma, mean_precision_prior=nu, mean_prior=m0, max_iter=n, tol=0)
    np.testing.assert_allclose(r.elbo, ref[1:], rtol=5e-13)
    a, b = st["alpha_tilde"]
    np.testing.assert_allclose(r.weight_concentration[0], a, rtol=1e-13)
    np.testing.assert_allclose(r.weight_concentration[1], b, rtol=1e-13)
    np.testing.assert_allclose(r.mean_precision, st["nu_tilde"], rtol=1e-13)
    np.testing.assert_allclose(r.means, st["means"], rtol=0, atol=1e-13 * np.abs(st["means"]).max())
    np.testing.assert_allclose(r.weights, stick_breaking_weights(a, b), rtol=0, atol=1e-13)
    resp, _ = responsibilities(stick_breaking_expected_log(a, b)
                               + identity_expected_loglik(X.astype(np.float64), st["means"], st["nu_tilde"]))
    np.testing.assert_allclose(r.predict_proba(X), resp, rtol=0, atol=1e-12)


def test_elbo_monotone_on_hard_problems():
    rng = np.random.default_rng(11)
    # heavily overlapping clusters and K far above the true number
    X = _data(rng, 3000, 4, K_true=3, spread=0.7)
    for K, init in [(30, "k-means++"), (12, "random"), (25, "random_from_data")]:
        r = fastcavi.fit(X, K, init=init, random_state=K, max_iter=150, tol=0)
        drops = -np.diff(r.elbo)
        assert np.all(drops <= 1e-10 * np.abs(r.elbo[1:])), drops.max()


def test_predict_score_samples_consistent():
    rng = np.random.default_rng(5)
    X = _data(rng, 1000, 3)
    r = fastcavi.fit(X, 3, random_state=0)
    proba = r.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    np.testing.assert_array_equal(r.predict(X), proba.argmax(1))
    # score_samples is the log-sum-exp of the variational logits: check from the parameters
    from scipy.special import digamma, logsumexp

    elog = digamma(r.weight_concentration) - digamma(r.weight_concentration.sum())
    sq = ((X[:, None, :] - r.means[None]) ** 2).sum(-1)
    logits = elog - 1.5 * np.log(2 * np.pi) - 0.5 * sq - 1.5 / r.mean_precision
    np.testing.assert_allclose(r.score_samples(X), logsumexp(logits, axis=1), rtol=1e-12)


def test_result_is_immutable_and_saves(tmp_path):
    rng = np.random.default_rng(2)
    X = _data(rng, 500, 2)
    r = fastcavi.fit(X, 3, random_state=0)
    with pytest.raises(ValueError):
        r.means[0, 0] = 1.0
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        r.n_iter = 3
    path = tmp_path / "m.npz"
    r.save(path)
    back = fastcavi.load(path)
    np.testing.assert_array_equal(back.means, r.means)
    np.testing.assert_array_equal(back.elbo, r.elbo)
    np.testing.assert_array_equal(back.predict_proba(X), r.predict_proba(X))


def test_n_init_keeps_best_and_random_state_reproduces():
    rng = np.random.default_rng(9)
    X = _data(rng, 800, 2, K_true=4, spread=3.0)
    a = fastcavi.fit(X, 4, init="random_from_data", n_init=5, random_state=1, max_iter=50)
    b = fastcavi.fit(X, 4, init="random_from_data", n_init=5, random_state=1, max_iter=50)
    np.testing.assert_array_equal(a.elbo, b.elbo)
    np.testing.assert_array_equal(a.means, b.means)
    # the best of 5 restarts is at least as good as each of them
    restarts = []
    gen = np.random.default_rng(1)
    for _ in range(5):
        restarts.append(fastcavi.fit(X, 4, init="random_from_data", random_state=gen, max_iter=50).lower_bound)
    assert a.lower_bound == max(restarts)
