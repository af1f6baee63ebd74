"""fastcavi: variational Bayesian Gaussian mixtures by coordinate ascent, at multicore speed.

``import fastcavi`` is cheap: numba and the compiled kernels load on the first fit.
"""
from ._driver import ConvergenceWarning, ELBODecreaseError, ELBODecreaseWarning
from .api import FitResult, fit, load

__version__ = "0.1.0"


def __getattr__(name):
    # the estimator imports scikit-learn's base class when available: only on first use
    if name == "BayesianGaussianMixture":
        from .estimator import BayesianGaussianMixture

        return BayesianGaussianMixture
    raise AttributeError(f"module 'fastcavi' has no attribute {name!r}")
__all__ = ["fit", "load", "FitResult", "BayesianGaussianMixture", "ConvergenceWarning", "ELBODecreaseError", "ELBODecreaseWarning", "__version__"]
