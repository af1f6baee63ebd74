"""Small linear algebra and logarithms with the same bits on every CPU, for the updates and the ELBO.

The model layer works on K x D x D arrays. ``numpy.linalg`` and matrix products call LAPACK and
BLAS, whose kernels OpenBLAS picks for the CPU at run time, and numpy's ``log`` loops are picked
for the CPU's SIMD features: their last bits differ between machines. The functions here use
only numpy's elementwise arithmetic (correctly rounded, so the same everywhere), sums along one
axis (numpy adds those in an order fixed by the shape, on any CPU), and ``math.log`` (the C
library's, the same on every x86-64 CPU with FMA). Every product of matrices adds its terms in
the order of the inner index.

The stacks are small (K matrices of D x D, or K vectors), so each function is a loop over D of
numpy operations vectorised over the stack.
"""
import math

import numpy as np


def log(x):
    """Natural logarithm, elementwise (``-inf`` at 0, NaN below 0).

    Parameters
    ----------
    x : float or ndarray

    Returns
    -------
    float or ndarray of float64, the shape of ``x``
    """
    if np.ndim(x) == 0:
        return _log1(float(x))
    a = np.asarray(x, dtype=np.float64)
    out = np.fromiter(map(_log1, a.ravel().tolist()), dtype=np.float64, count=a.size)
    return out.reshape(a.shape)


def _log1(v):
    if v > 0.0:
        return math.log(v)
    return -math.inf if v == 0.0 else math.nan


def matmul(a, b):
    """``a @ b`` for matrices or stacks of them, each entry's terms added in the order of the inner index.

    Parameters
    ----------
    a : ndarray of shape (..., n, m)
    b : ndarray of shape (..., m, p)

    Returns
    -------
    ndarray of shape (..., n, p)
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    # a loop, not one reduction over the products: numpy sums a contiguous axis pairwise, another one in order
    out = a[..., :, 0, None] * b[..., None, 0, :]
    for j in range(1, a.shape[-1]):
        out = out + a[..., :, j, None] * b[..., None, j, :]
    return out


def gram(p):
    """``p @ p^T`` (of each matrix of a stack): a precision from its Cholesky factor."""
    p = np.asarray(p, dtype=np.float64)
    return matmul(p, np.swapaxes(p, -1, -2))


def matvec(a, v):
    """``a @ v`` for a stack of matrices (..., n, m) and vectors (..., m), terms in the order of ``m``."""
    return matmul(np.asarray(a, dtype=np.float64), np.asarray(v, dtype=np.float64)[..., :, None])[..., 0]


def quadratic(a, v):
    """``v^T a v`` for a stack of matrices (..., D, D) and vectors (..., D)."""
    v = np.asarray(v, dtype=np.float64)
    return np.sum(v * matvec(a, v), axis=-1)


def cholesky(a):
    """Lower Cholesky factors of symmetric matrices (a stack or one), column by column.

    Right-looking: column ``j`` is the remaining matrix's column divided by the square root of its
    pivot, and the remaining matrix then loses that column's outer product, so entry ``(i, j)`` of
    the factor comes from ``a[i, j] - L[i, 0] L[j, 0] - L[i, 1] L[j, 1] - ...`` in that order.

    Parameters
    ----------
    a : ndarray of shape (..., D, D)
        Read from its lower triangle.

    Returns
    -------
    L : ndarray of shape (..., D, D)
        Lower triangular, ``L L^T = a``. Where a matrix is not (numerically) positive definite its
        factor holds NaN: see :func:`not_positive_definite`.
    """
    rest = np.tril(np.asarray(a, dtype=np.float64))
    D = rest.shape[-1]
    L = np.zeros_like(rest)
    for j in range(D):
        pivot = rest[..., j, j]
        d = np.sqrt(np.where(pivot > 0.0, pivot, np.nan))
        column = rest[..., j:, j] / d[..., None]
        column[..., 0] = d
        L[..., j:, j] = column
        if j + 1 < D:
            below = column[..., 1:]
            rest[..., j + 1:, j + 1:] -= below[..., :, None] * below[..., None, :]
    return L


def not_positive_definite(L):
    """Indices (into the stack) of the factors :func:`cholesky` could not complete; shape (n_bad,)."""
    diag = np.diagonal(np.asarray(L), axis1=-2, axis2=-1)
    return np.flatnonzero(~np.all(diag > 0.0, axis=-1).reshape(-1))


def lower_inverse(L):
    """The inverse of lower triangular matrices (a stack or one), by forward substitution, row by row."""
    L = np.asarray(L, dtype=np.float64)
    D = L.shape[-1]
    X = np.zeros_like(L)
    eye = np.eye(D)
    for i in range(D):
        rest = np.sum(L[..., i, :i, None] * X[..., :i, :], axis=-2) if i else 0.0
        X[..., i, :] = (eye[i] - rest) / L[..., i, i, None]
    return X


def log_det_spd(a):
    """``log |a|`` of symmetric positive definite matrices (a stack or one): twice the sum of the logs of the
    Cholesky diagonal, in order."""
    diag = np.diagonal(cholesky(a), axis1=-2, axis2=-1)
    return 2.0 * np.sum(log(diag), axis=-1)


def multigammaln(a, d):
    """``log Gamma_d(a)``, the multivariate log-gamma function (as ``scipy.special.multigammaln``), elementwise."""
    from scipy.special import gammaln

    a = np.asarray(a, dtype=np.float64)
    total = gammaln(a)
    for j in range(1, d):
        total = total + gammaln(a - 0.5 * j)
    return 0.25 * d * (d - 1) * math.log(math.pi) + total
