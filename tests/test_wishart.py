"""The Normal-Wishart families: degenerate data, exact_cavi, defaults, invariance, and validation.

Fits are checked against the plain NumPy reference of ``tests/naive_bayesian.py`` (and scikit-learn)
from the same initial responsibilities, after every iteration (``conftest.fit_recording``).
"""
import warnings

import numpy as np
import pytest

from conftest import fit_recording
from naive_bayesian import bayesian_gmm_reference, e_step

import fastcavi

TYPES = ("spherical", "diag", "full", "tied")
WEIGHT_TYPES = ("dirichlet_distribution", "dirichlet_process")
PARAMETERS = ("weight_concentration", "mean_precision", "means", "degrees_of_freedom", "covariances",
              "precisions_cholesky", "weights")


def _reference(X, R, n_iter, cov, wtype, priors, exact_cavi=False, mean_prior=None):
    """The NumPy reference run from R with the priors fastcavi resolved (its ``result.priors``)."""
    return bayesian_gmm_reference(
        X, R, n_iter, covariance_type=cov, weight_concentration_prior_type=wtype,
        weight_concentration_prior=float(np.ravel(priors["weight_concentration_prior"])[0]),
        mean_precision_prior=priors["mean_precision_prior"],
        mean_prior=priors["mean_prior"] if mean_prior is None else mean_prior,
        degrees_of_freedom_prior=priors["degrees_of_freedom_prior"], covariance_prior=priors["covariance_prior"],
        reg_covar=priors["reg_covar"], exact_cavi=exact_cavi)


def _assert_close(ours, theirs, rtol, name):
    """Agreement relative to the largest entry of the array (entries ~0 have no relative meaning)."""
    if isinstance(theirs, tuple):
        for a, b in zip(ours, theirs):
            _assert_close(a, b, rtol, name)
        return
    b = np.asarray(theirs, dtype=float)
    np.testing.assert_allclose(np.asarray(ours, dtype=float), b, rtol=0, atol=rtol * np.max(np.abs(b)), err_msg=name)


def _assert_matches_reference(result, history, ref, param_rtol, elbo_rtol, names=PARAMETERS):
    """Every iteration's parameters (history[1:]) and the ELBO trace against the reference's."""
    assert len(history) == len(ref) + 1
    for m, (ours, theirs) in enumerate(zip(history[1:], ref), start=1):
        for name in names:
            _assert_close(ours[name], theirs[name], param_rtol, f"{name} @ {m}")
    elbo = np.array([h["elbo"] for h in ref])
    np.testing.assert_allclose(result.elbo, elbo, rtol=0, atol=elbo_rtol * np.max(np.abs(elbo)))


def _blobs(seed=0, N=600, D=3, K=3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(K, D))[rng.integers(K, size=N)] * 5 + rng.normal(size=(N, D))


def test_singular_component_without_reg_covar_names_it():
    # Five duplicate points far away: the component that takes them has a rank-one scale matrix
    # when the prior scale is negligible and reg_covar=0. (diag and spherical scales stay positive:
    # a positive prior scale is added to a sum of squares, in scikit-learn as here.)
    X = _blobs(D=2)
    X[:5] = [40.0, 40.0]
    R = np.zeros((X.shape[0], 2))
    R[:5, 1] = 1.0
    R[5:, 0] = 1.0
    with pytest.raises(ValueError, match=r"ill-defined empirical covariance.*\(component 1\)"):
        fastcavi.fit(X, 2, covariance_type="full", init_responsibilities=R, reg_covar=0.0,
                     covariance_prior=np.eye(2) * 1e-300, max_iter=3)


def _degenerate(case):
    """Degenerate data and initial responsibilities (N=400, D=3)."""
    X = _blobs(seed=2, N=400, D=3)
    rng = np.random.default_rng(len(case))
    K = 4
    if case == "duplicates":
        X[:150] = X[0]
        R = rng.dirichlet(np.ones(K), size=400)
        R[:150] = np.eye(K)[0]  # component 0 starts on the 150 copies of one point: zero scatter
    elif case == "constant_column":
        X[:, 1] = 7.0  # the default covariance prior is singular: reg_covar is added to it
        R = rng.dirichlet(np.ones(K), size=400)
    else:
        K = 12  # far more components than clusters, 9 of them exactly empty at the start
        R = np.zeros((400, K))
        R[np.arange(400), rng.choice([0, 5, 9], size=400)] = 1.0
    return X, R


