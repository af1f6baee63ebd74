"""Plain NumPy/SciPy reference for scikit-learn's ``BayesianGaussianMixture``.

Nothing here is fast or clever: every quantity is computed the obvious way, on the
whole (N, K) responsibility matrix, in float64, written from the mathematics (Bishop
ch. 10 in scikit-learn's parametrisation). scikit-learn is never called.

Notation
--------
N samples x_n in R^D, K components. Priors (already resolved, as sklearn's trailing-
underscore attributes): alpha0 = weight_concentration_prior, beta0 =
mean_precision_prior, m0 = mean_prior (D,), nu0 = degrees_of_freedom_prior (> D - 1),
Psi0 = covariance_prior as a D x D matrix (full/tied: itself; diag: diag(c); spherical:
c * I). Wishart W(Lambda | nu, W) has density
B(W, nu) |Lambda|^((nu - D - 1)/2) exp(-tr(W^-1 Lambda)/2), with
log B(W, nu) = -(nu/2) log|W| - (nu D/2) log 2 - log Gamma_D(nu/2).

The model (the same generative model for all four covariance types)
------------------------------------------------------------------
    Lambda_k ~ W(nu0, Psi0^-1)                   independently, k = 1..K (D x D)
    mu_k | Lambda_k ~ N(m0, (beta0 Lambda_k)^-1)
    weights: "dirichlet_distribution": pi ~ Dir(alpha0, ..., alpha0)
             "dirichlet_process":      v_k ~ Beta(1, gamma), gamma = alpha0, k = 1, 2, ...
                                       pi_k = v_k prod_{j<k} (1 - v_j)  (infinite sticks)
    z_n ~ Cat(pi),  x_n | z_n = k ~ N(mu_k, Lambda_k^-1).

The variational family
----------------------
    q = prod_n Cat(z_n | r_n) q(pi) prod_k N(mu_k | m_k, (beta_k Lambda_k)^-1) W(Lambda_k | nu_k, W_k),
    W_k^-1 = Psi_k = nu_k C_k,  where C_k is sklearn's ``covariances_`` (so
    E_q[Lambda_k] = C_k^-1 = sklearn's ``precisions_``), and ``covariance_type`` only
    restricts the family of C_k:
        full:      C_k any SPD matrix;
        diag:      C_k = diag(c_k)          (but Lambda_k is still a full D x D Wishart matrix);
        spherical: C_k = c_k I              (ditto);
        tied:      C_1 = ... = C_K = C and nu_1 = ... = nu_K = nu: the K precisions are still
                   *independent* random matrices with identical q-factors.
    q(pi) = Dir(alpha) for the Dirichlet prior; for the DP, q(v_k) = Beta(a_k, b_k) for
    k <= K, while q(z_n > K) = 0 and q(v_k), q(mu_k, Lambda_k) equal the prior for k > K
    (those factors contribute exactly 0 to the ELBO). Note that sklearn does not clamp
    v_K = 1 (its q(v_K) = Beta(1 + N_K, gamma)), which is exactly this truncation.

sklearn's E- and M-steps are the exact CAVI coordinate updates of this model in this
family (with reg_covar = 0; see below). Why not the "textbook" readings:
  * spherical as a scalar Gamma precision lambda_k I, or diag as D independent Gamma
    precisions, would need (with sklearn's E[Lambda_k] = C_k^-1) E[log|Lambda_k|] =
    D psi(D nu_k/2) - D log(D nu_k c_k/2), resp. D psi(nu_k/2) - sum_d log(nu_k c_kd/2),
    but sklearn's E-step uses the Wishart value sum_{d=0}^{D-1} psi((nu_k - d)/2) + D log 2
    - log|Psi_k| and its bound uses the Wishart normaliser sum_d lnGamma((nu_k - d)/2).
    Those are the D x D Wishart formulas; sklearn's C_k = trace(Psi*_k)/(D nu_k) I
    (spherical) or diag(Psi*_k)/nu_k (diag), with Psi*_k the unrestricted full update, is
    precisely the KL projection of the full-Wishart CAVI update onto the restricted family.
    (For D = 1 all types coincide with a Gamma(nu/2, rate Psi/2) precision.)
  * tied as ONE shared Lambda with prior W(nu0', .) would give q-dof nu0' + N, whereas
    sklearn has nu = nu0 + N/K and multiplies the Wishart normaliser by K in the bound;
    nu = mean_k(nu0 + N_k), Psi = mean_k Psi*_k is the optimum of the tied family above.
    (For K = 1 the two readings coincide.)

sklearn conventions reproduced exactly
--------------------------------------
  * N_k = sum_n r_nk + 10 * eps (float64 eps) everywhere in the M-step.
  * reg_covar is added to the *scatter* S_k (full: S_k + reg I; diag: S_kdd + reg;
    spherical: mean_d S_kdd + reg; tied: the pooled scatter sum_k N_k S_k / sum_k N_k + reg I)
    before it is multiplied by N_k (tied: by sum_k N_k / K), i.e. Psi_k gets N_k * reg_covar
    on the diagonal. The E-step does NOT carry a matching term, so for reg_covar > 0 the
    M-step is a slightly perturbed CAVI update (see the offset below).
  * covariances_ = Psi_k / nu_k ("normalised"), precisions_cholesky_ = (chol(C_k)^-1)^T
    (upper triangular U with U U^T = C_k^-1); diag/spherical store C_k^-1/2.
  * DP weights_ = E[v_k] prod_{j<k} E[1 - v_j], renormalised to sum to 1.
  * Numerics: the scatter is computed centred here (sum_n r_nk (x_n - xbar_k)^2 / N_k);
    sklearn's diag/spherical/tied use the uncentred X^2-minus-mean^2 form, which is the
    same mathematics but loses digits when |mean| >> std (e.g. data offset by 100: sklearn
    is off by ~1e-11 relative per M-step; this reference is not). Parameters then agree
    to ~1e-13 relative for centred data, ~1e-10 for data offset by 100 std.
  * sklearn's tied ``lower_bounds_`` entries are shape-(1,) arrays; here it is a float.

The full ELBO and its offset from sklearn's ``_compute_lower_bound``
--------------------------------------------------------------------
``elbo`` = E_q[log p(X, Z, pi, mu, Lambda)] - E_q[log q(Z, pi, mu, Lambda)], every term
written out (see :func:`full_elbo`). When the parameters are the M-step output of the very
responsibilities used in the bound (which is how sklearn evaluates it), for every
covariance type

    elbo - sklearn_lower_bound = C + (reg_covar / 2) * sum_k N_k tr(E_q[Lambda_k])

    C = -(N D / 2) log(2 pi)
        + K [ (D/2) log beta0 + (nu0/2) log|Psi0| - (nu0 D/2) log 2
              - sum_{d=0}^{D-1} lnGamma((nu0 - d)/2) ]
        + C_w,
    C_w = lnGamma(K alpha0) - K lnGamma(alpha0)      (dirichlet_distribution)
    C_w = K log(alpha0)                              (dirichlet_process)

with |Psi0| = det(covariance_prior) (full/tied), prod(covariance_prior) (diag),
covariance_prior**D (spherical); tr(E_q[Lambda_k]) = tr(precisions_[k]) (tied: the
shared precisions_ and sum_k N_k = N). The K log(pi) terms of Gamma_D cancel between
the prior and posterior normalisers (sklearn drops them in both). So C is a constant for
fixed data and priors; the reg_covar term is not (it changes with the iterates), and is
0 for reg_covar = 0. Derivation: for optimal q(theta) given q(Z), the ELBO collapses to
-sum r log r + log int p(theta) exp(E_Z log p(X, Z | theta)) dtheta, which is sklearn's
bound plus the prior normalisers and the (2 pi)^(-N D/2); the restricted families lose
exactly the KL(q_restricted || q_unrestricted), which sklearn's bound also accounts for
(its Wishart normaliser uses the restricted Psi_k); the reg_covar shift Psi_k -> Psi_k +
N_k reg I costs -(nu_k/2)[tr(Psi*_k Psi_k^-1) - D] = +(reg/2) N_k tr(E[Lambda_k]).
The 10*eps in N_k makes C hold to ~1e-14 relative rather than exactly.

Monte Carlo check
-----------------
:func:`monte_carlo_elbo` estimates the ELBO from its definition by sampling pi and (mu_k,
Lambda_k) from q (every q-factor above has a closed sampling form: Dirichlet or Beta sticks,
plain D x D Wishart draws, also for the restricted diag/spherical/tied scales, and Gaussians),
with every density written out; ``tests/test_elbo_monte_carlo.py`` compares it with fastcavi's
ELBO and with :func:`full_elbo`.

exact_cavi (fastcavi's ``exact_cavi=True``)
------------------------------------------
The M-step above (Psi_k gets N_k reg_covar I) is the exact CAVI update of q(mu_k, Lambda_k) for
the objective in which each observation's expected log-likelihood is averaged over an extra
N(0, reg_covar I) perturbation e_n of the data:

    E_e E_q[log N(x_n + e_n | mu_k, Lambda_k^-1)] = E_q[log N(x_n | mu_k, Lambda_k^-1)]
                                                   - (reg_covar / 2) tr(E_q[Lambda_k]),

since E_e[(x + e - mu)^T Lambda (x + e - mu)] = (x - mu)^T Lambda (x - mu) + reg_covar tr(Lambda).
Its E-step logits carry the extra ``-(reg_covar/2) tr E[Lambda_k]`` (``noise_var`` in
:func:`e_step`), and its ELBO is :func:`full_elbo` with the expected log-likelihood term lowered by
``(reg_covar/2) sum_k N_k tr E[Lambda_k]``, N_k = sum_n r_nk (``noise_var`` in :func:`full_elbo`).
Both steps are then exact coordinate ascent on that one ELBO (up to the M-step's 10 eps), so its
trace never decreases. With reg_covar = 0 it is the plain model.
"""
import numpy as np
from scipy.special import betaln, digamma, gammaln, logsumexp, multigammaln

