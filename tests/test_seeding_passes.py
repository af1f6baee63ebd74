"""The seeding passes shared by the local and the Dask fit (:mod:`fastcavi._init`): k-means|| against
plain-Python references, and its invariance to the chunk size and the thread count."""
import math

import numpy as np
import pytest

import fastcavi
from conftest import readonly
from fastcavi import _init
from fastcavi._init.seeding import _nearest
from fastcavi._io.sources import DataSource

M64 = (1 << 64) - 1


def _splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def _uniform(seed, stream, index):
    """``uniform_from_hash`` in Python integers (the reference for the compiled one)."""
    h = _splitmix64((_splitmix64(seed ^ _splitmix64(stream)) + index) & M64)
    return ((h >> 11) + 0.5) / 9007199254740992.0


def _data(seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0], [6.0, 6.0]])
    return centres[rng.integers(4, size=10_000)] + rng.normal(size=(10_000, 2))


def test_cost_draw_and_assign_passes_match_plain_references():
    X = _data()
    w = np.random.default_rng(1).uniform(0, 2, size=X.shape[0])
    shift = X.mean(axis=0)
    centres = X[[3, 500, 7000]] - shift
    d2_all = ((X[:, None, :] - shift - centres[None]) ** 2).sum(axis=2)
    d2, nearest = d2_all.min(axis=1), d2_all.argmin(axis=1)
    # one pass per round: its cost, an exact sum, so the correctly rounded sum (math.fsum) to within one unit in
    # the last place (the per-row distances differ from numpy's by round-off of the sums over 2 features)
    run = _init.local_passes(DataSource(X), fastcavi._io.sources.WeightSource(w, X.shape[0]), 4096)
    seed, rnd, ell = 12345, 2, 24.0
    candidates = run(_init.cost_and_candidates_chunk, (shift, centres, ell, np.uint64(seed), rnd),
                     _init.merge_candidates)
    phi, drawn = _init.draw_candidates(candidates, ell)
    assert phi == pytest.approx(math.fsum(w * d2), rel=1e-14)
    # the draw: row n is taken when its hashed uniform of (seed, round, n) is below (ell / phi) * w_n * d_n^2
    expect = [n for n in range(X.shape[0]) if _uniform(seed, rnd, n) < ell / phi * w[n] * d2[n]]
    assert 0 < len(expect) < 100 and np.allclose(drawn + shift, X[expect], rtol=0, atol=1e-12)
    # the pass kept few rows: those under each chunk's own threshold, about ell per chunk (3 chunks here)
    assert len(expect) <= candidates[1].shape[0] <= 3 * 4 * ell
    # the candidates' weights: per nearest candidate, exact
    mass = _init.exact_total(run(_init.assign_chunk, (shift, centres), _init.merge_exact))
    for k in range(3):
        assert mass[k] == pytest.approx(math.fsum(w[nearest == k]), rel=1e-15)
    # the weighted first candidate: the smallest -log(u) / w (rows of weight 0 never)
    w0 = w.copy()
    w0[::2] = 0.0
    run0 = _init.local_passes(DataSource(X), fastcavi._io.sources.WeightSource(w0, X.shape[0]), 4096)
    key, row = run0(_init.first_candidate_chunk, (np.uint64(seed),), _init.earliest_smallest_key)
    keys = [-math.log(_uniform(seed, 0, n)) / w0[n] if w0[n] > 0 else math.inf for n in range(X.shape[0])]
    assert int(row) == int(np.argmin(keys)) and row % 2 == 1


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("chunk_rows", [4096, 3 * 4096])
def test_kmeans_parallel_round_draws_as_with_the_total_cost(chunk_rows, weighted):
    """A round's one pass draws exactly the rows that a second pass, knowing the total cost phi, would draw:
    ``u_n < (ell / phi) w_n d_n^2`` over all rows (here with the compiled distances and uniforms over the
    whole data at once). Chunks of very different costs: the second chunk's rows sit on a candidate but
    one, 1e-160 away (a cost of about 1e-320, whose threshold ell / cost overflows to inf), and the third's
    all do (cost 0); with and without weights (zero weights among them)."""
    from fastcavi._kernels.seeding import hashed_uniforms

    X = _data(4)
    X[4096:8192] = 0.0
    X[5001, 0] = 1e-160
    X[8192:] = X[9000]
    w = np.ones(X.shape[0])
    if weighted:
        w = np.random.default_rng(5).uniform(0, 2, size=X.shape[0])
        w[::5] = 0.0
    shift = np.zeros(2)  # (no shift: the 1e-160 survives)
    centres = X[[4100, 9000, 17]]
    d2, _ = _nearest(X, shift, centres)
    assert 0.0 < w[5001] * d2[5001] < 1e-300
    u = np.empty(X.shape[0])
    run = _init.local_passes(DataSource(X), fastcavi._io.sources.WeightSource(w, X.shape[0]) if weighted else None,
                             chunk_rows)
    for seed, rnd, ell in [(1, 1, 8.0), (2, 3, 16.0), (3, 5, 200.0)]:
        # no floating-point warning from the overflowing threshold (underflow is numpy's silent default)
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            candidates = run(_init.cost_and_candidates_chunk, (shift, centres, ell, np.uint64(seed), rnd),
                             _init.merge_candidates)
            phi, drawn = _init.draw_candidates(candidates, ell)
        hashed_uniforms(np.uint64(seed), rnd, 0, u)
        expect = np.flatnonzero(u < (ell / phi) * w * d2)
        assert 0 < expect.size and np.array_equal(drawn, X[expect])
        kept = candidates[1]
        assert any(np.array_equal(row, X[5001]) for row in kept) == (chunk_rows == 4096)  # alone: threshold inf
    # every row on a candidate: cost 0, nothing drawn
    on = X[[4100, 9000]]
    run_on = _init.local_passes(DataSource(np.repeat(on, 6000, axis=0)), None, chunk_rows)
    phi, drawn = _init.draw_candidates(run_on(_init.cost_and_candidates_chunk, (shift, on, 8.0, np.uint64(1), 1),
                                              _init.merge_candidates), 8.0)
    assert phi == 0.0 and drawn.shape == (0, 2)


