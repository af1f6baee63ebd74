"""fastcavi: variational Bayesian Gaussian mixtures by coordinate ascent, at multicore speed.

``import fastcavi`` is cheap: numba and the compiled kernels load on the first fit.
:mod:`fastcavi.engine` is the public backend API (``fastcavi.engine`` is imported on first use).
"""
from .api import fit
from .exceptions import ConvergenceWarning, ELBODecreaseError, ELBODecreaseWarning
from .result import FitResult, load

__version__ = "0.2.0"


def __getattr__(name):
    # the estimator imports scikit-learn's base class when available: only on first use
    if name == "BayesianGaussianMixture":
        from .estimator import BayesianGaussianMixture

        return BayesianGaussianMixture
    if name == "engine":
        import importlib

        return importlib.import_module(".engine", __name__)
    raise AttributeError(f"module 'fastcavi' has no attribute {name!r}")


__all__ = ["fit", "load", "FitResult", "BayesianGaussianMixture", "engine", "ConvergenceWarning",
           "ELBODecreaseError", "ELBODecreaseWarning", "__version__"]