LOG_2PI = np.log(2.0 * np.pi)
COVARIANCE_TYPES = ("spherical", "diag", "full", "tied")
WEIGHT_PRIOR_TYPES = ("dirichlet_distribution", "dirichlet_process")


# ----------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------
def prior_scale_matrix(covariance_prior, covariance_type, D):
    """Psi0, the inverse Wishart scale of the prior, as a (D, D) matrix."""
    if covariance_type in ("full", "tied"):
        return np.array(covariance_prior, dtype=np.float64).reshape(D, D)
    if covariance_type == "diag":
        return np.diag(np.array(covariance_prior, dtype=np.float64).reshape(D))
    return float(covariance_prior) * np.eye(D)


def covariance_matrices(covariances, covariance_type, K, D):
    """sklearn's ``covariances_`` expanded to (K, D, D) matrices C_k."""
    if covariance_type == "full":
        return np.array(covariances, dtype=np.float64)
    if covariance_type == "tied":
        return np.broadcast_to(covariances, (K, D, D)).copy()
    if covariance_type == "diag":
        return np.array([np.diag(c) for c in covariances])
    return np.array([c * np.eye(D) for c in covariances])


def precision_cholesky(covariances, covariance_type):
    """sklearn's ``precisions_cholesky_``: U = (chol(C)^-1)^T, so U U^T = C^-1."""
    if covariance_type == "full":
        return np.array([np.linalg.inv(np.linalg.cholesky(C)).T for C in covariances])
    if covariance_type == "tied":
        return np.linalg.inv(np.linalg.cholesky(covariances)).T
    return 1.0 / np.sqrt(covariances)


