"""One CAVI sweep (E-step, updates, full ELBO) at N = 1e6, K = 8: fastcavi vs vectorised NumPy."""
import numpy as np
import pytest

from baselines import numpy_cavi_iteration

from fastcavi._driver import Preprocess, Workspace, estep_pass
from fastcavi._models.base import elbo_from_stats
from fastcavi._models.known import KnownCovariance
from fastcavi._models.weights import DirichletWeights
from fastcavi._sources import DataSource
from fastcavi.api import _chunk_rows

K = 8


def _start(X):
    rng = np.random.default_rng(0)
    return X[rng.choice(X.shape[0], K, replace=False)].astype(np.float64)


@pytest.mark.parametrize("D", [2, 16])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sweep_fastcavi(benchmark, blobs, D, dtype):
    X = blobs(D, dtype)
    source = DataSource(X)
    model = KnownCovariance(DirichletWeights(np.ones(K)), 1.0, np.zeros(D), X.shape[0])
    prep = Preprocess(np.zeros(D))
    state = model.state_from_means(_start(X))
    chunk = _chunk_rows(None, source, K, "diag")  # what fit() uses
    work = Workspace("diag", K, D, chunk)

    def sweep():
        coeffs = model.coefficients(state)
        stats = estep_pass(source, model, coeffs, prep, chunk, workspace=work)
        new = model.update(stats)
        return elbo_from_stats(model, stats, coeffs, new)[0]

    sweep()  # compile / load from cache outside the timing
    benchmark.group = f"sweep identity D={D} {dtype}"
    benchmark.extra_info["role"] = "fastcavi"
    benchmark.pedantic(sweep, rounds=7, warmup_rounds=1)


@pytest.mark.parametrize("D", [2, 16])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sweep_numpy(benchmark, blobs, D, dtype):
    X = blobs(D, dtype)
    m = _start(X).astype(X.dtype)
    args = (np.ones(K), m, np.ones(K), np.ones(K), 1.0, np.zeros(D))
    benchmark.group = f"sweep identity D={D} {dtype}"
    benchmark.extra_info["role"] = "baseline"
    benchmark.pedantic(numpy_cavi_iteration, args=(X,) + args, rounds=3, warmup_rounds=0)
