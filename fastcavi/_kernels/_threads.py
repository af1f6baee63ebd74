"""Run a compiled kernel on several threads: one call per scratch slot, each over its own run of blocks.

The kernels are serial ``@njit(nogil=True)`` functions over a contiguous run of blocks (``b0 .. b1``).
This module calls one of them per slot, slots ``1 ..`` on a shared pool of Python threads and slot 0
on the calling thread, and waits for all: the kernels release the GIL, so the slots run side by side.

Why not ``@njit(parallel=True)``: a parfor compiles its loop body as a generated gufunc and then the
kernel around it, and numba links callees as LLVM IR, so each of those two layers optimises and
generates machine code for the whole kernel again. For the E-step that tripled its compile time
(4.5 s of CPU for the serial kernel, 9.2 s with a ``prange`` wrapper around the same call). Here the
kernel compiles once, as it is.

The number of slots is numba's thread count of the calling thread (``numba.get_num_threads()``,
which ``numba.set_num_threads`` and fastcavi's ``n_threads`` options set), so the knobs users know
keep their meaning. Which thread runs which slot, and how many slots there are, change no result:
each block's sums depend on its rows alone (see the kernels).
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

_LOCK = threading.Lock()
_POOL = None
_POOL_SIZE = 0


def _reset_after_fork():
    # A forked child has the pool object but none of its threads: start afresh there.
    global _POOL, _POOL_SIZE, _LOCK
    _POOL, _POOL_SIZE, _LOCK = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _pool(workers):
    """The shared pool, able to run ``workers`` slots for each of several callers at once.

    A ThreadPoolExecutor starts its threads only as work arrives and no thread is idle, so its size is a
    cap: several Python threads calling kernels at once (a Dask worker's tasks) each get threads of their
    own rather than queueing behind each other's slots.
    """
    global _POOL, _POOL_SIZE
    import numba

    with _LOCK:
        cap = max(workers, 4 * int(numba.config.NUMBA_NUM_THREADS))
        if _POOL is None or _POOL_SIZE < cap:
            old = _POOL
            _POOL = ThreadPoolExecutor(max_workers=cap, thread_name_prefix="fastcavi")
            _POOL_SIZE = cap
            if old is not None:
                old.shutdown(wait=False)
        return _POOL


def n_slots():
    """Slots (threads) a kernel call uses: numba's thread count of the calling thread."""
    import numba

    return max(1, int(numba.get_num_threads()))


def run_slots(kernel, nblocks, slots, args_of):
    """Call ``kernel(*args_of(g), b0, b1)`` for each slot ``g`` with its contiguous run of blocks.

    Parameters
    ----------
    kernel : callable
        A compiled kernel that releases the GIL; its last two arguments are the run's first block and the
        block after its last.
    nblocks : int
        Blocks in the chunk.
    slots : int
        Number of slots; slot ``g`` gets blocks ``g * nblocks // slots`` up to ``(g + 1) * nblocks // slots``.
    args_of : callable
        ``args_of(g)`` gives slot g's leading arguments (its scratch slot, for instance).

    Returns
    -------
    list
        Each slot's return value, in slot order.
    """
    import numpy as np

    slots = max(1, int(slots))
    bounds = [(np.int64(g * nblocks // slots), np.int64((g + 1) * nblocks // slots)) for g in range(slots)]
    busy = [g for g in range(slots) if bounds[g][1] > bounds[g][0]] or [0]
    if len(busy) == 1:
        g = busy[0]
        return [kernel(*args_of(g), *bounds[g])]
    pool = _pool(len(busy) - 1)
    futures = [pool.submit(kernel, *args_of(g), *bounds[g]) for g in busy[1:]]
    try:
        results = {busy[0]: kernel(*args_of(busy[0]), *bounds[busy[0]])}
    finally:  # never return (or raise) while another slot still writes into the caller's buffers
        for future in futures:
            future.exception()
    for g, future in zip(busy[1:], futures):
        results[g] = future.result()
    return [results.get(g) for g in range(slots)]
