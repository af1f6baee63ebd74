"""Roofline: one sweep against what it physically needs, timed in the same run (N = 1e6, K = 8, float64).

Small D (D = 2, identity and spherical) is bound by transcendental functions and memory. Per row
the E-step kernel (fastcavi/_kernels/estep.py) evaluates K exponentials (``exp_nonpos`` in
``_normalise``, one per row and component), one logarithm (``log_ge1``, the log-sum-exp) and reads
the row (D values). Its 2 K F = 64 multiply-adds per row are left out of the floor. The group
times, each on one thread:

* ``exp``: NumPy's SIMD ``np.exp`` of N K values in [-30, 0] (a logit minus the row's maximum),
  into a preallocated output;
* ``log``: ``np.log`` of N values in [1, K] (a sum of exponentials whose largest term is 1);
* ``read``: ``X.sum()``, a streaming read of the N x D data (timed at D = 16 too, for reference);

and the ideal sweep time is ``(exp + log + read) / T``: the three are split over the ``T`` threads
the sweep uses (``FASTCAVI_BENCH_THREADS``, default 2), assuming perfect scaling (the rows are
independent; memory bandwidth scales with the cores up to a few cores). Each sweep is reported
as ``sweep / ideal`` (1.0 would be the floor; the target is 1.5).

Large D (D = 16 full, diag, tied) is bound by multiply-adds. Per row the kernel computes the logits
``W phi`` (``_logits``: K4 x F4 multiply-adds) and adds ``r phi^T`` into the statistics
(``_statistics``: K4 x F4 more), where F is the feature count of the family's coefficients (the
``W`` that ``model.coefficients`` gives the kernel: F = D + D (D + 1) / 2 = 152 for "full", F = 2 D
= 32 for "diag", F = D = 16 for "tied", whose quadratic term is common to all components) and K4, F4
are K and F rounded up to a multiple of 4 (the register tiles); so 2 K4 F4 = 2,432 multiply-adds per
row for "full", 512 for "diag" and 256 for "tied" at K = 8.
The reference is OpenBLAS dgemm (numpy's matmul, limited to T threads with threadpoolctl) on a
square n x n by n x n product with the same multiply-add count, n = (N 2 K4 F4)^(1/3): the
sweep's two skinny products (N x F by F x K, and K x N by N x F) would need the N x F feature
matrix, 1.2 GB at D = 16 full, which the sweep never builds. Each sweep is reported as its
throughput (multiply-adds per second) as a fraction of dgemm's (the target is 0.6).

That fraction charges the whole sweep to its multiply-adds, but a sweep at D = 16 also evaluates the
same N K exponentials and N logarithms as at D = 2 and reads 8 times the bytes: for "tied" (256
multiply-adds per row) those alone take longer than the multiply-adds at dgemm's rate. So each large-D
sweep is also reported against a combined floor, ``N madds_row / dgemm_rate + (exp + log + read at this
D) / T``, as ``sweep / floor`` (1.0 would be every part at the machine's rate, with no overlap between
them; the parts can overlap, so a sweep could in principle go below it).

The numbers are in each sweep's ``extra_info`` (``--benchmark-json``) and in a table printed at the
end. Run: ``pytest bench/test_roofline.py --benchmark-only`` (``FASTCAVI_BENCH_N`` rows, default 1e6).
"""
import numpy as np
import pytest

from _machine import K, THREADS, measured, record, summary_line, threaded_sweep
from conftest import N_ROWS

SMALL_D = [("identity", 2), ("spherical", 2)]
LARGE_D = [("full", 16), ("diag", 16), ("tied", 16)]
TABLE = f"roofline (N = {N_ROWS}, K = {K}, float64, sweeps on {THREADS} threads)"


def _exp_case():
    x = -np.random.default_rng(1).uniform(0.0, 30.0, size=N_ROWS * K)
    out = np.empty_like(x)
    return lambda: np.exp(x, out=out)


def _log_case():
    x = np.random.default_rng(2).uniform(1.0, K, size=N_ROWS)
    out = np.empty_like(x)
    return lambda: np.log(x, out=out)


def _read_case(X):
    return lambda: X.sum()


def _kernel_madds_per_row(model, state):
    """2 K4 F4: the multiply-adds per row of ``_logits`` and ``_statistics`` for this model's coefficients."""
    _, (_, W) = model.coefficients(state)
    K_, F = W.shape
    return 2 * ((K_ + 3) // 4 * 4) * ((F + 3) // 4 * 4), F


def _dgemm_case(madds):
    """``run`` (an n x n by n x n product; time it inside :func:`_blas_threads`) and its n**3 multiply-adds."""
    n = max(8, int(round(madds ** (1.0 / 3.0))))
    rng = np.random.default_rng(3)
    A, B = rng.normal(size=(n, n)), rng.normal(size=(n, n))
    C = np.empty((n, n))
    return lambda: np.matmul(A, B, out=C), n ** 3


def _blas_threads():
    """OpenBLAS limited to the sweeps' thread count (set once, outside the timed calls)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=THREADS, user_api="blas")


@pytest.mark.parametrize("what", ["exp", "log"])
def test_roofline_transcendentals(benchmark, what):
    """NumPy's one-thread exp of N K values / log of N values (the D = 2 floor's arithmetic)."""
    run = _exp_case() if what == "exp" else _log_case()
    benchmark.group = "roofline D=2 floor (one thread)"
    benchmark.extra_info.update(role="roofline", what=what, values=N_ROWS * (K if what == "exp" else 1))
    benchmark.pedantic(run, rounds=7, warmup_rounds=1)
    record(benchmark, what)


@pytest.mark.parametrize("D", [2, 16])
def test_roofline_read(benchmark, blobs, D):
    """One-thread streaming read (a sum) of the N x D float64 data."""
    X = blobs(D, "float64")
    benchmark.group = "roofline D=2 floor (one thread)" if D == 2 else f"roofline D={D} dgemm"
    benchmark.extra_info.update(role="roofline", what="read", bytes=X.nbytes)
    benchmark.pedantic(_read_case(X), rounds=7, warmup_rounds=1)
    record(benchmark, f"read D={D}")


@pytest.mark.parametrize("covariance_type,D", LARGE_D)
def test_roofline_dgemm(benchmark, blobs, covariance_type, D):
    """OpenBLAS dgemm on T threads, on a square product with the sweep's multiply-add count."""
    madds_row, F = _madds(blobs(D, "float64"), covariance_type)
    run, madds = _dgemm_case(N_ROWS * madds_row)
    benchmark.group = f"roofline D={D} dgemm"
    benchmark.extra_info.update(role="roofline", what="dgemm", threads=THREADS, multiply_adds=madds,
                                features=F, sweep_multiply_adds_per_row=madds_row)
    with _blas_threads():
        benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    record(benchmark, f"dgemm {covariance_type} D={D}")