def log_wishart_B(W_inv, nu):
    """log B(W, nu) of the Wishart density, given W^-1 (D, D) and nu."""
    D = W_inv.shape[0]
    return (0.5 * nu * np.linalg.slogdet(W_inv)[1] - 0.5 * nu * D * np.log(2.0)
            - multigammaln(0.5 * nu, D))


def wishart_expected_logdet(W_inv, nu):
    """E[log|Lambda|] under W(nu, W): sum_{d<D} psi((nu - d)/2) + D log 2 + log|W|."""
    D = W_inv.shape[0]
    return (np.sum(digamma(0.5 * (nu - np.arange(D)))) + D * np.log(2.0)
            - np.linalg.slogdet(W_inv)[1])


def expected_log_weights(weight_concentration, weight_concentration_prior_type):
    """E_q[log pi_k]; shape (K,)."""
    if weight_concentration_prior_type == "dirichlet_process":
        a, b = weight_concentration
        elog_v = digamma(a) - digamma(a + b)
        elog_1mv = digamma(b) - digamma(a + b)
        return elog_v + np.concatenate(([0.0], np.cumsum(elog_1mv)[:-1]))
    alpha = weight_concentration
    return digamma(alpha) - digamma(alpha.sum())


def mixture_weights(weight_concentration, weight_concentration_prior_type):
    """sklearn's ``weights_``."""
    if weight_concentration_prior_type == "dirichlet_process":
        a, b = weight_concentration
        ev = a / (a + b)
        w = ev * np.concatenate(([1.0], np.cumprod(1.0 - ev)[:-1]))
        return w / w.sum()
    alpha = weight_concentration
    return alpha / alpha.sum()


# ----------------------------------------------------------------------------------
# M-step
# ----------------------------------------------------------------------------------
def m_step(X, resp, *, covariance_type, weight_concentration_prior_type,
           weight_concentration_prior, mean_precision_prior, mean_prior,
           degrees_of_freedom_prior, covariance_prior, reg_covar):
    """CAVI update of q(pi), q(mu, Lambda) from responsibilities; returns a dict."""
    X = np.asarray(X, dtype=np.float64)
    resp = np.asarray(resp, dtype=np.float64)
    N, D = X.shape
    K = resp.shape[1]
    alpha0, beta0 = float(weight_concentration_prior), float(mean_precision_prior)
    nu0, m0 = float(degrees_of_freedom_prior), np.asarray(mean_prior, np.float64)

    # weighted statistics (sklearn adds 10 eps to N_k)
    nk = resp.sum(axis=0) + 10.0 * np.finfo(np.float64).eps
    xk = (resp.T @ X) / nk[:, None]
    scatter = np.empty((K, D, D))                    # S_k = sum_n r_nk (x - xk)(x - xk)^T / N_k
    for k in range(K):
        diff = X - xk[k]
        scatter[k] = (resp[:, k, None] * diff).T @ diff / nk[k]

    # q(pi)
    if weight_concentration_prior_type == "dirichlet_process":
        tail = np.array([nk[k + 1:].sum() for k in range(K)])     # sum_{j > k} N_j
        weight_concentration = (1.0 + nk, alpha0 + tail)
    else:
        weight_concentration = alpha0 + nk

    # q(mu | Lambda)
    mean_precision = beta0 + nk
    means = (beta0 * m0 + nk[:, None] * xk) / mean_precision[:, None]

    # q(Lambda): Psi_k = Psi0 + N_k (S_k + reg) + beta0 N_k / beta_k (xk - m0)(xk - m0)^T
    dm = xk - m0
    shrink = nk * beta0 / mean_precision                          # beta0 N_k / beta_k
    if covariance_type == "full":
        Psi0 = prior_scale_matrix(covariance_prior, "full", D)
        degrees_of_freedom = nu0 + nk
        covariances = np.array([
            (Psi0 + nk[k] * (scatter[k] + reg_covar * np.eye(D))
             + shrink[k] * np.outer(dm[k], dm[k])) / degrees_of_freedom[k]
            for k in range(K)])
    elif covariance_type == "tied":
        # mean over k of the per-component full updates; the pooled scatter gets reg
        Psi0 = prior_scale_matrix(covariance_prior, "tied", D)
        pooled = np.einsum("k,kij->ij", nk, scatter) / nk.sum() + reg_covar * np.eye(D)
        degrees_of_freedom = nu0 + nk.sum() / K
        Psi = (Psi0 + pooled * nk.sum() / K
               + np.einsum("k,ki,kj->ij", shrink, dm, dm) / K)
        covariances = Psi / degrees_of_freedom
    elif covariance_type == "diag":
        psi0 = np.asarray(covariance_prior, np.float64).reshape(D)
        degrees_of_freedom = nu0 + nk
        s_diag = np.einsum("kii->ki", scatter) + reg_covar
        covariances = (psi0 + nk[:, None] * s_diag + shrink[:, None] * dm ** 2) \
            / degrees_of_freedom[:, None]
    elif covariance_type == "spherical":
        psi0 = float(covariance_prior)
        degrees_of_freedom = nu0 + nk
        s_mean = np.einsum("kii->k", scatter) / D + reg_covar
        covariances = (psi0 + nk * s_mean + shrink * np.mean(dm ** 2, axis=1)) \
            / degrees_of_freedom
    else:
        raise ValueError(covariance_type)

    return dict(
        weight_concentration=weight_concentration,
        mean_precision=mean_precision,
        means=means,
        degrees_of_freedom=degrees_of_freedom,
        covariances=covariances,
        precisions_cholesky=precision_cholesky(covariances, covariance_type),
        weights=mixture_weights(weight_concentration, weight_concentration_prior_type),
    )


