"""What every mixture family shares: the statistics layout and the ELBO from statistics.

A family (identity/known covariance, spherical, diag, full, tied) says which
quadratic features its logits need (``kernel = "diag"``: the squares ``y_d**2``;
``"full"``: all products ``y_a y_b``) and gives, for a variational state,

* ``coefficients(state)``: the kernel's logit coefficients ``(bias, W)``, which are
  ``E[log pi_k] + E[log N(x | mu_k, Lambda_k)]`` minus, at most, a part that is the
  same for every component (it changes no responsibility);
* ``dropped_sum(state)``: the sum over all rows of that common part;
* ``update(stats)``: the CAVI updates of q(pi) and the component parameters;
* ``kl(state)``: ``KL(q(pi) || p(pi)) + sum_k KL(q(mu_k, Lambda_k) || p(mu_k, Lambda_k))``.

With those, the full ELBO after a sweep needs no second pass over the data:
the expected log joint is linear in the sufficient statistics, and the entropy
of q(z) is ``sum_n lse_n - sum_nk r_nk logit_nk`` (since ``log r = logit - lse``),
both of which the same pass accumulated.
"""
from dataclasses import dataclass

import numpy as np


def n_features(D, kernel):
    """Length of the feature vector phi(y) of the E-step kernel.

    ``D`` linear features, then ``D`` squares (``kernel="diag"``) or the ``D (D + 1) / 2``
    products ``y_a y_b, a <= b`` of the upper triangle in row-major order (``"full"``).
    """
    return D + (D * (D + 1) // 2 if kernel == "full" else D)


def features(y, kernel):
    """phi(y) for rows ``y`` of shape (n, D): shape (n, n_features(D, kernel)) (a NumPy helper)."""
    if kernel == "full":
        a, b = np.triu_indices(y.shape[1])
        return np.hstack((y, y[:, a] * y[:, b]))
    return np.hstack((y, y * y))


def quadratic_weights(Lam):
    """Weights of the quadratic features for the logit term ``-y^T Lam_k y / 2``.

    Parameters
    ----------
    Lam : ndarray of shape (K, D, D)
        Symmetric matrices.

    Returns
    -------
    ndarray of shape (K, D (D + 1) / 2)
        ``-Lam_aa / 2`` for the squares and ``-Lam_ab`` for the products ``a < b``.
    """
    D = Lam.shape[1]
    a, b = np.triu_indices(D)
    return np.where(a == b, -0.5, -1.0) * Lam[:, a, b]


@dataclass(frozen=True)
class Stats:
    """Sufficient statistics of one pass, in shifted coordinates (``y = x - shift``).

    Attributes
    ----------
    lse_sum : float
        ``sum_n logsumexp_k logit_nk`` for the logits of the pass.
    Nk : ndarray of shape (K,)
        ``sum_n r_nk``.
    S : ndarray of shape (K, F)
        ``sum_n r_nk phi(y_n)`` (see :func:`features`).
    S1 : ndarray of shape (K, D)
        ``sum_n r_nk y_n``.
    S2 : ndarray of shape (K, D) or (K, D, D)
        ``sum_n r_nk y_n**2`` (diag kernel) or ``sum_n r_nk y_n y_n^T`` (full kernel, symmetric).
    """

    lse_sum: float
    Nk: np.ndarray
    S: np.ndarray
    S1: np.ndarray
    S2: np.ndarray

    @classmethod
    def from_features(cls, lse_sum, Nk, S, kernel, D):
        """Statistics from the feature sums ``S`` (K, F)."""
        K = Nk.shape[0]
        S1 = S[:, :D].copy()
        if kernel == "diag":
            S2 = S[:, D:].copy()
        else:
            a, b = np.triu_indices(D)
            S2 = np.zeros((K, D, D))
            S2[:, a, b] = S[:, D:]
            S2[:, b, a] = S[:, D:]
        return cls(float(lse_sum), Nk, S, S1, S2)

    @classmethod
    def from_totals(cls, totals, kernel, K, D):
        """Unpack the kernel's flat ``totals`` vector."""
        return cls.from_features(totals[0], totals[1:1 + K].copy(),
                                 totals[1 + K:].reshape(K, n_features(D, kernel)).copy(), kernel, D)


def totals_size(kernel, K, D):
    """Length of the flat statistics vector the kernel accumulates."""
    return 1 + K + K * n_features(D, kernel)


def kernel_dot(coeffs, stats):
    """``sum_nk r_nk logit_nk`` for the kernel logits ``bias + W phi`` given by ``coeffs``.

    Parameters
    ----------
    coeffs : tuple ``(bias (K,), W (K, F))``
    stats : Stats

    Returns
    -------
    float
    """
    bias, W = coeffs
    return float(bias @ stats.Nk + np.sum(W * stats.S))


def elbo_from_stats(model, stats, coeffs_used, new_state):
    """The full ELBO after a sweep, from that sweep's statistics.

    Parameters
    ----------
    model : a family object (see the module docstring)
    stats : Stats
        Statistics of the pass whose responsibilities define q(z).
    coeffs_used : tuple
        The logit coefficients that pass used (they define q(z)).
    new_state : object
        The state after updating q(pi) and the component factors from ``stats``.

    Returns
    -------
    elbo : float
        ``E_q[log p(X, Z, pi, theta)] - E_q[log q(Z, pi, theta)]``.
    magnitude : float
        The sum of the absolute values of the parts it was added up from: what its
        round-off is relative to (the ELBO itself can be near 0 while its parts are large).
    """
    new_dot = kernel_dot(model.coefficients(new_state), stats)
    old_dot = kernel_dot(coeffs_used, stats)
    dropped = model.dropped_sum(new_state)
    kl = model.kl(new_state)
    elbo = new_dot + dropped + (stats.lse_sum - old_dot) - kl
    magnitude = abs(new_dot) + abs(dropped) + abs(stats.lse_sum) + abs(old_dot) + abs(kl)
    return elbo, magnitude