def _madds(X, covariance_type):
    """(multiply-adds per row, F) of this family's kernel at X's D (from a model fitted on a few rows)."""
    from _public import model_and_state

    model, state = model_and_state(X[:4 * 4096], K, covariance_type, means=X[:K].astype(np.float64))
    return _kernel_madds_per_row(model, state)


@pytest.mark.parametrize("covariance_type,D", SMALL_D)
def test_roofline_sweep_small_d(benchmark, blobs, covariance_type, D):
    """One sweep at D = 2 as a multiple of the ideal T-thread time (exp + log + read) / T."""
    X = blobs(D, "float64")
    sweep = threaded_sweep(X, covariance_type)
    sweep()  # compile / load the kernel outside the timing
    benchmark.group = f"roofline D={D} sweep"
    benchmark.extra_info["role"] = "fastcavi"
    benchmark.pedantic(sweep, rounds=7, warmup_rounds=1)
    t_sweep = record(benchmark, f"sweep {covariance_type} D={D}")
    t_exp = measured("exp", _exp_case(), 7)
    t_log = measured("log", _log_case(), 7)
    t_read = measured(f"read D={D}", _read_case(X), 7)
    ideal = (t_exp + t_log + t_read) / THREADS
    ratio = t_sweep / ideal
    benchmark.extra_info.update(threads=THREADS, exp_s=t_exp, log_s=t_log, read_s=t_read, ideal_s=ideal,
                                sweep_over_ideal=ratio)
    summary_line(benchmark, TABLE,
                 f"{covariance_type:>9} D={D:<3} sweep {t_sweep * 1e3:8.2f} ms   ideal (exp {t_exp * 1e3:.2f} + log "
                 f"{t_log * 1e3:.2f} + read {t_read * 1e3:.2f}) / {THREADS} = {ideal * 1e3:7.2f} ms   "
                 f"sweep / ideal x{ratio:5.2f}")


@pytest.mark.parametrize("covariance_type,D", LARGE_D)
def test_roofline_sweep_large_d(benchmark, blobs, covariance_type, D):
    """One sweep at D = 16: its multiply-add throughput as a fraction of dgemm's, same run, same threads."""
    X = blobs(D, "float64")
    sweep = threaded_sweep(X, covariance_type)
    madds_row, F = _madds(X, covariance_type)
    sweep()
    benchmark.group = f"roofline D={D} sweep"
    benchmark.extra_info["role"] = "fastcavi"
    benchmark.pedantic(sweep, rounds=5, warmup_rounds=1)
    t_sweep = record(benchmark, f"sweep {covariance_type} D={D}")
    run, madds = _dgemm_case(N_ROWS * madds_row)
    with _blas_threads():
        t_gemm = measured(f"dgemm {covariance_type} D={D}", run, 5)
    sweep_rate = N_ROWS * madds_row / t_sweep
    gemm_rate = madds / t_gemm
    fraction = sweep_rate / gemm_rate
    # The combined floor: the multiply-adds at dgemm's rate plus the D = 2 floor's exponentials and
    # logarithm (the same N K and N at any D) and this D's read, split over the threads.
    t_exp = measured("exp", _exp_case(), 7)
    t_log = measured("log", _log_case(), 7)
    t_read = measured(f"read D={D}", _read_case(X), 7)
    t_madds = N_ROWS * madds_row / gemm_rate
    floor = t_madds + (t_exp + t_log + t_read) / THREADS
    benchmark.extra_info.update(threads=THREADS, features=F, multiply_adds_per_row=madds_row,
                                sweep_gmadds_per_s=sweep_rate / 1e9, dgemm_gmadds_per_s=gemm_rate / 1e9,
                                dgemm_s=t_gemm, fraction_of_dgemm=fraction, exp_s=t_exp, log_s=t_log, read_s=t_read,
                                combined_floor_s=floor, sweep_over_combined_floor=t_sweep / floor)
    summary_line(benchmark, TABLE,
                 f"{covariance_type:>9} D={D:<3} sweep {t_sweep * 1e3:8.2f} ms   {madds_row} multiply-adds/row (F={F}): "
                 f"{sweep_rate / 1e9:6.1f} G/s vs dgemm {gemm_rate / 1e9:6.1f} G/s   fraction {fraction:5.2f}   "
                 f"combined floor ({t_madds * 1e3:.2f} + {(t_exp + t_log + t_read) / THREADS * 1e3:.2f}) ms: "
                 f"sweep / floor x{t_sweep / floor:5.2f}")