# ----------------------------------------------------------------------------------
# E-step
# ----------------------------------------------------------------------------------
def _component_arrays(params, covariance_type, K, D):
    """(nu_k (K,), Psi_k (K,D,D), E[Lambda_k] (K,D,D)) with tied broadcast over k."""
    C = covariance_matrices(params["covariances"], covariance_type, K, D)
    nu = np.broadcast_to(np.asarray(params["degrees_of_freedom"], np.float64), (K,)).copy()
    Psi = nu[:, None, None] * C
    E_Lambda = np.linalg.inv(C)
    return nu, Psi, E_Lambda


def expected_log_joint_per_component(X, params, covariance_type,
                                     weight_concentration_prior_type, noise_var=0.0):
    """log rho_nk = E[log pi_k] + E[log N(x_n | mu_k, Lambda_k^-1)]; shape (N, K).

    ``noise_var`` > 0: the log-likelihood averaged over extra N(0, noise_var I) noise on x_n,
    which subtracts ``noise_var/2 tr E[Lambda_k]`` (the exact_cavi E-step).
    """
    X = np.asarray(X, dtype=np.float64)
    N, D = X.shape
    means, beta = params["means"], params["mean_precision"]
    K = means.shape[0]
    nu, Psi, E_Lambda = _component_arrays(params, covariance_type, K, D)
    elog_pi = expected_log_weights(params["weight_concentration"],
                                   weight_concentration_prior_type)
    out = np.empty((N, K))
    for k in range(K):
        diff = X - means[k]
        quad = (np.einsum("ni,ij,nj->n", diff, E_Lambda[k], diff) + D / beta[k]
                + noise_var * np.trace(E_Lambda[k]))
        out[:, k] = (elog_pi[k] + 0.5 * wishart_expected_logdet(Psi[k], nu[k])
                     - 0.5 * D * LOG_2PI - 0.5 * quad)
    return out


def e_step(X, params, covariance_type, weight_concentration_prior_type, noise_var=0.0):
    """Returns log_resp (N, K) (``noise_var``: see :func:`expected_log_joint_per_component`)."""
    log_rho = expected_log_joint_per_component(X, params, covariance_type,
                                               weight_concentration_prior_type, noise_var)
    return log_rho - logsumexp(log_rho, axis=1, keepdims=True)


