"""fastcavi: variational Bayesian Gaussian mixtures by coordinate ascent, at multicore speed.

``import fastcavi`` is cheap: numba and the compiled kernels load on the first fit.
:mod:`fastcavi.engine` is the public backend API (``fastcavi.engine`` is imported on first use);
:mod:`fastcavi.dask` fits and predicts on Dask arrays (imported on first use, or by ``fit`` on a Dask array).
:mod:`fastcavi.report` writes a fit's report (figures, table, ``index.html``; matplotlib on first use).
"""
from .api import fit
from .exceptions import ELBODecreaseError, ELBODecreaseWarning
from .result import FitResult, load
from ._version import __version__  # noqa: F401  (re-exported; pyproject reads the version there)


def __getattr__(name):
    # the estimator imports scikit-learn's base class when available: only on first use
    if name == "BayesianGaussianMixture":
        from .estimator import BayesianGaussianMixture

        return BayesianGaussianMixture
    if name == "ConvergenceWarning":  # scikit-learn's subclass when it is installed: made on first use
        from . import exceptions

        return exceptions.ConvergenceWarning
    if name == "compile_kernels":  # imports numba only when called
        from ._compile import compile_kernels

        return compile_kernels
    if name in ("engine", "dask", "report"):  # fastcavi.dask imports dask: only on first use
        import importlib

        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'fastcavi' has no attribute {name!r}")


__all__ = ["fit", "load", "FitResult", "BayesianGaussianMixture", "engine", "ConvergenceWarning",
           "ELBODecreaseError", "ELBODecreaseWarning", "compile_kernels", "__version__"]
