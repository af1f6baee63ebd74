"""Thread scaling of one CAVI sweep: 1, 2, 4, 8, 16 threads (as many as the machine has).

Run on a many-core machine (it sets NUMBA_NUM_THREADS to the core count before numba loads):

    python bench/thread_scaling.py [--rows 10000000] [--cases spherical:2,full:16] [--out scaling.json]

For each case it times sweeps (median of 7 after a warm-up) at each thread count, checks that
the statistics are bitwise identical across thread counts, and prints speed-up and parallel
efficiency against 1 thread. Two references are timed at each thread count in the same run:

- ``estep``: the sweep's E-step pass alone (the rest is the posterior update and the ELBO, in NumPy).
- ``one_chunk``: the same E-step pass over the data as a single chunk. The default pass streams
  chunks of about ``CHUNK_BYTES``; the gap between the two is what the driver costs between
  chunks (Python, kernel launches, the fold of the block partials).
- ``read``: a compiled parallel read of the data (one sum per row block, in fixed blocks): the
  memory bandwidth floor of a pass at that thread count.

and, once per thread count, two measures of the machine itself (``--parts`` picks what runs):

- ``dgemm``: OpenBLAS dgemm of two 2048 x 2048 matrices on that many threads (threadpoolctl):
  how far the machine scales AVX-512 multiply-adds (clock speed falls as more cores run them).
- ``scalar``: independent scalar multiply-add chains in fixed blocks (numba): how far it scales
  light scalar work. A sweep's speed-up is bounded by these, not by the thread count alone.

The machine (CPU model, cores, threads per core) goes into the report (fastcavi's kernels run on its own
threads, not numba's threading layer).
"""
import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("NUMBA_NUM_THREADS", str(os.cpu_count()))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/'s helpers (_machine, _public)

import numpy as np  # noqa: E402

DEFAULT_CASES = "identity:2,spherical:2,full:16,diag:16"
PARTS = ("sweep", "estep", "one_chunk", "read", "dgemm", "scalar")


