"""One variational sweep at N = 1e6, K = 8: fastcavi vs scikit-learn's BayesianGaussianMixture.

scikit-learn's sweep is timed as it runs inside ``fit``: ``_e_step`` (responsibilities),
``_m_step`` and ``_compute_lower_bound``, on an estimator already initialised from the same
responsibilities; fastcavi's as ``fit`` runs it: one kernel pass, the updates, the full ELBO.
"""
import numpy as np
import pytest

from _public import model_and_state, sweep as public_sweep

sklearn_mixture = pytest.importorskip("sklearn.mixture")

K = 8
CASES = [(2, "spherical"), (16, "full"), (16, "diag"), (16, "tied")]


def _initial_resp(X):
    rng = np.random.default_rng(0)
    centres = X[rng.choice(X.shape[0], K, replace=False)]
    d2 = ((X[:, None, :] - centres[None]) ** 2).sum(-1)
    return np.eye(K)[np.argmin(d2, axis=1)]


@pytest.mark.parametrize("D,cov", CASES)
def test_sweep_fastcavi_wishart(benchmark, blobs, D, cov):
    X = blobs(D, "float64")
    model, state = model_and_state(X, K, cov, responsibilities=_initial_resp(X))

    def sweep():
        return public_sweep(model, state, X)[0]

    sweep()
    benchmark.group = f"sweep {cov} D={D} float64 vs scikit-learn"
    benchmark.extra_info["role"] = "fastcavi"
    benchmark.pedantic(sweep, rounds=5, warmup_rounds=1)


@pytest.mark.parametrize("D,cov", CASES)
def test_sweep_sklearn(benchmark, blobs, D, cov):
    X = blobs(D, "float64")
    est = sklearn_mixture.BayesianGaussianMixture(n_components=K, covariance_type=cov,
                                                  weight_concentration_prior_type="dirichlet_distribution")
    est._check_parameters(X)
    est._initialize(X, _initial_resp(X))

    def sweep():
        log_prob_norm, log_resp = est._e_step(X)
        est._m_step(X, log_resp)
        return est._compute_lower_bound(log_resp, log_prob_norm)

    benchmark.group = f"sweep {cov} D={D} float64 vs scikit-learn"
    benchmark.extra_info["role"] = "baseline"
    benchmark.pedantic(sweep, rounds=3, warmup_rounds=0)