# ----------------------------------------------------------------------------------
# bounds
# ----------------------------------------------------------------------------------
def full_elbo(X, resp, params, *, covariance_type, weight_concentration_prior_type,
              weight_concentration_prior, mean_precision_prior, mean_prior,
              degrees_of_freedom_prior, covariance_prior, noise_var=0.0):
    """E_q[log p(X, Z, pi, mu, Lambda)] - E_q[log q(Z, pi, mu, Lambda)], all constants kept.

    ``noise_var`` > 0: the ELBO of the model whose observations carry extra N(0, noise_var I)
    noise (exact_cavi; see the module docstring): the expected log-likelihood is lower by
    ``noise_var/2 sum_k N_k tr E[Lambda_k]``.
    """
    X = np.asarray(X, dtype=np.float64)
    resp = np.asarray(resp, dtype=np.float64)
    N, D = X.shape
    means, beta = params["means"], params["mean_precision"]
    K = means.shape[0]
    alpha0, beta0 = float(weight_concentration_prior), float(mean_precision_prior)
    nu0, m0 = float(degrees_of_freedom_prior), np.asarray(mean_prior, np.float64)
    Psi0 = prior_scale_matrix(covariance_prior, covariance_type, D)
    nu, Psi, E_Lambda = _component_arrays(params, covariance_type, K, D)
    E_logdet = np.array([wishart_expected_logdet(Psi[k], nu[k]) for k in range(K)])

    # E[log p(X | Z, mu, Lambda)]: E[(x - mu)^T Lambda (x - mu)] = (x - m)^T E[Lambda] (x - m) + D / beta
    ll = 0.0
    for k in range(K):
        diff = X - means[k]
        quad = (np.einsum("ni,ij,nj->n", diff, E_Lambda[k], diff) + D / beta[k]
                + noise_var * np.trace(E_Lambda[k]))
        ll += np.sum(resp[:, k] * (0.5 * E_logdet[k] - 0.5 * D * LOG_2PI - 0.5 * quad))

    # E[log p(Z | pi)] - E[log q(Z)]
    elog_pi = expected_log_weights(params["weight_concentration"],
                                   weight_concentration_prior_type)
    with np.errstate(divide="ignore", invalid="ignore"):
        rlogr = np.where(resp > 0, resp * np.log(resp), 0.0)
    z_terms = np.sum(resp * elog_pi[None, :]) - np.sum(rlogr)

    # E[log p(pi)] - E[log q(pi)]
    if weight_concentration_prior_type == "dirichlet_process":
        a, b = params["weight_concentration"]
        elog_v = digamma(a) - digamma(a + b)
        elog_1mv = digamma(b) - digamma(a + b)
        log_p = np.sum(np.log(alpha0) + (alpha0 - 1.0) * elog_1mv)    # Beta(1, gamma)
        log_q = np.sum(-betaln(a, b) + (a - 1.0) * elog_v + (b - 1.0) * elog_1mv)
    else:
        alpha = params["weight_concentration"]
        elog = digamma(alpha) - digamma(alpha.sum())
        log_p = gammaln(K * alpha0) - K * gammaln(alpha0) + (alpha0 - 1.0) * elog.sum()
        log_q = gammaln(alpha.sum()) - gammaln(alpha).sum() + np.sum((alpha - 1.0) * elog)
    pi_terms = log_p - log_q

    # E[log p(mu, Lambda)] - E[log q(mu, Lambda)], per component
    theta_terms = 0.0
    logB0 = log_wishart_B(Psi0, nu0)
    for k in range(K):
        dm = means[k] - m0
        # log N(mu | m0, (beta0 Lambda)^-1) + log W(Lambda | nu0, Psi0^-1)
        e_log_p = (0.5 * D * np.log(beta0 / (2.0 * np.pi)) + 0.5 * E_logdet[k]
                   - 0.5 * beta0 * (D / beta[k] + dm @ E_Lambda[k] @ dm)
                   + logB0 + 0.5 * (nu0 - D - 1.0) * E_logdet[k]
                   - 0.5 * np.trace(Psi0 @ E_Lambda[k]))
        # log N(mu | m_k, (beta_k Lambda)^-1) + log W(Lambda | nu_k, Psi_k^-1)
        e_log_q = (0.5 * D * np.log(beta[k] / (2.0 * np.pi)) + 0.5 * E_logdet[k] - 0.5 * D
                   + log_wishart_B(Psi[k], nu[k]) + 0.5 * (nu[k] - D - 1.0) * E_logdet[k]
                   - 0.5 * nu[k] * D)
        theta_terms += e_log_p - e_log_q

    return float(ll + z_terms + pi_terms + theta_terms)


def sklearn_lower_bound(log_resp, params, *, covariance_type,
                        weight_concentration_prior_type):
    """What sklearn's ``_compute_lower_bound`` returns for this state (constants dropped)."""
    D = params["means"].shape[1]
    K = params["means"].shape[0]
    nu, Psi, _ = _component_arrays(params, covariance_type, K, D)
    # sklearn's _log_wishart_norm: log B(W, nu) without the D(D-1)/4 log(pi) term
    log_wishart = np.array([log_wishart_B(Psi[k], nu[k]) + 0.25 * D * (D - 1) * np.log(np.pi)
                            for k in range(K)]).sum()
    if weight_concentration_prior_type == "dirichlet_process":
        a, b = params["weight_concentration"]
        log_norm_weight = -np.sum(betaln(a, b))
    else:
        alpha = params["weight_concentration"]
        log_norm_weight = gammaln(alpha.sum()) - gammaln(alpha).sum()
    return float(-np.sum(np.exp(log_resp) * log_resp) - log_wishart - log_norm_weight
                 - 0.5 * D * np.sum(np.log(params["mean_precision"])))


