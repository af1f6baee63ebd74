"""What every mixture family shares: the statistics layout and the ELBO from statistics.

A family (identity/known covariance, spherical, diag, full, tied) says which
kernel computes its E-step (``"diag"``: logits linear in ``x`` and ``x**2``;
``"full"``: a Mahalanobis term per component) and gives, for a variational state,

* ``coefficients(state)``: the kernel's logit coefficients, which are
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


@dataclass(frozen=True)
class Stats:
    """Sufficient statistics of one pass, in shifted coordinates (``y = x - shift``).

    Attributes
    ----------
    lse_sum : float
        ``sum_n logsumexp_k logit_nk`` for the logits of the pass.
    Nk : ndarray of shape (K,)
        ``sum_n r_nk``.
    S1 : ndarray of shape (K, D)
        ``sum_n r_nk y_n``.
    S2 : ndarray of shape (K, D) or (K, D, D)
        ``sum_n r_nk y_n**2`` (diag kernel) or ``sum_n r_nk y_n y_n^T`` (full kernel, symmetric).
    """

    lse_sum: float
    Nk: np.ndarray
    S1: np.ndarray
    S2: np.ndarray

    @classmethod
    def from_totals(cls, totals, kernel, K, D):
        """Unpack a kernel's flat ``totals`` vector."""
        Nk = totals[1:1 + K].copy()
        S1 = totals[1 + K:1 + K + K * D].reshape(K, D).copy()
        if kernel == "diag":
            S2 = totals[1 + K + K * D:].reshape(K, D).copy()
        else:
            S2 = np.triu(totals[1 + K + K * D:].reshape(K, D, D))
            S2 = S2 + np.triu(S2, 1).transpose(0, 2, 1)
        return cls(float(totals[0]), Nk, S1, S2)


def totals_size(kernel, K, D):
    """Length of the flat statistics vector a kernel accumulates."""
    return 1 + K + K * D + (K * D if kernel == "diag" else K * D * D)


def kernel_dot(kernel, coeffs, stats):
    """``sum_nk r_nk logit_nk`` for the kernel logits given by ``coeffs``.

    Parameters
    ----------
    kernel : {"diag", "full"}
    coeffs : tuple of ndarrays
        ``(bias, W1, W2)`` for the diag kernel, ``(bias, A, c)`` for the full kernel.
    stats : Stats

    Returns
    -------
    float
    """
    if kernel == "diag":
        bias, W1, W2 = coeffs
        return float(bias @ stats.Nk + np.sum(W1 * stats.S1) + np.sum(W2 * stats.S2))
    bias, A, c = coeffs
    # logit = bias - |y A - c|^2 / 2 = bias - y^T A A^T y / 2 + y^T A c - |c|^2 / 2
    AAt = A @ A.transpose(0, 2, 1)
    Ac = np.einsum("kij,kj->ki", A, c)
    return float(bias @ stats.Nk
                 - 0.5 * np.sum(AAt * stats.S2)
                 + np.sum(Ac * stats.S1)
                 - 0.5 * np.sum(c * c, axis=1) @ stats.Nk)


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
    k = model.kernel
    new_dot = kernel_dot(k, model.coefficients(new_state), stats)
    old_dot = kernel_dot(k, coeffs_used, stats)
    dropped = model.dropped_sum(new_state)
    kl = model.kl(new_state)
    elbo = new_dot + dropped + (stats.lse_sum - old_dot) - kl
    magnitude = abs(new_dot) + abs(dropped) + abs(stats.lse_sum) + abs(old_dot) + abs(kl)
    return elbo, magnitude
