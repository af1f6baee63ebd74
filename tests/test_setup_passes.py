"""The setup before the first sweep: the hard nearest-mean assignment the Wishart families start from."""
import numpy as np
import pytest

from fastcavi import _init


def _reference(rows, shift, means):
    """The nearest mean of each row by direct differences (an independent formula), and its margin."""
    y = np.asarray(rows, dtype=np.float64) - shift
    d2 = ((y[:, None, :] - means[None, :, :]) ** 2).sum(axis=2)
    order = np.sort(d2, axis=1)
    return np.argmin(d2, axis=1), order[:, 1] - order[:, 0], order[:, 0]


@pytest.mark.parametrize("D", [1, 2, 16, 300])  # 300: blocks of 109 rows (the one-thread BLAS bound)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_nearest_mean_resp_is_the_nearest_mean(D, dtype):
    rng = np.random.default_rng(D)
    K, n = 7, 9001  # blocks of at most 4096 rows: full blocks and a partial one
    means = rng.normal(size=(K, D)) * 3
    rows = (means[rng.integers(K, size=n)] + rng.normal(size=(n, D))).astype(dtype)
    shift = rng.normal(size=D) * 0.1
    resp = _init.nearest_mean_resp(means)(0, rows, shift)
    assert resp.shape == (n, K) and resp.dtype == np.float64 and resp.flags.c_contiguous
    np.testing.assert_array_equal(resp.sum(axis=1), 1.0)  # one-hot rows
    assert set(np.unique(resp)) <= {0.0, 1.0}
    label, margin, best = _reference(rows, shift, means)
    # The expanded |y|^2 - 2 y.m + |m|^2 differs from the direct (y - m)^2 by a few ulps of |y|^2 + |m|^2:
    # rows whose two nearest means are closer than 1e-9 of that scale may go either way.
    scale = (np.asarray(rows, np.float64) - shift) ** 2
    clear = margin > 1e-9 * (scale.sum(axis=1) + (means ** 2).sum(axis=1).max())
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(np.argmax(resp, axis=1)[clear], label[clear])


def test_nearest_mean_resp_ties_go_to_the_lowest_index():
    means = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    rows = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    resp = _init.nearest_mean_resp(means)(0, rows, np.zeros(2))
    np.testing.assert_array_equal(np.argmax(resp, axis=1), [0, 1, 0])


def test_nearest_mean_resp_does_not_depend_on_the_split():
    # Chunks of any size (and a reused output buffer, shorter on the next call) give the same rows.
    rng = np.random.default_rng(0)
    means = rng.normal(size=(8, 16))
    rows = rng.normal(size=(10000, 16)) * 2
    kept = rows.copy()
    shift = rng.normal(size=16)
    given = _init.nearest_mean_resp(means)
    whole = given(0, rows, shift).copy()
    for cuts in ([4097], [1, 2048, 9999], [5000]):
        parts = [given(a, rows[a:b], shift).copy() for a, b in zip([0] + cuts, cuts + [10000])]
        np.testing.assert_array_equal(np.concatenate(parts), whole)
    np.testing.assert_array_equal(rows, kept)  # the caller's rows are only read


def _random_assignment_reference(X, K, seed, block_rows):
    """The seed's random assignment with NumPy: a label per row hashed from its index, per-block bincounts."""
    from fastcavi._init import _splitmix64

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
    from fastcavi._sources import DataSource

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
