"""The runner that calls a kernel once per thread: contiguous runs of blocks, every slot's result, and
several Python threads calling it at once, each with threads of its own."""
import threading

import pytest

from fastcavi._kernels._threads import run_slots


@pytest.mark.parametrize("nblocks, slots", [(10, 1), (10, 3), (2, 5), (0, 2), (7, 7)])
def test_slots_cover_the_blocks_in_contiguous_runs(nblocks, slots):
    seen = []
    lock = threading.Lock()

    def kernel(tag, b0, b1):
        with lock:
            seen.append((int(b0), int(b1)))
        return (tag, int(b0), int(b1))

    out = run_slots(kernel, nblocks, slots, lambda g: (g,))
    runs = sorted(seen)
    covered = [b for b0, b1 in runs for b in range(b0, b1)]
    assert covered == list(range(nblocks))  # each block once, runs in order
    expected = [(g * nblocks // slots, (g + 1) * nblocks // slots) for g in range(slots)]
    assert [r[1:] for r in out if r is not None] == [e for e in expected if e[1] > e[0]] or nblocks == 0


def test_an_error_in_a_slot_is_raised_after_every_slot_has_finished():
    finished = []

    def kernel(g, b0, b1):
        if g == 0:
            raise RuntimeError("slot 0 failed")
        finished.append(g)

    with pytest.raises(RuntimeError, match="slot 0"):
        run_slots(kernel, 4, 4, lambda g: (g,))
    assert sorted(finished) == [1, 2, 3]


def test_concurrent_callers_each_get_threads_of_their_own():
    # two Python threads, two slots each: all four slots must run at once (a barrier of 4), which a pool
    # shared at one thread per caller's slot count could not do (the barrier would time out and break)
    barrier = threading.Barrier(4, timeout=30)
    errors = []

    def kernel(g, b0, b1):
        barrier.wait()

    def caller():
        try:
            run_slots(kernel, 2, 2, lambda g: (g,))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=caller) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
