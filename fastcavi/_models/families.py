"""From checked parameters to a family object and its coordinates.

``resolve`` takes the model's parameters as :func:`fastcavi.options.check` returns them
(every check that does not need the data is done there, by :mod:`fastcavi._validation`) and
fills in the defaults that need no data; ``build`` resolves the data-dependent defaults from
a data summary (scikit-learn's defaults for the Normal-Wishart priors depend on the data's
mean and scatter, and only there can the default prior's singularity be checked) into a
plain configuration; ``rebuild`` makes the family object from such a configuration (also
when it comes back from a model file).
"""
import numpy as np

from . import fixed
from .coordinates import Coordinates
from .known import KnownCovariance
from .weights import DirichletProcessWeights, DirichletWeights
from .wishart import NormalWishart


def weight_prior(wtype, K, concentration, default):
    """The weight prior object for ``weight_concentration_prior_type``.

    ``concentration`` is the checked ``weight_concentration_prior`` (a number for the process, a
    (K,) vector for the Dirichlet) or None, for ``default`` (a number).
    """
    if wtype == "dirichlet_process":
        return DirichletProcessWeights(float(default) if concentration is None else concentration, K)
    return DirichletWeights(np.full(K, float(default)) if concentration is None else concentration)


class KnownSpec:
    """The seed's model with a known covariance (identity by default)."""

    needs_full_scatter = False

    def __init__(self, checked, D):
        self.wtype, self.K, self.D = checked["weight_concentration_prior_type"], checked["n_components"], D
        # valid but unused by this family (documented): checked all the same, as scikit-learn checks every parameter
        self.reg_covar, self.exact_cavi = checked["reg_covar"], checked["exact_cavi"]
        self.chol = checked["covariance"]  # the known covariance's Cholesky factor (None: the identity)
        self.weights = weight_prior(self.wtype, self.K, checked["weight_concentration_prior"], 1.0)
        self.nu = 1.0 if checked["mean_precision_prior"] is None else checked["mean_precision_prior"]
        self.m0 = np.zeros(D) if checked["mean_prior"] is None else checked["mean_prior"]

    def build(self, summary):
        """The resolved configuration (see :func:`rebuild`) for data summarised by ``summary``."""
        return dict(covariance_type="identity", weight_concentration_prior_type=self.wtype, n_components=self.K,
                    n_features=self.D, shift=np.array(summary.mean, dtype=np.float64), whiten=self.chol,
                    weight_concentration_prior=_prior_value(self.weights), mean_precision_prior=self.nu,
                    mean_prior=self.m0, degrees_of_freedom_prior=None, covariance_prior=None,
                    reg_covar=self.reg_covar, exact_cavi=self.exact_cavi, total_scatter=None)


def _prior_value(weights):
    return weights.gamma if isinstance(weights, DirichletProcessWeights) else weights.alpha


