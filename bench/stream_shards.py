"""Streaming throughput and memory: shards on disk through BayesianGaussianMixture.partial_fit.

    python bench/stream_shards.py [--shards 100] [--rows 1000000] [--method online] [--dir DIR]

Writes ``--shards`` float32 shards of ``--rows`` x 2 rows (8 Gaussian blobs) as .npy files, then
streams them, memory-mapped, through ``partial_fit`` (one call per shard), and prints rows per
second and the process's anonymous resident memory (RssAnon, /proc/self/status) after every
tenth of the shards: it must stay flat as the shards go by. Run it on a quiet machine.
"""
import argparse
import os
import tempfile
import time

import numpy as np

import fastcavi


def rss_anon_mib():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shards", type=int, default=100)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--method", default="online", choices=("online", "memoized"))
    parser.add_argument("--dir", default=None, help="where to write the shards (default: a temporary folder)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(8, 2)) * 4
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        paths = []
        for i in range(args.shards):
            X = (centres[rng.integers(8, size=args.rows)] + rng.normal(size=(args.rows, 2))).astype(np.float32)
            paths.append(os.path.join(tmp, f"shard{i:04d}.npy"))
            np.save(paths[-1], X)
            del X
        est = fastcavi.BayesianGaussianMixture(n_components=8, covariance_type="full", random_state=0,
                                               learning_method=args.method,
                                               total_samples=args.shards * args.rows)
        bid = (lambda i: i) if args.method == "memoized" else (lambda i: None)  # online: no revisits
        est.partial_fit(paths[0], batch_id=bid(0))  # compiles or loads the kernels; not timed
        print(f"{args.method} VI, {args.shards} shards x {args.rows} rows x 2 float32, K=8 full; "
              f"RssAnon after the first shard {rss_anon_mib():.1f} MiB")
        t0 = time.perf_counter()
        for i, path in enumerate(paths[1:], start=1):
            est.partial_fit(path, batch_id=bid(i))
            if (i + 1) % max(1, args.shards // 10) == 0:
                dt = time.perf_counter() - t0
                print(f"  {i + 1:5d} shards: {i * args.rows / dt / 1e6:6.2f} M rows/s, "
                      f"RssAnon {rss_anon_mib():7.1f} MiB")
        print(f"mean log-density of the last shard: {np.mean(est.score_samples(paths[-1])):.4f}")


if __name__ == "__main__":
    main()
