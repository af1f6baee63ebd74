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

    from fastcavi._driver import Workspace, estep_pass, numba_threads
    from fastcavi._init import nearest_mean_resp, responsibility_stats
    from fastcavi._models import families
    from fastcavi._models.base import elbo_from_stats
    from fastcavi._sources import DataSource
    from fastcavi._summary import summarize_source
    from fastcavi.api import _chunk_rows

    top = numba.config.NUMBA_NUM_THREADS
    counts = [t for t in (1, 2, 4, 8, 16, 32, 64) if t <= top]
    K = args.k
    report = []
    for cov, D in CASES:
        rng = np.random.default_rng(D)
        X = rng.normal(size=(K, D))[rng.integers(K, size=args.rows)] * 4 + rng.normal(size=(args.rows, D))
        source = DataSource(X)
        kernel = "full" if cov == "full" else "diag"
        chunk = _chunk_rows(None, source, K, kernel)
        spec = families.resolve(cov, "dirichlet_distribution", K, D)
        summary = summarize_source(source, chunk, spec.needs_full_scatter)
        model, prep, _ = spec.build(summary)
        if hasattr(model, "state_from_means"):
            state = model.state_from_means(prep.to_model(X[:K]))
        else:
            hard = nearest_mean_resp(prep.to_model(X[rng.choice(args.rows, K, replace=False)]))
            state = model.update(responsibility_stats(source, prep, kernel, K, chunk, hard))
        work = Workspace(kernel, K, D, chunk)
        coeffs = model.coefficients(state)

        def sweep(source=source, model=model, coeffs=coeffs, prep=prep, chunk=chunk, work=work):
            stats = estep_pass(source, model, coeffs, prep, chunk, workspace=work)
            elbo_from_stats(model, stats, coeffs, model.update(stats))
            return stats

        base_time, reference = None, None
        for t in counts:
            with numba_threads(t):
                stats = sweep()
                times = []
                for _ in range(7):
                    t0 = time.perf_counter()
                    sweep()
                    times.append(time.perf_counter() - t0)
            med = float(np.median(times))
            if reference is None:
                reference, base_time = stats, med
            identical = bool(np.array_equal(stats.S, reference.S) and stats.lse_sum == reference.lse_sum)
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