def elbo_offset_constant(N, D, K, *, covariance_type, weight_concentration_prior_type,
                         weight_concentration_prior, mean_precision_prior,
                         degrees_of_freedom_prior, covariance_prior):
    """C in ``elbo - sklearn_lower_bound = C + (reg_covar/2) sum_k N_k tr(E[Lambda_k])``."""
    alpha0, beta0, nu0 = (float(weight_concentration_prior), float(mean_precision_prior),
                          float(degrees_of_freedom_prior))
    Psi0 = prior_scale_matrix(covariance_prior, covariance_type, D)
    if weight_concentration_prior_type == "dirichlet_process":
        c_w = K * np.log(alpha0)
    else:
        c_w = gammaln(K * alpha0) - K * gammaln(alpha0)
    per_k = (0.5 * D * np.log(beta0) + 0.5 * nu0 * np.linalg.slogdet(Psi0)[1]
             - 0.5 * nu0 * D * np.log(2.0) - np.sum(gammaln(0.5 * (nu0 - np.arange(D)))))
    return float(-0.5 * N * D * LOG_2PI + K * per_k + c_w)


def elbo_offset_reg_term(resp, params, covariance_type, reg_covar):
    """(reg_covar / 2) sum_k N_k tr(E_q[Lambda_k]) (N_k with sklearn's 10 eps)."""
    K, D = params["means"].shape
    nk = np.asarray(resp).sum(axis=0) + 10.0 * np.finfo(np.float64).eps
    _, _, E_Lambda = _component_arrays(params, covariance_type, K, D)
    return float(0.5 * reg_covar * np.sum(nk * np.einsum("kii->k", E_Lambda)))


# ----------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------
def bayesian_gmm_reference(X, resp0, n_iter, *, covariance_type, weight_concentration_prior_type,
                           weight_concentration_prior, mean_precision_prior, mean_prior,
                           degrees_of_freedom_prior, covariance_prior, reg_covar, exact_cavi=False):
    """Mirror of sklearn's ``BayesianGaussianMixture.fit`` from given responsibilities.

    The M-step is first applied to ``resp0`` (sklearn's ``_initialize``; rows of resp0
    should sum to 1), then each iteration performs an E-step (log_resp from the current
    parameters), an M-step, and evaluates the bounds with that log_resp and the new
    parameters.

    ``exact_cavi=True``: fastcavi's exact_cavi mode, the E-step and the ELBO of the model with
    extra N(0, reg_covar I) observation noise (see the module docstring); the M-step is the same.
    ``sklearn_lower_bound`` is then still sklearn's formula for the state (no longer sklearn's run).

    Returns a list of ``n_iter`` dicts, one per iteration, with keys
    weight_concentration (DP: tuple (beta_a, beta_b) like sklearn; Dirichlet: (K,)),
    mean_precision (K,), means (K, D), degrees_of_freedom (K,) (tied: float),
    covariances, precisions_cholesky (sklearn shapes per covariance_type),
    weights (sklearn's ``weights_``), resp (N, K) from that iteration's E-step,
    elbo (the full ELBO, float), sklearn_lower_bound (what sklearn's
    ``_compute_lower_bound`` returns for the same state).
    """
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(covariance_type)
    if weight_concentration_prior_type not in WEIGHT_PRIOR_TYPES:
        raise ValueError(weight_concentration_prior_type)
    X = np.asarray(X, dtype=np.float64)
    priors = dict(covariance_type=covariance_type,
                  weight_concentration_prior_type=weight_concentration_prior_type,
                  weight_concentration_prior=weight_concentration_prior,
                  mean_precision_prior=mean_precision_prior, mean_prior=mean_prior,
                  degrees_of_freedom_prior=degrees_of_freedom_prior,
                  covariance_prior=covariance_prior)
    noise_var = reg_covar if exact_cavi else 0.0
    params = m_step(X, resp0, reg_covar=reg_covar, **priors)
    history = []
    for _ in range(n_iter):
        log_resp = e_step(X, params, covariance_type, weight_concentration_prior_type, noise_var)
        resp = np.exp(log_resp)
        params = m_step(X, resp, reg_covar=reg_covar, **priors)
        state = dict(params)
        state["resp"] = resp
        state["elbo"] = full_elbo(X, resp, params, noise_var=noise_var, **priors)
        state["sklearn_lower_bound"] = sklearn_lower_bound(
            log_resp, params, covariance_type=covariance_type,
            weight_concentration_prior_type=weight_concentration_prior_type)
        history.append(state)
    return history


# ----------------------------------------------------------------------------------
# Monte Carlo check of the full ELBO
# ----------------------------------------------------------------------------------
def wishart_sample(rng, df, scale, size):
    """``size`` draws of W(df, scale) (mean ``df * scale``), shape (size, D, D), by Bartlett's decomposition.

    ``Lambda = L A A^T L^T`` with ``scale = L L^T`` and ``A`` lower triangular,
    ``A_ii = sqrt(chi2(df - i))`` (i = 0..D-1), ``A_ij ~ N(0, 1)`` below the diagonal.
    """
    D = scale.shape[0]
    A = np.zeros((size, D, D))
    for i in range(D):
        A[:, i, i] = np.sqrt(rng.chisquare(df - i, size))
        A[:, i, :i] = rng.standard_normal((size, i))
    LA = np.linalg.cholesky(scale) @ A
    return LA @ LA.transpose(0, 2, 1)


