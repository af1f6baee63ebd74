"""The full ELBO against a Monte Carlo estimate of its definition, for every covariance type and weight prior.

``monte_carlo_elbo`` (tests/naive_bayesian.py) draws pi (or the sticks) and the component
parameters from q, writes every density out from its textbook form, and averages
log p(X, Z, pi, theta) - log q(Z, pi, theta) (the sum over the discrete q(Z) taken exactly).

1. fastcavi's reported ELBO. ``elbo[-1]`` of a fit with ``max_iter=n`` is the ELBO of q(Z) = the
   responsibilities of the sweep-n E-step, i.e. those of the state after n - 1 sweeps (the
   ``predict_proba`` of a fit with ``max_iter=n - 1`` from the same start), and q(pi, theta) =
   the result's parameters (the updates from those responsibilities).
2. The closed-form reference of tests/naive_bayesian.py (and tests/naive.py for the seed model)
   at a q(Z) that is *not* the one q(pi, theta) was updated from: there the integrand varies with
   pi and theta, so this also checks the closed-form expectations (E[log pi_k], E[log|Lambda_k|],
   E[(x - mu)^T Lambda (x - mu)], the Wishart and Dirichlet normalisers) term by term. At the
   matched q(Z) the references equal fastcavi's ELBO (also checked here, as in
   tests/test_sklearn_agreement.py).

Tolerance: 5 standard errors of the Monte Carlo mean (20,000 independent draws, so the mean is
normal to a very good approximation; a correct closed form fails a given seed with probability
~6e-7), plus 1e-10 |ELBO| for round-off: at the matched q(Z) the optimal q(pi, theta) makes the
integrand constant up to reg_covar's perturbation for the unrestricted families ("identity",
"full"), and the standard error there is ~1e-16 (identity) to ~1e-8 (full). So the check resolves
a discrepancy down to round-off for "identity", ~1e-7 for "full", and ~0.03-0.1 for the restricted
families and at the mismatched q(Z) (standard errors 0.005-0.06 for N = 40, D = 2, K = 3); a wrong
constant or expectation in the closed form (a missing D/2, a log 2, a digamma term) is larger.
"""
import numpy as np
import pytest

from naive import identity_elbo
from naive_bayesian import full_elbo, monte_carlo_elbo

import fastcavi

N_DRAWS = 20_000
Z_MAX = 5.0
ROUND_OFF = 1e-10
N_SWEEPS = 3


def _data(seed=1, N=40):
    rng = np.random.default_rng(seed)
    X = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])[rng.integers(3, size=N)] + rng.normal(size=(N, 2))
    return X, rng.dirichlet(np.ones(3), size=N)


def _params(r):
    return dict(means=r.means, mean_precision=r.mean_precision, weight_concentration=r.weight_concentration,
                degrees_of_freedom=r.degrees_of_freedom, covariances=r.covariances)


def _priors(r, cov):
    p = r.priors
    out = dict(weight_concentration_prior=p["weight_concentration_prior"],
               mean_precision_prior=p["mean_precision_prior"], mean_prior=p["mean_prior"])
    if cov == "identity":
        out["covariance"] = r.covariances
    else:
        out.update(degrees_of_freedom_prior=p["degrees_of_freedom_prior"], covariance_prior=p["covariance_prior"])
    return out


def _closed_form_reference(X, R, r, cov, wtype):
    """The NumPy reference's full ELBO at (q(Z) = R, q(pi, theta) = r), or None where there is none."""
    p = _priors(r, cov)
    if cov == "identity":
        if wtype != "dirichlet_distribution":
            return None  # tests/naive.py has the seed's Dirichlet model only
        return identity_elbo(X, R, r.weight_concentration, r.means, r.mean_precision,
                             p["weight_concentration_prior"], p["mean_precision_prior"], p["mean_prior"],
                             p["covariance"])
    p["weight_concentration_prior"] = float(np.ravel(p["weight_concentration_prior"])[0])
    return full_elbo(X, R, _params(r), covariance_type=cov, weight_concentration_prior_type=wtype, **p)


def _check(mc, se, closed):
    assert abs(mc - closed) <= Z_MAX * se + ROUND_OFF * abs(closed), (mc, se, closed, (mc - closed) / se)


