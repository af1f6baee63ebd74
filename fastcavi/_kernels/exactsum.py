"""Order-independent summation: a windowed fixed-point accumulator for float64 values.

Why: a sweep split into parts (chunks, processes, Dask tasks, stored batches) adds
partial sums in a grouping that depends on the split, and floating-point addition is
not associative. To make every split give the same bits, each value is added into an
accumulator whose sum does not depend on the order or grouping of the additions:

* The float64 grid is cut into 66 bins of 32 bits, fixed for all time: bin ``b``
  holds the bits of weight ``2**(32 b - 1074) .. 2**(32 b - 1043)``. A finite double is
  an integer mantissa (53 bits) times a power of two, so it splits exactly into its
  pieces in at most 3 consecutive bins.
* An accumulator keeps, per statistic, the index ``top`` of the highest bin any value
  has touched and ``WINDOW`` int64 limbs: the sums of the pieces in bins ``top``,
  ``top - 1``, ... ``top - WINDOW + 1``. Pieces below the window are dropped. Integer
  addition is exact and associative, and ``top`` is a maximum, so the accumulator after
  any sequence of insertions and merges of the same values is the same: the sum, over
  all values, of their pieces in the bins at or above ``top - WINDOW + 1``.
* Limbs never carry into each other while values are still being added (a carry
  out of a bin that is later dropped would depend on the order); each limb holds at
  most ``2**31`` pieces below ``2**32``, so it cannot overflow.
* :func:`finalize` normalises the carries and rounds to float64, a deterministic
  function of the limbs (in NumPy: it runs once per pass).

With ``WINDOW = 4`` (128 bits) every value keeps at least 96 bits below the leading
bit of the largest value added: the truncation is below ``2**-96`` of the largest
value per insertion, far below float64 rounding.

A NaN or an infinity makes the statistic non-finite (``top = NONFINITE``), which
:func:`finalize` reports as NaN.

Layout: an accumulator is an int64 array of shape ``(S, 1 + WINDOW)``: column 0 is
``top`` (``EMPTY`` while only zeros were added), columns 1.. the limbs, top bin first.

These kernels are compiled without fast-math flags, and they are called from Python,
never from a fast-math kernel: the ``reassoc`` flag would regroup the sequential folds.
"""

import numpy as np
from numba import njit

from .._config import CACHE

WINDOW = 4
EMPTY = -1
NONFINITE = 1 << 20
_BINS = 66

_PLAIN = dict(cache=CACHE, nogil=True, error_model="numpy")

_MASK32 = np.uint64(0xFFFFFFFF)


@njit(inline="always")
def _shift_window(acc, j, new_top):
    """Move statistic j's window up to ``new_top`` (dropping the limbs that fall below it)."""
    d = new_top - acc[j, 0]
    for i in range(WINDOW - 1, -1, -1):
        acc[j, 1 + i] = acc[j, 1 + i - d] if i - d >= 0 else 0
    acc[j, 0] = new_top


# Compiled once and called (not inlined) by the three kernels that insert values: inlined, its
# branches and tuple loop went through numba and LLVM three times (0.5-0.8 s of CPU each).
@njit(cache=CACHE, nogil=True, error_model="numpy", no_cpython_wrapper=True, no_cfunc_wrapper=True)
def _insert_bits(acc, j, bits):
    """Add the double whose IEEE bits are ``bits`` (uint64) to statistic j of ``acc``."""
    top = acc[j, 0]
    if top == NONFINITE:
        return
    expo = np.int64((bits >> np.uint64(52)) & np.uint64(0x7FF))
    mant = bits & np.uint64(0xFFFFFFFFFFFFF)
    if expo == 0x7FF:
        acc[j, 0] = NONFINITE
        return
    if expo == 0:
        if mant == 0:
            return  # +0 or -0: nothing to add
        expo = 1  # subnormal: same scale as the smallest normal, no implicit bit
    else:
        mant = mant | np.uint64(1 << 52)
    q = expo - 1  # the mantissa's lowest bit has weight 2**(q - 1074)
    b0 = q >> 5
    o = np.uint64(q & 31)
    lo = np.int64((mant & ((np.uint64(1) << (np.uint64(32) - o)) - np.uint64(1))) << o)
    rest = mant >> (np.uint64(32) - o)
    mid = np.int64(rest & _MASK32)
    hi = np.int64(rest >> np.uint64(32))
    hb = b0 + 2 if hi != 0 else (b0 + 1 if mid != 0 else b0)
    if top == EMPTY:
        for i in range(WINDOW):
            acc[j, 1 + i] = 0
        acc[j, 0] = hb
        top = hb
    elif hb > top:
        _shift_window(acc, j, hb)
        top = hb
    negative = (bits >> np.uint64(63)) != 0
    for piece_bin, piece in ((b0, lo), (b0 + 1, mid), (b0 + 2, hi)):
        i = top - piece_bin
        if 0 <= i < WINDOW:
            if negative:
                acc[j, 1 + i] -= piece
            else:
                acc[j, 1 + i] += piece