def wishart_logpdf(Lam, df, scale):
    """log W(Lambda | df, scale) for a stack of matrices Lam (S, D, D); shape (S,).

    ``((df - D - 1)/2) log|Lambda| - tr(scale^-1 Lambda)/2 - (df D/2) log 2 - (df/2) log|scale| - log Gamma_D(df/2)``.
    """
    D = scale.shape[0]
    logdet = np.linalg.slogdet(Lam)[1]
    tr = np.einsum("ij,sji->s", np.linalg.inv(scale), Lam)
    return (0.5 * (df - D - 1.0) * logdet - 0.5 * tr - 0.5 * df * D * np.log(2.0)
            - 0.5 * df * np.linalg.slogdet(scale)[1] - multigammaln(0.5 * df, D))


def _gaussian_logpdf_prec(x, mean, Lam, logdet_Lam):
    """log N(x | mean, Lam^-1) for stacks: x, mean (S, D), Lam (S, D, D), logdet_Lam (S,); shape (S,)."""
    D = Lam.shape[-1]
    diff = x - mean
    return -0.5 * D * LOG_2PI + 0.5 * logdet_Lam - 0.5 * np.einsum("si,sij,sj->s", diff, Lam, diff)


def _weighted_gaussian_loglik(X, r, mu, Lam, logdet_Lam):
    """sum_n r_n log N(x_n | mu_s, Lam_s^-1) for each draw s; shape (S,).

    The quadratic forms are summed over n through the weighted moments,
    sum_n r_n (x_n - mu)^T Lam (x_n - mu) = tr(Lam M) - 2 s^T Lam mu + (sum_n r_n) mu^T Lam mu,
    with s = sum_n r_n x_n and M = sum_n r_n x_n x_n^T (plain algebra, and S x N times faster).
    """
    D = X.shape[1]
    n, s, M = r.sum(), r @ X, (r[:, None] * X).T @ X
    quad = (np.einsum("sij,ji->s", Lam, M) - 2.0 * np.einsum("i,sij,sj->s", s, Lam, mu)
            + n * np.einsum("si,sij,sj->s", mu, Lam, mu))
    return n * (-0.5 * D * LOG_2PI + 0.5 * logdet_Lam) - 0.5 * quad


def _log_gamma_split(rng, shape_a, shape_b, size):
    """log v and log(1 - v) for v ~ Beta(a, b) (each (size, K)), exact in the log domain via two Gammas."""
    ga, gb = rng.standard_gamma(shape_a, (size, shape_a.size)), rng.standard_gamma(shape_b, (size, shape_b.size))
    log_sum = np.log(ga + gb)
    return np.log(ga) - log_sum, np.log(gb) - log_sum


