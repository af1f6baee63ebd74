"""Every compiled kernel against its plain NumPy reference (tests/naive.py)."""
import numpy as np
import pytest

from conftest import readonly
from naive import diag_kernel_reference, full_kernel_reference

from fastcavi._driver import Workspace
from fastcavi._kernels.estep import estep_diag, estep_full
from fastcavi._kernels.seeding import kmeanspp_draw
from fastcavi._kernels.summary import summarize

SHAPES = [(1, 1), (1, 5), (2, 8), (3, 1), (7, 32), (16, 4), (64, 3), (33, 17)]


def _problem(rng, n, D, K, dtype):
    X = (rng.normal(size=(n, D)) * 3 + rng.normal(size=D) * 5).astype(dtype)
    shift = rng.normal(size=D)
    bias = rng.normal(size=K) * 2
    return X, shift, bias


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("D,K", SHAPES)
def test_estep_diag_matches_reference(D, K, dtype):
    rng = np.random.default_rng(D * 100 + K)
    n = 1000  # several blocks and a ragged last block
    X, shift, bias = _problem(rng, n, D, K, dtype)
    W1 = rng.normal(size=(K, D))
    W2 = -np.abs(rng.normal(size=(K, D))) * 0.5
    resp = np.empty((n, K))
    lse = np.empty(n)
    totals = np.zeros(1 + K + 2 * K * D)
    ws = Workspace("diag", K, D, n)
    ws.partials[:] = np.nan  # stale work space must not leak into the sums
    ws.scratch[:] = np.nan
    estep_diag(readonly(X), shift, bias, W1, W2, True, resp, lse, ws.partials, ws.scratch, totals)
    r_ref, lse_ref, Nk, S1, S2 = diag_kernel_reference(X, shift, bias, W1, W2)
    np.testing.assert_allclose(resp, r_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(lse, lse_ref, rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(totals[0], lse_ref.sum(), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(totals[1:1 + K], Nk, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(totals[1 + K:1 + K + K * D].reshape(K, D), S1, rtol=1e-11, atol=1e-9)
    np.testing.assert_allclose(totals[1 + K + K * D:].reshape(K, D), S2, rtol=1e-11, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("D,K", SHAPES)
def test_estep_full_matches_reference(D, K, dtype):
    rng = np.random.default_rng(D * 100 + K + 1)
    n = 700
    X, shift, bias = _problem(rng, n, D, K, dtype)
    A = np.triu(rng.normal(size=(K, D, D))) * 0.3
    for k in range(K):
        A[k][np.diag_indices(D)] = np.abs(A[k].diagonal()) + 0.2
    c = rng.normal(size=(K, D))
    resp = np.empty((n, K))
    lse = np.empty(n)
    totals = np.zeros(1 + K + K * D + K * D * D)
    ws = Workspace("full", K, D, n)
    ws.partials[:] = np.nan
    ws.scratch[:] = np.nan
    estep_full(readonly(X), shift, bias, A, c, True, resp, lse, ws.partials, ws.scratch, totals)
    r_ref, lse_ref, Nk, S1, S2 = full_kernel_reference(X, shift, bias, A, c)
    np.testing.assert_allclose(resp, r_ref, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(lse, lse_ref, rtol=1e-12, atol=1e-11)
    np.testing.assert_allclose(totals[1:1 + K], Nk, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(totals[1 + K:1 + K + K * D].reshape(K, D), S1, rtol=1e-10, atol=1e-8)
    upper = np.triu(totals[1 + K + K * D:].reshape(K, D, D))
    np.testing.assert_allclose(upper, np.triu(S2), rtol=1e-10, atol=1e-8)
    assert np.all(np.isfinite(totals))


def test_estep_handles_extreme_logits():
    # logits far apart (one component at -1e6 below): no overflow, no NaN, responsibilities exact 0/1
    X = readonly(np.array([[0.0], [1.0]]))
    bias = np.array([0.0, -1e6, -800.0])
    W = np.zeros((3, 1))
    resp = np.empty((2, 3))
    lse = np.empty(2)
    totals = np.zeros(1 + 3 + 6)
    ws = Workspace("diag", 3, 1, 2)
    estep_diag(X, np.zeros(1), bias, W, W, True, resp, lse, ws.partials, ws.scratch, totals)
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
