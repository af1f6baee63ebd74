"""Knowing when fastcavi's kernels compile: a one-line notice, and a clock of the time spent compiling.

numba compiles a kernel on its first call in a process, unless its on-disk cache has it. A compile
takes seconds, once per machine (the cache is keyed on the CPU model); a user watching a first fit
should be told so, and a progress line should not read the compile as slow processing.

numba's event API (``numba.core.event``) announces each compile that is not a cache load as a
``"numba:compile"`` event, nested for the callees a kernel compiles. A listener registered here (when
the kernels are imported) counts the wall time of the outermost compiles of fastcavi's kernels,
:func:`seconds`, and, on the first one in the process, sends one line to :func:`notice`'s handler.
Loading from the cache raises no event, so a warm process says nothing.

The listener also pauses Python's cyclic garbage collector for the outermost compile (when it was on):
numba makes some 150,000 objects compiling the E-step, and each full collection triggered meanwhile
traverses all of them (five of them, 0.25 s of the E-step's 3.5 s); the collector's next run after the
compile finds the garbage at once. Memory peaks about 20 MB higher.

The line goes to the ``"fastcavi"`` logger at level WARNING (so that, with logging not configured, it reaches
standard error; silence it with ``logging.getLogger("fastcavi").setLevel(logging.ERROR)``), or, while a progress reporter is installed
(the command line's), to the reporter (:func:`set_handler`).
"""
import gc
import logging
import threading
import time

from numba.core import event

_LOCK = threading.Lock()
_STATE = {"depth": 0, "began": 0.0, "seconds": 0.0, "told": False, "handler": None, "gc": False}

MESSAGE = ("compiling fastcavi's kernels for this CPU ({what}): seconds, once per machine, then loaded from "
           "numba's disk cache; `fastcavi compile` builds them all ahead of time")


def seconds():
    """Wall seconds this process has spent compiling fastcavi kernels (a compile in flight included)."""
    with _LOCK:
        total = _STATE["seconds"]
        if _STATE["depth"]:
            total += time.perf_counter() - _STATE["began"]
        return total


def add_waited(seconds):
    """Count ``seconds`` spent waiting for a kernel compiled in another process as compile time here."""
    with _LOCK:
        _STATE["seconds"] += max(0.0, float(seconds))


def set_handler(handler):
    """Send the notice to ``handler(text)`` instead of the logger (``None``: back to the logger); returns the old one."""
    with _LOCK:
        old, _STATE["handler"] = _STATE["handler"], handler
        return old


def _describe(dispatcher, args):
    import inspect

    name = dispatcher.py_func.__name__
    first = next(iter(inspect.signature(dispatcher.py_func).parameters), None)
    data = args[0] if first == "X" and args else None  # the kernels that read the data take it first, as X
    return name + (f" for {data.dtype} data" if data is not None and hasattr(data, "dtype") else "")


class _Listener(event.Listener):
    def on_start(self, ev):
        dispatcher = ev.data["dispatcher"]
        if not getattr(dispatcher.py_func, "__module__", "").startswith("fastcavi._kernels"):
            return
        with _LOCK:
            _STATE["depth"] += 1
            if _STATE["depth"] > 1:
                return
            _STATE["began"] = time.perf_counter()
            _STATE["gc"] = gc.isenabled()
            gc.disable()  # for the compile only (see the module docstring)
            tell = not _STATE["told"]
            _STATE["told"] = True
            handler = _STATE["handler"]
        if tell:
            text = MESSAGE.format(what=_describe(dispatcher, ev.data["args"]))
            if handler is not None:
                handler(text)
            else:
                logging.getLogger("fastcavi").warning(text)

    def on_end(self, ev):
        dispatcher = ev.data["dispatcher"]
        if not getattr(dispatcher.py_func, "__module__", "").startswith("fastcavi._kernels"):
            return
        with _LOCK:
            _STATE["depth"] -= 1
            if _STATE["depth"] == 0:
                _STATE["seconds"] += time.perf_counter() - _STATE["began"]
                if _STATE["gc"]:
                    gc.enable()


_LISTENER = _Listener()
event.register("numba:compile", _LISTENER)
