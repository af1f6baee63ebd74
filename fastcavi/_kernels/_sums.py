"""A sum in a fixed order, for the fast-math kernels.

A plain loop ``acc += w[i]`` over a contiguous float64 array, inside a fast-math kernel (the block
loop of :func:`fastcavi._kernels.estep.estep` and :func:`fastcavi._kernels.summary.summarize`), was
regrouped differently in the process that compiled the kernel and in a process that loaded it from
numba's cache, though the loop stores nothing: the blocks' sums of the row weights differed in their
last bits (float32 and float64 data alike, any covariance family, whenever ``sample_weight`` was
given).

:func:`lane_sum` is compiled with ``fastmath=False`` set explicitly: a function called from a
fast-math kernel inherits the caller's flags unless its own are set, and LLVM keeps the flags per
instruction, so once inlined into the fast-math kernel its additions still run as written.
"""
from numba import njit

from .._config import CACHE


@njit(fastmath=False, cache=CACHE, nogil=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)
def lane_sum(v, start, m):
    """Sum of ``v[start:start + m]``: lane ``j`` adds the terms ``j, j + 4, j + 8, ...`` in order, from 0.0,
    and the result is ``(lane0 + lane1) + (lane2 + lane3)`` (four lanes keep most of a vector sum's speed).
    """
    a0 = a1 = a2 = a3 = 0.0
    m4 = m - m % 4
    for i in range(0, m4, 4):
        a0 += v[start + i]
        a1 += v[start + i + 1]
        a2 += v[start + i + 2]
        a3 += v[start + i + 3]
    if m4 < m:
        a0 += v[start + m4]
    if m4 + 1 < m:
        a1 += v[start + m4 + 1]
    if m4 + 2 < m:
        a2 += v[start + m4 + 2]
    return (a0 + a1) + (a2 + a3)


@njit(fastmath=False, cache=CACHE, nogil=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)
def lane_dot(u, u0, v, m):
    """``sum_i u[u0 + i] v[i]`` for i < m, in :func:`lane_sum`'s four lanes and order."""
    a0 = a1 = a2 = a3 = 0.0
    m4 = m - m % 4
    for i in range(0, m4, 4):
        a0 += u[u0 + i] * v[i]
        a1 += u[u0 + i + 1] * v[i + 1]
        a2 += u[u0 + i + 2] * v[i + 2]
        a3 += u[u0 + i + 3] * v[i + 3]
    if m4 < m:
        a0 += u[u0 + m4] * v[m4]
    if m4 + 1 < m:
        a1 += u[u0 + m4 + 1] * v[m4 + 1]
    if m4 + 2 < m:
        a2 += u[u0 + m4 + 2] * v[m4 + 2]
    return (a0 + a1) + (a2 + a3)