# Measured over the 48 cases below (every iteration): parameters 2.6e-11 at worst (empty_components,
# full, dirichlet_process, around iteration 29 where near-empty components lose their last weight and
# round-off is amplified; <= 4e-12 elsewhere), ELBO 1.3e-12 of max|ELBO|, responsibilities 1.7e-12.
DEGENERATE_PARAM_RTOL = 3e-9
DEGENERATE_ELBO_RTOL = 1e-10
DEGENERATE_PROBA_ATOL = 2e-10


@pytest.mark.parametrize("exact_cavi", [False, True])
@pytest.mark.parametrize("wtype", WEIGHT_TYPES)
@pytest.mark.parametrize("cov", TYPES)
@pytest.mark.parametrize("case", ["duplicates", "constant_column", "empty_components"])
def test_degenerate_data_matches_reference(case, cov, wtype, exact_cavi):
    # Duplicate points, a constant column and exactly empty components, with the default reg_covar:
    # every iteration's parameters and the ELBO trace are the NumPy reference's from the same start
    # (exact_cavi=True: the reference's exact_cavi variant), and so are the final responsibilities.
    X, R = _degenerate(case)
    K = R.shape[1]
    n_iter = 60
    r, history = fit_recording(X, K, covariance_type=cov, weight_concentration_prior_type=wtype,
                               init_responsibilities=R, max_iter=n_iter, tol=0, exact_cavi=exact_cavi)
    ref = _reference(X, R, n_iter, cov, wtype, r.priors, exact_cavi=exact_cavi)
    _assert_matches_reference(r, history, ref, DEGENERATE_PARAM_RTOL, DEGENERATE_ELBO_RTOL)
    noise_var = r.priors["reg_covar"] if exact_cavi else 0.0
    expected = np.exp(e_step(X, ref[-1], cov, wtype, noise_var))
    np.testing.assert_allclose(r.predict_proba(X), expected, rtol=0, atol=DEGENERATE_PROBA_ATOL)


@pytest.mark.parametrize("cov", TYPES)
def test_exact_cavi_never_decreases_on_degenerate_data(cov):
    # With reg_covar=0 (and a proper prior) the updates are exact coordinate ascent: the ELBO is
    # monotone even with duplicate points and a constant column, and any drop would raise.
    X = _blobs(seed=3, N=500, D=3)
    X[:100] = X[0]
    X[:, 2] = -1.0
    prior = {"full": np.eye(3), "tied": np.eye(3), "diag": np.ones(3), "spherical": 1.0}[cov]
    r = fastcavi.fit(X, 6, covariance_type=cov, reg_covar=0.0, covariance_prior=prior, random_state=1,
                     max_iter=200, tol=0)
    assert np.all(np.diff(r.elbo) >= -1e-12 * np.abs(r.elbo[1:]).max())


def test_defaults_are_scikit_learns():
    X = _blobs()
    N, D = X.shape
    r = fastcavi.fit(X, 4, covariance_type="full", max_iter=2, tol=0)
    np.testing.assert_allclose(r.priors["weight_concentration_prior"], np.full(4, 0.25))
    assert r.priors["mean_precision_prior"] == 1.0
    np.testing.assert_allclose(r.priors["mean_prior"], X.mean(0), rtol=1e-12)
    assert r.priors["degrees_of_freedom_prior"] == D
    np.testing.assert_allclose(r.priors["covariance_prior"], np.cov(X.T), rtol=1e-12)
    assert r.priors["reg_covar"] == 1e-6
    d = fastcavi.fit(X, 4, covariance_type="diag", max_iter=2, tol=0)
    np.testing.assert_allclose(d.priors["covariance_prior"], X.var(0, ddof=1), rtol=1e-12)
    s = fastcavi.fit(X, 4, covariance_type="spherical", max_iter=2, tol=0)
    np.testing.assert_allclose(s.priors["covariance_prior"], X.var(0, ddof=1).mean(), rtol=1e-12)
    t = fastcavi.fit(X, 4, covariance_type="tied", max_iter=2, tol=0)
    assert np.ndim(t.degrees_of_freedom) == 0 and t.covariances.shape == (D, D)


