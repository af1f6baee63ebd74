"""The exceptions and warnings fastcavi raises (public: catch them by these names)."""

__all__ = ["ELBODecreaseError", "ELBODecreaseWarning", "ConvergenceWarning"]


class ELBODecreaseError(ArithmeticError):
    """The ELBO went down during CAVI, which exact coordinate ascent never does."""


class ELBODecreaseWarning(RuntimeWarning):
    """The ELBO went down under updates that are not exact coordinate ascent.

    scikit-learn's M-step adds ``N_k * reg_covar`` to each Wishart scale matrix; the
    E-step has no matching term, so with ``reg_covar > 0`` a sweep is not an exact
    CAVI step and can lower the ELBO slightly (seen on degenerate data: constant
    columns, duplicate points). fastcavi reproduces scikit-learn's updates exactly and
    reports the true ELBO, so it warns rather than raises.
    """


class ConvergenceWarning(UserWarning):
    """CAVI stopped at ``max_iter`` before the ELBO converged."""
