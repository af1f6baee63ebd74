"""Prediction from a fitted (or saved and loaded) model: score_samples is the full variational density."""
import numpy as np
import pytest
from scipy.special import logsumexp

from naive import dirichlet_expected_log, identity_expected_loglik

import fastcavi


def _blobs(seed=0, N=500, D=3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(3, D))[rng.integers(3, size=N)] * 4 + rng.normal(size=(N, D))


@pytest.mark.parametrize("wtype", ["dirichlet_distribution", "dirichlet_process"])
@pytest.mark.parametrize("cov", ["spherical", "diag", "full", "tied"])
def test_score_samples_and_proba_equal_scikit_learns(cov, wtype):
    sk = pytest.importorskip("sklearn.mixture")
    X = _blobs()
    r = fastcavi.fit(X, 4, covariance_type=cov, weight_concentration_prior_type=wtype, random_state=0,
                     max_iter=20, tol=0)
    est = sk.BayesianGaussianMixture(n_components=4, covariance_type=cov, weight_concentration_prior_type=wtype)
    est.weight_concentration_ = r.weight_concentration
    est.mean_precision_ = np.asarray(r.mean_precision)
    est.means_ = np.asarray(r.means)
    est.degrees_of_freedom_ = r.degrees_of_freedom if cov == "tied" else np.asarray(r.degrees_of_freedom)
    est.precisions_cholesky_ = np.asarray(r.precisions_cholesky)
    Xnew = _blobs(seed=1, N=300)
    np.testing.assert_allclose(r.score_samples(Xnew), est.score_samples(Xnew), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(r.predict_proba(Xnew), est.predict_proba(Xnew), atol=1e-10)


def test_score_samples_with_a_known_covariance():
    X = _blobs(D=2)
    cov = np.array([[2.0, 0.6], [0.6, 0.5]])
    r = fastcavi.fit(X, 3, covariance=cov, random_state=0, max_iter=10)
    logits = (dirichlet_expected_log(np.asarray(r.weight_concentration))
              + identity_expected_loglik(X, np.asarray(r.means), np.asarray(r.mean_precision), cov))
    np.testing.assert_allclose(r.score_samples(X), logsumexp(logits, axis=1), rtol=1e-11)


def test_predict_after_fit_compiles_nothing_new():
    from fastcavi._kernels.estep import estep_blocks

    X = _blobs()
    r = fastcavi.fit(X, 3, covariance_type="full", random_state=0, max_iter=3, tol=0)
    before = len(estep_blocks.signatures)
    r.predict(X)
    back = fastcavi.load(r.save(__import__("tempfile").mkdtemp() + "/m"))
    back.predict_proba(X)
    assert len(estep_blocks.signatures) == before  # read-only coefficients would be a new numba type


def test_save_load_roundtrip(tmp_path):
    X = _blobs()
    r = fastcavi.fit(X, 3, random_state=0, max_iter=5)
    path = r.save(tmp_path / "model")
    assert path.endswith("model.npz")
    back = fastcavi.load(path)
    assert dict(back.priors).keys() == dict(r.priors).keys() and back.priors["covariance"] is None
    for result in (r, back):  # immutable, after loading too: the read-only flag cannot be reset
        for a in (result.means, result.state.means, result.state.weight_concentration, result.elbo,
                  result.model.shift, result.model.to_dict()["mean_prior"]):
            with pytest.raises(ValueError):
                a[0] = 1.0
            with pytest.raises(ValueError):
                a.flags.writeable = True
    assert back.model == r.model
    np.testing.assert_array_equal(back.elbo, r.elbo)
    np.testing.assert_array_equal(back.score_samples(X), r.score_samples(X))


def _not_models(tmp_path):
    """Files that are not fastcavi models, and why (a fragment of the error message)."""
    np.save(tmp_path / "x.npy", _blobs(N=20))
    (tmp_path / "notes.txt").write_text("not a model\n")
    (tmp_path / "empty.npz").write_bytes(b"")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    np.savez(tmp_path / "objects.npz", a=np.array([{}], dtype=object))
    r = fastcavi.fit(_blobs(N=50), 2, random_state=0, max_iter=2, tol=0)
    with np.load(r.save(tmp_path / "model")) as f:
        future = {k: f[k] for k in f.files}
    future["format_version"] = np.array(fastcavi.result.MODEL_FORMAT_VERSION + 1)
    np.savez(tmp_path / "future.npz", **future)
    return [("x.npy", "a single array"), ("notes.txt", "cannot be read as an .npz archive"),
            ("empty.npz", "cannot be read as an .npz archive"), ("other.npz", "lacks the entries format_version"),
            ("objects.npz", "an entry cannot be read"), ("missing.npz", "no such file"), (".", "a directory"),
            ("future.npz", "format version is")]


def test_load_rejects_files_that_are_not_models(tmp_path):
    for name, why in _not_models(tmp_path):
        path = tmp_path / name
        with pytest.raises(ValueError) as info:
            fastcavi.load(path)
        message = str(info.value)
        assert message.startswith(f"{str(path)!r} is not a fastcavi model file"), message
        assert why in message, message


def test_predict_overflowing_rows_raise():
    r = fastcavi.fit(_blobs(D=2), 2, random_state=0, max_iter=5)
    X = np.zeros((10, 2))
    X[7] = 1e160
    with pytest.raises(ValueError, match="Row 7 .* non-finite log-density"):
        r.score_samples(X)


def test_huge_chunk_size_is_capped_by_the_data():
    X = _blobs(N=300)
    a = fastcavi.fit(X, 3, chunk_size=10**11, random_state=0, max_iter=5, tol=0)
    b = fastcavi.fit(X, 3, random_state=0, max_iter=5, tol=0)
    np.testing.assert_array_equal(a.elbo, b.elbo)
    np.testing.assert_array_equal(a.predict(X, chunk_size=10**11), b.predict(X))


def test_results_pickle_and_stay_immutable():
    # pickle, joblib and multiprocessing need it; the copy predicts identically and is frozen too
    import pickle

    X = _blobs()
    for cov in ("identity", "full", "tied"):
        r = fastcavi.fit(X, 3, covariance_type=cov, random_state=0, max_iter=4, tol=0)
        back = pickle.loads(pickle.dumps(r))
        assert back.model == r.model and dict(back.priors).keys() == dict(r.priors).keys()
        np.testing.assert_array_equal(back.elbo, r.elbo)
        np.testing.assert_array_equal(back.predict_proba(X), r.predict_proba(X))
        np.testing.assert_array_equal(back.score_samples(X), r.score_samples(X))
        with pytest.raises(ValueError):
            back.means.flags.writeable = True
        with pytest.raises(ValueError):
            back.state.means[0, 0] = 1.0
        with pytest.raises(TypeError):
            back.priors["mean_precision_prior"] = 2.0
