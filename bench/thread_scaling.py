"""Thread scaling of one CAVI sweep: 1, 2, 4, 8, 16 threads (as many as the machine has).

Run on a many-core machine (it sets NUMBA_NUM_THREADS to the core count before numba loads):

    python bench/thread_scaling.py [--rows 4000000] [--out scaling.json]

For each case it times sweeps (median of 7 after a warm-up) at each thread count, checks that
the statistics are bitwise identical across thread counts, and prints speed-up and parallel
efficiency against 1 thread.
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("NUMBA_NUM_THREADS", str(os.cpu_count()))

import numpy as np  # noqa: E402

CASES = [("identity", 2), ("spherical", 2), ("full", 16), ("diag", 16)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import numba

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _public import model_and_state, sweep

    top = numba.config.NUMBA_NUM_THREADS
    counts = [t for t in (1, 2, 4, 8, 16, 32, 64) if t <= top]
    K = args.k
    report = []
    for cov, D in CASES:
        rng = np.random.default_rng(D)
        X = rng.normal(size=(K, D))[rng.integers(K, size=args.rows)] * 4 + rng.normal(size=(args.rows, D))
        if cov == "identity":
            model, state = model_and_state(X, K, cov, means=X[:K])
        else:
            centres = X[rng.choice(args.rows, K, replace=False)]
            hard = np.eye(K)[np.argmin(((X[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)]
            model, state = model_and_state(X, K, cov, responsibilities=hard)

        def one_sweep(model=model, state=state, X=X):
            return sweep(model, state, X)[1]

        base_time, reference = None, None
        for t in counts:
            numba.set_num_threads(t)
            stats = one_sweep()
            times = []
            for _ in range(7):
                t0 = time.perf_counter()
                one_sweep()
                times.append(time.perf_counter() - t0)
            med = float(np.median(times))
            if reference is None:
                reference, base_time = stats, med
            identical = stats.values.tobytes() == reference.values.tobytes()
            row = dict(case=f"{cov} D={D} K={K}", rows=args.rows, threads=t, median_ms=med * 1e3,
                       speedup=base_time / med, efficiency=base_time / med / t, bitwise_identical=identical)
            report.append(row)
            print(f"{row['case']:<22} threads {t:3d}  {row['median_ms']:9.2f} ms  x{row['speedup']:5.2f}  "
                  f"efficiency {row['efficiency']:5.2f}  identical={identical}", flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