@pytest.mark.parametrize("cov", TYPES)
def test_thread_chunk_and_dtype_invariance(cov):
    X = _blobs(seed=5, N=3000, D=4)
    kw = dict(covariance_type=cov, weight_concentration_prior_type="dirichlet_process", random_state=2,
              max_iter=15, tol=0)
    a = fastcavi.fit(X, 5, n_threads=1, chunk_size=256, **kw)
    b = fastcavi.fit(X, 5, chunk_size=100_000, **kw)
    c = fastcavi.fit(np.asfortranarray(X), 5, **kw)
    for other in (b, c):
        np.testing.assert_array_equal(a.elbo, other.elbo)
        np.testing.assert_array_equal(a.means, other.means)
        np.testing.assert_array_equal(a.covariances, other.covariances)


@pytest.mark.parametrize("wtype", WEIGHT_TYPES)
@pytest.mark.parametrize("cov", TYPES)
def test_far_from_origin(cov, wtype):
    # Sums of squares are taken about the data mean, so a fit on X + 1e8 loses nothing beyond the data's
    # own rounding: it is the reference's fit on the very same points moved back by 1e8 (Y - 1e8 is exact
    # in float64 for Y near 1e8), with the same priors, at every iteration. Measured: covariances and
    # precisions 2.4e-12, other parameters 4.9e-13, ELBO 1.6e-13 (checked at 3e-10, 1e-11). The means are
    # stored near 1e8, where one ulp is 2**-26 = 1.5e-8: measured 7.4e-9, the rounding of the result
    # itself (half an ulp); checked at one ulp. (The same fit on X instead of the rounded X + 1e8 - 1e8
    # differs by the data's rounding, 7.4e-9 per point: ~8e-10 in the covariances.)
    X = np.round(_blobs(seed=6, N=2000, D=2), 3)
    far = X + 1e8
    near = far - 1e8  # exactly the points fastcavi was given, minus 1e8
    R = np.random.default_rng(6).dirichlet(np.ones(3), size=2000)
    r, history = fit_recording(far, 3, covariance_type=cov, weight_concentration_prior_type=wtype,
                               init_responsibilities=R, max_iter=30, tol=0)
    ref = _reference(near, R, 30, cov, wtype, r.priors, mean_prior=r.priors["mean_prior"] - 1e8)
    _assert_matches_reference(r, history, ref, 3e-10, 1e-11, names=[n for n in PARAMETERS if n != "means"])
    for m, (ours, theirs) in enumerate(zip(history[1:], ref), start=1):
        np.testing.assert_allclose(ours["means"] - 1e8, theirs["means"], rtol=0, atol=2.0**-26, err_msg=f"@ {m}")


def test_seed_model_from_responsibilities_matches_reference():
    # init_responsibilities works for the seed's model too: an M-step from R, then CAVI sweeps.
    from naive import dirichlet_expected_log, identity_elbo, identity_expected_loglik
    from scipy.special import logsumexp

    X = _blobs(seed=7, N=300, D=2)
    R = np.random.default_rng(0).dirichlet(np.ones(3), size=300)
    alpha, nu, m0 = np.ones(3), 1.0, np.zeros(2)
    Nk = R.sum(0)
    a, n = alpha + Nk, nu + Nk
    m = (nu * m0 + R.T @ X) / n[:, None]
    elbos = []
    for _ in range(4):
        logits = dirichlet_expected_log(a) + identity_expected_loglik(X, m, n)
        resp = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
        Nk = resp.sum(0)
        a, n = alpha + Nk, nu + Nk
        m = (nu * m0 + resp.T @ X) / n[:, None]
        elbos.append(identity_elbo(X, resp, a, m, n, alpha, nu, m0))
    r = fastcavi.fit(X, 3, init_responsibilities=R, max_iter=4, tol=0)
    np.testing.assert_allclose(r.elbo, elbos, rtol=1e-11)
    np.testing.assert_allclose(r.means, m, rtol=1e-11)
    np.testing.assert_allclose(r.weight_concentration, a, rtol=1e-12)