@pytest.mark.parametrize("weighted", [False, True])
def test_kmeans_parallel_does_not_depend_on_chunks_or_threads(weighted):
    X = _data(2)
    w = np.random.default_rng(3).integers(0, 3, size=X.shape[0]).astype(np.float64) if weighted else None
    opts = dict(init="k-means||", random_state=5, max_iter=2, tol=0, sample_weight=w)
    ref = fastcavi.fit(X, 4, **opts)
    for chunk_size, n_threads in ((4096, None), (8192, 1)):
        r = fastcavi.fit(X, 4, chunk_size=chunk_size, n_threads=n_threads, **opts)
        assert np.array_equal(r.means, ref.means) and np.array_equal(r.elbo, ref.elbo)
    # the four clusters are found (a fit from the seeds converges to them)
    means = fastcavi.fit(X, 4, init="k-means||", random_state=5, sample_weight=w).means
    truth = np.array([[0.0, 0.0], [0.0, 6.0], [6.0, 0.0], [6.0, 6.0]])  # sorted by x, then y
    order = np.lexsort((means[:, 1].round(), means[:, 0].round()))
    assert np.max(np.abs(means[order] - truth)) < 0.15


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_chunks_rows", [4096, 3 * 4096])
def test_kmeanspp_draws_match_a_plain_reference(n_chunks_rows, weighted):
    """Each k-means++ pass draws the row of smallest key -log(u_n) / (w_n d_n^2) (u_n hashed from the seed,
    the round and the row; rows on a centre and rows of weight 0 never; w_n = 1 without weights): the
    compiled pass, which skips the log of rows whose lower bound (1 - u_n) / (w_n d_n^2) already loses,
    draws the same rows as the plain reference, for every round of a whole seeding. With weights the first
    row is the smallest -log(u_n) / w_n of its own seed (in proportion to the weights)."""
    X = _data(3)
    X[17] = X[5]  # a duplicate row: once row 5 is a centre, row 17 sits on it (distance 0, never drawn)
    w = np.random.default_rng(4).uniform(0.0, 3.0, X.shape[0]) if weighted else np.ones(X.shape[0])
    if weighted:
        w[::3] = 0.0  # a third of the rows excluded
    shift = X.mean(axis=0)
    rng = np.random.default_rng(7)
    weights = fastcavi._io.sources.WeightSource(w, X.shape[0]) if weighted else None
    rows, centres = _init.kmeans_plusplus_row_passes(
        _init.local_passes(DataSource(X), weights, n_chunks_rows), lambda r: X[r], X.shape[0], 6,
        np.random.default_rng(7), shift, weighted)
    # the reference replays the same random draws: the first row, then one seed per round
    if weighted:
        seed = int(rng.integers(0, 2**63))
        first = int(np.argmin([-math.log(_uniform(seed, 0, n)) / w[n] if w[n] > 0 else math.inf
                               for n in range(X.shape[0])]))
    else:
        first = int(rng.integers(X.shape[0]))
    expect = [first]
    for j in range(1, 6):
        seed = int(rng.integers(0, 2**63))
        C = X[expect] - shift
        d2 = w * (((X - shift)[:, None, :] - C[None]) ** 2).sum(axis=2).min(axis=1)
        keys = [-math.log(_uniform(seed, j, n)) / d2[n] if d2[n] > 0 else math.inf for n in range(X.shape[0])]
        expect.append(int(np.argmin(keys)))
    assert rows.tolist() == expect
    assert np.all(w[rows] > 0)
    assert np.allclose(centres, X[expect], rtol=0, atol=1e-12)  # (x - shift) + shift: round-off only


