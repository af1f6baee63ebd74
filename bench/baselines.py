"""Plain vectorised NumPy/SciPy baselines, timed in the same run as fastcavi."""
import numpy as np
from scipy.special import digamma, gammaln, logsumexp

LOG_2PI = np.log(2.0 * np.pi)


def numpy_cavi_iteration(X, alpha_tilde, means, nu_tilde, alpha, nu, m0):
    """One CAVI sweep of the seed's model (identity covariance), vectorised NumPy: E-step, M-step, ELBO.

    The obvious implementation a user would write: an (N, K) logit matrix, scipy's logsumexp,
    matrix products for the statistics, the full ELBO from the (N, K) responsibilities.
    """
    N, D = X.shape
    elog_pi = digamma(alpha_tilde) - digamma(alpha_tilde.sum())
    sq_x = np.einsum("nd,nd->n", X, X)
    cross = X @ means.T
    ell = -0.5 * D * LOG_2PI - 0.5 * (sq_x[:, None] - 2 * cross + (means ** 2).sum(1)) - 0.5 * D / nu_tilde
    logits = elog_pi + ell
    lse = logsumexp(logits, axis=1, keepdims=True)
    log_resp = logits - lse
    resp = np.exp(log_resp)
    Nk = resp.sum(0)
    S1 = resp.T @ X
    alpha_new = alpha + Nk
    nu_new = nu + Nk
    means_new = (nu * m0 + S1) / nu_new[:, None]
    elog_new = digamma(alpha_new) - digamma(alpha_new.sum())
    ell_new = (-0.5 * D * LOG_2PI - 0.5 * (sq_x[:, None] - 2 * (X @ means_new.T) + (means_new ** 2).sum(1))
               - 0.5 * D / nu_new)
    elbo = np.sum(resp * (ell_new + elog_new)) - np.sum(resp * log_resp)
    elbo -= (gammaln(alpha_new.sum()) - gammaln(alpha_new).sum() - gammaln(alpha.sum()) + gammaln(alpha).sum()
             + np.dot(alpha_new - alpha, elog_new))
    elbo -= np.sum(0.5 * (D * nu / nu_new + nu * ((means_new - m0) ** 2).sum(1) - D + D * np.log(nu_new / nu)))
    return alpha_new, means_new, nu_new, elbo