CASES = [(cov, wtype, None) for cov in ("identity", "spherical", "diag", "full", "tied")
         for wtype in ("dirichlet_distribution", "dirichlet_process")]
CASES.append(("identity", "dirichlet_distribution", np.array([[2.0, 0.6], [0.6, 0.5]])))  # a known Sigma != I


@pytest.mark.parametrize("cov, wtype, sigma", CASES)
def test_elbo_is_its_monte_carlo_estimate(cov, wtype, sigma):
    X, R0 = _data()
    kw = dict(covariance_type=cov, weight_concentration_prior_type=wtype, init_responsibilities=R0, tol=0)
    if sigma is not None:
        kw["covariance"] = sigma
    before = fastcavi.fit(X, 3, max_iter=N_SWEEPS - 1, **kw)
    result = fastcavi.fit(X, 3, max_iter=N_SWEEPS, **kw)
    R = before.predict_proba(X)  # q(Z) of the last sweep of `result`
    mc = dict(covariance_type=cov, weight_concentration_prior_type=wtype, n_draws=N_DRAWS, **_priors(result, cov))

    # 1. fastcavi's reported ELBO is E_q[log p - log q] for its q
    _check(*monte_carlo_elbo(X, R, _params(result), seed=0, **mc), result.elbo[-1])

    # 2. the closed-form reference, at the matched q(Z) (= fastcavi) and at a mismatched one (= Monte Carlo)
    ref = _closed_form_reference(X, R, result, cov, wtype)
    if ref is None:
        return
    np.testing.assert_allclose(ref, result.elbo[-1], rtol=1e-10)
    R_off = 0.5 * R + 0.5 * np.random.default_rng(2).dirichlet(np.ones(3), size=X.shape[0])
    _check(*monte_carlo_elbo(X, R_off, _params(result), seed=1, **mc),
           _closed_form_reference(X, R_off, result, cov, wtype))


def test_monte_carlo_detects_a_wrong_constant():
    # The check has power where the integrand varies most (the restricted families): an ELBO off by
    # 0.2 (smaller than any missing term of the closed form, e.g. (D/2) log(beta0) for beta0 = 1.2) fails.
    X, R0 = _data()
    kw = dict(covariance_type="diag", init_responsibilities=R0, tol=0)
    before = fastcavi.fit(X, 3, max_iter=N_SWEEPS - 1, **kw)
    result = fastcavi.fit(X, 3, max_iter=N_SWEEPS, **kw)
    mc, se = monte_carlo_elbo(X, before.predict_proba(X), _params(result), covariance_type="diag",
                              weight_concentration_prior_type="dirichlet_distribution", n_draws=N_DRAWS,
                              seed=0, **_priors(result, "diag"))
    assert abs(mc - (result.elbo[-1] + 0.2)) > Z_MAX * se


def test_wishart_sampler_and_density():
    # The Monte Carlo's own Wishart pieces against scipy.stats.wishart: the density exactly, the sampler
    # by its mean (df * scale) and E[log|Lambda|] (sum_i psi((df - i)/2) + D log 2 + log|scale|) within 5 SE.
    from scipy.special import digamma
    from scipy.stats import wishart

    from naive_bayesian import wishart_logpdf, wishart_sample

    df, scale = 4.5, np.array([[2.0, 0.7, 0.1], [0.7, 1.0, -0.3], [0.1, -0.3, 0.5]])
    Lam = wishart_sample(np.random.default_rng(3), df, scale, 20_000)
    np.testing.assert_allclose(wishart_logpdf(Lam[:50], df, scale),
                               wishart(df=df, scale=scale).logpdf(np.moveaxis(Lam[:50], 0, -1)), rtol=1e-12)
    mean, se = Lam.mean(0), Lam.std(0, ddof=1) / np.sqrt(Lam.shape[0])
    assert np.all(np.abs(mean - df * scale) <= Z_MAX * se)
    logdet = np.linalg.slogdet(Lam)[1]
    expected = np.sum(digamma(0.5 * (df - np.arange(3)))) + 3 * np.log(2.0) + np.linalg.slogdet(scale)[1]
    assert abs(logdet.mean() - expected) <= Z_MAX * logdet.std(ddof=1) / np.sqrt(logdet.size)
