import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))  # for `import naive`

REPO = Path(__file__).resolve().parents[1]
SHARED_SEED = REPO.parent / "shared" / "seed" / "seed_case.npz"


@pytest.fixture(scope="session")
def seed_case():
    """The seed's recorded run: shared/seed beside the checkout, else the copy shipped in the package."""
    if SHARED_SEED.exists():
        with np.load(SHARED_SEED) as f:
            return {k: f[k] for k in f.files}
    from fastcavi._demo import seed_case as embedded

    return embedded()


def readonly(a):
    v = np.ascontiguousarray(a).view()
    v.flags.writeable = False
    return v


def fit_recording(X, n_components, **kwargs):
    """``fastcavi.fit`` that also returns the public parameters after every Normal-Wishart update.

    Returns ``(result, history)``: ``history[0]`` is the M-step from the initial responsibilities
    (with ``init_responsibilities``: scikit-learn's ``_initialize``), ``history[m]`` the parameters
    after CAVI iteration m, each a dict of the result's names (``weight_concentration``,
    ``mean_precision``, ``means``, ``degrees_of_freedom``, ``covariances``, ``precisions``,
    ``precisions_cholesky``, ``weights``). One fit, however many iterations are checked: the
    family's ``update`` is wrapped (not changed) for the duration of the call, and each state is
    mapped to data coordinates by the fit's own preprocessing, as the result's are.
    """
    import fastcavi
    from fastcavi._models.wishart import NormalWishart

    states = []
    original = NormalWishart.update

    def update(self, stats):
        state = original(self, stats)
        states.append((self, state))  # the family and the new state (model coordinates)
        return state

    NormalWishart.update = update
    try:
        result = fastcavi.fit(X, n_components, **kwargs)
    finally:
        NormalWishart.update = original
    return result, [result.model.public_parameters(state) for _, state in states]
