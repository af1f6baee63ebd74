"""The seed's model: Gaussian components with a known covariance.

x_n | z_n = k ~ N(mu_k, Sigma), mu_k ~ N(m0, Sigma / nu), pi ~ Dirichlet(alpha) (or a
Dirichlet process). With ``Sigma = I`` this is exactly the seed notebook's model;
its ``phi`` is ``nu * m0``. A known ``Sigma = L L^T`` other than the identity is
handled by whitening: the data, the prior mean and the initial means are mapped by
``y = L^{-1} (x - shift)``, where the model is the identity model, and the ELBO
gets the Jacobian term ``-N log|det L|``. q(mu_k) = N(m_k, Sigma / nu_k).

The state (:class:`~fastcavi._models.base.State`) holds ``(weight_concentration, means,
mean_precision)`` in whitened, shifted coordinates.
"""
import math

import numpy as np

from . import fixed
from .base import State

LOG_2PI = math.log(2.0 * math.pi)


class KnownCovariance:
    """CAVI updates, logits and KL terms of the known-covariance model (whitened coordinates).

    Parameters
    ----------
    weight_prior : DirichletWeights or DirichletProcessWeights
    mean_precision_prior : float
        ``nu``, the prior precision of the means relative to ``Sigma``.
    mean_prior : ndarray of shape (D,)
        ``m0`` in whitened, shifted coordinates.
    log_det_chol : float
        ``log|det L|`` of the known covariance's Cholesky factor (0 for the identity).
    """

    layout = "diag"

    def __init__(self, weight_prior, mean_precision_prior, mean_prior, log_det_chol=0.0):
        self.weight_prior = weight_prior
        self.nu0 = float(mean_precision_prior)
        self.m0 = np.asarray(mean_prior, dtype=np.float64)
        self.log_det_chol = float(log_det_chol)
        self.D = self.m0.shape[0]

    def state_from_means(self, means):
        """The seed's start: q(mu_k) = N(means_k, I), q(pi) = prior."""
        means = np.array(means, dtype=np.float64)
        return State(self.weight_prior.prior_state(), means, np.ones(means.shape[0]))

    def coefficients(self, state):
        """Logits ``E[log pi_k] - D/2 log 2pi - |y - m_k|^2/2 - D/(2 nu_k)`` as ``(bias, W)``.

        ``W = [m_k, -1/2, ..., -1/2]`` on the features ``[y, y**2]``.
        """
        D = self.D
        m = state.means
        bias = (self.weight_prior.expected_log(state.weight_concentration)
                - 0.5 * D * LOG_2PI - 0.5 * np.sum(m * m, axis=1) - 0.5 * D / state.mean_precision)
        return bias, np.hstack((m, np.full_like(m, -0.5)))

    def common_log_density(self, state, rows, shift):
        """Per-row log-density term left out of the fitting logits: the whitening Jacobian ``-log|det L|``."""
        return -self.log_det_chol

    def dropped_sum(self, state, stats):
        """The whitening Jacobian, ``-N log|det L|`` (``N`` the weighted row count; nothing else is dropped)."""
        return -stats.count * self.log_det_chol

    def update(self, stats):
        """q(pi) from N_k; nu_k = nu + N_k, m_k = (nu m0 + sum_n r_nk y_n) / nu_k."""
        nu = self.nu0 + stats.Nk
        means = (self.nu0 * self.m0 + stats.S1) / nu[:, None]
        return State(self.weight_prior.update(stats.Nk), means, nu)

    def kl(self, state):
        """KL(q(pi) || p(pi)) + sum_k KL(N(m_k, I/nu_k) || N(m0, I/nu))."""
        D = self.D
        nu = state.mean_precision
        sq = np.sum((state.means - self.m0) ** 2, axis=1)
        kl_mu = 0.5 * (D * self.nu0 / nu + self.nu0 * sq - D + D * fixed.log(nu / self.nu0))
        return self.weight_prior.kl(state.weight_concentration) + float(np.sum(kl_mu))

    def public_parameters(self, state, prep):
        """The fitted parameters in data coordinates, under the result's names."""
        L = prep.whiten if prep.whiten is not None else np.eye(self.D)
        cov = fixed.gram(L)
        prec_chol = fixed.lower_inverse(L).T  # upper triangular, precision = P P^T (scikit-learn's convention)
        return dict(weights=self.weight_prior.mean(state.weight_concentration),
                    weight_concentration=state.weight_concentration,
                    means=prep.to_data(state.means),
                    mean_precision=state.mean_precision,
                    covariances=cov,
                    precisions=fixed.gram(prec_chol),
                    precisions_cholesky=prec_chol,
                    degrees_of_freedom=None)
