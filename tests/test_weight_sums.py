"""The blocks' sums of the row weights in the E-step and summary kernels, against their fixed order.

Both kernels add a block's row weights with :func:`fastcavi._kernels._sums.lane_sum`, compiled without
fast-math so that the compiling process and a process loading the kernel from the cache give the same
bits (``tests/test_determinism_processes.py`` checks that across processes). Here the sums are
compared for exact equality with the same order written in plain Python (IEEE double additions,
independent of numba): lane ``j`` adds rows ``j, j + 4, ...``, then ``(l0 + l1) + (l2 + l3)``; the
E-step adds its sub-blocks of ``SUB_ROWS`` rows into the block's sum left to right from 0.0.
"""
import numpy as np
import pytest

pytest.importorskip("numba")

from conftest import readonly  # noqa: E402
from numba import njit  # noqa: E402

from fastcavi._kernels._sums import lane_sum  # noqa: E402
from fastcavi._kernels.estep import SUB_ROWS, estep, scratch_rows  # noqa: E402
from fastcavi._kernels.summary import summarize, summary_scratch_rows, summary_size  # noqa: E402

B = 256
N = 5 * B + 3 * 64 + 7  # a partial last block with a partial sub-block whose length is not a multiple of 4


def lanes(v):
    acc = [0.0, 0.0, 0.0, 0.0]
    for i, x in enumerate(v.tolist()):
        acc[i % 4] += x
    return (acc[0] + acc[1]) + (acc[2] + acc[3])


@pytest.fixture(scope="module")
def weights():
    # values of very different sizes, so that any other grouping changes bits
    rng = np.random.default_rng(11)
    w = rng.uniform(0.1, 3.0, N) * 10.0 ** rng.integers(-6, 7, N)
    w.flags.writeable = False
    return w


@njit
def _lane_sum(v, start, m):  # lane_sum has no Python entry point: kernels call it
    return lane_sum(v, start, m)


@pytest.mark.parametrize("m", [0, 1, 2, 3, 4, 5, 127, 128])
def test_lane_sum_is_the_fixed_order(weights, m):
    assert _lane_sum(weights, 9, m) == lanes(weights[9:9 + m])


def test_lane_sum_order_matters_for_these_weights(weights):
    # the reference is not vacuous: a plain left-to-right sum differs somewhere
    assert any(lanes(weights[s:s + 128]) != sum(weights[s:s + 128].tolist()) for s in range(0, N - 128, 128))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_block_weight_sums_of_estep_and_summarize(weights, dtype):
    rng = np.random.default_rng(12)
    D, K = 3, 2
    X = rng.normal(size=(N, D)).astype(dtype)
    X.flags.writeable = False
    shift = np.zeros(D)
    nb = (N + B - 1) // B
    expect_summary, expect_estep = [], []
    for b in range(nb):
        rows = weights[b * B:(b + 1) * B]
        expect_summary.append(lanes(rows))
        p = 0.0
        for s in range(0, len(rows), SUB_ROWS):
            p += lanes(rows[s:s + SUB_ROWS])
        expect_estep.append(p)

    part = np.zeros((nb, summary_size(D, True)))
    summarize(X, shift, True, readonly(weights), True, part, np.zeros((2, summary_scratch_rows(D), B)), B)
    assert part[:, 0].tolist() == expect_summary

    F = D + D * (D + 1) // 2
    W = np.zeros((K, F))
    part = np.zeros((nb, 3 + K + K * F))
    resp_in = np.zeros((1, 1))
    resp_in.flags.writeable = False
    estep(X, shift, np.zeros(K), W, True, readonly(weights), True, False, False, resp_in, False, np.zeros((1, 1)), np.zeros(1),
          part, np.zeros((2, scratch_rows(K, F), SUB_ROWS)), B)
    assert part[:, 0].tolist() == expect_estep