@pytest.mark.parametrize("kwargs, message", [
    (dict(covariance_type="full", degrees_of_freedom_prior=1.5), "should be greater than 2, but got 1.500"),
    (dict(covariance_type="full", covariance_prior=np.eye(2)), r"should have the shape \(3, 3\)"),
    (dict(covariance_type="full", covariance_prior=-np.eye(3)), "symmetric, positive-definite"),
    (dict(covariance_type="diag", covariance_prior=np.array([1.0, -1.0, 1.0])), "should be positive"),
    (dict(covariance_type="spherical", covariance_prior=0.0), "positive number"),
    (dict(covariance_type="full", reg_covar=-1.0), "'reg_covar'"),
    (dict(covariance_type="full", covariance=np.eye(3)), "only to covariance_type='identity'"),
    (dict(covariance_type="identity", covariance_prior=np.eye(3)), "apply to the Wishart families"),
    (dict(covariance_type="full", weight_concentration_prior_type="dirichlet_process",
          weight_concentration_prior=[1.0, 2.0]), "'weight_concentration_prior'"),
    (dict(init_responsibilities=np.ones((10, 2))), r"should have the shape \(600, 2\)"),
    (dict(init_responsibilities=np.full((600, 2), 0.7)), "row 0 is not a probability vector"),
])
def test_bad_wishart_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fastcavi.fit(_blobs(), 2, **kwargs)


def test_singular_default_prior_needs_reg_covar():
    X = _blobs()
    X[:, 0] = 3.0
    with pytest.raises(ValueError, match="default covariance_prior .* is singular"):
        fastcavi.fit(X, 2, covariance_type="full", reg_covar=0.0)


def _constant_column_cases():
    from test_sklearn_agreement import _dataset  # tests/ is on sys.path (conftest.py)

    for seed in (14, 25, 19):  # seeds whose scikit-learn-exact fits dip (tests/test_sklearn_agreement data)
        for cov in ("full", "diag"):
            for wtype in ("dirichlet_distribution", "dirichlet_process"):
                rng = np.random.default_rng(seed * 1000 + len("constant_column") * 10 + len(cov) + len(wtype))
                yield _dataset("constant_column", rng), cov, wtype


