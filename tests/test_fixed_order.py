"""The fixed-order arithmetic behind CPU-independent results, against independent references.

- the E-step's lane sums (``fastcavi._kernels._lanes``) against the same lanes written as scalar code, and
  against NumPy's dot products;
- the model layer's linear algebra (``fastcavi._models.fixed``) against numpy.linalg and scipy;
- the per-row linear map (``fastcavi._kernels.transform``) against NumPy's matrix product.

Tolerances: each fixed-order result is a different rounding of the same exact value, so it agrees with
LAPACK/BLAS to a few units in the last place times the condition of the problem (the matrices here are
well conditioned: 1e-12 relative is generous).
"""
import math

import numpy as np
import pytest
import scipy.special
from numba import njit

from fastcavi._config import FASTMATH
from fastcavi._kernels._lanes import diagonal4, tile4x1, tile4x2, tile4x4, wide_vector_registers
from fastcavi._kernels.transform import squared_norms, transform
from fastcavi._models import fixed


@njit
def _tiles(a, a0, b, b0, m4):  # a shim: the intrinsics have no Python entry point
    return (tile4x4(a, a0, b, b0, m4), tile4x2(a, a0, b, b0, m4), tile4x1(a, a0, b, b0, m4),
            diagonal4(a, a0, b, b0, m4))


@njit(fastmath=FASTMATH)
def _scalar_lanes(a, b, m4):
    """One lane sum written as scalar code with the kernels' flags."""
    l0 = l1 = l2 = l3 = 0.0
    for i in range(0, m4, 4):
        l0 += a[i] * b[i]
        l1 += a[i + 1] * b[i + 1]
        l2 += a[i + 2] * b[i + 2]
        l3 += a[i + 3] * b[i + 3]
    return (l0 + l1) + (l2 + l3)


def test_wide_vector_registers_follows_the_features_numba_targets(monkeypatch):
    from numba.core import config

    monkeypatch.setattr(config, "CPU_FEATURES", "+avx2,+fma,-avx512f")
    assert not wide_vector_registers()
    monkeypatch.setattr(config, "CPU_FEATURES", "+avx2,+fma,+avx512f,+avx512vl")
    assert wide_vector_registers()
    monkeypatch.setattr(config, "CPU_FEATURES", "")  # the CPU name's own features: taken as 16 registers
    assert not wide_vector_registers()


@pytest.mark.parametrize("m4", [0, 4, 8, 124, 128])
def test_lane_tiles_are_the_scalar_lanes_bit_for_bit(m4):
    rng = np.random.default_rng(m4)
    a = rng.normal(size=(9, 128)) * rng.lognormal(size=(9, 1))
    b = rng.normal(size=(7, 128))
    t44, t42, t41, diag = _tiles(a, 3, b, 2, m4)
    for r in range(4):
        for c in range(4):
            assert t44[4 * r + c] == _scalar_lanes(a[3 + r], b[2 + c], m4)
            np.testing.assert_allclose(t44[4 * r + c], a[3 + r, :m4] @ b[2 + c, :m4], rtol=1e-12, atol=1e-12)
        for c in range(2):  # the E-step's tile where the CPU has 16 vector registers: the same sums
            assert t42[2 * r + c] == t44[4 * r + c]
        assert t41[r] == _scalar_lanes(a[3 + r], b[2], m4)
        assert diag[r] == _scalar_lanes(a[3 + r], b[2 + r], m4)


def _spd(K, D, seed=0):
    rng = np.random.default_rng(seed)
    G = rng.normal(size=(K, D, 2 * D))
    return G @ np.swapaxes(G, -1, -2) / (2 * D) + 0.1 * np.eye(D)


@pytest.mark.parametrize("D", [1, 2, 5, 16])
def test_linear_algebra_agrees_with_lapack(D):
    A = _spd(6, D, seed=D)
    L = fixed.cholesky(A)
    np.testing.assert_allclose(L, np.linalg.cholesky(A), rtol=1e-12, atol=1e-12)
    assert fixed.not_positive_definite(L).size == 0
    np.testing.assert_allclose(fixed.lower_inverse(L), np.linalg.inv(np.linalg.cholesky(A)), rtol=1e-11,
                               atol=1e-11)
    np.testing.assert_allclose(fixed.log_det_spd(A), np.linalg.slogdet(A)[1], rtol=1e-12, atol=1e-12)
    B = np.random.default_rng(1).normal(size=(6, D, 3))
    np.testing.assert_allclose(fixed.matmul(A, B), A @ B, rtol=1e-12, atol=1e-12)
    v = np.random.default_rng(2).normal(size=(6, D))
    np.testing.assert_allclose(fixed.matvec(A, v), np.einsum("kij,kj->ki", A, v), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fixed.quadratic(A, v), np.einsum("ki,kij,kj->k", v, A, v), rtol=1e-12)
    np.testing.assert_allclose(fixed.gram(L), A, rtol=1e-12, atol=1e-12)
    # one matrix, not a stack
    np.testing.assert_allclose(fixed.cholesky(A[0]), np.linalg.cholesky(A[0]), rtol=1e-12, atol=1e-12)


def test_cholesky_names_the_matrices_that_are_not_positive_definite():
    A = _spd(5, 3)
    A[1] = -A[1]
    A[3, 2, 2] = -1.0  # a negative pivot in the last column
    assert fixed.not_positive_definite(fixed.cholesky(A)).tolist() == [1, 3]


def test_log_is_the_c_library_log_and_multigammaln_is_scipys():
    x = np.random.default_rng(0).lognormal(size=(4, 5)) * 100
    assert fixed.log(x).tobytes() == np.array([[math.log(v) for v in row] for row in x]).tobytes()
    assert fixed.log(2.5) == math.log(2.5)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.testing.assert_array_equal(fixed.log(np.array([0.0, -1.0, np.nan])), np.log([0.0, -1.0, np.nan]))
    a = np.linspace(8.5, 40.0, 7)
    for d in (1, 3, 16):
        np.testing.assert_allclose(fixed.multigammaln(a, d), scipy.special.multigammaln(a, d), rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_transform_is_the_matrix_product_in_column_order(dtype):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(1000, 5)).astype(dtype)
    shift = rng.normal(size=5)
    A = rng.normal(size=(4, 5))
    out = transform(X, shift, A, np.empty((1000, 4)))
    y = X.astype(np.float64) - shift
    np.testing.assert_allclose(out, y @ A.T, rtol=1e-12, atol=1e-12)
    # each entry's terms are added in column order, whatever the number of rows or threads
    assert transform(X[:7], shift, A, np.empty((7, 4))).tobytes() == out[:7].tobytes()
    np.testing.assert_allclose(squared_norms(X, shift, A), np.sum((y @ A.T) ** 2, axis=1), rtol=1e-12)