def test_kmeanspp_draw_is_the_smallest_key_when_keys_are_close():
    """Rows at nearly the same distance from the centre: each new running best of a block then improves
    on the last by a uniform fraction, so a pass that skipped a row which could still win (a wrong
    bound on -log u) would draw another row for some of these 60 seeds."""
    from fastcavi._kernels.nearest import kmeanspp_draw

    t = np.linspace(0.0, 2 * np.pi, 200, endpoint=False)
    X = np.column_stack([np.cos(t), np.sin(t)]) * (1.0 + 1e-3 * np.sin(7 * t))[:, None]
    shift, centre = np.zeros(2), np.zeros((1, 2))
    d2 = (X ** 2).sum(axis=1)
    for seed in range(60):
        key, row = kmeanspp_draw(readonly(X), shift, centre, np.uint64(seed), 1, 1000, readonly(np.ones(1)), False)
        keys = [-math.log(_uniform(seed, 1, 1000 + n)) / d2[n] for n in range(X.shape[0])]
        assert row == 1000 + int(np.argmin(keys))
        assert key == pytest.approx(min(keys), rel=1e-14)


@pytest.mark.parametrize("D", [1, 2, 3, 5, 16])
@pytest.mark.parametrize("m", [1, 6, 81])
def test_nearest_centre_is_the_row_by_row_distance_bit_for_bit(D, m):
    """k-means||'s distance kernel (tiles of rows, 4 candidates x 4 features at a time) gives each row the
    distance a row-at-a-time loop adds up, ((0 + t_0**2) + t_1**2) + ..., and the first nearest candidate
    (duplicated candidates: the lower index), for a chunk whose last tile is partial."""
    from fastcavi._kernels.nearest import nearest_centre

    rng = np.random.default_rng(D * 1000 + m)
    X = rng.normal(size=(1000 + 37, D)) * 2
    shift = X.mean(axis=0)
    centres = X[rng.choice(X.shape[0], m, replace=False)] - shift
    if m > 2:
        centres[m - 1] = centres[1]
    ref = np.zeros((X.shape[0], m))
    for k in range(m):
        for d in range(D):
            t = (X[:, d] - shift[d]) - centres[k, d]
            ref[:, k] = ref[:, k] + t * t
    d2, nearest = np.empty(X.shape[0]), np.empty(X.shape[0], dtype=np.int64)
    nearest_centre(readonly(X), shift, np.ascontiguousarray(centres), d2, nearest)
    np.testing.assert_array_equal(nearest, np.argmin(ref, axis=1))
    np.testing.assert_array_equal(d2.view(np.uint64), ref.min(axis=1).view(np.uint64))


def test_rows_of_weight_zero_are_never_kmeanspp_seeds():
    """sample_weight 0 takes rows out of the seeding too (scikit-learn's kmeans_plusplus with sample_weight):
    a far blob of weight 0 gets no seed in 20 seedings, where without weights it gets one nearly every time."""
    rng = np.random.default_rng(11)
    X = np.vstack([rng.normal(c, 0.5, size=(3000, 2)) for c in ([0.0, 0.0], [8.0, 0.0], [60.0, 60.0])])
    w = np.r_[np.ones(6000), np.zeros(3000)]
    source, weights = DataSource(X), fastcavi._io.sources.WeightSource(w, X.shape[0])
    far_with, far_without = 0, 0
    for seed in range(20):
        rows, _ = _init.kmeans_plusplus_rows(source, 3, np.random.default_rng(seed), 4096, X.mean(0), weights)
        far_with += int(np.sum(rows >= 6000))
        rows, _ = _init.kmeans_plusplus_rows(source, 3, np.random.default_rng(seed), 4096, X.mean(0))
        far_without += int(np.sum(rows >= 6000))
    assert far_with == 0 and far_without >= 15
