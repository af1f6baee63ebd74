"""One CAVI sweep (E-step, updates, full ELBO) at N = 1e6, K = 8: fastcavi vs vectorised NumPy.

fastcavi's sweep is written with the public engine only (bench/_public.py).
"""
import numpy as np
import pytest

from baselines import numpy_cavi_iteration

from _public import model_and_state, sweep as public_sweep

K = 8


def _start(X):
    rng = np.random.default_rng(0)
    return X[rng.choice(X.shape[0], K, replace=False)].astype(np.float64)


@pytest.mark.parametrize("D", [2, 16])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sweep_fastcavi(benchmark, blobs, D, dtype):
    X = blobs(D, dtype)
    model, state = model_and_state(X, K, "identity", means=_start(X))

    def sweep():
        return public_sweep(model, state, X)[0]

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