@njit(**_PLAIN)
def fold_segments(partials, nblocks, segment_blocks, segsums, segbits, acc):
    """Fold block partials into segment sums and add those to ``acc``.

    Parameters
    ----------
    partials : ndarray of shape (>= nblocks, >= S), float64
        Per-block partial sums of a chunk that starts on a segment boundary (columns past S are not read).
    nblocks : int
        Blocks in the chunk.
    segment_blocks : int
        Blocks per segment. Each segment's blocks are added left to right, starting
        from 0.0, so a segment's sum depends only on its rows.
    segsums : ndarray of shape (>= ceil(nblocks / segment_blocks), S), float64, C-contiguous
        Work space.
    segbits : ndarray of shape of ``segsums``, uint64
        ``segsums.view(np.uint64)``, made by the caller (a view taken in the kernel cost it 0.07 s of compiling).
    acc : ndarray of shape (S, 1 + WINDOW), int64
        The accumulator, updated in place.

    Notes
    -----
    Serial: per chunk it adds ``nblocks x S`` values and inserts ``nseg x S`` segment sums, a few hundredths
    of the E-step's work on the same chunk.
    """
    S = acc.shape[0]
    nseg = (nblocks + segment_blocks - 1) // segment_blocks
    for s in range(nseg):
        # each statistic's blocks are added left to right from 0.0; the loop over statistics
        # is innermost so that it reads whole rows of partials (element-wise, not a reduction)
        for j in range(S):
            segsums[s, j] = 0.0
        for b in range(s * segment_blocks, min(nblocks, (s + 1) * segment_blocks)):
            for j in range(S):
                segsums[s, j] += partials[b, j]
    for j in range(S):
        for s in range(nseg):
            _insert_bits(acc, j, segbits[s, j])


@njit(**_PLAIN)
def insert_values(values, acc):
    """Add ``values[j]`` (float64, shape (S,)) to statistic j of ``acc``."""
    bits = values.view(np.uint64)
    for j in range(acc.shape[0]):
        _insert_bits(acc, j, bits[j])


@njit(**_PLAIN)
def merge(a, b, out):
    """``out = a + b`` (accumulators of the same shape; ``out`` may be ``a``)."""
    limbs = np.empty(WINDOW, dtype=np.int64)  # np.empty, not np.zeros: numba compiles np.zeros for 0.3 s
    for j in range(a.shape[0]):
        ta, tb = a[j, 0], b[j, 0]
        if ta == NONFINITE or tb == NONFINITE:
            out[j, 0] = NONFINITE
            continue
        if tb == EMPTY:
            for c in range(1 + WINDOW):
                out[j, c] = a[j, c]
            continue
        if ta == EMPTY:
            for c in range(1 + WINDOW):
                out[j, c] = b[j, c]
            continue
        top = max(ta, tb)
        for i in range(WINDOW):
            limbs[i] = 0
        for i in range(WINDOW):
            ia = i - (top - ta)  # limb i of the new window is limb ia of a's
            if ia >= 0:
                limbs[i] += a[j, 1 + ia]
            ib = i - (top - tb)
            if ib >= 0:
                limbs[i] += b[j, 1 + ib]
        out[j, 0] = top
        for i in range(WINDOW):
            out[j, 1 + i] = limbs[i]


def finalize(acc, out):
    """Round each statistic of ``acc`` to float64 into ``out`` (shape (S,)).

    NumPy, not a kernel: it runs once per pass on S values, and as a kernel it cost a first fit 0.16 s of
    compiling. Every step is exact or one correctly rounded operation per element (the carries are integer
    arithmetic; each limb's conversion to float64, ``ldexp`` and the additions, smallest limb first, round as
    they would in a loop over the statistics), so the bits do not depend on how it is computed.
    """
    acc = np.asarray(acc)
    top = acc[:, 0]
    limbs = acc[:, 1:].copy()
    for i in range(WINDOW - 1, 0, -1):  # carries, lowest limb first: limbs 1.. end in [0, 2**32)
        c = limbs[:, i] >> 32
        limbs[:, i] -= c << 32
        limbs[:, i - 1] += c
    finite = (top != NONFINITE) & (top != EMPTY)
    safe_top = np.where(finite, top, 0)  # no exponent out of range for the rows set below
    v = np.zeros(acc.shape[0])
    with np.errstate(over="ignore", invalid="ignore"):  # a sum beyond float64's range is +-inf, silently
        for i in range(WINDOW - 1, -1, -1):  # smallest first
            v = v + np.ldexp(limbs[:, i].astype(np.float64), 32 * (safe_top - i) - 1074)
    out[:] = np.where(finite, v, np.where(top == EMPTY, 0.0, np.nan))