def test_exact_cavi_with_reg_covar_is_the_reference_and_never_decreases():
    # On constant-column data where scikit-learn's updates (reg_covar in the M-step only) lower the ELBO,
    # exact_cavi=True is, at every iteration, the reference's exact_cavi run (E-step and ELBO of the model
    # with extra N(0, reg_covar I) observation noise), whose ELBO never goes down: that checks the
    # reference's formula as well as fastcavi (a missing or misplaced reg_covar term makes it dip here).
    # Measured: parameters 5.9e-12, ELBO 7.9e-14 of max|ELBO| (exact_cavi; checked at 5e-10, 1e-11), ELBO
    # 3.5e-13 (scikit-learn's updates; checked at 1e-11). The reference's exact trace never falls by more
    # than 1.1e-15 of max|ELBO| (checked at 1e-13), while its scikit-learn-mode trace falls by 5e-9 to
    # 1.1e-6 of it in 3 of the 12 cases.
    dips = warned = 0
    for (X, R), cov, wtype in _constant_column_cases():
        K = R.shape[1]
        kw = dict(covariance_type=cov, weight_concentration_prior_type=wtype, init_responsibilities=R,
                  max_iter=50, tol=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            plain = fastcavi.fit(X, K, **kw)
        warned += any(issubclass(w.category, fastcavi.ELBODecreaseWarning) for w in caught)
        sk_mode = np.array([h["elbo"] for h in _reference(X, R, 50, cov, wtype, plain.priors)])
        np.testing.assert_allclose(plain.elbo, sk_mode, rtol=0, atol=1e-11 * np.abs(sk_mode).max())
        dips += np.min(np.diff(sk_mode)) < -1e-9 * np.abs(sk_mode).max()

        r, history = fit_recording(X, K, exact_cavi=True, **kw)  # would raise ELBODecreaseError on a drop
        ref = _reference(X, R, 50, cov, wtype, r.priors, exact_cavi=True)
        _assert_matches_reference(r, history, ref, 5e-10, 1e-11)
        exact = np.array([h["elbo"] for h in ref])
        assert np.min(np.diff(exact)) >= -1e-13 * np.abs(exact).max()
    assert dips >= 1 and warned >= 1  # the cases do exercise scikit-learn's non-monotone step


@pytest.mark.parametrize("cov", TYPES)
def test_exact_cavi_is_scikit_learns_without_reg_covar_and_the_reference_with_it(cov):
    # reg_covar=0: with or without exact_cavi the updates are scikit-learn's (from the same R, every
    # iteration: measured 2.9e-13, checked at 3e-11) and the ELBO is scikit-learn's bound plus the
    # closed-form constant (measured 2.6e-14 of max|ELBO|, checked at 3e-12).
    # reg_covar=1e-6: exact_cavi=True is the NumPy reference's exact_cavi run at every iteration
    # (measured: parameters 1.2e-13, ELBO 1.0e-14; checked at 1e-11, 1e-12).
    from naive_bayesian import elbo_offset_constant
    from test_sklearn_agreement import FromResponsibilities  # skips without scikit-learn

    X = _blobs(seed=8, N=500, D=3)
    R = np.random.default_rng(8).dirichlet(np.ones(3), size=500)
    prior = {"full": np.eye(3), "tied": np.eye(3), "diag": np.ones(3), "spherical": 1.0}[cov]
    kw = dict(covariance_type=cov, init_responsibilities=R, max_iter=20, tol=0, covariance_prior=prior)
    dd = "dirichlet_distribution"
    est = FromResponsibilities(n_components=3, covariance_type=cov, weight_concentration_prior_type=dd,
                               max_iter=20, tol=0, reg_covar=0.0, covariance_prior=prior)
    est.resp0 = R
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X)
    sk_bounds = np.array([float(np.ravel(b)[0]) for b in est.lower_bounds_])
    for exact_cavi in (False, True):
        r, history = fit_recording(X, 3, reg_covar=0.0, exact_cavi=exact_cavi, **kw)
        for m, (ours, snap) in enumerate(zip(history, est.history_)):
            for name in PARAMETERS[:-1]:
                _assert_close(ours[name], snap[name + "_"], 3e-11, f"{name} @ {m}, exact_cavi={exact_cavi}")
        p = r.priors
        C = elbo_offset_constant(500, 3, 3, covariance_type=cov, weight_concentration_prior_type=dd,
                                 weight_concentration_prior=1.0 / 3, mean_precision_prior=p["mean_precision_prior"],
                                 degrees_of_freedom_prior=p["degrees_of_freedom_prior"], covariance_prior=prior)
        np.testing.assert_allclose(r.elbo - sk_bounds, C, rtol=0, atol=3e-12 * np.abs(r.elbo).max())
    r, history = fit_recording(X, 3, exact_cavi=True, **kw)
    _assert_matches_reference(r, history, _reference(X, R, 20, cov, dd, r.priors, exact_cavi=True), 1e-11, 1e-12)


