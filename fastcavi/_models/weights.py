"""Priors on the mixture weights: a finite Dirichlet and a truncated Dirichlet process.

Each class holds the prior and offers the three things CAVI needs from q(pi):
the update from the expected counts ``N_k``, ``E[log pi_k]`` and ``KL(q || prior)``.
The variational parameters are stored in scikit-learn's layout:
an array of shape (K,) for the Dirichlet, a pair of arrays ``(a, b)`` of shape
(K,) for the stick-breaking Beta posteriors.
"""
import numpy as np
from scipy.special import betaln, digamma, gammaln


class DirichletWeights:
    """pi ~ Dirichlet(alpha), q(pi) = Dirichlet(alpha_tilde).

    Parameters
    ----------
    alpha : ndarray of shape (K,)
        Prior concentrations (the seed's ``alpha``).
    """

    def __init__(self, alpha):
        self.alpha = np.asarray(alpha, dtype=np.float64)

    def prior_state(self):
        """q(pi) equal to the prior (the seed's starting point)."""
        return self.alpha.copy()

    def update(self, Nk):
        """alpha_tilde = alpha + N_k."""
        return self.alpha + Nk

    @staticmethod
    def expected_log(conc):
        """E[log pi_k] = digamma(alpha_tilde_k) - digamma(sum alpha_tilde); shape (K,)."""
        return digamma(conc) - digamma(conc.sum())

    def kl(self, conc):
        """KL(Dirichlet(alpha_tilde) || Dirichlet(alpha))."""
        a = self.alpha
        return float(gammaln(conc.sum()) - gammaln(conc).sum()
                     - gammaln(a.sum()) + gammaln(a).sum()
                     + np.sum((conc - a) * self.expected_log(conc)))

    @staticmethod
    def mean(conc):
        """E[pi] = alpha_tilde / sum(alpha_tilde)."""
        return conc / conc.sum()


class DirichletProcessWeights:
    """Truncated stick-breaking: v_k ~ Beta(1, gamma), pi_k = v_k prod_{j<k} (1 - v_j).

    q(v_k) = Beta(a_k, b_k) for k < K; the last stick takes what is left (as in
    scikit-learn, ``v_K`` is not fixed to 1 in the variational family: its Beta
    factor is kept, and the bound includes it).

    Parameters
    ----------
    gamma : float
        The concentration of the process (scikit-learn's ``weight_concentration_prior``).
    K : int
        Truncation level.
    """

    def __init__(self, gamma, K):
        self.gamma = float(gamma)
        self.K = int(K)

    def prior_state(self):
        return (np.ones(self.K), np.full(self.K, self.gamma))

    def update(self, Nk):
        """a_k = 1 + N_k, b_k = gamma + sum_{j>k} N_j (scikit-learn's update)."""
        tail = np.hstack((np.cumsum(Nk[::-1])[-2::-1], 0.0))
        return (1.0 + Nk, self.gamma + tail)

    @staticmethod
    def expected_log(conc):
        """E[log pi_k] = E[log v_k] + sum_{j<k} E[log(1 - v_j)]; shape (K,)."""
        a, b = conc
        d_ab = digamma(a + b)
        e_log_v = digamma(a) - d_ab
        e_log_1mv = digamma(b) - d_ab
        return e_log_v + np.hstack((0.0, np.cumsum(e_log_1mv[:-1])))

    def kl(self, conc):
        """sum_k KL(Beta(a_k, b_k) || Beta(1, gamma))."""
        a, b = conc
        d_ab = digamma(a + b)
        return float(np.sum(betaln(1.0, self.gamma) - betaln(a, b)
                            + (a - 1.0) * (digamma(a) - d_ab)
                            + (b - self.gamma) * (digamma(b) - d_ab)))

    @staticmethod
    def mean(conc):
        """scikit-learn's ``weights_``: the expected stick weights, normalised to sum 1."""
        a, b = conc
        w = a / (a + b) * np.hstack((1.0, np.cumprod(b[:-1] / (a[:-1] + b[:-1]))))
        return w / w.sum()
