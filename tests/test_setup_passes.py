"""The setup before the first sweep: the seed's random assignment means (the hard nearest-mean start is
tested in test_hard_start.py)."""
import numpy as np
import pytest

from fastcavi import _init


def _random_assignment_reference(X, K, seed, block_rows):
    """The seed's random assignment with NumPy: a label per row hashed from its index, per-block bincounts."""
    from fastcavi._init.seeding import _splitmix64

    n, D = X.shape
    idx = np.arange(n, dtype=np.uint64)
    labels = (_splitmix64(idx ^ _splitmix64(np.full(n, seed))) % np.uint64(K)).astype(np.int64)
    sums, counts = np.zeros((K, D)), np.zeros(K)
    for start in range(0, n, block_rows):  # blocks in order, each summed in row order from 0.0
        lab, x = labels[start:start + block_rows], X[start:start + block_rows].astype(np.float64)
        sums += np.stack([np.bincount(lab, weights=x[:, d], minlength=K) for d in range(D)], axis=1)
        counts += np.bincount(lab, minlength=K)
    return sums, counts, labels


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("chunk_rows", [4096, 8192, 20480])
def test_random_assignment_means_is_the_numpy_bincount(dtype, chunk_rows):
    # Bit for bit the NumPy per-block bincount it replaced, for any chunk size; and each mean is the
    # mean of the rows its hash label names (to round-off).
    from fastcavi._config import BLOCK_ROWS
    from fastcavi._io.sources import DataSource

    rng = np.random.default_rng(1)
    X = (rng.normal(size=(20000, 3)) * 5 + 100).astype(dtype)
    K = 5
    draw = np.random.default_rng(7)
    seed = np.uint64(np.random.default_rng(7).integers(0, 2**63))  # the first draw random_assignment_means makes
    means = _init.random_assignment_means(DataSource(X), K, draw, chunk_rows)
    sums, counts, labels = _random_assignment_reference(X, K, seed, BLOCK_ROWS)
    np.testing.assert_array_equal(means, sums / counts[:, None])
    for k in range(K):
        np.testing.assert_allclose(means[k], X[labels == k].astype(np.float64).mean(axis=0), rtol=1e-12)
