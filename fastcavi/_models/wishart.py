"""Normal-Wishart mixtures: scikit-learn's ``BayesianGaussianMixture``, with the full ELBO.

The model (one generative model for every covariance type; see ``tests/naive_bayesian.py``
for the derivation and the checks against scikit-learn):

    Lambda_k ~ Wishart(nu0, Psi0^-1),  mu_k | Lambda_k ~ N(m0, (beta0 Lambda_k)^-1),
    pi ~ Dirichlet(alpha0) or stick-breaking(gamma),  z_n ~ Cat(pi),  x_n | z_n=k ~ N(mu_k, Lambda_k^-1).

q(mu_k, Lambda_k) = N(m_k, (beta_k Lambda_k)^-1) Wishart(nu_k, (nu_k C_k)^-1), where
``C_k`` is scikit-learn's ``covariances_`` (so ``E[Lambda_k] = C_k^-1``); the
covariance type restricts the family of ``C_k``: any SPD matrix ("full"), a diagonal
("diag"), a multiple of the identity ("spherical"), or one matrix and one ``nu`` shared
by all K components ("tied"). scikit-learn's updates are exactly the CAVI updates of
this family (up to ``reg_covar``, which adds ``N_k reg_covar`` to the scale matrix,
and the ``10 eps`` it adds to ``N_k``; both reproduced here).

All statistics are in shifted coordinates (``y = x - shift``, ``shift`` the data mean),
which leaves every covariance and the ELBO unchanged and keeps sums of squares exact
for data far from the origin.
"""
import math

import numpy as np
from scipy.special import digamma

from . import fixed
from .base import State, layout_of, quadratic_weights
from .known import LOG_2PI

_EPS10 = 10.0 * np.finfo(np.float64).eps

ILL_DEFINED = ("Fitting the mixture model failed because some components have ill-defined empirical "
               "covariance (for instance caused by singleton or collapsed samples). Try to decrease the "
               "number of components, increase reg_covar, or scale the input data.")


def _log_wishart_B(Psi, nu):
    """log B(W, nu) of the Wishart density with W^-1 = Psi (D, D); or of a stack, Psi (K, D, D) and nu (K,)."""
    D = Psi.shape[-1]
    return 0.5 * nu * fixed.log_det_spd(Psi) - 0.5 * nu * D * math.log(2.0) - fixed.multigammaln(0.5 * nu, D)


