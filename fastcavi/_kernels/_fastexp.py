"""Vectorisable ``exp`` for non-positive arguments (float64, float32), and
``log`` for float64 arguments ``>= 1`` (in fact for all of float64).

numba compiles ``math.exp`` / ``np.exp`` to scalar libm calls (SVML is no
longer available to numba's LLVM), which keeps any loop over ``exp`` scalar.
:func:`exp_nonpos` uses only operations that LLVM vectorises on AVX2 + FMA
(multiply, FMA, add, 64-bit integer add and shift, bit casts, compares and
selects; no call, no table, no branch), so a loop such as::

    @njit(fastmath=FASTMATH)
    def f(a, out):
        for i in range(a.shape[0]):
            out[i] = exp_nonpos(a[i])

compiles to packed ``ymm`` code (``zmm`` on AVX-512 hosts) with no call to
``exp``. :func:`log_ge1` does the same for ``log`` (meant for the log of a
sum of exponentials whose largest term is 1, i.e. ``1 <= x <= K``); it adds a
division to that list, and still has no call, table or branch.

The arithmetic is emitted as LLVM IR by an ``@intrinsic`` whose instructions
carry only the ``contract`` fast-math flag. numba's fastmath pass adds the
caller's flags only to instructions that have none, so the caller's
``reassoc`` (or ``fastmath=True``) cannot rewrite the Cody-Waite reduction or
the magic-number rounding (nor turn :func:`log_ge1`'s division into a
reciprocal multiply, or drop its NaN/inf selects): results are identical
whatever ``fastmath`` the calling kernel uses. (With plain numba code inlined into a ``reassoc`` kernel,
LLVM folds ``n*ln2_hi + n*ln2_lo`` into ``n*ln2`` and the error grows to
~2e-14.)
"""

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["exp_nonpos", "exp_normal_range", "log_ge1"]

from .._config import FASTMATH  # noqa: F401  (the flags callers should use)

# Per-type constants. Derivation:
#  * x is clamped to [x_min, 0]; x_min is below the underflow threshold.
#  * t = x*log2(e) + shift, shift = 1.5*2**(mantissa bits): the addition rounds
#    x*log2(e) to the nearest integer n, held in the low mantissa bits of t;
#    n = t - shift is exact.
#  * Cody-Waite: r = (x - n*ln2_hi) - n*ln2_lo, |r| <= ln(2)/2 (+ rounding);
#    ln2_hi has few enough significant bits that n*ln2_hi is exact for every
#    n reached, and with FMA each step is rounded once.
#  * exp(r) = 1 + r*(1 + r*(1/2 + r*Q(r))), Q fitted (Chebyshev, mpmath) to
#    (exp(r) - 1 - r - r**2/2) / r**3 on [-ln2/2, ln2/2]; Horner with FMAs.
#  * 2**n: bits(t) + (bias + k), shifted left by the mantissa width, are the
#    bits of 2**(n + k) (the exponent bits of shift fall off the top). k makes
#    2**(n + k) a normal number for every clamped x; the final multiply by
#    2**-k rounds once, so subnormal results are rounded correctly-ish (within
#    1 unit of the subnormal grid) rather than flushed.
_SPECS = {
    types.float64: dict(
        ftype=ir.DoubleType(), itype=ir.IntType(64), mant=52,
        x_min=-750.0,                   # exp(-745.14) already rounds to 0
        log2e=1.4426950408889634,
        shift=6755399441055744.0,       # 1.5 * 2**52
        ln2_hi=0.6931471805598903,      # 42 significant bits; |n| <= 1083
        ln2_lo=5.497923018708371e-14,
        # Q coefficients, highest degree first (degree 8, |error| < 3e-17)
        q=(2.509554598170022e-08, 2.761379555451986e-07,
           2.7557280082684685e-06, 2.4801536409064087e-05,
           0.0001984126985433077, 0.0013888888905871347,
           0.008333333333332157, 0.041666666666651364,
           0.16666666666666666),
        bias=1023 + 60, k=60, two_m_k=2.0 ** -60,
    ),
    types.float32: dict(
        ftype=ir.FloatType(), itype=ir.IntType(32), mant=23,
        x_min=-110.0,                   # exp(-103.98) already rounds to 0
        log2e=1.4426950216293335,
        shift=12582912.0,               # 1.5 * 2**23
        ln2_hi=0.693359375,             # 9 significant bits; |n| <= 159
        ln2_lo=-0.00021219444170128554,
        # degree 4, |error| < 4e-10
        q=(0.00019882690685335547, 0.0013926175888627768,
           0.00833332072943449, 0.041666556149721146, 0.1666666716337204),
        bias=127 + 40, k=40, two_m_k=2.0 ** -40,
    ),
}

