"""A CAVI sweep written with the public engine only (what a backend user writes)."""
import numpy as np

import fastcavi
from fastcavi import engine


def model_and_state(X, K, covariance_type, means=None, responsibilities=None):
    """A model for X and a starting state: given means (the seed's start) or responsibilities (an M-step)."""
    if means is None:
        means = X[:K].astype(np.float64)
    r = fastcavi.fit(X, K, covariance_type=covariance_type, init=means, max_iter=1, tol=0)
    model = r.model
    if responsibilities is not None:
        return model, model.update(engine.responsibility_stats(model, X, responsibilities))
    if covariance_type == "identity":
        return model, model.state_from_means(means)
    return model, r.state


def sweep(model, state, X):
    """One sweep as fit runs it: the E-step pass, the updates, the full ELBO."""
    stats = engine.estep(model, state, X, check_finite=False)  # fit validated the data once
    new = model.update(stats)
    return model.elbo(stats, new), stats
