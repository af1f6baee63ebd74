"""What the exact, split-invariant accumulation costs within one sweep (a developer's measurement).

    python tools/accumulation_cost.py [--rows 1000000] [--repeats 15]

For D=2 spherical and D=16 full (K=8), it times a whole sweep as fit runs it (the public engine:
E-step pass, updates, ELBO) and, separately, the step that makes sums split invariant: folding the
block partials of each 4096-row segment and adding the segment sums into the exact accumulator
(``fastcavi._kernels.exactsum.fold_segments``), run over a whole sweep's worth of chunks. This is a
developer tool: it reaches into a private kernel on purpose (bench/ uses the public API only; its
revision comparison, bench/compare_revisions.py, measures the whole change). Run it on a quiet machine.
"""
import argparse
import time

import numpy as np

import fastcavi
from fastcavi import engine


def median_time(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main():
    from fastcavi._config import BLOCK_ROWS, SEGMENT_ROWS
    from fastcavi._kernels.exactsum import fold_segments
    from fastcavi._models.base import empty_accumulator, stats_size
    from fastcavi._passes import estep_chunk_rows
    from fastcavi._io.sources import DataSource

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    K = 8
    for cov, D in (("spherical", 2), ("full", 16)):
        rng = np.random.default_rng(D)
        X = rng.normal(size=(K, D))[rng.integers(K, size=args.rows)] * 4 + rng.normal(size=(args.rows, D))
        r = fastcavi.fit(X, K, covariance_type=cov, init=X[:K], max_iter=1, tol=0)
        model, state = r.model, r.state

        def sweep():
            stats = engine.estep(model, state, X, check_finite=False)
            model.elbo(stats, model.update(stats))

        size = stats_size(model.layout, K, D)
        chunk = estep_chunk_rows(None, DataSource(X), K, model.layout)  # the chunk size fit uses
        nblocks = -(-chunk // BLOCK_ROWS)
        partials = rng.normal(size=(nblocks, size))
        segsums = np.empty((-(-nblocks // (SEGMENT_ROWS // BLOCK_ROWS)), size))
        n_chunks = -(-args.rows // chunk)

        def accumulate():
            acc = empty_accumulator(size)
            for _ in range(n_chunks):
                fold_segments(partials, nblocks, SEGMENT_ROWS // BLOCK_ROWS, segsums, acc)

        t_sweep, t_acc = median_time(sweep, args.repeats), median_time(accumulate, args.repeats)
        print(f"{cov:>9} D={D:<3} K={K} rows={args.rows}: sweep {t_sweep * 1e3:8.2f} ms, accumulation "
              f"{t_acc * 1e3:7.3f} ms ({size} statistics x {args.rows // SEGMENT_ROWS} segments) = "
              f"{100 * t_acc / t_sweep:5.2f}% of the sweep")


if __name__ == "__main__":
    main()
