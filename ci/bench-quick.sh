#!/usr/bin/env bash
# A quick benchmark run (N = 200,000 rows instead of 1,000,000), saved for --benchmark-compare.
# Not part of CI's pass/fail: timings on shared machines are noisy. Run after ci/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
FASTCAVI_BENCH_N=${FASTCAVI_BENCH_N:-200000} python -m pytest bench --benchmark-only --benchmark-autosave \
    -k "sweep or first_fit or import" "$@"
