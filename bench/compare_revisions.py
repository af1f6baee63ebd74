"""fastcavi's sweep benchmarks at two revisions, on the same machine, alternating runs.

    git worktree add /tmp/fastcavi-old <rev>
    python bench/compare_revisions.py --old /tmp/fastcavi-old [--rounds 3] [--rows 1000000]

Each round runs the fastcavi side of every sweep group (``pytest bench -k fastcavi``) once in the old
checkout and once in this one (in alternating order, each in a fresh process, with the old
checkout's package first on ``PYTHONPATH``), then prints per group the median over rounds of
pytest-benchmark's medians and the ratio new / old. Run it on a quiet machine: nothing else running.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def run(tree, rows, out):
    env = dict(os.environ, PYTHONPATH=str(tree), FASTCAVI_BENCH_N=str(rows))
    cmd = [sys.executable, "-m", "pytest", str(tree / "bench"), "-q", "-p", "no:cacheprovider", "--benchmark-only",
           "-k", "fastcavi and sweep", f"--benchmark-json={out}"]
    subprocess.run(cmd, env=env, check=True, cwd=tree, stdout=subprocess.DEVNULL)
    with open(out) as fh:
        return {b["group"]: b["stats"]["median"] for b in json.load(fh)["benchmarks"]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", required=True, type=Path, help="a checkout of the older revision")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    new_tree = HERE.parent
    times = {"old": {}, "new": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = [("old", args.old), ("new", new_tree)]
            for name, tree in (order if r % 2 == 0 else order[::-1]):
                for group, median in run(tree.resolve(), args.rows, f"{tmp}/{name}{r}.json").items():
                    times[name].setdefault(group, []).append(median)
    print(f"{'group':<44} {'old ms':>9} {'new ms':>9} {'new/old':>8}   (median of {args.rounds} rounds, "
          f"{args.rows} rows)")
    for group in sorted(set(times["old"]) & set(times["new"])):
        old, new = np.median(times["old"][group]), np.median(times["new"][group])
        print(f"{group:<44} {old * 1e3:9.2f} {new * 1e3:9.2f} {new / old:8.3f}")


if __name__ == "__main__":
    main()