def _diag_layout_tied_fit(model, X, w, R, n_iter):
    """Tied's previous path, in NumPy: "diag"-layout statistics (the squares y**2 included, weighed 0 by the logits).

    Every statistic is computed here from the rows (none by fastcavi's kernels); the family's update
    and ELBO are applied to those statistics, with the coefficients padded by the zero weights of the
    squares, as the previous layout had them. Returns the final state and the ELBO trace.
    """
    from scipy.special import logsumexp

    from fastcavi._models.base import Stats, elbo_from_stats

    family = model._family
    K, D = model.n_components, model.n_features
    y = np.asarray(X, dtype=np.float64) - model.shift
    phi = np.hstack((y, y * y))

    class Padded:  # the family's previous coefficients: zero weights for the squares
        dropped_sum, kl = family.dropped_sum, family.kl

        @staticmethod
        def coefficients(state):
            bias, W = family.coefficients(state)
            return bias, np.hstack((W, np.zeros((K, D))))

    def stats_of(r, lse_sum):
        ent = -np.sum(np.where(r > 0, r * np.log(np.where(r > 0, r, 1.0)), 0.0), axis=1)
        values = np.concatenate(([w.sum(), lse_sum, w @ ent], w @ r, ((r * w[:, None]).T @ phi).ravel()))
        return Stats.from_values("diag", K, D, values)

    state, trace = family.update(stats_of(R, 0.0)), []
    for _ in range(n_iter):
        bias, W = Padded.coefficients(state)
        logits = bias + phi @ W.T
        lse = logsumexp(logits, axis=1)
        stats = stats_of(np.exp(logits - lse[:, None]), w @ lse)
        state = family.update(stats)
        trace.append(elbo_from_stats(Padded, stats, state)[0])
    return state, np.array(trace)


@pytest.mark.parametrize("wtype", WEIGHT_TYPES)
def test_tied_linear_layout_is_the_previous_diag_layout_fit(wtype):
    # Tied statistics carry D features per component (no squares: its updates read N_k and sum r y, its
    # pooled scatter comes from the summary's total scatter). The fit equals the previous path's, whose
    # statistics held the squares too, to rounding: measured up to 7e-15 (parameters, relative to each
    # array's largest entry) and 1e-15 (ELBO), checked at 1e-10 relative.
    from fastcavi import engine

    X = _blobs(seed=3, N=900, D=4, K=3)
    rng = np.random.default_rng(4)
    w = rng.uniform(0.2, 2.0, size=X.shape[0])
    R = rng.dirichlet(np.ones(3), size=X.shape[0])
    r = fastcavi.fit(X, 3, covariance_type="tied", weight_concentration_prior_type=wtype, init_responsibilities=R,
                     sample_weight=w, max_iter=8, tol=0)
    model = r.model
    assert model.layout == "linear"
    stats = engine.estep(model, r.state, X, sample_weight=w)
    assert stats.layout == "linear" and stats.S.shape == (3, 4) and stats.size == 3 + 3 + 3 * 4
    with pytest.raises(ValueError, match="no per-component second moments"):
        stats.S2
    assert engine.Stats.from_array(stats.to_array()) == stats
    state, trace = _diag_layout_tied_fit(model, X, w, R, 8)
    np.testing.assert_allclose(r.elbo, trace, rtol=1e-10, atol=0)
    ours = model.public_parameters(r.state)
    for name, value in model.public_parameters(state).items():
        _assert_close(ours[name], value, 1e-10, name)


def test_tied_model_refuses_diag_layout_statistics_and_coefficients():
    from fastcavi import engine

    X = _blobs(seed=1, N=300, D=2, K=2)
    model = fastcavi.fit(X, 2, covariance_type="tied", max_iter=2, tol=0, random_state=0).model
    old = engine.Stats.zeros("diag", 2, 2)
    with pytest.raises(ValueError, match="'linear' layout .* earlier fastcavi"):
        model.update(old)
    # the pass refuses coefficients of the previous width (the squares' zero weights) for this layout
    from fastcavi._passes import estep_pass

    layout, (bias, W) = model.coefficients(model.update(engine.responsibility_stats(model, X, np.full((300, 2), 0.5))))
    assert layout == "linear" and W.shape == (2, 2)
    with pytest.raises(ValueError, match="coefficients of 4 features for the 'linear' layout at D=2"):
        estep_pass(engine._source(X), None, model._coords, layout, (bias, np.hstack((W, 0 * W))), 4096)
