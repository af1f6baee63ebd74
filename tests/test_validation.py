"""Bad input gets a clear error before any work; the caller's data is never modified."""
import numpy as np
import pytest

import fastcavi


def _X(n=100, d=2):
    return np.random.default_rng(0).normal(size=(n, d))


@pytest.mark.parametrize("X, message", [
    (np.zeros(10), "Expected 2D array, got 1D array"),
    (np.zeros((4, 3, 2)), "Found array with dim 3"),
    (np.zeros((0, 2)), "0 sample"),
    (np.zeros((10, 0)), "0 feature"),
    (np.zeros((10, 2), dtype=complex), "Complex data not supported"),
    (np.array([["a", "b"], ["c", "d"]] * 5), "must hold numbers"),
    (np.array([[1, "x"]] * 5, dtype=object), "could not convert string to float: .x."),  # as scikit-learn
    ([[1.0, 2.0], [3.0]], "cannot be read"),
])
def test_bad_arrays(X, message):
    with pytest.raises(ValueError, match=message):
        fastcavi.fit(X, 2)


def test_fewer_rows_than_components():
    with pytest.raises(ValueError, match="Expected n_samples >= n_components but got n_components = 5, n_samples = 3"):
        fastcavi.fit(np.zeros((3, 2)), 5)


@pytest.mark.parametrize("value, word", [(np.nan, "NaN"), (np.inf, "infinity"), (-np.inf, "infinity")])
def test_non_finite_names_first_row(value, word, tmp_path):
    X = _X(100_000, 3)
    X[77_777, 1] = value
    X[90_000, 0] = np.nan
    path = tmp_path / "bad.npy"
    np.save(path, X)
    for source in (X, np.load(path, mmap_mode="r"), str(path)):
        with pytest.raises(ValueError, match=f"Input X contains {word}.*row 77777, column 1"):
            fastcavi.fit(source, 2, chunk_size=4096)


def test_truncated_and_wrong_files(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, _X(1000))
    raw = path.read_bytes()
    (tmp_path / "trunc.npy").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="truncated"):
        fastcavi.fit(tmp_path / "trunc.npy", 2)
    (tmp_path / "junk.npy").write_bytes(b"not an array at all" * 10)
    with pytest.raises(ValueError, match="Cannot read"):
        fastcavi.fit(tmp_path / "junk.npy", 2)
    with pytest.raises(ValueError, match="No such data file"):
        fastcavi.fit(tmp_path / "missing.npy", 2)
    np.save(tmp_path / "one_d.npy", np.zeros(10))
    with pytest.raises(ValueError, match="Expected 2D array"):
        fastcavi.fit(tmp_path / "one_d.npy", 2)


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_components=0), "'n_components' parameter must be an int in the range \\[1, inf\\)"),
    (dict(n_components=2.5), "'n_components'"),
    (dict(weight_concentration_prior=0.0), "'weight_concentration_prior' parameter must be positive"),
    (dict(weight_concentration_prior=[1.0, 2.0, 3.0]), "should have the shape \\(2,\\)"),
    (dict(weight_concentration_prior=-1.0, weight_concentration_prior_type="dirichlet_process"),
     "'weight_concentration_prior'"),
    (dict(mean_precision_prior=0.0), "'mean_precision_prior' parameter must be a finite real number > 0"),
    (dict(mean_precision_prior=np.nan), "'mean_precision_prior'"),
    (dict(mean_prior=[1.0, 2.0, 3.0]), "'mean_prior' parameter should have the shape \\(2,\\)"),
    (dict(mean_prior=[np.nan, 1.0]), "'mean_prior' parameter must be finite"),
    (dict(covariance=-1.0), "'covariance'"),
    (dict(covariance=np.array([[1.0, 2.0], [2.0, 1.0]])), "positive-definite"),
    (dict(covariance=np.array([[1.0, 0.5], [0.0, 1.0]])), "symmetric"),
    (dict(covariance=np.eye(3)), "shape \\(2, 2\\)"),
    (dict(init=np.zeros((3, 2))), "should have the shape \\(2, 2\\)"),
    (dict(init=np.array([[0.0, np.nan], [1.0, 1.0]])), "NaN or infinity"),
    (dict(init="kmeanz"), "'init' parameter must be a str among"),
    (dict(covariance_type="fullish"), "'covariance_type' parameter must be a str among"),
    (dict(weight_concentration_prior_type="dp"), "'weight_concentration_prior_type'"),
    (dict(max_iter=0), "'max_iter'"),
    (dict(tol=-1.0), "'tol'"),
    (dict(tol_type="rel"), "'tol_type'"),
    (dict(n_init=0), "'n_init'"),
    (dict(n_threads=0), "'n_threads'"),
    (dict(n_threads=10_000), "'n_threads'"),
    (dict(chunk_size=0), "'chunk_size'"),
    (dict(random_state="seed"), "cannot be used to seed"),
    (dict(callback=3), "'callback' must be callable"),
])
def test_bad_parameters(kwargs, message):
    kwargs = dict(kwargs)
    K = kwargs.pop("n_components", 2)
    with pytest.raises(ValueError, match=message):
        fastcavi.fit(_X(), K, **kwargs)


