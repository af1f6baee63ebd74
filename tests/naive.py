"""Plain NumPy/SciPy reference implementations, written from the mathematics.

Nothing here is fast or clever: every quantity is computed the obvious way, on the
whole (N, K) responsibility matrix, in float64. The compiled kernels and the
streaming driver of fastcavi are tested against these functions.
"""
import numpy as np
from scipy.special import digamma, gammaln, logsumexp

LOG_2PI = np.log(2.0 * np.pi)


def dirichlet_expected_log(concentration):
    """E[log pi_k] under Dirichlet(concentration); shape (K,)."""
    return digamma(concentration) - digamma(concentration.sum())


def kl_dirichlet(a_q, a_p):
    """KL(Dir(a_q) || Dir(a_p))."""
    return (gammaln(a_q.sum()) - gammaln(a_q).sum()
            - gammaln(a_p.sum()) + gammaln(a_p).sum()
            + np.sum((a_q - a_p) * dirichlet_expected_log(a_q)))


def kl_isotropic_gaussians(m_q, prec_q, m_p, prec_p):
    """KL(N(m_q, I/prec_q) || N(m_p, I/prec_p)) for each row of m_q; shape (K,)."""
    D = m_q.shape[1]
    sq = np.sum((m_q - m_p) ** 2, axis=1)
    return 0.5 * (D * prec_p / prec_q + prec_p * sq - D + D * np.log(prec_q / prec_p))


def identity_expected_loglik(X, means, mean_precision, cov=None):
    """E_q(mu_k)[log N(x_n | mu_k, Sigma)] for q(mu_k) = N(m_k, Sigma / nu_k); shape (N, K).

    ``= log N(x_n | m_k, Sigma) - tr(Sigma^-1 Sigma / nu_k) / 2``; Sigma = I when ``cov`` is None.
    """
    D = X.shape[1]
    cov = np.eye(D) if cov is None else cov
    prec = np.linalg.inv(cov)
    diff = X[:, None, :] - means[None, :, :]
    sq = np.einsum("nki,ij,nkj->nk", diff, prec, diff)
    logdet = np.linalg.slogdet(cov)[1]
    return -0.5 * D * LOG_2PI - 0.5 * logdet - 0.5 * sq - 0.5 * D / mean_precision[None, :]


def identity_elbo(X, resp, alpha_tilde, means, nu_tilde, alpha, nu, m0, cov=None):
    """The seed's full ELBO, every constant kept (known covariance ``cov``, default I)."""
    K, D = means.shape
    cov = np.eye(D) if cov is None else cov
    elog_pi = dirichlet_expected_log(alpha_tilde)
    ell = identity_expected_loglik(X, means, nu_tilde, cov)
    with np.errstate(divide="ignore", invalid="ignore"):
        rlogr = np.where(resp > 0, resp * np.log(resp), 0.0)
    elbo = np.sum(resp * ell) + np.sum(resp * elog_pi) - np.sum(rlogr)
    elbo -= kl_dirichlet(alpha_tilde, np.broadcast_to(alpha, (K,)).astype(float))
    # KL(N(m_k, Sigma/nu_k) || N(m0, Sigma/nu))
    prec = np.linalg.inv(cov)
    diff = means - m0
    maha = np.einsum("ki,ij,kj->k", diff, prec, diff)
    elbo -= np.sum(0.5 * (D * nu / nu_tilde + nu * maha - D + D * np.log(nu_tilde / nu)))
    return elbo


def identity_cavi(X, init_means, alpha, nu, m0, n_iter, cov=None):
    """The seed's CAVI for the known-covariance model (Sigma = ``cov``, default the identity).

    x_n ~ N(mu_k, Sigma), mu_k ~ N(m0, Sigma / nu). Starts as the seed does:
    q(mu_k) = N(init_means_k, Sigma), q(pi) = prior, q(z) uniform.
    Each sweep updates q(z), then q(pi), then q(mu), then evaluates the ELBO.

    Returns
    -------
    elbos : ndarray of shape (n_iter + 1,)
        The initial ELBO followed by the ELBO after each sweep.
    state : dict
        ``resp`` (N, K), ``alpha_tilde`` (K,), ``means`` (K, D), ``nu_tilde`` (K,).
    """
    X = np.asarray(X, dtype=np.float64)
    N, D = X.shape
    K = init_means.shape[0]
    alpha = np.broadcast_to(np.asarray(alpha, float), (K,)).copy()
    m0 = np.broadcast_to(np.asarray(m0, float), (D,)).copy()
    means = np.array(init_means, dtype=np.float64)
    nu_tilde = np.ones(K)
    alpha_tilde = alpha.copy()
    resp = np.full((N, K), 1.0 / K)
    elbos = [identity_elbo(X, resp, alpha_tilde, means, nu_tilde, alpha, nu, m0, cov)]
    for _ in range(n_iter):
        logits = dirichlet_expected_log(alpha_tilde) + identity_expected_loglik(X, means, nu_tilde, cov)
        resp = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
        Nk = resp.sum(0)
        alpha_tilde = alpha + Nk
        nu_tilde = nu + Nk
        means = (nu * m0 + resp.T @ X) / nu_tilde[:, None]
        elbos.append(identity_elbo(X, resp, alpha_tilde, means, nu_tilde, alpha, nu, m0, cov))
    return np.array(elbos), dict(resp=resp, alpha_tilde=alpha_tilde, means=means, nu_tilde=nu_tilde)


def responsibilities(logits):
    """Row-wise softmax and log-sum-exp of an (N, K) logit matrix."""
    lse = logsumexp(logits, axis=1)
    return np.exp(logits - lse[:, None]), lse


def diag_kernel_reference(X, shift, bias, W1, W2):
    """What ``estep`` must compute with the features ``[y, y**2]``, the obvious way.

    Returns ``(resp, lse, Nk, S1, S2)`` with logits ``bias + y W1^T + y**2 W2^T``, ``y = X - shift``.
    """
    y = np.asarray(X, dtype=np.float64) - shift
    resp, lse = responsibilities(bias + y @ W1.T + (y * y) @ W2.T)
    return resp, lse, resp.sum(0), resp.T @ y, resp.T @ (y * y)


def full_kernel_reference(X, shift, bias, A, c):
    """What ``estep`` must compute for logits ``bias_k - |y A_k - c_k|^2 / 2`` (features ``[y, y_a y_b]``).

    Returns ``(resp, lse, Nk, S1, S2)`` with ``S2[k] = sum_n r_nk y_n y_n^T``.
    """
    y = np.asarray(X, dtype=np.float64) - shift
    z = np.einsum("nd,kdj->nkj", y, np.triu(A)) - c[None]
    resp, lse = responsibilities(bias - 0.5 * (z ** 2).sum(-1))
    return resp, lse, resp.sum(0), resp.T @ y, np.einsum("nk,ni,nj->kij", resp, y, y)
