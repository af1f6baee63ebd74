"""fastcavi.BayesianGaussianMixture as a drop-in for scikit-learn's estimator."""
import warnings

import numpy as np
import pytest

import fastcavi

sk = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.mixture import BayesianGaussianMixture as SkBGM  # noqa: E402


def _blobs(seed=0, N=600, D=2, labels=False):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])[:, :D] if D == 2 else rng.normal(size=(3, D)) * 6
    X = centres[rng.integers(3, size=N)] + rng.normal(size=(N, D))
    if labels:  # the Bayes-optimal labels under the generating mixture: the nearest centre
        return X, np.argmin(((X[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    return X


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
    # The user-facing path (k-means++ start): on three well-separated blobs, fit_predict's labels are the
    # Bayes-optimal ones of the generating mixture (the nearest true centre), up to relabelling, for every
    # one of the 600 rows (measured: all 600, every covariance type).
    X, nearest = _blobs(labels=True)
    est = fastcavi.BayesianGaussianMixture(n_components=5, covariance_type=cov, random_state=0, max_iter=300)
    labels = est.fit_predict(X)
    counts = np.zeros((5, 3), dtype=int)
    np.add.at(counts, (labels, nearest), 1)
    assert np.count_nonzero(counts) == 3 and np.all(np.count_nonzero(counts, axis=0) == 1), counts
    assert est.converged_ and est.n_iter_ == len(est.lower_bounds_)
    assert est.lower_bound_ == est.lower_bounds_[-1]
    assert est.n_features_in_ == 2
    # three blobs: the process prior leaves three components with nearly all the weight (measured 0.9965)
    assert np.sort(est.weights_)[-3:].sum() > 0.98
    Xs, ys = est.sample(50)
    assert Xs.shape == (50, 2) and ys.shape == (50,)


# Measured over the 8 cases below (every covariance type and weight prior): parameters 1.0e-13 relative to
# each array's largest entry, predict_proba 7.4e-14, score_samples 5.0e-14 of max|score_samples|, score
# 1.1e-15 relative, lower_bounds_ 1.1e-13 of max|ELBO|; both stop after the same number of iterations
# (29 to 100); the smallest gap between a row's two largest responsibilities is 3.0e-2, so no label can
# differ by round-off. Checked at ~100x: 1e-11, 1e-11, 5e-12, 1e-13, 1e-11.
ESTIMATOR_ATTRIBUTES = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_",
                        "weight_concentration_", "mean_precision_", "degrees_of_freedom_")


@pytest.mark.parametrize("wtype", ["dirichlet_process", "dirichlet_distribution"])
@pytest.mark.parametrize("cov", ["full", "tied", "diag", "spherical"])
def test_scikit_learn_agrees_from_the_same_start(cov, wtype, monkeypatch):
    # Both estimators start from the same responsibilities R (an M-step from R, scikit-learn's
    # _initialize) with scikit-learn's defaults otherwise (tol=1e-3 on the bound's change, max_iter=100),
    # and are compared through their public methods: fit_predict, predict, predict_proba, score_samples,
    # score (on the training rows and on new rows), the fitted attributes, n_iter_/converged_ and
    # lower_bounds_ (scikit-learn's bound plus the constants it drops and the reg_covar term).
    from test_sklearn_agreement import FromResponsibilities, full_elbo_from_sklearn

    import fastcavi.estimator

    X = _blobs(seed=3)
    X_new = _blobs(seed=4, N=300)
    R = np.random.default_rng(1).dirichlet(np.full(5, 0.3), size=600)
    fit = fastcavi.estimator._fit
    monkeypatch.setattr(fastcavi.estimator, "_fit", lambda X, **kw: fit(X, init_responsibilities=R, **kw))
    est = fastcavi.BayesianGaussianMixture(n_components=5, covariance_type=cov, weight_concentration_prior_type=wtype)
    ref = FromResponsibilities(n_components=5, covariance_type=cov, weight_concentration_prior_type=wtype)
    ref.resp0 = R
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning in both where 100 iterations do not suffice
        labels = est.fit_predict(X)
        ref_labels = ref.fit_predict(X)
    np.testing.assert_array_equal(labels, ref_labels)
    assert (est.n_iter_, est.converged_) == (ref.n_iter_, ref.converged_)
    for name in ESTIMATOR_ATTRIBUTES:
        ours, theirs = getattr(est, name), getattr(ref, name)
        for a, b in zip(ours, theirs) if isinstance(theirs, tuple) else [(ours, theirs)]:
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-11 * np.max(np.abs(b)), err_msg=name)
    elbo = full_elbo_from_sklearn(ref, X)
    np.testing.assert_allclose(est.lower_bounds_, elbo, rtol=0, atol=1e-11 * np.max(np.abs(elbo)))
    for Z in (X, X_new):
        np.testing.assert_array_equal(est.predict(Z), ref.predict(Z))
        np.testing.assert_allclose(est.predict_proba(Z), ref.predict_proba(Z), rtol=0, atol=1e-11)
        expected = ref.score_samples(Z)
        np.testing.assert_allclose(est.score_samples(Z), expected, rtol=0, atol=5e-12 * np.max(np.abs(expected)))
        assert est.score(Z) == pytest.approx(ref.score(Z), rel=1e-13, abs=0)


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


# -- scikit-learn's input checks, with its messages (fastcavi's own code: the same without scikit-learn) --
def test_wrong_number_of_features_names_the_estimator():
    est = fastcavi.BayesianGaussianMixture(n_components=2, random_state=0).fit(_blobs(N=60))
    for method in (est.predict, est.predict_proba, est.score_samples, est.score):
        with pytest.raises(ValueError, match=r"^X has 3 features, but BayesianGaussianMixture is expecting 2 "
                                             r"features as input\.$"):
            method(np.zeros((4, 3)))
    est.partial_fit(_blobs(N=60))  # a stream's first batch starts it, as fit does; a later batch is checked
    with pytest.raises(ValueError, match=r"^X has 3 features, but BayesianGaussianMixture is expecting 2 "):
        est.partial_fit(np.zeros((4, 3)))


def test_one_sample_is_refused_as_scikit_learn_refuses_it():
    with pytest.raises(ValueError, match=r"^Found array with 1 sample\(s\) \(shape=\(1, 2\)\) while a minimum of 2 "
                                         r"is required by BayesianGaussianMixture\.$"):
        fastcavi.BayesianGaussianMixture().fit(np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"Found array with 1 sample\(s\) \(shape=\(1, 2\)\) while a minimum of 2"):
        SkBGM().fit(np.ones((1, 2)))  # the message is scikit-learn's


@pytest.mark.parametrize("kind", ["csr_matrix", "csr_array", "coo_matrix"])
def test_sparse_input_gets_scikit_learns_error(kind):
    import scipy.sparse

    X = getattr(scipy.sparse, kind)(_blobs(N=60))
    message = ("Sparse data was passed for X, but dense data is required. Use '.toarray()' to convert to a dense "
               "numpy array.")
    with pytest.raises(TypeError, match=f"^{message}$".replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        fastcavi.BayesianGaussianMixture(n_components=2).fit(X)
    with pytest.raises(TypeError, match="Sparse data was passed for X, but dense data is required"):
        fastcavi.fit(X, n_components=2)
    est = fastcavi.BayesianGaussianMixture(n_components=2, random_state=0).fit(_blobs(N=60))
    with pytest.raises(TypeError, match="Sparse data was passed for X, but dense data is required"):
        est.predict(X)
    with pytest.raises(TypeError, match="Sparse data was passed for X, but dense data is required"):
        SkBGM(n_components=2).fit(X)  # the message is scikit-learn's


def test_object_arrays_of_numbers_are_converted():
    X = _blobs(N=60)
    ours = fastcavi.BayesianGaussianMixture(n_components=2, random_state=0)
    from_objects = clone(ours).fit(X.astype(object))
    from_floats = clone(ours).fit(X)
    np.testing.assert_array_equal(from_objects.means_, from_floats.means_)  # the same float64 values
    np.testing.assert_array_equal(from_floats.predict_proba(X.astype(object)), from_floats.predict_proba(X))
    w = np.arange(60) % 3
    np.testing.assert_array_equal(clone(ours).fit(X, sample_weight=w.astype(object)).means_,
                                  clone(ours).fit(X, sample_weight=w).means_)  # weights too, as scikit-learn
    bad = X.astype(object)
    bad[0, 0] = {"foo": "bar"}
    with pytest.raises(TypeError, match="argument must be a string or a (real )?number"):
        clone(ours).fit(bad)
    bad[0, 0] = "not a number"
    with pytest.raises(ValueError, match="could not convert string to float"):
        clone(ours).fit(bad)


def test_all_zero_weights_get_scikit_learns_message():
    with pytest.raises(ValueError, match=r"^Sample weights must contain at least one non-zero number\.$"):
        fastcavi.BayesianGaussianMixture(n_components=2).fit(_blobs(N=60), sample_weight=np.zeros(60))


def test_a_density_estimator():
    from sklearn.base import is_outlier_detector, is_regressor
    from sklearn.utils import get_tags

    est = fastcavi.BayesianGaussianMixture()
    assert get_tags(est).estimator_type == "density_estimator" == get_tags(SkBGM()).estimator_type
    assert est._estimator_type == "DensityEstimator"
    assert not is_regressor(est) and not is_outlier_detector(est)
    assert get_tags(est).input_tags == get_tags(SkBGM()).input_tags  # dense 2-D arrays, no NaN, like theirs


def test_pickle_and_joblib_round_trip(tmp_path):
    import pickle

    import joblib

    X = _blobs(N=200)
    est = fastcavi.BayesianGaussianMixture(n_components=3, random_state=0).fit(X)
    for copy in (pickle.loads(pickle.dumps(est)), pickle.loads(pickle.dumps(est.result_)),
                 joblib.load(joblib.dump(est, tmp_path / "est.joblib")[0])):
        np.testing.assert_array_equal(copy.predict_proba(X), est.predict_proba(X))
        np.testing.assert_array_equal(copy.predict(X), est.predict(X))


# -- verbose output and ConvergenceWarning, as scikit-learn's --------------------------------------
def test_verbose_prints_what_scikit_learn_prints(capsys):
    import re

    X = _blobs(N=300)
    kwargs = dict(n_components=3, n_init=2, verbose_interval=2, random_state=0, max_iter=5, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol=0: no run converges, in either
        fastcavi.BayesianGaussianMixture(verbose=1, **kwargs).fit(X)
        ours1 = capsys.readouterr().out
        SkBGM(verbose=1, **kwargs).fit(X)
        theirs1 = capsys.readouterr().out
        fastcavi.BayesianGaussianMixture(verbose=2, **kwargs).fit(X)
        ours2 = capsys.readouterr().out
        SkBGM(verbose=2, **kwargs).fit(X)
        theirs2 = capsys.readouterr().out
    assert ours1 == theirs1 == ("Initialization 0\n  Iteration 2\n  Iteration 4\nInitialization did not converge.\n"
                                "Initialization 1\n  Iteration 2\n  Iteration 4\nInitialization did not converge.\n")

    def shape(text):  # the lines with their numbers blanked
        return re.sub(r"-?\d+\.\d+", "#", text)

    assert shape(ours2) == shape(theirs2)
    assert shape(ours2).splitlines()[1] == "  Iteration 2\t time lapse #s\t ll change #"
    assert shape(ours2).splitlines()[3] == "Initialization did not converge. time lapse #s\t lower bound #."
    fastcavi.BayesianGaussianMixture(n_components=3, verbose=1, random_state=0, max_iter=300).fit(X)
    assert capsys.readouterr().out.splitlines()[-1] == "Initialization converged."


def test_convergence_warning_is_scikit_learns():
    from sklearn.exceptions import ConvergenceWarning

    assert issubclass(fastcavi.ConvergenceWarning, ConvergenceWarning)
    assert fastcavi.ConvergenceWarning is fastcavi.exceptions.ConvergenceWarning
    with pytest.warns(ConvergenceWarning, match="Best performing initialization did not converge"):
        fastcavi.BayesianGaussianMixture(n_components=3, max_iter=2, random_state=0).fit(_blobs(N=300))


def _run(code):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_does_not_import_scikit_learn():
    # importing scikit-learn takes about a second: only the estimator, or ConvergenceWarning, imports it
    assert _run("import sys, fastcavi; print('sklearn' in sys.modules); fastcavi.ConvergenceWarning; "
                "print('sklearn' in sys.modules)").split() == ["False", "True"]


def test_convergence_warning_made_in_a_thread_is_the_one_class():
    # a first fit that waits for a kernel compiled in another process makes the class in a thread meanwhile;
    # threads asking at the same time get that same class, scikit-learn's subclass
    out = _run("""
import threading, fastcavi.exceptions as e
e._make_convergence_warning_in_background()
got = []
threads = [threading.Thread(target=lambda: got.append(e.ConvergenceWarning)) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
from sklearn.exceptions import ConvergenceWarning
import fastcavi
print(len(got), len(set(got)), got[0] is fastcavi.ConvergenceWarning, issubclass(got[0], ConvergenceWarning))
""")
    assert out.split() == ["4", "1", "True", "True"]


def test_the_same_messages_without_scikit_learn():
    # scikit-learn blocked: the estimator falls back to its own base, ConvergenceWarning to UserWarning, and
    # the input checks (fastcavi's own) give scikit-learn's messages
    out = _run("""
import sys
sys.modules["sklearn"] = None
import numpy as np, fastcavi
from fastcavi import BayesianGaussianMixture as B
assert fastcavi.ConvergenceWarning.__mro__[1] is UserWarning
for call in (lambda: B().fit(np.ones((1, 2))),
             lambda: B(n_components=2, random_state=0).fit(np.arange(40.0).reshape(20, 2)).predict(np.ones((3, 3))),
             lambda: B().fit(np.ones((4, 2)), sample_weight=np.zeros(4))):
    try:
        call()
    except ValueError as exc:
        print(exc)
print(B().get_params()["n_components"], B._estimator_type)
""")
    assert out.splitlines() == [
        "Found array with 1 sample(s) (shape=(1, 2)) while a minimum of 2 is required by BayesianGaussianMixture.",
        "X has 3 features, but BayesianGaussianMixture is expecting 2 features as input.",
        "Sample weights must contain at least one non-zero number.",
        "1 DensityEstimator"]