@pytest.mark.parametrize("covariance_type", ["identity", "spherical", "diag", "full", "tied"])
@pytest.mark.parametrize("kwargs, message", [
    (dict(reg_covar=-5), r"The 'reg_covar' parameter must be a finite real number >= 0.0. Got -5 instead."),
    (dict(reg_covar="abc"), r"The 'reg_covar' parameter must be a finite real number >= 0.0. Got 'abc' instead."),
    (dict(reg_covar=np.inf), r"'reg_covar'.*Got inf instead"),
    (dict(reg_covar=True), r"'reg_covar'.*Got True instead"),
    (dict(exact_cavi="yes"), r"The 'exact_cavi' parameter must be a bool. Got 'yes' instead."),
    (dict(exact_cavi=1), r"The 'exact_cavi' parameter must be a bool. Got 1 instead."),
])
def test_reg_covar_and_exact_cavi_checked_for_every_family(covariance_type, kwargs, message):
    # "identity" ignores both, but a bad value is still an error, raised before the data is read
    ds = _CountingReads(_X())
    with pytest.raises(ValueError, match=message):
        fastcavi.fit(ds, 2, covariance_type=covariance_type, **kwargs)
    assert ds.reads == 0


def test_reg_covar_and_exact_cavi_ignored_by_identity():
    X = _X()
    kw = dict(random_state=0, max_iter=5, tol=0)
    a = fastcavi.fit(X, 2, **kw)
    b = fastcavi.fit(X, 2, reg_covar=0.5, exact_cavi=np.bool_(True), **kw)
    np.testing.assert_array_equal(a.elbo, b.elbo)
    np.testing.assert_array_equal(a.means, b.means)


class _CountingReads:
    """A dataset-like object that counts its reads."""

    def __init__(self, a):
        self._a, self.shape, self.dtype, self.reads = a, a.shape, a.dtype, 0

    def __getitem__(self, key):
        self.reads += 1
        return self._a[key]


def test_errors_come_before_any_work(monkeypatch):
    # A bad hyperparameter must be reported without a single pass over the data.
    ds = _CountingReads(_X())
    with pytest.raises(ValueError):
        fastcavi.fit(ds, 2, mean_precision_prior=-1.0)
    assert ds.reads == 0


def test_caller_data_not_modified():
    X = _X(3000, 3)
    X32 = X.astype(np.float32)
    copies = X.copy(), X32.copy()
    init = X[:3].copy()
    init_copy = init.copy()
    alpha = np.ones(3)
    r = fastcavi.fit(X, 3, init=init, weight_concentration_prior=alpha, max_iter=5)
    fastcavi.fit(X32, 3, max_iter=5, random_state=0)
    r.predict_proba(X)
    np.testing.assert_array_equal(X, copies[0])
    np.testing.assert_array_equal(X32, copies[1])
    np.testing.assert_array_equal(init, init_copy)
    np.testing.assert_array_equal(alpha, np.ones(3))


def test_predict_checks_features_and_nan():
    r = fastcavi.fit(_X(), 2, random_state=0)
    with pytest.raises(ValueError, match="X has 3 features, but the fitted model is expecting 2 features"):
        r.predict(np.zeros((5, 3)))
    bad = np.zeros((5, 2))
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN.*row 3"):
        r.predict(bad)


def test_convergence_warning():
    X = _X(500)
    with pytest.warns(fastcavi.ConvergenceWarning, match="did not converge") as caught:
        fastcavi.fit(X, 3, max_iter=2, random_state=0)
    assert caught[0].filename == __file__  # the warning points at the caller of fit