def monte_carlo_elbo(X, resp, params, *, covariance_type, weight_concentration_prior_type,
                     weight_concentration_prior, mean_precision_prior, mean_prior,
                     degrees_of_freedom_prior=None, covariance_prior=None, covariance=None,
                     n_draws=20_000, seed=0):
    """Monte Carlo estimate of E_q[log p(X, Z, pi, theta) - log q(Z, pi, theta)] and its standard error.

    pi (or the sticks v) and theta = (mu_k, Lambda_k) (or mu_k alone for ``"identity"``) are drawn
    from q; the expectation over q(Z) = Cat(resp) is summed exactly (Z is discrete: this is
    the conditional expectation of the plain Monte Carlo integrand given pi and theta, the same
    mean with less variance). Every density is written out here from its textbook form,
    independently of the closed-form expectations of :func:`full_elbo` and of fastcavi.

    The variational family sampled (see the module docstring):

    * ``"dirichlet_distribution"``: pi ~ Dir(alpha), prior Dir(alpha0);
      ``"dirichlet_process"``: v_k ~ Beta(a_k, b_k), k <= K, pi_k = v_k prod_{j<k} (1 - v_j),
      prior v_k ~ Beta(1, gamma) (factors k > K equal their priors and contribute 0).
    * Wishart types: Lambda_k ~ W(nu_k, (nu_k C_k)^-1) and mu_k | Lambda_k ~ N(m_k, (beta_k Lambda_k)^-1),
      with C_k the type's restricted matrix (diag/spherical: a diagonal matrix, but Lambda_k is a
      full D x D Wishart draw); tied: K *independent* draws from the one shared q-factor
      (the model has K independent precisions, see the module docstring). Prior
      Lambda_k ~ W(nu0, Psi0^-1), mu_k | Lambda_k ~ N(m0, (beta0 Lambda_k)^-1).
    * ``"identity"`` (the seed's known-covariance model): mu_k ~ N(m_k, Sigma / nu_k), prior
      N(m0, Sigma / nu0), x | z = k ~ N(mu_k, Sigma), ``Sigma = covariance`` (None: I).

    Parameters
    ----------
    X : ndarray of shape (N, D)
    resp : ndarray of shape (N, K)
        q(z_n = k).
    params : mapping
        ``weight_concentration`` ((K,) or the pair (a, b)), ``mean_precision`` (K,), ``means`` (K, D),
        and for the Wishart types ``degrees_of_freedom`` and ``covariances`` in scikit-learn's shapes.
    covariance_type : {"identity", "spherical", "diag", "full", "tied"}
    weight_concentration_prior_type : {"dirichlet_distribution", "dirichlet_process"}
    weight_concentration_prior : float or ndarray of shape (K,)
    mean_precision_prior : float
    mean_prior : ndarray of shape (D,)
    degrees_of_freedom_prior, covariance_prior : Wishart types only
    covariance : ndarray of shape (D, D) or None
        The known covariance (``"identity"`` only).
    n_draws : int
    seed : int

    Returns
    -------
    estimate : float
        The sample mean of the integrand.
    standard_error : float
        Its sample standard deviation / sqrt(n_draws).
    """
    rng = np.random.default_rng(seed)
    X = np.asarray(X, dtype=np.float64)
    resp = np.asarray(resp, dtype=np.float64)
    N, D = X.shape
    K = resp.shape[1]
    S = int(n_draws)
    m, beta = np.asarray(params["means"], np.float64), np.asarray(params["mean_precision"], np.float64)
    beta0, m0 = float(mean_precision_prior), np.asarray(mean_prior, np.float64)

    # q(Z): its entropy, exactly
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy_z = -np.sum(np.where(resp > 0, resp * np.log(resp), 0.0))

    # pi: log pi_k (S, K) and log p(pi) - log q(pi) (S,)
    if weight_concentration_prior_type == "dirichlet_process":
        a, b = (np.asarray(p, np.float64) for p in params["weight_concentration"])
        gamma = float(np.ravel(weight_concentration_prior)[0])
        log_v, log_1mv = _log_gamma_split(rng, a, b, S)
        log_pi = log_v + np.hstack((np.zeros((S, 1)), np.cumsum(log_1mv[:, :-1], axis=1)))
        log_beta_p = (gamma - 1.0) * log_1mv - betaln(1.0, gamma)          # Beta(v | 1, gamma)
        log_beta_q = (a - 1.0) * log_v + (b - 1.0) * log_1mv - betaln(a, b)
        pi_terms = np.sum(log_beta_p - log_beta_q, axis=1)
    else:
        alpha = np.asarray(params["weight_concentration"], np.float64)
        alpha0 = np.broadcast_to(np.asarray(weight_concentration_prior, np.float64), (K,))
        g = rng.standard_gamma(alpha, (S, K))
        log_pi = np.log(g) - np.log(g.sum(axis=1, keepdims=True))

        def log_dirichlet(conc):
            return gammaln(conc.sum()) - gammaln(conc).sum() + log_pi @ (conc - 1.0)

        pi_terms = log_dirichlet(alpha0) - log_dirichlet(alpha)

    # theta, and the expected log-likelihood sum_nk r_nk log N(x_n | theta_k) given theta
    Nk = resp.sum(axis=0)
    loglik = np.zeros(S)
    theta_terms = np.zeros(S)
    if covariance_type == "identity":
        Sigma = np.eye(D) if covariance is None else np.asarray(covariance, np.float64)
        P = np.linalg.inv(Sigma)
        logdet_P = np.linalg.slogdet(P)[1]
        L = np.linalg.cholesky(Sigma)
        for k in range(K):
            mu = m[k] + rng.standard_normal((S, D)) @ L.T / np.sqrt(beta[k])     # N(m_k, Sigma / nu_k)
            Ps = np.broadcast_to(P, (S, D, D))
            ld = np.full(S, logdet_P)
            loglik += _weighted_gaussian_loglik(X, resp[:, k], mu, Ps, ld)
            theta_terms += (_gaussian_logpdf_prec(mu, m0[None], beta0 * Ps, ld + D * np.log(beta0))
                            - _gaussian_logpdf_prec(mu, m[k][None], beta[k] * Ps, ld + D * np.log(beta[k])))
    else:
        nu0 = float(degrees_of_freedom_prior)
        Psi0 = prior_scale_matrix(covariance_prior, covariance_type, D)
        prior_scale = np.linalg.inv(Psi0)
        C = covariance_matrices(params["covariances"], covariance_type, K, D)
        nu = np.broadcast_to(np.asarray(params["degrees_of_freedom"], np.float64), (K,))
        for k in range(K):
            q_scale = np.linalg.inv(nu[k] * C[k])
            Lam = wishart_sample(rng, nu[k], q_scale, S)
            ld = np.linalg.slogdet(Lam)[1]
            # mu | Lambda ~ N(m_k, (beta_k Lambda)^-1): m_k + U^-T z / sqrt(beta_k), Lambda = U U^T
            U = np.linalg.cholesky(Lam)
            z = rng.standard_normal((S, D, 1))
            mu = m[k] + np.linalg.solve(U.transpose(0, 2, 1), z)[..., 0] / np.sqrt(beta[k])
            loglik += _weighted_gaussian_loglik(X, resp[:, k], mu, Lam, ld)
            theta_terms += (_gaussian_logpdf_prec(mu, m0[None], beta0 * Lam, ld + D * np.log(beta0))
                            + wishart_logpdf(Lam, nu0, prior_scale)
                            - _gaussian_logpdf_prec(mu, m[k][None], beta[k] * Lam, ld + D * np.log(beta[k]))
                            - wishart_logpdf(Lam, nu[k], q_scale))
    f = loglik + log_pi @ Nk + pi_terms + theta_terms + entropy_z
    return float(f.mean()), float(f.std(ddof=1) / np.sqrt(S))
