"""Every compiled kernel against its plain NumPy reference (tests/naive.py)."""
import numpy as np
import pytest

from conftest import readonly
from naive import diag_kernel_reference, full_kernel_reference

from fastcavi._driver import Workspace
from fastcavi._kernels.estep import estep
from fastcavi._kernels.seeding import kmeanspp_draw
from fastcavi._kernels.summary import first_non_finite, summarize
from fastcavi._models.base import n_features

SHAPES = [(1, 1), (1, 5), (2, 8), (3, 1), (7, 32), (16, 4), (64, 3), (33, 17)]


def _run_estep(X, shift, bias, W, kernel):
    n, K = X.shape[0], bias.shape[0]
    ws = Workspace(kernel, K, X.shape[1], n)
    ws.partials[:] = np.nan  # stale work space must not leak into the sums
    ws.scratch[:] = np.nan
    resp = np.empty((n, K))
    lse = np.empty(n)
    totals = np.zeros(1 + K + K * W.shape[1])
    estep(readonly(X), shift, bias, W, kernel == "full", True, resp, lse, ws.partials, ws.scratch, totals)
    return resp, lse, totals


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("D,K", SHAPES)
def test_estep_diag_features_match_reference(D, K, dtype):
    # logits bias + W1 y + W2 y**2 (identity, spherical, diag, tied)
    rng = np.random.default_rng(D * 100 + K)
    n = 1000  # several blocks and a ragged last block
    X = (rng.normal(size=(n, D)) * 3 + rng.normal(size=D) * 5).astype(dtype)
    shift, bias = rng.normal(size=D), rng.normal(size=K) * 2
    W1, W2 = rng.normal(size=(K, D)), -np.abs(rng.normal(size=(K, D))) * 0.5
    resp, lse, totals = _run_estep(X, shift, bias, np.hstack((W1, W2)), "diag")
    r_ref, lse_ref, Nk, S1, S2 = diag_kernel_reference(X, shift, bias, W1, W2)
    np.testing.assert_allclose(resp, r_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(lse, lse_ref, rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(totals[0], lse_ref.sum(), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(totals[1:1 + K], Nk, rtol=1e-12, atol=1e-12)
    S = totals[1 + K:].reshape(K, 2 * D)
    np.testing.assert_allclose(S[:, :D], S1, rtol=1e-11, atol=1e-9)
    np.testing.assert_allclose(S[:, D:], S2, rtol=1e-11, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("D,K", SHAPES)
def test_estep_full_features_match_reference(D, K, dtype):
    # logits bias_k - |y A_k - c_k|^2 / 2 (full covariances), written as weights of y and y_a y_b
    rng = np.random.default_rng(D * 100 + K + 1)
    n = 700
    X = (rng.normal(size=(n, D)) * 3 + rng.normal(size=D) * 5).astype(dtype)
    shift, bias = rng.normal(size=D), rng.normal(size=K) * 2
    A = np.triu(rng.normal(size=(K, D, D))) * 0.3
    for k in range(K):
        A[k][np.diag_indices(D)] = np.abs(A[k].diagonal()) + 0.2
    c = rng.normal(size=(K, D))
    Lam = A @ A.transpose(0, 2, 1)
    a, b = np.triu_indices(D)
    W = np.hstack((np.einsum("kij,kj->ki", A, c), np.where(a == b, -0.5, -1.0) * Lam[:, a, b]))
    bias_full = bias - 0.5 * np.sum(c * c, axis=1)
    resp, lse, totals = _run_estep(X, shift, bias_full, W, "full")
    r_ref, lse_ref, Nk, S1, S2 = full_kernel_reference(X, shift, bias, A, c)
    # the expanded quadratic form cancels terms of size |y|^2 |A|^2: ~1e-13 relative on the logits
    np.testing.assert_allclose(resp, r_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(lse, lse_ref, rtol=1e-11, atol=1e-10)
    np.testing.assert_allclose(totals[1:1 + K], Nk, rtol=1e-10, atol=1e-10)
    S = totals[1 + K:].reshape(K, n_features(D, "full"))
    np.testing.assert_allclose(S[:, :D], S1, rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(S[:, D:], S2[:, a, b], rtol=1e-9, atol=1e-8)
    assert np.all(np.isfinite(totals))


def test_estep_handles_extreme_logits():
    # logits far apart (one component at -1e6 below): no overflow, no NaN, responsibilities exact 0/1
    X = np.array([[0.0], [1.0]])
    bias = np.array([0.0, -1e6, -800.0])
    resp, lse, totals = _run_estep(X, np.zeros(1), bias, np.zeros((3, 2)), "diag")
    assert np.all(np.isfinite(resp)) and np.all(np.isfinite(totals))
    np.testing.assert_allclose(resp[:, 0], 1.0)
    assert np.all(resp[:, 1] == 0.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("D", [1, 3, 20])
def test_summarize_matches_numpy(D, dtype):
    rng = np.random.default_rng(D)
    X = (rng.normal(size=(999, D)) + 1e3).astype(dtype)
    shift = np.full(D, 1e3)
    totals = np.zeros(D + D * D)
    assert summarize(readonly(X), shift, True, totals) == -1
    y = X.astype(np.float64) - shift
    np.testing.assert_allclose(totals[:D], y.sum(0), rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(np.triu(totals[D:].reshape(D, D)), np.triu(y.T @ y), rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("D", [1, 4])
def test_summarize_diagonal_only(D):
    rng = np.random.default_rng(D)
    X = rng.normal(size=(777, D)) + 2.0
    totals = np.zeros(2 * D)
    assert summarize(readonly(X), np.full(D, 2.0), False, totals) == -1
    y = X - 2.0
    np.testing.assert_allclose(totals, np.hstack((y.sum(0), (y * y).sum(0))), rtol=1e-11, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_first_non_finite(dtype):
    X = np.ones((5000, 3), dtype=dtype)
    assert first_non_finite(readonly(X)) == -1
    X[4321, 1] = np.inf
    X[4400, 0] = np.nan
    assert first_non_finite(readonly(X)) == 4321


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_summarize_finds_first_bad_row(bad):
    X = np.ones((2000, 3))
    X[1234, 2] = bad
    X[1500, 0] = bad
    totals = np.zeros(12)
    assert summarize(readonly(X), np.zeros(3), True, totals) == 1234
    assert np.all(totals == 0)


def test_kmeanspp_draw_is_d2_weighted():
    # Three points at squared distances 1, 4, 0 from the only centre: the draw picks row 0 with
    # probability 1/5, row 1 with 4/5, never row 2. 4000 independent seeds: binomial sd ~ 0.0063.
    X = readonly(np.array([[1.0], [2.0], [0.0]]))
    centres = np.zeros((1, 1))
    picks = np.array([kmeanspp_draw(X, np.zeros(1), centres, np.uint64(s), 1, 0)[1] for s in range(4000)])
    assert set(picks.tolist()) <= {0, 1}
    assert abs(np.mean(picks == 1) - 0.8) < 0.03
    # chunking does not change the draw: row0 offsets the hash, so split calls agree with one call
    X2 = readonly(np.random.default_rng(0).normal(size=(3000, 2)))
    c = np.zeros((1, 2))
    whole = kmeanspp_draw(X2, np.zeros(2), c, np.uint64(7), 3, 0)
    a = kmeanspp_draw(readonly(X2[:1024]), np.zeros(2), c, np.uint64(7), 3, 0)
    b = kmeanspp_draw(readonly(X2[1024:]), np.zeros(2), c, np.uint64(7), 3, 1024)
    assert min(a, b) == whole