_FLAGS = ("contract",)


def _emit_exp_nonpos(builder, x, s, clamped=True):
    """Emit LLVM IR for exp(min(x, 0)); every FP instruction is 'contract'.

    ``clamped=False`` emits :func:`exp_normal_range`'s body: no clamps, and ``2**n`` built
    directly (no detour through ``2**(n + k)`` for subnormal results), so the same bits for every
    ``x`` whose result is normal and unspecified bits for the others.
    """
    fty, ity = s["ftype"], s["itype"]

    def c(v):
        return ir.Constant(fty, v)

    def mul(a, b):
        return builder.fmul(a, b, flags=_FLAGS)

    def fma(a, b, d):  # a*b + d; fused by the backend where FMA exists
        return builder.fadd(builder.fmul(a, b, flags=_FLAGS), d, flags=_FLAGS)

    # Clamps as compare + select. Ordered compares are false for NaN, so NaN
    # passes through unchanged (and then propagates to the result).
    if clamped:
        x = builder.select(builder.fcmp_ordered(">", x, c(0.0), flags=_FLAGS), c(0.0), x)
        x = builder.select(builder.fcmp_ordered("<", x, c(s["x_min"]), flags=_FLAGS),
                           c(s["x_min"]), x)
    t = fma(x, c(s["log2e"]), c(s["shift"]))
    n = builder.fsub(t, c(s["shift"]), flags=_FLAGS)
    r = fma(n, c(-s["ln2_hi"]), x)
    r = fma(n, c(-s["ln2_lo"]), r)
    coeffs = s["q"]
    q = c(coeffs[0])
    for ck in coeffs[1:] + (0.5, 1.0, 1.0):
        q = fma(q, r, c(ck))
    bits = builder.bitcast(t, ity)
    if not clamped:  # 2**n itself: a normal number for the normal results' n (q * 2**n rounds once)
        bits = builder.add(bits, ir.Constant(ity, s["bias"] - s["k"]))
        bits = builder.shl(bits, ir.Constant(ity, s["mant"]))
        return mul(q, builder.bitcast(bits, fty))
    bits = builder.add(bits, ir.Constant(ity, s["bias"]))
    bits = builder.shl(bits, ir.Constant(ity, s["mant"]))
    scale = builder.bitcast(bits, fty)
    return mul(mul(q, scale), c(s["two_m_k"]))


def _exp_intrinsic(name, clamped, doc):
    """The ``@intrinsic`` ``name`` that emits :func:`_emit_exp_nonpos` (float64 or float32)."""
    def typer(typingctx, x):
        spec = _SPECS.get(x)
        if spec is None:
            return None

        def codegen(context, builder, sig, args):
            return _emit_exp_nonpos(builder, args[0], spec, clamped=clamped)

        return x(x), codegen

    typer.__name__ = typer.__qualname__ = name  # numba names the intrinsic after the function
    typer.__doc__ = doc
    return intrinsic(typer)


_exp_nonpos_ir = _exp_intrinsic("_exp_nonpos_ir", True, "LLVM-level body of :func:`exp_nonpos`.")
_exp_normal_range_ir = _exp_intrinsic("_exp_normal_range_ir", False, "LLVM-level body of :func:`exp_normal_range`.")


