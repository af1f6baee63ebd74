"""fastcavi.BayesianGaussianMixture as a drop-in for scikit-learn's estimator."""
import warnings

import numpy as np
import pytest

import fastcavi

sk = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.mixture import BayesianGaussianMixture as SkBGM  # noqa: E402


def _blobs(seed=0, N=600, D=2):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])[:, :D] if D == 2 else rng.normal(size=(3, D)) * 6
    return centres[rng.integers(3, size=N)] + rng.normal(size=(N, D))


def test_same_parameters_and_defaults_as_scikit_learn():
    ours = fastcavi.BayesianGaussianMixture().get_params()
    theirs = SkBGM().get_params()
    for name, value in theirs.items():
        if name == "warm_start":
            continue  # not supported (documented)
        assert name in ours, name
        assert ours[name] == value, name


@pytest.mark.parametrize("cov", ["full", "tied", "diag", "spherical"])
def test_fit_predict_and_attributes(cov):
    X = _blobs()
    est = fastcavi.BayesianGaussianMixture(n_components=5, covariance_type=cov, random_state=0, max_iter=300)
    labels = est.fit_predict(X)
    np.testing.assert_array_equal(labels, est.predict(X))
    assert est.converged_ and est.n_iter_ == len(est.lower_bounds_)
    assert est.lower_bound_ == est.lower_bounds_[-1]
    assert est.n_features_in_ == 2
    # three blobs: the process prior leaves three components with nearly all the weight
    assert np.sort(est.weights_)[-3:].sum() > 0.98
    proba = est.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert est.score(X) == pytest.approx(est.score_samples(X).mean())
    Xs, ys = est.sample(50)
    assert Xs.shape == (50, 2) and ys.shape == (50,)


def test_scikit_learn_agrees_from_the_same_start():
    # With the same initial responsibilities the two estimators reach the same fixed point
    # (tests/test_sklearn_agreement.py checks every iteration; this checks the user-facing path).
    X = _blobs(seed=3)
    est = fastcavi.BayesianGaussianMixture(n_components=3, covariance_type="full", random_state=0,
                                           tol=1e-8, max_iter=500).fit(X)
    R = est.predict_proba(X)

    class FromResp(SkBGM):
        def _initialize_parameters(self, X, random_state, **kw):
            self._initialize(X, R)

    ref = FromResp(n_components=3, covariance_type="full", tol=1e-8, max_iter=500).fit(X)
    order = np.argsort(est.means_[:, 0] + 10 * est.means_[:, 1])
    ref_order = np.argsort(ref.means_[:, 0] + 10 * ref.means_[:, 1])
    np.testing.assert_allclose(est.means_[order], ref.means_[ref_order], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(est.covariances_[order], ref.covariances_[ref_order], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(est.predict_proba(X)[:, order], ref.predict_proba(X)[:, ref_order], atol=1e-4)
    # both stop at an ELBO gain below 1e-8, one or two iterations apart: agreement to ~1e-5
    np.testing.assert_allclose(est.score_samples(X), ref.score_samples(X), rtol=1e-5, atol=1e-5)


def test_clone_and_pipeline():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    est = fastcavi.BayesianGaussianMixture(n_components=3, random_state=1)
    c = clone(est)
    assert c.get_params() == est.get_params()
    pipe = make_pipeline(StandardScaler(), c).fit(_blobs())
    assert pipe.predict(_blobs()).shape == (600,)


def test_not_fitted_and_bad_init():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        fastcavi.BayesianGaussianMixture().predict(_blobs())
    with pytest.raises(ValueError, match="'init_params'"):
        fastcavi.BayesianGaussianMixture(init_params="kmeanz").fit(_blobs())


def test_memmap_input(tmp_path):
    X = _blobs()
    np.save(tmp_path / "x.npy", X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = fastcavi.BayesianGaussianMixture(n_components=3, random_state=0).fit(X)
        b = fastcavi.BayesianGaussianMixture(n_components=3, random_state=0).fit(str(tmp_path / "x.npy"))
    np.testing.assert_array_equal(a.means_, b.means_)