class NormalWishart:
    """CAVI updates, logits and KL terms of the Normal-Wishart families.

    Parameters
    ----------
    covariance_type : {"full", "tied", "diag", "spherical"}
    weight_prior : DirichletWeights or DirichletProcessWeights
    mean_precision_prior : float
        beta0.
    mean_prior : ndarray of shape (D,)
        m0, in shifted coordinates.
    degrees_of_freedom_prior : float
        nu0 > D - 1.
    covariance_prior : float, ndarray of shape (D,) or (D, D)
        Psi0 in scikit-learn's shape for the type.
    reg_covar : float
    total_scatter : ndarray of shape (D, D) or None
        ``sum_n w_n y_n y_n^T`` over the whole data set, from the data summary (tied only:
        its pooled scatter and the common quadratic term of its logits need it; its statistics,
        of the "linear" layout, carry no second moments).
    exact_cavi : bool
        Put reg_covar's term ``-reg_covar/2 tr E[Lambda_k]`` in the logits too, so that the
        E-step and scikit-learn's M-step are both exact coordinate-ascent steps on one ELBO:
        that of the model in which each observation carries extra N(0, reg_covar I) noise.
        False (default): scikit-learn's updates exactly.
    """

    def __init__(self, covariance_type, weight_prior, mean_precision_prior, mean_prior,
                 degrees_of_freedom_prior, covariance_prior, reg_covar, total_scatter=None, exact_cavi=False):
        self.covariance_type = covariance_type
        self.layout = layout_of(covariance_type)
        self.weight_prior = weight_prior
        self.beta0 = float(mean_precision_prior)
        self.m0 = np.asarray(mean_prior, dtype=np.float64)
        self.nu0 = float(degrees_of_freedom_prior)
        self.D = self.m0.shape[0]
        self.covariance_prior = covariance_prior
        self.Psi0 = self._as_matrix(np.asarray(covariance_prior, dtype=np.float64))
        self.reg_covar = float(reg_covar)
        # scikit-learn's reg_covar enters the M-step only: exact CAVI without it, or with its
        # matching E-step term (exact_cavi=True)
        self.smoothed = bool(exact_cavi) and self.reg_covar > 0.0
        self.exact_cavi = self.reg_covar == 0.0 or self.smoothed
        self.total_scatter = total_scatter
        self._logB0 = _log_wishart_B(self.Psi0, self.nu0)

    # -- shapes ---------------------------------------------------------------------------
    def _as_matrix(self, c):
        """A scale in the type's shape (one component's) as a (D, D) matrix."""
        if self.covariance_type in ("full", "tied"):
            return np.array(c, dtype=np.float64).reshape(self.D, self.D)
        if self.covariance_type == "diag":
            return np.diag(np.asarray(c, dtype=np.float64).reshape(self.D))
        return float(c) * np.eye(self.D)

    def covariance_matrices(self, state):
        """C_k as (K, D, D) matrices."""
        C, K = state.covariances, state.means.shape[0]
        if self.covariance_type == "full":
            return C
        if self.covariance_type == "tied":
            return np.broadcast_to(C, (K, self.D, self.D))
        if self.covariance_type == "diag":
            return C[:, :, None] * np.eye(self.D)
        return C[:, None, None] * np.eye(self.D)

    def precision_matrices(self, state):
        """E[Lambda_k] = C_k^-1 as (K, D, D) matrices, from the Cholesky factors."""
        P, K = state.precisions_cholesky, state.means.shape[0]
        if self.covariance_type == "full":
            return fixed.gram(P)
        if self.covariance_type == "tied":
            return np.broadcast_to(fixed.gram(P), (K, self.D, self.D))
        if self.covariance_type == "diag":
            return (P * P)[:, :, None] * np.eye(self.D)
        return (P * P)[:, None, None] * np.eye(self.D)

    # -- the CAVI updates -------------------------------------------------------------------
    def update(self, stats):
        """q(pi) and q(mu_k, Lambda_k) from the sufficient statistics (scikit-learn's M-step).

        Raises
        ------
        ValueError
            scikit-learn's "ill-defined empirical covariance" error, naming the component,
            when a covariance is not positive definite.
        """
        D, ct = self.D, self.covariance_type
        raw = stats.Nk
        nk = raw + _EPS10
        K = nk.shape[0]
        xk = stats.S1 / nk[:, None]
        # sum_n r_nk (y - xk)(y - xk)^T = S2 - (2 nk - raw) xk xk^T, exactly (S1 = nk xk)
        excess = 2.0 * nk - raw
        beta = self.beta0 + nk
        means = (self.beta0 * self.m0 + stats.S1) / beta[:, None]
        dm = xk - self.m0
        shrink = nk * self.beta0 / beta
        if ct == "full":
            dof = self.nu0 + nk
            scatter = stats.S2 - excess[:, None, None] * (xk[:, :, None] * xk[:, None, :])
            Psi = (self.Psi0 + scatter + (nk * self.reg_covar)[:, None, None] * np.eye(D)
                   + shrink[:, None, None] * (dm[:, :, None] * dm[:, None, :]))
            cov = Psi / dof[:, None, None]
        elif ct == "tied":
            dof_scalar = self.nu0 + nk.sum() / K
            dof = np.full(K, dof_scalar)
            pooled = self.total_scatter - fixed.matmul(xk.T, excess[:, None] * xk)
            pooled = pooled / nk.sum() + self.reg_covar * np.eye(D)
            Psi = self.Psi0 + pooled * nk.sum() / K + fixed.matmul(dm.T, shrink[:, None] * dm) / K
            cov = Psi / dof_scalar
        else:
            dof = self.nu0 + nk
            s_diag = (stats.S2 - excess[:, None] * xk * xk) / nk[:, None] + self.reg_covar
            if ct == "diag":
                cov = (self.covariance_prior + nk[:, None] * s_diag + shrink[:, None] * dm * dm) / dof[:, None]
            else:
                cov = (self.covariance_prior + nk * s_diag.mean(1) + shrink * np.mean(dm * dm, axis=1)) / dof
        return State(self.weight_prior.update(nk), means, beta, dof, cov, self._precision_cholesky(cov))

    def _precision_cholesky(self, cov):
        ct = self.covariance_type
        if ct in ("full", "tied"):
            L = fixed.cholesky(cov)
            bad = fixed.not_positive_definite(L)
            if bad.size:
                raise ValueError(f"{ILL_DEFINED} (component {int(bad[0])})" if ct == "full" else ILL_DEFINED)
            return np.ascontiguousarray(np.swapaxes(fixed.lower_inverse(L), -1, -2))
        bad = np.flatnonzero(~(cov > 0.0).reshape(cov.shape[0], -1).all(1))
        if bad.size:
            raise ValueError(f"{ILL_DEFINED} (component {int(bad[0])})")
        return 1.0 / np.sqrt(cov)

    # -- logits ---------------------------------------------------------------------------
    def _expected_logdet(self, state):
        """E[log|Lambda_k|] = sum_{i<D} psi((nu_k - i)/2) + D log 2 + log|C_k^-1| - D log nu_k; (K,)."""
        D, ct, P = self.D, self.covariance_type, state.precisions_cholesky
        nu = state.degrees_of_freedom
        if ct == "full":
            logdet_prec = 2.0 * np.sum(fixed.log(np.diagonal(P, axis1=1, axis2=2)), axis=1)
        elif ct == "tied":
            logdet_prec = np.full(nu.shape[0], 2.0 * np.sum(fixed.log(np.diag(P))))
        elif ct == "diag":
            logdet_prec = 2.0 * np.sum(fixed.log(P), axis=1)
        else:
            logdet_prec = 2.0 * D * fixed.log(P)
        psi = digamma(0.5 * (nu[:, None] - np.arange(D)[None, :])).sum(1)
        return psi + D * math.log(2.0) + logdet_prec - D * fixed.log(nu)

    def coefficients(self, state):
        """Kernel logit coefficients of ``E[log pi_k] + E[log N(y | mu_k, Lambda_k^-1)]``."""
        D, ct = self.D, self.covariance_type
        m = state.means
        base = (self.weight_prior.expected_log(state.weight_concentration) + 0.5 * self._expected_logdet(state)
                - 0.5 * D * LOG_2PI - 0.5 * D / state.mean_precision)
        if self.smoothed:  # E over the N(0, reg_covar I) noise of -(y + e - mu)^T Lambda (y + e - mu) / 2
            base = base - 0.5 * self.reg_covar * np.sum(np.diagonal(self.precision_matrices(state), axis1=1,
                                                                     axis2=2), axis=1)
        if ct == "full":
            # -(y - m)^T Lam (y - m)/2 = -y^T Lam y/2 + y . Lam m - m^T Lam m/2
            Lam = self.precision_matrices(state)
            W1 = fixed.matvec(Lam, m)
            return base - 0.5 * np.sum(W1 * m, axis=1), np.hstack((W1, quadratic_weights(Lam)))
        if ct == "tied":
            # the quadratic term -y^T Lam y/2 is the same for every k: left out (see dropped_sum), and the
            # "linear" layout has no quadratic features
            Lam = fixed.gram(state.precisions_cholesky)
            W1 = fixed.matmul(m, Lam)
            return base - 0.5 * np.sum(W1 * m, axis=1), W1
        prec = state.precisions_cholesky ** 2
        prec = prec if ct == "diag" else np.repeat(prec[:, None], D, axis=1)
        return base - 0.5 * np.sum(prec * m * m, axis=1), np.hstack((prec * m, -0.5 * prec))

    def common_log_density(self, state, rows, shift):
        """Tied: ``-y^T E[Lambda] y / 2`` per row (``y = rows - shift``), left out of the logits; else 0."""
        if self.covariance_type != "tied":
            return 0.0
        from .._kernels.transform import squared_norms

        return -0.5 * squared_norms(np.ascontiguousarray(rows), shift, state.precisions_cholesky.T)

    def dropped_sum(self, state, stats):
        """Tied: the common quadratic term ``-1/2 sum_n y_n^T E[Lambda] y_n`` left out of the logits."""
        if self.covariance_type != "tied":
            return 0.0
        Lam = fixed.gram(state.precisions_cholesky)
        return -0.5 * float(np.sum(Lam * self.total_scatter))

    # -- KL ---------------------------------------------------------------------------------
    def kl(self, state):
        """KL(q(pi) || p(pi)) + sum_k KL(q(mu_k, Lambda_k) || p(mu_k, Lambda_k))."""
        D = self.D
        nu, beta = state.degrees_of_freedom, state.mean_precision
        E_logdet = self._expected_logdet(state)
        Lam = self.precision_matrices(state)
        Psi = nu[:, None, None] * self.covariance_matrices(state)
        dm = state.means - self.m0
        total = self.weight_prior.kl(state.weight_concentration)
        # all components at once (one log-determinant and one multigammaln call on the stacks: per-component
        # calls cost about 0.7 ms a sweep, ~10% of a 2-thread D = 2 sweep of 1e6 rows)
        e_log_p = (0.5 * D * math.log(self.beta0) - 0.5 * self.beta0 * (D / beta + fixed.quadratic(Lam, dm))
                   + self._logB0 + 0.5 * (self.nu0 - D - 1.0) * E_logdet
                   - 0.5 * np.sum(self.Psi0 * Lam, axis=(1, 2)))
        # tied: one scale matrix and one nu for every component (its log B once, not K times)
        log_B = np.full(nu.shape[0], _log_wishart_B(Psi[0], nu[0])) if self.covariance_type == "tied" else \
            _log_wishart_B(Psi, nu)
        e_log_q = (0.5 * D * fixed.log(beta) - 0.5 * D + log_B
                   + 0.5 * (nu - D - 1.0) * E_logdet - 0.5 * nu * D)
        for term in e_log_q - e_log_p:  # added in component order
            total += term
        return float(total)

    # -- results ----------------------------------------------------------------------------
    def public_parameters(self, state, prep):
        """scikit-learn's attributes, means moved back to data coordinates."""
        ct, P = self.covariance_type, state.precisions_cholesky
        if ct in ("full", "tied"):
            precisions = fixed.gram(P)
        else:
            precisions = P * P
        dof = state.degrees_of_freedom
        return dict(weights=self.weight_prior.mean(state.weight_concentration),
                    weight_concentration=state.weight_concentration,
                    means=prep.to_data(state.means),
                    mean_precision=state.mean_precision,
                    covariances=state.covariances,
                    precisions=precisions,
                    precisions_cholesky=P,
                    degrees_of_freedom=dof[0] if ct == "tied" else dof)