@njit(inline="always", nogil=True)
def exp_nonpos(x):
    """``exp(x)`` for ``x <= 0``, written so that loops over it vectorise.

    Parameters
    ----------
    x : float64 or float32
        Argument, meant to be ``<= 0`` (e.g. ``logit - max``). ``x > 0``
        (including +inf) is clamped to 0 and gives 1.0. Integer arguments are
        a typing error: convert first.

    Returns
    -------
    float64 or float32
        ``exp(min(x, 0))`` in the type of ``x``. Exactly 1.0 for 0.0 and -0.0,
        0.0 for -inf, NaN for NaN. Subnormal results are produced, not
        flushed (float64: ``-745.13 < x < -708.4``), within one unit of the
        subnormal grid; float64 ``x < -745.14`` (float32 ``x < -103.98``)
        gives 0.0.

    Notes
    -----
    Method: clamp ``x`` to ``[x_min, 0]``; ``n = round(x * log2(e))`` by the
    ``1.5 * 2**52`` magic addition (no ``math.floor``, which returns int64 in
    numba and blocks vectorisation); Cody-Waite reduction
    ``r = (x - n*ln2_hi) - n*ln2_lo``, ``|r| <= ln(2)/2``; ``exp(r)`` by a
    degree-11 polynomial ``1 + r + r**2/2 + r**3*Q(r)`` with a near-minimax
    ``Q`` (float32: degree 7) evaluated by Horner with FMAs; ``2**n`` built
    from the exponent bits (bit cast of ``n + 1.5*2**52`` to int64, plus
    ``1023 + 60``, shifted left by 52 gives ``2**(n + 60)``), then
    ``exp(x) = exp(r) * 2**(n + 60) * 2**-60``. No libm call, table or branch.

    Error: the polynomial's approximation error is below 3e-17 (float32:
    4e-10), so the result is within about 1 ulp: measured max relative error
    vs ``np.exp`` 2.2e-16 for float64 over [-708.39, 0] (normal results).

    The arithmetic is emitted with only the ``contract`` flag (see the module
    docstring), so the caller's fastmath flags do not change the result. Use
    ``fastmath=FASTMATH`` in calling kernels to get packed FMA code elsewhere.
    """
    return _exp_nonpos_ir(x)


@njit(inline="always", nogil=True)
def exp_normal_range(x):
    """``exp(x)`` for arguments whose result is a normal number, bit for bit as :func:`exp_nonpos`.

    Parameters
    ----------
    x : float64 or float32
        Argument in ``[-708.39, 0]`` (float32: ``[-87.33, 0]``), where ``exp(x)`` is a normal
        number. Outside that range the result is unspecified (any bits, inf or NaN included) and
        the caller must replace it, as the E-step does for ``x <= -460``
        (``exp_normal_range(d) if d > -460.0 else 0.0``: the compare is false for NaN too).

    Returns
    -------
    float64 or float32
        The same bits as :func:`exp_nonpos` for every ``x`` in the range above.

    Notes
    -----
    The same reduction and polynomial as :func:`exp_nonpos`, without the two clamps and with the
    scale ``2**n`` built directly rather than as ``2**(n + k)`` times ``2**-k`` (the detour that
    rounds subnormal results correctly): two compares, two selects and a multiply fewer per value.
    Multiplying by a power of two is exact while the product stays normal, so the result is the
    same. A loop of 8 exponentials and their row sum per row took 0.93x the time of
    :func:`exp_nonpos` (one thread, AVX-512 host, alternating calls).
    """
    return _exp_normal_range_ir(x)


