"""Every compiled kernel against its plain NumPy reference (tests/naive.py)."""
import numpy as np
import pytest

from conftest import readonly
from naive import diag_kernel_reference, full_kernel_reference

from fastcavi._kernels import exactsum
from fastcavi._kernels.estep import SUB_ROWS, estep, scratch_rows
from fastcavi._kernels.nearest import kmeanspp_draw
from fastcavi._kernels.summary import first_non_finite, summarize, summary_scratch_rows, summary_size
from fastcavi._models.base import empty_accumulator, feature_count
from fastcavi._passes import SCRATCH_ALIGN, Workspace, aligned_empty

BLOCK = 256

SHAPES = [(1, 1), (1, 5), (2, 8), (3, 1), (7, 32), (16, 4), (64, 3), (33, 17)]


def _folded(partials, nblocks, size=None):
    """Block partials (their first ``size`` columns) -> statistics through the exact accumulator (what the
    passes do)."""
    size = partials.shape[1] if size is None else size
    acc = empty_accumulator(size)
    segsums = np.empty((nblocks, size))
    exactsum.fold_segments(partials, nblocks, 16, segsums, segsums.view(np.uint64), acc)
    out = np.empty(size)
    exactsum.finalize(acc, out)
    return out


def _run_estep(X, shift, bias, W, kernel, weights=None, given=None, slots=3, offset=0, pad=0):
    n, K = X.shape[0], bias.shape[0]
    nblocks = -(-n // BLOCK)
    size = 3 + K + K * W.shape[1]
    partials = np.full((nblocks, size + pad), np.nan)  # stale work space must not leak into sums
    shape = (slots, scratch_rows(K, W.shape[1]), SUB_ROWS)
    scratch = aligned_empty((int(np.prod(shape)) + 8,))[offset:offset + int(np.prod(shape))].reshape(shape)
    scratch[...] = np.nan
    resp = np.empty((n, K))
    lse = np.empty(n)
    # read-only inputs, as a fit hands them (a writable one is another numba type: one more compile)
    estep(readonly(X), shift, bias, W, kernel == "full", readonly(np.ones(1) if weights is None else weights),
          weights is not None, given is not None, False, readonly(np.zeros((1, 1)) if given is None else given), True,
          resp, lse,
          partials, scratch, BLOCK)
    return resp, lse, _folded(partials, nblocks, size)


def _check_row_outputs_and_totals(resp, lse, totals, r_ref, lse_ref, Nk):
    """The kernel's responsibilities, log-sum-exp and first totals (count, lse, entropy, N_k) against the reference's."""
    K = Nk.shape[0]
    np.testing.assert_allclose(resp, r_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(lse, lse_ref, rtol=1e-13, atol=1e-12)
    assert totals[0] == resp.shape[0]
    np.testing.assert_allclose(totals[1], lse_ref.sum(), rtol=1e-12, atol=1e-9)
    ent_ref = -np.sum(np.where(r_ref > 0, r_ref * np.log(np.where(r_ref > 0, r_ref, 1.0)), 0.0))
    np.testing.assert_allclose(totals[2], ent_ref, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(totals[3:3 + K], Nk, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("D,K", SHAPES)
def test_estep_diag_features_match_reference(D, K, dtype):
    # logits bias + W1 y + W2 y**2 (identity, spherical, diag)
    rng = np.random.default_rng(D * 100 + K)
    n = 1000  # several blocks and a ragged last block
    X = (rng.normal(size=(n, D)) * 3 + rng.normal(size=D) * 5).astype(dtype)
    shift, bias = rng.normal(size=D), rng.normal(size=K) * 2
    W1, W2 = rng.normal(size=(K, D)), -np.abs(rng.normal(size=(K, D))) * 0.5
    resp, lse, totals = _run_estep(X, shift, bias, np.hstack((W1, W2)), "diag")
    r_ref, lse_ref, Nk, S1, S2 = diag_kernel_reference(X, shift, bias, W1, W2)
    _check_row_outputs_and_totals(resp, lse, totals, r_ref, lse_ref, Nk)
    S = totals[3 + K:].reshape(K, 2 * D)
    np.testing.assert_allclose(S[:, :D], S1, rtol=1e-11, atol=1e-9)
    np.testing.assert_allclose(S[:, D:], S2, rtol=1e-11, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("D,K", SHAPES)
def test_estep_linear_features_match_reference_and_the_diag_layout(D, K, dtype):
    # logits bias + W1 y with no quadratic features (tied, F = D): the reference with W2 = 0, and
    # the "diag" layout with zero quadratic weights (tied's previous path), whose responsibilities,
    # log-sum-exp and linear statistics it reproduces bitwise (the zero terms add exact zeros); the
    # entropy, lse_sum - (W . S), to the rounding of that dot product (its terms summed in another order)
    rng = np.random.default_rng(D * 100 + K + 2)
    n = 1000  # several blocks and a ragged last block
    X = (rng.normal(size=(n, D)) * 3 + rng.normal(size=D) * 5).astype(dtype)
    shift, bias = rng.normal(size=D), rng.normal(size=K) * 2
    W1 = rng.normal(size=(K, D))
    resp, lse, totals = _run_estep(X, shift, bias, W1, "linear")
    assert totals.shape == (3 + K + K * D,)
    r_ref, lse_ref, Nk, S1, _ = diag_kernel_reference(X, shift, bias, W1, np.zeros((K, D)))
    _check_row_outputs_and_totals(resp, lse, totals, r_ref, lse_ref, Nk)
    np.testing.assert_allclose(totals[3 + K:].reshape(K, D), S1, rtol=1e-11, atol=1e-9)
    d_resp, d_lse, d_totals = _run_estep(X, shift, bias, np.hstack((W1, np.zeros((K, D)))), "diag")
    assert resp.tobytes() == d_resp.tobytes() and lse.tobytes() == d_lse.tobytes()
    assert totals[[0, 1]].tobytes() == d_totals[[0, 1]].tobytes()
    assert totals[3:3 + K].tobytes() == d_totals[3:3 + K].tobytes()
    np.testing.assert_allclose(totals[2], d_totals[2], rtol=0, atol=1e-13 * abs(totals[1]) + 1e-12)
    assert totals[3 + K:].tobytes() == d_totals[3 + K:].reshape(K, 2 * D)[:, :D].tobytes()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("D,K", SHAPES)
def test_estep_full_features_match_reference(D, K, dtype):
    # logits bias_k - |y A_k - c_k|^2 / 2 (full covariances), written as weights of y and y_a y_b
    rng = np.random.default_rng(D * 100 + K + 1)
    n = 700
    X = (rng.normal(size=(n, D)) * 3 + rng.normal(size=D) * 5).astype(dtype)
    shift, bias = rng.normal(size=D), rng.normal(size=K) * 2
    A = np.triu(rng.normal(size=(K, D, D))) * 0.3
    for k in range(K):
        A[k][np.diag_indices(D)] = np.abs(A[k].diagonal()) + 0.2
    c = rng.normal(size=(K, D))
    Lam = A @ A.transpose(0, 2, 1)
    a, b = np.triu_indices(D)
    W = np.hstack((np.einsum("kij,kj->ki", A, c), np.where(a == b, -0.5, -1.0) * Lam[:, a, b]))
    bias_full = bias - 0.5 * np.sum(c * c, axis=1)
    resp, lse, totals = _run_estep(X, shift, bias_full, W, "full")
    r_ref, lse_ref, Nk, S1, S2 = full_kernel_reference(X, shift, bias, A, c)
    # the expanded quadratic form cancels terms of size |y|^2 |A|^2: ~1e-13 relative on the logits
    np.testing.assert_allclose(resp, r_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(lse, lse_ref, rtol=1e-11, atol=1e-10)
    np.testing.assert_allclose(totals[3:3 + K], Nk, rtol=1e-10, atol=1e-10)
    S = totals[3 + K:].reshape(K, feature_count(D, "full"))
    np.testing.assert_allclose(S[:, :D], S1, rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(S[:, D:], S2[:, a, b], rtol=1e-9, atol=1e-8)
    assert np.all(np.isfinite(totals))


def test_estep_handles_extreme_logits():
    # logits far apart (one component at -1e6 below): no overflow, no NaN, responsibilities exact 0/1
    X = np.array([[0.0], [1.0]])
    bias = np.array([0.0, -1e6, -800.0])
    resp, lse, totals = _run_estep(X, np.zeros(1), bias, np.zeros((3, 2)), "diag")
    assert np.all(np.isfinite(resp)) and np.all(np.isfinite(totals))
    np.testing.assert_allclose(resp[:, 0], 1.0)
    assert np.all(resp[:, 1] == 0.0)


def _run_summary(X, shift, full, weights=None, slots=2):
    n, D = X.shape
    nblocks = -(-n // BLOCK)
    partials = np.full((nblocks, summary_size(D, full)), np.nan)
    scratch = np.full((slots, summary_scratch_rows(D), BLOCK), np.nan)
    bad = summarize(readonly(X), shift, full, readonly(np.ones(1) if weights is None else weights), weights is not None,
                    partials, scratch, BLOCK)
    return bad, (_folded(partials, nblocks) if bad < 0 else None)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("D", [1, 3, 20])
def test_summarize_matches_numpy(D, dtype):
    rng = np.random.default_rng(D)
    X = (rng.normal(size=(999, D)) + 1e3).astype(dtype)
    shift = np.full(D, 1e3)
    bad, totals = _run_summary(X, shift, True)
    assert bad == -1 and totals[0] == 999
    y = X.astype(np.float64) - shift
    a, b = np.triu_indices(D)
    np.testing.assert_allclose(totals[1:1 + D], y.sum(0), rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(totals[1 + D:], (y.T @ y)[a, b], rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("slots", [1, 3, 7, 40])
def test_summarize_slots_do_not_change_bits_or_the_first_bad_row(slots):
    # each slot takes a contiguous run of blocks (26 blocks here, fewer than some slot counts): the block sums and
    # the first bad row are the same for any number of slots, with bad rows in several slots' runs
    rng = np.random.default_rng(11)
    X = rng.normal(size=(26 * BLOCK - 5, 3)) + 4.0
    bad_ref, ref = _run_summary(X, np.full(3, 4.0), True, slots=1)
    bad, out = _run_summary(X, np.full(3, 4.0), True, slots=slots)
    assert bad_ref == bad == -1 and ref.tobytes() == out.tobytes()
    y = X - 4.0  # every block counted: the sums against NumPy's
    np.testing.assert_allclose(out[:4], np.hstack((X.shape[0], y.sum(0))), rtol=1e-10, atol=1e-9)
    X[25 * BLOCK + 3, 0] = np.inf  # in the last block only
    assert _run_summary(X, np.full(3, 4.0), True, slots=slots)[0] == 25 * BLOCK + 3
    X[[9 * BLOCK + 17, 20 * BLOCK], [2, 1]] = np.nan
    assert _run_summary(X, np.full(3, 4.0), True, slots=slots)[0] == 9 * BLOCK + 17


@pytest.mark.parametrize("D", [1, 4])
def test_summarize_diagonal_only_and_weighted(D):
    rng = np.random.default_rng(D)
    X = rng.normal(size=(777, D)) + 2.0
    w = rng.uniform(0, 3, size=777)
    bad, totals = _run_summary(X, np.full(D, 2.0), False, w)
    assert bad == -1
    y = X - 2.0
    np.testing.assert_allclose(totals, np.hstack((w.sum(), w @ y, w @ (y * y))), rtol=1e-11, atol=1e-10)


def test_summarize_finds_first_bad_weight():
    X = np.ones((2000, 2))
    w = np.ones(2000)
    w[1700] = -1.0
    w[1800] = np.nan
    assert _run_summary(X, np.zeros(2), True, w)[0] == 1700


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_first_non_finite(dtype):
    X = np.ones((5000, 3), dtype=dtype)
    assert first_non_finite(readonly(X)) == -1
    X[4321, 1] = np.inf
    X[4400, 0] = np.nan
    assert first_non_finite(readonly(X)) == 4321


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_summarize_finds_first_bad_row(bad):
    X = np.ones((2000, 3))
    X[1234, 2] = bad
    X[1500, 0] = bad
    assert _run_summary(X, np.zeros(3), True)[0] == 1234


def test_kmeanspp_draw_is_d2_weighted():
    # Three points at squared distances 1, 4, 0 from the only centre: the draw picks row 0 with
    # probability 1/5, row 1 with 4/5, never row 2. 4000 independent seeds: binomial sd ~ 0.0063.
    X = readonly(np.array([[1.0], [2.0], [0.0]]))
    centres = np.zeros((1, 1))
    none = readonly(np.ones(1))
    picks = np.array([kmeanspp_draw(X, np.zeros(1), centres, np.uint64(s), 1, 0, none, False)[1] for s in range(4000)])
    assert set(picks.tolist()) <= {0, 1}
    assert abs(np.mean(picks == 1) - 0.8) < 0.03
    # with row weights 3, 0.5, 7: in proportion to w d^2 = 3, 2, 0 (row 0 with 3/5); weight 0 never drawn
    w = readonly(np.array([3.0, 0.5, 7.0]))
    picks = np.array([kmeanspp_draw(X, np.zeros(1), centres, np.uint64(s), 1, 0, w, True)[1] for s in range(4000)])
    assert set(picks.tolist()) <= {0, 1}
    assert abs(np.mean(picks == 0) - 0.6) < 0.03
    w0 = readonly(np.array([1.0, 0.0, 1.0]))
    assert all(kmeanspp_draw(X, np.zeros(1), centres, np.uint64(s), 1, 0, w0, True)[1] == 0 for s in range(50))
    # chunking does not change the draw: row0 offsets the hash, so split calls agree with one call
    X2 = readonly(np.random.default_rng(0).normal(size=(3000, 2)))
    c = np.zeros((1, 2))
    whole = kmeanspp_draw(X2, np.zeros(2), c, np.uint64(7), 3, 0, none, False)
    a = kmeanspp_draw(readonly(X2[:1024]), np.zeros(2), c, np.uint64(7), 3, 0, none, False)
    b = kmeanspp_draw(readonly(X2[1024:]), np.zeros(2), c, np.uint64(7), 3, 1024, none, False)
    assert min(a, b) == whole


def _hashed_uniforms(seed, stream, rows):
    """``uniform_from_hash`` for each row, through the compiled k-means|| helper (tests/test_seeding_passes.py
    checks it against Python integers)."""
    from fastcavi._kernels.seeding import hashed_uniforms

    out = np.empty(rows)
    hashed_uniforms(np.uint64(seed), stream, 0, out)
    return out


@pytest.mark.parametrize("D", [1, 2, 3, 5, 16])
@pytest.mark.parametrize("weighted", [False, True])
def test_kmeanspp_draw_is_the_smallest_key_for_any_split_and_threads(D, weighted):
    """The draw is the row of smallest key -log(u_n) / (w_n d_n^2) over the whole chunk, the plain reference,
    on both distance paths (tiles for D <= 3, row by row above) and over several groups of blocks (whose best
    key so far prunes the later blocks), with 1 and 2 threads, and for a split of the rows at a row that
    starts no block, tile or group."""
    import numba

    rng = np.random.default_rng(D)
    n = 21_000  # 5 groups of 16 blocks of 256 rows, the last one partial
    X = rng.normal(size=(n, D)) + rng.integers(0, 5, size=(n, 1)) * 4.0
    shift = X.mean(axis=0)
    w = rng.uniform(0.0, 2.0, n) if weighted else np.ones(n)
    if weighted:
        w[rng.random(n) < 0.3] = 0.0
    for J in (1, 3, 6):
        centres = X[rng.choice(n, J, replace=False)] - shift
        d2 = w * (((X - shift)[:, None, :] - centres[None]) ** 2).sum(axis=2).min(axis=1)
        for seed in range(4):
            u = _hashed_uniforms(seed, J, n)
            with np.errstate(divide="ignore"):
                keys = np.where(d2 > 0, -np.log(u) / d2, np.inf)
            expect = int(np.argmin(keys))
            args = (readonly(w), weighted) if weighted else (readonly(np.ones(1)), False)
            for threads in (1, 2):
                previous = numba.get_num_threads()
                numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
                try:
                    key, row = kmeanspp_draw(readonly(X), shift, centres, np.uint64(seed), J, 0, *args)
                finally:
                    numba.set_num_threads(previous)
                assert row == expect
                assert key == pytest.approx(keys[expect], rel=1e-13)
            cut = 4101
            parts = [kmeanspp_draw(readonly(X[a:b]), shift, centres, np.uint64(seed), J, a,
                                   *((readonly(w[a:b]), True) if weighted else args)) for a, b in ((0, cut), (cut, n))]
            assert min(parts) == (key, row)


@pytest.mark.parametrize("K", [4, 8])
@pytest.mark.parametrize("layout", ["diag", "full", "linear"])
def test_estep_weighted_and_given_match_reference(layout, K):
    # weights scale every statistic (count, lse, entropy, N_k, S); given responsibilities replace the computed ones.
    # diag and linear with K = 8 have F = 6 and 3 < K: the row factors (weights included) are folded into the
    # features, not into the responsibilities; the other cases fold them into the responsibilities
    rng = np.random.default_rng(5)
    n, D = 1500, 3
    X = rng.normal(size=(n, D))
    F = feature_count(D, layout)
    bias, W = rng.normal(size=K), rng.normal(size=(K, F)) * 0.2
    W[:, D:] = -np.abs(W[:, D:])
    w = rng.uniform(0, 2, size=n)
    w[::7] = 0.0
    resp, lse, plain = _run_estep(X, np.zeros(D), bias, W, layout)
    _, _, weighted = _run_estep(X, np.zeros(D), bias, W, layout, weights=w)
    a, b = np.triu_indices(D)
    phi = {"full": np.hstack((X, X[:, a] * X[:, b])), "diag": np.hstack((X, X * X)), "linear": X}[layout]
    ent_rows = -np.sum(np.where(resp > 0, resp * np.log(np.where(resp > 0, resp, 1.0)), 0.0), axis=1)
    expected = np.concatenate(([w.sum(), w @ lse, w @ ent_rows], w @ resp, ((resp * w[:, None]).T @ phi).ravel()))
    np.testing.assert_allclose(weighted, expected, rtol=1e-10, atol=1e-9)
    R = rng.dirichlet(np.ones(K), size=n)
    _, _, given = _run_estep(X, np.zeros(D), bias, W, layout, weights=w, given=R)
    ent_given = -np.sum(R * np.log(R), axis=1)
    expected = np.concatenate(([w.sum(), 0.0, w @ ent_given], w @ R, ((R * w[:, None]).T @ phi).ravel()))
    np.testing.assert_allclose(given, expected, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("slots", [1, 2, 5, 13])
def test_estep_slots_do_not_change_bits(slots):
    # the scratch slots (normally one per thread) serve fixed runs of blocks: any number gives the same bits,
    # more slots than blocks (12 here) included
    rng = np.random.default_rng(9)
    X = rng.normal(size=(3000, 2))
    bias, W = rng.normal(size=3), -np.abs(rng.normal(size=(3, 4)))
    ref = _run_estep(X, np.zeros(2), bias, W, "diag", slots=1)
    out = _run_estep(X, np.zeros(2), bias, W, "diag", slots=slots)
    for r, o in zip(ref, out):
        assert r.tobytes() == o.tobytes()


def test_workspace_scratch_is_aligned():
    # the kernels' scratch starts on a cache line (full-width vector loads never split), for any slot shape;
    # each block's row of partials starts on a line of its own (threads writing adjacent blocks never share one)
    for slot_shape in [(14, SUB_ROWS), (3, BLOCK), (1,)]:
        ws = Workspace(10, 4096, slot_shape)
        assert ws.scratch.ctypes.data % SCRATCH_ALIGN == 0
        assert ws.scratch.shape[1:] == slot_shape and ws.scratch.flags.c_contiguous
    for size in [1, 8, 9, 43, 1227]:
        ws = Workspace(size, 8192, (1,))
        assert ws.partials.shape == (8192 // BLOCK, -(-size // 8) * 8) and ws.partials.flags.c_contiguous
        assert ws.partials.ctypes.data % SCRATCH_ALIGN == 0 and ws.partials.strides[0] % SCRATCH_ALIGN == 0
    a = aligned_empty((3, 5, 7), align=256)
    assert a.ctypes.data % 256 == 0 and a.shape == (3, 5, 7) and a.dtype == np.float64


def test_estep_padded_partials_give_the_same_bits():
    # rows of partials wider than the statistics (the passes pad them to cache lines): the extra columns,
    # NaN here, are neither written nor folded
    rng = np.random.default_rng(12)
    X = rng.normal(size=(2500, 3))
    bias, W = rng.normal(size=5), -np.abs(rng.normal(size=(5, 6)))
    ref = _run_estep(X, np.zeros(3), bias, W, "diag")
    for pad in (1, 5, 13):
        out = _run_estep(X, np.zeros(3), bias, W, "diag", pad=pad)
        for r, o in zip(ref, out):
            assert r.tobytes() == o.tobytes()
    assert np.isfinite(ref[2]).all()


@pytest.mark.parametrize("offset", [1, 2, 5])
def test_estep_scratch_alignment_does_not_change_bits(offset):
    # a scratch slot 8, 16 or 40 bytes past a cache line (a caller's own buffer) gives the aligned run's bits
    rng = np.random.default_rng(11)
    for D, K in [(2, 8), (5, 3)]:
        X = rng.normal(size=(1500, D))
        bias, W = rng.normal(size=K), -np.abs(rng.normal(size=(K, 2 * D)))
        ref = _run_estep(X, np.zeros(D), bias, W, "diag")
        out = _run_estep(X, np.zeros(D), bias, W, "diag", offset=offset)
        for r, o in zip(ref, out):
            assert r.tobytes() == o.tobytes()
