"""The table of components of a fitted result, and the summary that ``FitResult.summary`` and ``fastcavi info``
print: numbers read off the result's attributes, below :mod:`fastcavi.result` (which prints them) and
:mod:`fastcavi.report` (which draws and writes them, and offers :func:`component_table`).
"""
from typing import Dict

import numpy as np

from ._models import fixed

#: The share of the total weight that the components counted as used hold, by default.
DEFAULT_MASS = 0.99


def covariance_matrices(result) -> np.ndarray:
    """``FitResult.covariances`` as K full (D, D) matrices, whatever the family."""
    K, D = result.n_components, result.n_features
    C = np.asarray(result.covariances, dtype=np.float64)
    kind = result.covariance_type
    if kind in ("identity", "tied"):
        return np.broadcast_to(C, (K, D, D)).copy()
    if kind == "spherical":
        return C[:, None, None] * np.eye(D)
    if kind == "diag":
        return np.einsum("kd,de->kde", C, np.eye(D))
    return C.copy()  # full


def expected_counts(result) -> np.ndarray:
    """``N_k = sum_n q(z_n = k)``: read off the posterior of the weights (``alpha_k + N_k``, or ``1 + N_k``)."""
    conc = result.weight_concentration
    if result.weight_concentration_prior_type == "dirichlet_process":
        return np.asarray(conc[0], dtype=np.float64) - 1.0
    prior = np.broadcast_to(np.asarray(result.priors["weight_concentration_prior"], dtype=np.float64),
                            (result.n_components,))
    return np.asarray(conc, dtype=np.float64) - prior


def component_table(result: "FitResult", mass: float = DEFAULT_MASS) -> Dict[str, np.ndarray]:
    """The per-component table of a fitted result, sorted by weight (largest first).

    Parameters
    ----------
    result : FitResult
        A fitted result (:func:`fastcavi.fit`, :func:`fastcavi.load`).
    mass : float, default 0.99
        The components counted as used are the fewest (the heaviest) whose weights add up to
        at least ``mass`` of the total.

    Returns
    -------
    dict of str to ndarray
        Rows in the order of decreasing weight (ties: the lower index first):

        - ``component`` (K,): the component's index in the model;
        - ``weight`` (K,): ``E[pi_k]`` (``FitResult.weights``);
        - ``cumulative_weight`` (K,): the running total of ``weight``;
        - ``used`` (K,) bool: whether the component is among those that hold ``mass``;
        - ``size`` (K,): the expected number of rows, ``N_k = sum_n q(z_n = k)`` (weighted
          rows when the fit had sample weights), from the posterior of the weights;
        - ``mean`` (K, D): ``FitResult.means``;
        - ``sd`` (K, D): square roots of the eigenvalues of the component's covariance
          (``FitResult.covariances``), largest first: its standard deviations along its own axes;
        - ``log_det`` (K,): the log-determinant of that covariance.

    Raises
    ------
    ValueError
        When ``mass`` is not in (0, 1].
    """
    if not 0.0 < mass <= 1.0:
        raise ValueError(f"mass must be in (0, 1], got {mass!r}.")
    weights = np.asarray(result.weights, dtype=np.float64)
    order = np.argsort(-weights, kind="stable")
    cumulative = np.cumsum(weights[order])
    n_used = min(int(np.searchsorted(cumulative, mass * cumulative[-1] * (1 - 1e-12))) + 1, weights.size)
    covs = covariance_matrices(result)[order]
    eig = np.linalg.eigvalsh(covs)[:, ::-1]  # LAPACK: the one figure that may differ in its last bits across CPUs
    return dict(component=order.astype(np.int64), weight=weights[order], cumulative_weight=cumulative,
                used=np.arange(weights.size) < n_used, size=expected_counts(result)[order],
                mean=np.asarray(result.means, dtype=np.float64)[order], sd=np.sqrt(np.clip(eig, 0.0, None)),
                log_det=fixed.log_det_spd(covs))


def numbers(values, limit):
    """``values`` as a short text: at most ``limit`` numbers, then ``...``."""
    values = np.ravel(values)
    text = " ".join(f"{v:.4g}" for v in values[:limit])
    return text + (" ..." if values.size > limit else "")


def summary(result, max_features, format_version):
    """The text of :meth:`fastcavi.FitResult.summary` (what ``fastcavi info`` prints); ``format_version``: the
    model file's."""
    table = component_table(result)
    n_used = int(table["used"].sum())
    lines = [f"fastcavi model: covariance_type={result.covariance_type}, K={result.n_components}, "
             f"D={result.n_features}",
             f"weight prior: {result.weight_concentration_prior_type}",
             f"sweeps: {result.n_iter}, converged: {result.converged}, ELBO: {result.lower_bound:.10e}",
             f"model file format: version {format_version}",
             "priors:"]
    for name, value in result.priors.items():
        shown = "None" if value is None else numbers(value, max_features * max_features)
        lines.append(f"  {name}: {shown}")
    lines.append(f"components, by weight ({n_used} of {result.n_components} hold {DEFAULT_MASS:.0%} of the weight; "
                 "sd: square roots of the covariance's eigenvalues):")
    lines.append(f"  {'k':>4} {'weight':>10} {'size':>14}  mean | sd")
    for i in range(result.n_components):
        lines.append(f"  {table['component'][i]:>4d} {table['weight'][i]:>10.6f} {table['size'][i]:>14.6g}  "
                     f"{numbers(table['mean'][i], max_features)} | {numbers(table['sd'][i], max_features)}")
    return "\n".join(lines)