# ---------------------------------------------------------------------------
# log (float64)
#
# Constants. Derivation:
#  * Reduction: x = 2**k * z with z in [sqrt(1/2), sqrt(2)), found on the bit
#    pattern: with C = bits(sqrt(1/2)), u = bits(x) - C + 2**62 (as uint64),
#    k + 1024 = u >> 52 and bits(z) = C + (u & (2**52 - 1)). Only unsigned
#    shifts, masks and adds (AVX2 has no packed 64-bit arithmetic shift).
#  * k as a double without an int->float conversion (no packed form before
#    AVX-512DQ): bits(2**52 + j) = bits(2**52) | j for 0 <= j < 2**52, so
#    dk = bitcast((u >> 52) | bits(2**52)) - (2**52 + 1024), exactly.
#  * Subnormal x is first multiplied by 2**52 (exact) and 52 taken off k.
#  * log(z) = log(1 + f), f = z - 1 (exact, Sterbenz), = 2*atanh(s) with
#    s = f / (2 + f), |s| <= 0.1716; 2*atanh(s) = 2s + s*R(s**2) and
#    log(1 + f) = f - (hfsq - s*(hfsq + R)), hfsq = f*f/2 (fdlibm e_log.c;
#    the f - hfsq form keeps the leading term exact). R = sum Lg_j s**(2j),
#    fdlibm's minimax coefficients: |R - R_exact| < 2.6e-18 (2**-58.47,
#    checked with mpmath) against |2s| up to 0.34.
#  * k*ln2 split: ln2_hi has 32 significant bits (|k| <= 1075 needs 11, so
#    dk*ln2_hi is exact), ln2_lo = ln2 - ln2_hi.
_LOG_C = 0x3FE6A09E667F3BCD            # bits of sqrt(1/2)
_LOG_U_OFF = 0x4000000000000000 - _LOG_C
_LOG_MANT_MASK = (1 << 52) - 1
_LOG_TWO52_BITS = 0x4330000000000000   # bits of 2**52
_LOG_DK_OFF = 2.0 ** 52 + 1024.0
_LOG_LN2_HI = 6.93147180369123816490e-01   # 0x3FE62E42FEE00000
_LOG_LN2_LO = 1.90821492927058770002e-10
_LOG_LG = (                               # Lg7 .. Lg1 (fdlibm), Horner order
    1.479819860511658591e-01, 1.531383769920937332e-01,
    1.818357216161805012e-01, 2.222219843214978396e-01,
    2.857142874366239149e-01, 3.999999999940941908e-01,
    6.666666666666735130e-01,
)


def _emit_log(builder, x):
    """Emit LLVM IR for float64 log(x); every FP instruction is 'contract'."""
    fty, ity = ir.DoubleType(), ir.IntType(64)

    def c(v):
        return ir.Constant(fty, v)

    def ci(v):
        return ir.Constant(ity, v)

    def mul(a, b):
        return builder.fmul(a, b, flags=_FLAGS)

    def add(a, b):
        return builder.fadd(a, b, flags=_FLAGS)

    def sub(a, b):
        return builder.fsub(a, b, flags=_FLAGS)

    def fma(a, b, d):  # a*b + d; fused by the backend where FMA exists
        return add(mul(a, b), d)

    def fcmp(op, a, b):
        return builder.fcmp_ordered(op, a, b, flags=_FLAGS)

    # Subnormals (and 0, negatives: their result is replaced below) are scaled
    # by 2**52 so that the bit reduction sees a normal number.
    tiny = fcmp("<", x, c(2.0 ** -1022))
    xs = builder.select(tiny, mul(x, c(2.0 ** 52)), x)
    ix = builder.bitcast(xs, ity)
    u = builder.add(ix, ci(_LOG_U_OFF))
    kb = builder.lshr(u, ci(52))                           # k + 1024
    dk = builder.bitcast(builder.or_(kb, ci(_LOG_TWO52_BITS)), fty)
    dk = sub(dk, builder.select(tiny, c(_LOG_DK_OFF + 52.0), c(_LOG_DK_OFF)))
    z = builder.bitcast(builder.add(builder.and_(u, ci(_LOG_MANT_MASK)),
                                    ci(_LOG_C)), fty)
    f = sub(z, c(1.0))
    s = builder.fdiv(f, add(f, c(2.0)), flags=_FLAGS)
    w = mul(s, s)
    r = c(_LOG_LG[0])
    for cj in _LOG_LG[1:]:
        r = fma(r, w, c(cj))
    r = mul(r, w)                                          # R(s)
    hfsq = mul(mul(f, c(0.5)), f)
    # fdlibm: dk*ln2_hi - ((hfsq - (s*(hfsq + R) + dk*ln2_lo)) - f)
    t = fma(s, add(hfsq, r), mul(dk, c(_LOG_LN2_LO)))
    t = sub(sub(hfsq, t), f)
    y = sub(mul(dk, c(_LOG_LN2_HI)), t)
    # Special values as selects (ordered compares are false for NaN):
    # +inf -> +inf and NaN -> NaN (x passed through); 0 and -0 -> -inf;
    # x < 0 (including -inf) -> NaN.
    y = builder.select(fcmp("<", x, c(float("inf"))), y, x)
    neg = builder.select(fcmp("==", x, c(0.0)), c(float("-inf")), c(float("nan")))
    return builder.select(fcmp("<=", x, c(0.0)), neg, y)


