"""Vectorisable ``exp`` for non-positive arguments (float64, float32).

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
``exp``.

The arithmetic is emitted as LLVM IR by an ``@intrinsic`` whose instructions
carry only the ``contract`` fast-math flag. numba's fastmath pass adds the
caller's flags only to instructions that have none, so the caller's
``reassoc`` (or ``fastmath=True``) cannot rewrite the Cody-Waite reduction or
the magic-number rounding: results are identical whatever ``fastmath`` the
calling kernel uses. (With plain numba code inlined into a ``reassoc`` kernel,
LLVM folds ``n*ln2_hi + n*ln2_lo`` into ``n*ln2`` and the error grows to
~2e-14.)
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["exp_nonpos", "exp_nonpos_f32"]

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
        bias=1023 + 60, two_m_k=2.0 ** -60,
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
        bias=127 + 40, two_m_k=2.0 ** -40,
    ),
}

_FLAGS = ("contract",)


def _emit_exp_nonpos(builder, x, s):
    """Emit LLVM IR for exp(min(x, 0)); every FP instruction is 'contract'."""
    fty, ity = s["ftype"], s["itype"]

    def c(v):
        return ir.Constant(fty, v)

    def mul(a, b):
        return builder.fmul(a, b, flags=_FLAGS)

    def fma(a, b, d):  # a*b + d; fused by the backend where FMA exists
        return builder.fadd(builder.fmul(a, b, flags=_FLAGS), d, flags=_FLAGS)

    # Clamps as compare + select. Ordered compares are false for NaN, so NaN
    # passes through unchanged (and then propagates to the result).
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
    bits = builder.add(bits, ir.Constant(ity, s["bias"]))
    bits = builder.shl(bits, ir.Constant(ity, s["mant"]))
    scale = builder.bitcast(bits, fty)
    return mul(mul(q, scale), c(s["two_m_k"]))


@intrinsic
def _exp_nonpos_ir(typingctx, x):
    """LLVM-level body of :func:`exp_nonpos` (float64 or float32)."""
    spec = _SPECS.get(x)
    if spec is None:
        return None

    def codegen(context, builder, sig, args):
        return _emit_exp_nonpos(builder, args[0], spec)

    return x(x), codegen


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
def exp_nonpos_f32(x):
    """float32 ``exp(x)`` for ``x <= 0``: :func:`exp_nonpos` of ``float32(x)``.

    Parameters
    ----------
    x : number
        Converted to float32 first (float64 arguments are rounded).

    Returns
    -------
    float32
        ``exp(min(x, 0))``, within about 1 float32 ulp; subnormals produced,
        0.0 for ``x < -103.98`` and -inf, NaN for NaN, 1.0 for ``x >= 0``.
    """
    return _exp_nonpos_ir(np.float32(x))
