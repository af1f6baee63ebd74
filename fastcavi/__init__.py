"""fastcavi: variational Bayesian Gaussian mixtures by coordinate ascent, at multicore speed.

``import fastcavi`` is cheap: numba and the compiled kernels load on the first fit.
"""
from ._driver import ConvergenceWarning, ELBODecreaseError, ELBODecreaseWarning
from .api import FitResult, fit, load

__version__ = "0.1.0"
__all__ = ["fit", "load", "FitResult", "ConvergenceWarning", "ELBODecreaseError", "ELBODecreaseWarning", "__version__"]