@intrinsic
def _log_ir(typingctx, x):
    """LLVM-level body of :func:`log_ge1` (float64 only)."""
    if x != types.float64:
        return None

    def codegen(context, builder, sig, args):
        return _emit_log(builder, args[0])

    return x(x), codegen


@njit(inline="always", nogil=True)
def log_ge1(x):
    """``log(x)``, written so that loops over it vectorise; meant for ``x >= 1``.

    Parameters
    ----------
    x : float64
        Argument. The intended use is the log of a sum of exponentials whose
        largest term is 1 (``1 <= x <= K``), but every float64 is handled.
        Other types (float32, integers) are a typing error: convert first.

    Returns
    -------
    float64
        ``log(x)``. Exactly 0.0 for ``x = 1``. Also correct (same bound) for
        ``0 < x < 1``, subnormals included, and up to the largest finite
        double. Special values as ``np.log``: +inf for +inf, -inf for 0.0 and
        -0.0, NaN for NaN and for any ``x < 0`` (including -inf); no
        floating-point warnings are raised.

    Notes
    -----
    Method (fdlibm's ``__ieee754_log``, branch-free): ``x = 2**k * z`` with
    ``z`` in ``[sqrt(1/2), sqrt(2))``, ``k`` and ``z`` taken from the bit
    pattern by 64-bit integer add, shift and mask (subnormals prescaled by
    ``2**52``); ``f = z - 1`` (exact), ``s = f / (2 + f)``, so
    ``log(z) = 2*atanh(s) = f - (f**2/2 - s*(f**2/2 + R(s**2)))`` with
    ``R`` fdlibm's degree-7 minimax polynomial in ``s**2`` (approximation
    error below ``2**-58.4``) evaluated by Horner with FMAs;
    ``log(x) = k*ln2_hi - ((f**2/2 - (s*(f**2/2 + R) + k*ln2_lo)) - f)``
    with ``ln2`` split so that ``k*ln2_hi`` is exact. One true division
    (never turned into a reciprocal multiply), no libm call, table or branch;
    special values by compare + select.

    Error: below 1 ulp of the result (fdlibm's bound), i.e.
    ``|log_ge1(x) - log(x)| < eps * |log(x)|`` with ``eps = 2.2e-16``, hence
    also ``< eps * max(1, |log x|)`` absolute; near ``x = 1`` the error is
    relative to ``log(x) ~ x - 1``, so ``log_ge1(1 + 1e-15)`` is accurate to
    ~1e-31. Measured against an extended-precision (80-bit) reference on 1e7
    random points in ``[1, 4096]`` (uniform and log-uniform), on
    ``[1, 1 + 1e-6]``, on 1e7-point sweeps where ``|s|`` is largest (``z``
    near ``sqrt(2)`` and ``sqrt(1/2)``), on ``[2**-1022, 1e308]``, on
    subnormals and on special points (``1 + k*eps``, powers of two and
    ``sqrt(2) * 2**j`` and their neighbours): max 0.85 ulp, max relative error
    1.54e-16 (0.69 eps). It differs from ``np.log`` by at most 1 ulp.
    Speed (AVX-512 host, one thread, 1e6 values in ``[1, 4096]``): 1.2 ns per
    value against 3.6 ns for ``np.log`` in the same numba loop (2.4x faster
    with AVX2 only).

    The arithmetic is emitted with only the ``contract`` flag (see the module
    docstring), so the caller's fastmath flags do not change the result. Use
    ``fastmath=FASTMATH`` in calling kernels to get packed FMA code elsewhere.
    """
    return _log_ir(x)
