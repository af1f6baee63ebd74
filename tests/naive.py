"""Plain NumPy/SciPy reference implementations, written from the mathematics.

Nothing here is fast or clever: every quantity is computed the obvious way, on the
whole (N, K) responsibility matrix, in float64. The compiled kernels and the
streaming driver of fastcavi are tested against these functions.
"""
import numpy as np
from scipy.special import betaln, digamma, gammaln, logsumexp

LOG_2PI = np.log(2.0 * np.pi)


def dirichlet_expected_log(concentration):
    """E[log pi_k] under Dirichlet(concentration); shape (K,)."""
    return digamma(concentration) - digamma(concentration.sum())


def kl_dirichlet(a_q, a_p):
    """KL(Dir(a_q) || Dir(a_p))."""
    return (gammaln(a_q.sum()) - gammaln(a_q).sum()
            - gammaln(a_p.sum()) + gammaln(a_p).sum()
            + np.sum((a_q - a_p) * dirichlet_expected_log(a_q)))


def stick_breaking_expected_log(a, b):
    """E[log pi_k] for pi_k = v_k prod_{j<k} (1 - v_j), independent v_k ~ Beta(a_k, b_k); shape (K,).

    The truncated stick-breaking (Dirichlet-process) q(pi) of scikit-learn: q(v_K) is a Beta like the
    others (v_K is not clamped to 1), and q(z_n > K) = 0.
    """
    elog_v = digamma(a) - digamma(a + b)
    elog_1mv = digamma(b) - digamma(a + b)
    return np.array([elog_v[k] + elog_1mv[:k].sum() for k in range(len(a))])


def kl_beta(a, b, a0, b0):
    """sum_k KL(Beta(a_k, b_k) || Beta(a0, b0))."""
    return float(np.sum(betaln(a0, b0) - betaln(a, b) + (a - a0) * digamma(a) + (b - b0) * digamma(b)
                        + (a0 - a + b0 - b) * digamma(a + b)))


def stick_breaking_weights(a, b):
    """scikit-learn's ``weights_`` for the process: E[v_k] prod_{j<k} (1 - E[v_j]), normalised."""
    ev = a / (a + b)
    w = np.array([ev[k] * np.prod(1.0 - ev[:k]) for k in range(len(a))])
    return w / w.sum()


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


def identity_elbo(X, resp, alpha_tilde, means, nu_tilde, alpha, nu, m0, cov=None,
                  weight_prior_type="dirichlet_distribution"):
    """The seed's full ELBO, every constant kept (known covariance ``cov``, default I).

    ``weight_prior_type="dirichlet_process"``: ``alpha`` is the concentration gamma of the stick-breaking
    prior v_k ~ Beta(1, gamma) and ``alpha_tilde`` the pair ``(a, b)`` of the Beta posteriors q(v_k).
    """
    K, D = means.shape
    cov = np.eye(D) if cov is None else cov
    if weight_prior_type == "dirichlet_process":
        a, b = alpha_tilde
        elog_pi = stick_breaking_expected_log(a, b)
        kl_weights = kl_beta(a, b, 1.0, float(alpha))
    else:
        elog_pi = dirichlet_expected_log(alpha_tilde)
        kl_weights = kl_dirichlet(alpha_tilde, np.broadcast_to(alpha, (K,)).astype(float))
    ell = identity_expected_loglik(X, means, nu_tilde, cov)
    with np.errstate(divide="ignore", invalid="ignore"):
        rlogr = np.where(resp > 0, resp * np.log(resp), 0.0)
    elbo = np.sum(resp * ell) + np.sum(resp * elog_pi) - np.sum(rlogr)
    elbo -= kl_weights
    # KL(N(m_k, Sigma/nu_k) || N(m0, Sigma/nu))
    prec = np.linalg.inv(cov)
    diff = means - m0
    maha = np.einsum("ki,ij,kj->k", diff, prec, diff)
    elbo -= np.sum(0.5 * (D * nu / nu_tilde + nu * maha - D + D * np.log(nu_tilde / nu)))
    return elbo


def identity_cavi(X, init_means, alpha, nu, m0, n_iter, cov=None, weight_prior_type="dirichlet_distribution"):
    """The seed's CAVI for the known-covariance model (Sigma = ``cov``, default the identity).

    x_n ~ N(mu_k, Sigma), mu_k ~ N(m0, Sigma / nu). Starts as the seed does:
    q(mu_k) = N(init_means_k, Sigma), q(pi) = prior, q(z) uniform.
    Each sweep updates q(z), then q(pi), then q(mu), then evaluates the ELBO.

    ``weight_prior_type="dirichlet_process"``: pi is the truncated stick-breaking process with
    v_k ~ Beta(1, gamma), gamma = ``alpha`` (a scalar); q(v_k) = Beta(a_k, b_k) with
    a_k = 1 + N_k, b_k = gamma + sum_{j>k} N_j, and ``alpha_tilde`` is the pair (a, b).

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
    process = weight_prior_type == "dirichlet_process"
    if process:
        alpha = float(alpha)
        alpha_tilde = (np.ones(K), np.full(K, alpha))
    else:
        alpha = np.broadcast_to(np.asarray(alpha, float), (K,)).copy()
        alpha_tilde = alpha.copy()
    m0 = np.broadcast_to(np.asarray(m0, float), (D,)).copy()
    means = np.array(init_means, dtype=np.float64)
    nu_tilde = np.ones(K)
    resp = np.full((N, K), 1.0 / K)

    def elbo():
        return identity_elbo(X, resp, alpha_tilde, means, nu_tilde, alpha, nu, m0, cov, weight_prior_type)

    elbos = [elbo()]
    for _ in range(n_iter):
        elog_pi = stick_breaking_expected_log(*alpha_tilde) if process else dirichlet_expected_log(alpha_tilde)
        logits = elog_pi + identity_expected_loglik(X, means, nu_tilde, cov)
        resp = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
        Nk = resp.sum(0)
        if process:
            alpha_tilde = (1.0 + Nk, alpha + np.array([Nk[k + 1:].sum() for k in range(K)]))
        else:
            alpha_tilde = alpha + Nk
        nu_tilde = nu + Nk
        means = (nu * m0 + resp.T @ X) / nu_tilde[:, None]
        elbos.append(elbo())
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
