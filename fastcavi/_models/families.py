"""From user-facing names and defaults to a family object and its preprocessing.

``resolve`` checks every hyperparameter that does not need the data; ``build``
finishes the job once the validating first pass has given the data's mean and
scatter (scikit-learn's defaults for the Normal-Wishart priors depend on them).
"""
import numpy as np

from .. import _validation as V
from .._driver import Preprocess
from .known import KnownCovariance
from .weights import DirichletProcessWeights, DirichletWeights


def weight_prior(wtype, K, concentration):
    """The weight prior object for ``weight_concentration_prior_type``."""
    if wtype == "dirichlet_process":
        return DirichletProcessWeights(V.check_real("weight_concentration_prior", concentration, 0.0), K)
    return DirichletWeights(V.check_vector("weight_concentration_prior", concentration, K, positive=True))


class KnownSpec:
    """The seed's model with a known covariance (identity by default)."""

    needs_full_scatter = False

    def __init__(self, wtype, K, D, covariance, weight_concentration_prior, mean_precision_prior, mean_prior):
        self.chol = V.check_known_covariance(covariance, D)
        self.weights = weight_prior(wtype, K, 1.0 if weight_concentration_prior is None
                                    else weight_concentration_prior)
        self.nu = V.check_real("mean_precision_prior", 1.0 if mean_precision_prior is None
                               else mean_precision_prior, 0.0)
        self.m0 = V.check_vector("mean_prior", 0.0 if mean_prior is None else mean_prior, D,
                                 what="n_features")

    def build(self, summary):
        prep = Preprocess(summary.mean, whiten=self.chol)
        log_det = 0.0 if self.chol is None else float(np.sum(np.log(np.diag(self.chol))))
        model = KnownCovariance(self.weights, self.nu, prep.to_model(self.m0[None])[0],
                                summary.n_samples, log_det)
        return model, prep


def resolve(covariance_type, wtype, K, D, *, covariance=None, **priors):
    """Check the hyperparameters of ``covariance_type`` and return its spec."""
    if covariance_type == "identity":
        return KnownSpec(wtype, K, D, covariance, **priors)
    raise NotImplementedError(covariance_type)