def machine_info():
    """CPU model, logical CPUs and threads per core (from /proc/cpuinfo where there is one)."""
    info = {"platform": platform.platform(), "logical_cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as fh:
            text = fh.read()
    except OSError:
        return info
    names = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")]
    cores = {line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("core id")}
    sockets = {line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("physical id")}
    info.update(cpu=names[0] if names else None, physical_cores_per_socket=len(cores) or None,
                sockets=len(sockets) or None)
    return info


def median_ms(fn, rounds=7):
    """Median milliseconds of ``rounds`` calls after a warm-up (bench/_machine.py's timer)."""
    from _machine import median_seconds

    return median_seconds(fn, rounds) * 1e3


def make_read_kernel():
    """A parallel read of every value of X, one partial sum per 4096-row block (no shared writes)."""
    from numba import njit, prange

    @njit(parallel=True, cache=False)
    def block_sums(X, out):
        n, d = X.shape
        nb = out.shape[0]
        for b in prange(nb):
            acc = 0.0
            for i in range(b * 4096, min(n, (b + 1) * 4096)):
                for j in range(d):
                    acc += X[i, j]
            out[b] = acc

    return block_sums


def make_scalar_kernel():
    """Eight independent multiply-add chains per block, in registers: no memory traffic at all."""
    from numba import njit, prange

    @njit(parallel=True, cache=False)
    def chains(out, iters):
        for b in prange(out.shape[0]):
            a0, a1, a2, a3, a4, a5, a6, a7 = b * 1e-9, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7
            for _ in range(iters):
                a0 = a0 * 0.999999 + 1e-7
                a1 = a1 * 0.999999 + 1e-7
                a2 = a2 * 0.999999 + 1e-7
                a3 = a3 * 0.999999 + 1e-7
                a4 = a4 * 0.999999 + 1e-7
                a5 = a5 * 0.999999 + 1e-7
                a6 = a6 * 0.999999 + 1e-7
                a7 = a7 * 0.999999 + 1e-7
            out[b] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7

    return chains


def machine_references(counts, rounds, parts):
    """Speed-up of dgemm and of scalar chains at each thread count (the machine's own scaling)."""
    import numba

    rows = []
    A = np.random.default_rng(0).normal(size=(2048, 2048))
    chains, out = make_scalar_kernel(), np.empty(4096)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    base = {}
    for t in counts:
        row = {"threads": t}
        if "dgemm" in parts and threadpool_limits is not None:
            with threadpool_limits(limits=t, user_api="blas"):
                row["dgemm_ms"] = median_ms(lambda: A @ A, rounds)
        if "scalar" in parts:
            numba.set_num_threads(t)
            row["scalar_ms"] = median_ms(lambda: chains(out, 20_000), rounds)
        for key in ("dgemm_ms", "scalar_ms"):
            if key in row:
                base.setdefault(key, row[key])
                row[key.replace("_ms", "_speedup")] = base[key] / row[key]
        rows.append(row)
        print("machine  threads {threads:3d}  ".format(**row)
              + "  ".join(f"{k} {v:8.2f}" for k, v in row.items() if k != "threads"), flush=True)
    return rows


def case_data(cov, D, rows, K):
    """Rows from K well separated blobs, and a model and state to sweep from."""
    from _public import model_and_state

    rng = np.random.default_rng(D)
    X = rng.normal(size=(K, D))[rng.integers(K, size=rows)] * 4 + rng.normal(size=(rows, D))
    if cov == "identity":
        return X, model_and_state(X, K, cov, means=X[:K])
    centres = X[rng.choice(rows, K, replace=False)]
    dist = np.empty((rows, K))  # one component at a time: no (rows, K, D) temporary
    for k in range(K):
        dist[:, k] = ((X - centres[k]) ** 2).sum(axis=1)
    hard = np.zeros((rows, K))
    hard[np.arange(rows), dist.argmin(axis=1)] = 1.0
    del dist
    return X, model_and_state(X, K, cov, responsibilities=hard)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--cases", default=DEFAULT_CASES, help=f"cov:D,... (default {DEFAULT_CASES})")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"what to time (default all: {','.join(PARTS)})")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import numba

    from _public import sweep

    from fastcavi import engine

    top = numba.config.NUMBA_NUM_THREADS
    counts = [t for t in (1, 2, 4, 8, 16, 32, 64) if t <= top]
    K = args.k
    read = make_read_kernel()
    report = {"machine": machine_info(), "numba": numba.__version__, "numpy": np.__version__,
              "rows": args.rows, "K": K, "rows_out": []}
    print(report["machine"], "numba", numba.__version__, "numpy", np.__version__, flush=True)
    parts = set(args.parts.split(","))
    if parts - set(PARTS):
        parser.error(f"unknown --parts {sorted(parts - set(PARTS))}; choose from {PARTS}")
    if parts & {"dgemm", "scalar"}:
        report["machine_scaling"] = machine_references(counts, args.rounds, parts)
    if "sweep" not in parts:
        args.cases = ""
    for item in filter(None, args.cases.split(",")):
        cov, D = item.split(":")
        D = int(D)
        t0 = time.perf_counter()
        X, (model, state) = case_data(cov, D, args.rows, K)
        print(f"{cov} D={D}: data and start in {time.perf_counter() - t0:.1f} s", flush=True)
        sums = np.empty(-(-args.rows // 4096))
        base, reference = None, None
        for t in counts:
            numba.set_num_threads(t)
            stats = sweep(model, state, X)[1]
            sweep_ms = median_ms(lambda: sweep(model, state, X), args.rounds)
            nan = float("nan")
            estep_ms = (median_ms(lambda: engine.estep(model, state, X, check_finite=False), args.rounds)
                        if "estep" in parts else nan)
            one_ms = (median_ms(lambda: engine.estep(model, state, X, check_finite=False, chunk_size=args.rows),
                                args.rounds) if "one_chunk" in parts else nan)
            read_ms = median_ms(lambda: read(X, sums), args.rounds) if "read" in parts else nan
            if reference is None:
                reference, base = stats.values.tobytes(), sweep_ms
            identical = stats.values.tobytes() == reference
            row = dict(case=f"{cov} D={D} K={K}", rows=args.rows, threads=t, sweep_ms=sweep_ms,
                       estep_ms=estep_ms, one_chunk_estep_ms=one_ms, read_ms=read_ms, read_gb_s=X.nbytes / read_ms / 1e6,
                       speedup=base / sweep_ms, efficiency=base / sweep_ms / t, bitwise_identical=identical)
            report["rows_out"].append(row)
            print(f"{row['case']:<20} threads {t:3d}  sweep {sweep_ms:9.2f} ms  x{row['speedup']:5.2f}  "
                  f"eff {row['efficiency']:4.2f}  E-step {estep_ms:9.2f}  one chunk {one_ms:9.2f} ms  read {read_ms:7.2f} ms "
                  f"({row['read_gb_s']:5.1f} GB/s)  identical={identical}", flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