class WishartSpec:
    """scikit-learn's Normal-Wishart families, with its defaults.

    Defaults (scikit-learn's): ``weight_concentration_prior`` 1/K, ``mean_precision_prior``
    1, ``mean_prior`` the data mean, ``degrees_of_freedom_prior`` D, ``covariance_prior``
    the empirical covariance (ddof=1), its diagonal, or the mean of its diagonal. When
    that default is singular (a constant column, or fewer rows than columns) the prior
    would be improper and the ELBO -inf: ``reg_covar`` is then added to its diagonal.
    """

    def __init__(self, checked, D):
        self.covariance_type = checked["covariance_type"]
        self.wtype, self.K, self.D = checked["weight_concentration_prior_type"], checked["n_components"], D
        self.needs_full_scatter = self.covariance_type in ("full", "tied")
        self.weights = weight_prior(self.wtype, self.K, checked["weight_concentration_prior"], 1.0 / self.K)
        self.beta0 = 1.0 if checked["mean_precision_prior"] is None else checked["mean_precision_prior"]
        self.m0 = checked["mean_prior"]  # None: the data mean
        self.nu0 = float(D) if checked["degrees_of_freedom_prior"] is None else checked["degrees_of_freedom_prior"]
        self.reg_covar, self.exact_cavi = checked["reg_covar"], checked["exact_cavi"]
        self.Psi0 = checked["covariance_prior"]  # None: from the data's scatter

    def _default_covariance_prior(self, summary):
        # data-dependent checks, here because they need the data's count and scatter: at least 2
        # samples, and a singular default prior is an error only with reg_covar = 0
        N, D, ct = summary.count, self.D, self.covariance_type
        if not N > 1:
            raise ValueError("The default covariance_prior (the empirical covariance) needs at least 2 samples "
                             f"(a total weight above 1; got {N!r}); pass covariance_prior.")
        scatter = summary.scatter / (N - 1)
        if ct in ("full", "tied"):
            prior = np.atleast_2d(scatter)
            singular = np.linalg.eigvalsh(prior)[0] <= 1e-12 * max(np.trace(prior), 1e-300)
        else:
            var = np.diag(scatter) if scatter.ndim == 2 else scatter
            prior = var if ct == "diag" else float(np.mean(var))
            singular = np.any(np.asarray(prior) <= 0.0)
        if singular:
            if self.reg_covar <= 0.0:
                raise ValueError("The default covariance_prior (the empirical covariance of X) is singular "
                                 "(constant columns, or fewer distinct rows than features) and reg_covar is 0: "
                                 "pass covariance_prior or a positive reg_covar.")
            prior = prior + (self.reg_covar * np.eye(D) if ct in ("full", "tied") else self.reg_covar)
        return prior

    def build(self, summary):
        """The resolved configuration (see :func:`rebuild`) for data summarised by ``summary``."""
        # a check of the summary (the data's), not of a parameter: it stays here
        if self.covariance_type in ("full", "tied") and summary.scatter.ndim != 2:
            raise ValueError(f"covariance_type={self.covariance_type!r} needs a DataSummary with the full scatter "
                             "(summarize(..., full_scatter=True)).")
        m0 = summary.mean if self.m0 is None else self.m0
        Psi0 = self._default_covariance_prior(summary) if self.Psi0 is None else self.Psi0
        return dict(covariance_type=self.covariance_type, weight_concentration_prior_type=self.wtype,
                    n_components=self.K, n_features=self.D, shift=np.array(summary.mean, dtype=np.float64),
                    whiten=None, weight_concentration_prior=_prior_value(self.weights),
                    mean_precision_prior=self.beta0, mean_prior=np.array(m0, dtype=np.float64),
                    degrees_of_freedom_prior=self.nu0, covariance_prior=Psi0, reg_covar=self.reg_covar,
                    exact_cavi=self.exact_cavi,
                    total_scatter=np.array(summary.scatter) if self.covariance_type == "tied" else None)


#: The keys of a resolved configuration, by family (what a model file stores).
CONFIG_KEYS = ("covariance_type", "weight_concentration_prior_type", "n_components", "n_features", "shift",
               "whiten", "weight_concentration_prior", "mean_precision_prior", "mean_prior",
               "degrees_of_freedom_prior", "covariance_prior", "reg_covar", "exact_cavi", "total_scatter")


def rebuild(config):
    """The family object and its coordinates from a resolved configuration (priors with defaults filled in).

    Returns
    -------
    family : KnownCovariance or NormalWishart
    coords : Coordinates
    """
    wtype, K = config["weight_concentration_prior_type"], int(config["n_components"])
    if wtype == "dirichlet_process":
        weights = DirichletProcessWeights(float(config["weight_concentration_prior"]), K)
    else:
        weights = DirichletWeights(np.asarray(config["weight_concentration_prior"], dtype=np.float64))
    whiten = config.get("whiten")
    coords = Coordinates(config["shift"], whiten=whiten)
    m0 = coords.to_model(np.asarray(config["mean_prior"], dtype=np.float64)[None])[0]
    if config["covariance_type"] == "identity":
        log_det = 0.0 if whiten is None else float(np.sum(fixed.log(np.diag(whiten))))
        return KnownCovariance(weights, float(config["mean_precision_prior"]), m0, log_det), coords
    family = NormalWishart(config["covariance_type"], weights, float(config["mean_precision_prior"]), m0,
                           float(config["degrees_of_freedom_prior"]), config["covariance_prior"],
                           float(config["reg_covar"]), total_scatter=config.get("total_scatter"),
                           exact_cavi=bool(config["exact_cavi"]))
    return family, coords


def resolve(checked, n_features):
    """The spec of the model whose parameters ``checked`` are :func:`fastcavi.options.check`'s output.

    Parameters
    ----------
    checked : mapping
        The checked model parameters (``n_components``, ``covariance_type`` and
        :data:`fastcavi.options.MODEL_OPTIONS`).
    n_features : int
        D.

    Returns
    -------
    KnownSpec or WishartSpec
    """
    if checked["covariance_type"] == "identity":
        return KnownSpec(checked, n_features)
    return WishartSpec(checked, n_features)
