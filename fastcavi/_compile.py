"""Ahead-of-time compilation of every kernel variant into numba's on-disk cache.

A fit in a fresh environment compiles its kernels on first use (seconds of CPU per kernel).
:func:`compile_kernels` does that work once, ahead of time (in a container image, on each
Dask worker image), so that every later process loads the kernels from the cache.

The variants live in one registry, :data:`KERNELS`: one entry per compiled function, with the
argument types each fit hands it. A kernel's type variants are the data's float width only
(float32, float64): the covariance family, row weights, given responsibilities and the hard
nearest-mean start are run-time flags of one compiled kernel, and the passes hand every input
array over read-only (data chunks, weights, given responsibilities), so each of those is one
numba type. To add a kernel, append an entry to :data:`KERNELS`; ``tests/test_compile.py``
checks that a fit after :func:`compile_kernels` compiles nothing.
"""
import numbers
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, List, Sequence, Tuple

__all__ = ["compile_kernels", "CompiledKernel", "KERNELS", "CacheNotWritable"]

#: The float widths a fit computes in (data of other types is converted to float64).
DTYPES = ("float64", "float32")


class CacheNotWritable(OSError):
    """The kernel cache directory cannot be written (or caching is switched off)."""


def _types():
    from numba import types as T

    f64v, f64m, f64t = T.float64[::1], T.float64[:, ::1], T.float64[:, :, ::1]
    i64m = T.int64[:, ::1]

    def ro(dtype, ndim):
        return T.Array(dtype, ndim, "C", readonly=True)

    return T, f64v, f64m, f64t, i64m, ro


def _estep_signature(dtype):
    T, f64v, f64m, f64t, i64m, ro = _types()
    # X, shift, bias, W, Wp, biasp, full_quad, weights, has_weights, given, hard, resp_in, want_out, resp_out,
    # lse_out, partials, slot, block_rows, b0, b1
    return (ro(dtype, 2), f64v, f64v, f64m, f64m, f64v, T.boolean, ro(T.float64, 1), T.boolean, T.boolean, T.boolean,
            ro(T.float64, 2), T.boolean, f64m, f64v, f64m, f64m, T.int64, T.int64, T.int64)


def _summarize_signature(dtype):
    T, f64v, f64m, f64t, i64m, ro = _types()
    # X, shift, full_scatter, weights, has_weights, partials, y, block_rows, b0, b1
    return (ro(dtype, 2), f64v, T.boolean, ro(T.float64, 1), T.boolean, f64m, f64m, T.int64, T.int64, T.int64)


def _first_non_finite_signature(dtype):
    T, f64v, f64m, f64t, i64m, ro = _types()
    # X, block_rows, b0, b1
    return (ro(dtype, 2), T.int64, T.int64, T.int64)


def _nearest_signature(dtype):
    T, f64v, f64m, f64t, i64m, ro = _types()
    # X, shift, centres, weights, has_weights, mode, seed, stream, row0, partials, far, far_row, keys, rows, d2,
    # nearest, block_rows, b0, b1
    return (ro(dtype, 2), f64v, f64m, ro(T.float64, 1), T.boolean, T.int64, T.uint64, T.int64, T.int64, f64m, f64m,
            T.int64[::1], f64v, T.int64[::1], f64v, T.int64[::1], T.int64, T.int64, T.int64)


def _hashed_uniforms_signature(dtype):
    T, f64v, f64m, f64t, i64m, ro = _types()
    # seed, stream, row0, out
    return (T.uint64, T.int64, T.int64, f64v)


def _weighted_key_signature(dtype):
    T, f64v, f64m, f64t, i64m, ro = _types()
    # weights, seed, stream, row0
    return (ro(T.float64, 1), T.uint64, T.int64, T.int64)


def _transform_signature(dtype):
    T, f64v, f64m, f64t, i64m, ro = _types()
    # X, shift, AT, squared, out, block_rows, b0, b1
    return (ro(dtype, 2), f64v, f64m, T.boolean, f64m, T.int64, T.int64, T.int64)


def _exact_add_at_signature(dtype):
    T, f64v, f64m, f64t, i64m, ro = _types()
    # values, index, acc
    return (ro(T.float64, 1), T.int64[::1], i64m)


def _assignment_signature(dtype):
    T, f64v, f64m, f64t, i64m, ro = _types()
    # X, row0, seed_hash, K, block_rows, sums, counts
    return (ro(dtype, 2), T.int64, T.uint64, T.int64, T.int64, f64t, f64m)


def _add_blocks_signature(dtype):
    T, f64v, f64m, f64t, i64m, ro = _types()
    # sums, counts, nblocks, total_sums, total_counts
    return (f64t, f64m, T.int64, f64m, f64v)


def _fold_signature(dtype):
    T, f64v, f64m, f64t, i64m, ro = _types()
    # partials, nblocks, segment_blocks, segsums, segbits, acc
    return (f64m, T.int64, T.int64, f64m, T.uint64[:, ::1], i64m)


def _insert_signature(dtype):
    T, f64v, f64m, f64t, i64m, ro = _types()
    return (f64v, i64m)


def _merge_signature(dtype):
    T, f64v, f64m, f64t, i64m, ro = _types()
    return (i64m, i64m, i64m)


#: The registry: ``(module under fastcavi._kernels, function, per_dtype, signature(dtype) -> argument types)``.
#: ``per_dtype`` kernels take the data and compile once per float width; the others once.
#: Each signature is the exact numba type of what the passes hand the kernel (read-only inputs,
#: C-contiguous buffers): a mismatch would compile one more variant at fit time, which
#: ``tests/test_compile.py`` catches.
KERNELS: Tuple[Tuple[str, str, bool, Callable], ...] = (
    ("summary", "summarize_blocks", True, _summarize_signature),
    ("summary", "first_non_finite_blocks", True, _first_non_finite_signature),
    ("nearest", "nearest_blocks", True, _nearest_signature),
    ("seeding", "hashed_uniforms", False, _hashed_uniforms_signature),
    ("seeding", "weighted_key_draw", False, _weighted_key_signature),
    ("assignment", "assignment_sums", True, _assignment_signature),
    ("assignment", "add_blocks", False, _add_blocks_signature),
    ("estep", "estep_blocks", True, _estep_signature),
    ("exactsum", "fold_segments", False, _fold_signature),
    ("exactsum", "insert_values", False, _insert_signature),
    ("exactsum", "merge", False, _merge_signature),
    ("seeding", "exact_add_at", False, _exact_add_at_signature),
    ("transform", "transform_blocks", True, _transform_signature),
)


@dataclass(frozen=True)
class CompiledKernel:
    """One kernel variant that :func:`compile_kernels` built or found.

    Attributes
    ----------
    name : str
        ``module.function`` under ``fastcavi._kernels``.
    dtype : str
        The data's float width (``"float64"``, ``"float32"``), or ``"any"`` for a kernel that does
        not see the data.
    action : str
        ``"compiled"`` (built and written to the cache), ``"cached"`` (loaded from the cache) or
        ``"in memory"`` (already loaded in this process).
    seconds : float
        CPU seconds it took in this process.
    cache_dir : str
        The directory of numba's cache files for the kernel's module.
    """

    name: str
    dtype: str
    action: str
    seconds: float
    cache_dir: str


def _variants(dtypes):
    for module, function, per_dtype, signature in KERNELS:
        for dtype in (dtypes if per_dtype else ("any",)):
            yield module, function, dtype, signature


def check_writable(directory):
    """Raise :class:`CacheNotWritable` unless a file can be created in ``directory`` (made if missing)."""
    import tempfile

    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise CacheNotWritable(f"the kernel cache directory {directory} is not writable ({exc.strerror or exc}); "
                               "set NUMBA_CACHE_DIR to a writable directory") from None


def _check_cache_possible():
    """Fail before any compilation when nothing compiled could be kept."""
    from ._config import CACHE

    if not CACHE:
        raise CacheNotWritable("FASTCAVI_NO_CACHE is set: kernels are compiled in memory only, and there is "
                               "nothing to compile ahead of time (unset it)")
    wanted = os.environ.get("NUMBA_CACHE_DIR")
    if wanted:
        # numba silently falls back to __pycache__ beside the sources when this is not writable
        check_writable(wanted)


def _load_module(module):
    import importlib

    try:
        return importlib.import_module("fastcavi._kernels." + module)
    except RuntimeError as exc:  # numba's "cannot cache function ...: no locator available for file ..."
        if "cannot cache" in str(exc):
            raise CacheNotWritable(f"no writable kernel cache for fastcavi ({exc}); set NUMBA_CACHE_DIR to a "
                                   "writable directory") from None
        raise


#: Modules whose kernels take longest to build (``fastcavi compile``'s own output): with ``jobs > 1``
#: they are started first, so that the longest build does not start last.
_SLOWEST_FIRST = ("estep", "nearest")


def _compile_variants(variants, verbose):
    """Build ``variants`` (``(module, function, dtype, signature)``) in this process, in order: their records."""
    from numba import types as T

    records = []
    for module, function, dtype, signature in variants:
        dispatcher = getattr(_load_module(module), function)
        sig = signature(getattr(T, dtype) if dtype != "any" else None)
        before_misses = sum(dispatcher.stats.cache_misses.values())
        loaded = tuple(sig) in dispatcher.overloads
        t0 = time.process_time()
        dispatcher.compile(sig)
        seconds = time.process_time() - t0
        if loaded:
            action = "in memory"
        elif sum(dispatcher.stats.cache_misses.values()) > before_misses:
            action = "compiled"
        else:
            action = "cached"
        cache_dir = dispatcher.stats.cache_path or ""
        records.append(CompiledKernel(f"{module}.{function}", dtype, action, seconds, cache_dir))
        if verbose:
            _print_record(records[-1])
    return records


def _print_record(r):
    print(f"{r.action:>9}  {r.name}[{r.dtype}]  {r.seconds:6.2f} s CPU", flush=True)


#: Kernels built in the child of another module: the registered kernels they call, which must be built
#: first, in the same process, to be built once (none today).
_BUILD_WITH = {}


def _discard(text):
    pass


def _quiet():
    """In a child that builds kernels: no first-compile notice (compiling is what it was asked for)."""
    _load_module("_compiling").set_handler(_discard)


def _compile_in_processes(variants, jobs, verbose):
    """Build ``variants`` in ``jobs`` child processes, one module's kernels in one child, in registry order.

    numba keeps one cache index per function: two processes saving variants of one function at once
    could each drop the other's entry, so a function never spans two children, nor does a registered
    kernel and one that calls it (:data:`_BUILD_WITH`). Children are spawned (a forked copy of a process
    whose numba threads have started is not safe).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    groups = {}
    for v in variants:
        groups.setdefault(_BUILD_WITH.get(v[:2], v[0]), []).append(v)
    order = sorted(groups, key=lambda m: _SLOWEST_FIRST.index(m) if m in _SLOWEST_FIRST
                   else len(_SLOWEST_FIRST))  # a stable sort: registry order otherwise
    done = {}
    with ProcessPoolExecutor(max_workers=min(jobs, len(order)), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_quiet) as pool:
        futures = {pool.submit(_compile_variants, groups[key], False): key for key in order}
        for future in as_completed(futures):
            done[futures[future]] = future.result()
            if verbose:
                for r in done[futures[future]]:
                    _print_record(r)
    built = {(r.name, r.dtype): r for records in done.values() for r in records}
    return [built[(f"{m}.{f}", d)] for m, f, d, _ in variants]  # registry order


#: Kernels that a fit in a fresh environment builds in a second process, while it compiles its setup
#: kernels (the validating pass, the seeding) itself: the E-step, the largest, needed last.
BACKGROUND = (("estep", "estep_blocks"),)

#: Seconds a background child waits for a job before it exits (the estimator was imported, no fit came).
IDLE_SECONDS = 300.0


def _phase_signatures():
    """The E-step's phases that serve both float widths, with the exact types its kernel hands them.

    A background child builds these first, before it is told the data's float width (it may be started when
    the estimator is imported, before any data is seen); the kernel then finds them built. A signature that
    differed from the kernel's call would build a second variant (``tests/test_cold_start_processes.py``
    checks them).
    """
    T, f64v, f64m, f64t, i64m, ro = _types()
    i, b, ro2, ro1 = T.int64, T.boolean, ro(T.float64, 2), ro(T.float64, 1)
    return (
        ("estep", "_given", (ro2, f64m, f64v, i, i, ro1, b, i, f64v)),
        ("estep", "_logits", (f64m, f64v, f64m, f64m, f64v, i)),
        ("estep", "_hard", (f64m, f64v, f64v, i, i)),
        ("estep", "_normalise", (f64m, f64v, f64v, i, i, ro1, b, i, f64v)),
        ("estep", "_write_out", (f64m, f64v, f64v, i, i, i, f64m, f64v)),
        ("estep", "_weigh", (f64m, f64m, f64v, i, i, i, ro1, b, i)),
        ("estep", "_statistics", (f64m, f64m, f64v, i, i, i, f64v)),
    )


class _Child:
    """The background child of this process and the jobs (``(module, function, dtype)``) sent to it."""

    def __init__(self, proc):
        self.proc = proc
        self.pid = os.getpid()  # a forked copy of this process does not share it
        self.sent, self.done = set(), set()
        self.ended = False
        self.changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True, name="fastcavi-compile-child").start()

    def _read(self):
        try:
            for line in self.proc.stdout:
                words = line.split()
                if len(words) == 4 and words[0] == "done":
                    with self.changed:
                        self.done.add(tuple(words[1:]))
                        self.changed.notify_all()
        except (OSError, ValueError):
            pass
        with self.changed:
            self.ended = True
            self.changed.notify_all()
        self.proc.wait()  # reaped: no zombie

    def usable(self):
        return self.pid == os.getpid() and not self.ended and self.proc.poll() is None

    def send(self, job):
        try:
            self.proc.stdin.write(" ".join(job) + "\n")
            self.proc.stdin.flush()
        except (OSError, ValueError):  # the child is gone: the kernel compiles here when needed
            return False
        self.sent.add(job)
        return True

    def wait(self, job, timeout):
        """Wait until the child has built ``job``, or ended, or ``timeout`` seconds passed."""
        with self.changed:
            self.changed.wait_for(lambda: job in self.done or self.ended, timeout)

    def pending(self):
        with self.changed:
            return bool(self.sent - self.done) and not self.ended

    def close(self):
        """No more jobs: the child exits once its current one is built."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass


_CHILD = None  # this process's background child, if any
_BACKGROUND_LOCK = threading.Lock()


def _background_allowed():
    """Caching on, two or more CPUs, and background builds not switched off."""
    from ._config import CACHE

    return bool(CACHE) and (os.cpu_count() or 1) >= 2 and \
        os.environ.get("FASTCAVI_BACKGROUND_COMPILE", "1") not in ("", "0")


def _background_wanted(module, function):
    """Whether ``module.function`` should be built in a child process now: :func:`_background_allowed`, nothing
    of it in memory here, and no cache index of it on disk (a first use on this machine)."""
    import glob

    if not _background_allowed():
        return False
    dispatcher = getattr(_load_module(module), function)
    if dispatcher.overloads:
        return False
    cache_dir = dispatcher.stats.cache_path
    return bool(cache_dir) and not glob.glob(os.path.join(glob.escape(cache_dir), f"{module}.{function}-*.nbi"))


def _cache_index_likely(module, function):
    """Whether numba's cache index of ``module.function`` seems to exist, judged without importing numba.

    It looks where numba 0.5x-0.6x puts it: under ``NUMBA_CACHE_DIR`` (in a folder named after the kernels'
    folder and a sha1 of its path) when that is set, else in ``__pycache__`` beside the kernels or, for a
    read-only install, under the user-wide cache (``$XDG_CACHE_HOME/numba`` or ``~/.cache/numba``, the same
    folder name): an index in either counts. A wrong guess costs time, never a result: a child started for
    a kernel that is cached loads it and exits, and a kernel thought cached but missing compiles in the
    fit's process.
    """
    import glob
    import hashlib

    kernels = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_kernels")
    named = "_kernels_" + hashlib.sha1(kernels.encode()).hexdigest()
    root = os.environ.get("NUMBA_CACHE_DIR")
    if root:
        folders = [os.path.join(root, named)]
    else:
        user = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folders = [os.path.join(kernels, "__pycache__"), os.path.join(user, "numba", named)]
    return any(glob.glob(os.path.join(glob.escape(folder), f"{module}.{function}-*.nbi")) for folder in folders)


def _child():
    """This process's background child, started if there is none (None where none can start). Under the lock."""
    global _CHILD
    import subprocess
    import sys

    if _CHILD is not None and _CHILD.usable():
        return _CHILD
    try:
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [package_root] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        proc = subprocess.Popen(
            [sys.executable, "-c", "from fastcavi._compile import _serve; _serve()"], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
    except Exception:  # no child (no executable, no fork, ...): the kernels compile here when needed
        _CHILD = None
        return None
    _CHILD = _Child(proc)
    return _CHILD


def start_early():
    """Start the background child before the data is known (when the estimator is imported), where it pays.

    Importing scikit-learn's base classes takes the estimator's process most of a second; a child started
    before that builds the E-step's phases that serve both float widths meanwhile, and the kernel itself once
    a fit says the width. Nothing starts where :func:`build_early` would start nothing. Without numba.
    """
    if not _background_allowed() or all(_cache_index_likely(module, function) for module, function in BACKGROUND):
        return
    with _BACKGROUND_LOCK:
        _child()


def build_early(dtype):
    """:func:`build_in_background` at the very start of a fit on an ndarray, before numba is imported here.

    Importing numba and the kernels takes this process a few tenths of a second; starting the child before
    that takes as much off a first fit. Only when numba is not imported yet (a new process), for data whose
    float width is known (``dtype``, None otherwise), and when the E-step does not seem to be cached
    (:func:`_cache_index_likely`).
    """
    import sys

    if dtype is None or "numba" in sys.modules:
        return
    if all(_cache_index_likely(module, function) for module, function in BACKGROUND):
        return
    build_in_background(dtype, checked=False)


def build_in_background(dtype, checked=True):
    """Build the :data:`BACKGROUND` kernels for data of ``dtype`` in a child process, where that pays.

    A first fit on a machine compiles every kernel it calls; on two or more CPUs the E-step, which it calls
    last, compiles in a child process (``python -c``, the same ``fastcavi`` on its path) into numba's disk
    cache while this process compiles and runs the setup passes; :func:`await_background` then waits for it,
    and the kernel loads from the cache. The kernel is the same compiled code either way (the same compiler,
    sources and argument types), so nothing of a result changes. Nothing is sent when the kernel is loaded
    or cached already, caching is off, there is one CPU, or ``FASTCAVI_BACKGROUND_COMPILE=0``; any failure
    to start falls back to compiling here.

    Parameters
    ----------
    dtype : str or numpy dtype
        The float width the kernels will see (``"float64"`` or ``"float32"``).
    checked : bool, default True
        Check here that the kernel is neither loaded nor cached (importing numba); False leaves that to the
        child (:func:`build_early`).
    """
    dtype = str(dtype)
    if dtype not in DTYPES:
        return
    with _BACKGROUND_LOCK:
        for module, function in BACKGROUND:
            job = (module, function, dtype)
            if _CHILD is not None and _CHILD.usable() and job in _CHILD.sent:
                continue
            try:
                wanted = _background_wanted(module, function) if checked else _background_allowed()
            except Exception:
                wanted = False
            if wanted:
                child = _child()
                if child is not None:
                    child.send(job)
        if _CHILD is not None and _CHILD.usable() and not _CHILD.pending():
            _CHILD.close()  # an early child with nothing to build here: let it go


def await_background(module, function, dtype, timeout=120.0):
    """Wait for the child building ``module.function`` for ``dtype`` (see :func:`build_in_background`), if any.

    Every caller waits for the same child (two threads of one process fitting at once); past ``timeout``
    seconds the caller goes on and the kernel compiles here (numba takes whichever is first into the cache).
    """
    job = (module, function, str(dtype))
    with _BACKGROUND_LOCK:
        child = _CHILD
    if child is None or child.pid != os.getpid() or job not in child.sent:
        return
    start = time.perf_counter()
    if job not in child.done and not child.ended:  # idle until the child is done: meanwhile, what a fit may
        from .exceptions import _make_convergence_warning_in_background  # need after its sweeps

        _make_convergence_warning_in_background()
    child.wait(job, timeout)
    _load_module("_compiling").add_waited(time.perf_counter() - start)  # compile time: rates leave it out
    with _BACKGROUND_LOCK:
        if _CHILD is child and not child.pending():
            child.close()


def _serve():
    """The background child: build the E-step's phases, then each job read from standard input.

    A job is a line ``module function dtype``; after building it (or failing to: the parent then compiles it
    itself) the child writes ``done module function dtype``. It exits at the end of its input, or after
    :data:`IDLE_SECONDS` without a job. Quiet: no first-compile notice.
    """
    import queue
    import sys

    _quiet()
    lines = queue.Queue()

    nothing_asked = threading.Event()  # the input ended before any job: whoever started this child is gone

    def read():
        asked = False
        for line in sys.stdin:
            asked = True
            lines.put(line)
        if not asked:
            nothing_asked.set()
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    for module, function, signature in _phase_signatures():
        if nothing_asked.is_set():
            return
        try:
            getattr(_load_module(module), function).compile(signature)
        except Exception:  # the kernel then builds it itself
            pass
    while True:
        try:
            line = lines.get(timeout=IDLE_SECONDS)
        except queue.Empty:
            return
        if line is None:
            return
        words = line.split()
        if len(words) != 3:
            continue
        module, function, dtype = words
        for m, f, per_dtype, signature in KERNELS:
            if (m, f) == (module, function):
                try:
                    _compile_variants([(m, f, dtype if per_dtype else "any", signature)], False)
                except Exception:
                    pass
        print("done", module, function, dtype, flush=True)


def compile_kernels(dtypes: Sequence[str] = DTYPES, *, verbose: bool = False, jobs: int = 1) -> List[CompiledKernel]:
    """Compile every kernel variant a fit can use, and keep it in numba's on-disk cache.

    Run it once where the package is installed (a container image, each Dask worker's image, or on
    running workers with ``client.run(fastcavi.compile_kernels)``): later processes load the kernels
    from the cache instead of compiling them on their first fit. Kernels already in the cache are
    loaded, not rebuilt. The cache is numba's: ``NUMBA_CACHE_DIR`` when it is set, otherwise
    ``__pycache__`` beside the kernel sources, or numba's user-wide cache directory when the install
    is read-only. Compiled code is specific to the CPU model (numba keys its cache on it).

    Parameters
    ----------
    dtypes : sequence of {"float64", "float32"}, default ("float64", "float32")
        The data float widths to compile the data kernels for (other input types are converted to
        float64 by a fit).
    verbose : bool, default False
        Print one line per kernel variant (what was done, CPU seconds) and the cache directory.
    jobs : int, default 1
        Processes to build in. numba compiles on one core, so ``jobs > 1`` builds kernels side by
        side in child processes (one module's kernels in each); ``-1`` means one per CPU. The
        cached kernels are the same. The children are spawned, so a script that calls this with
        ``jobs > 1`` needs the usual ``if __name__ == "__main__":`` guard. Keep 1 where a process cannot
        start children (a daemonic Dask worker process).

    Returns
    -------
    list of CompiledKernel
        One record per kernel variant, in the order of :data:`KERNELS`.

    Raises
    ------
    ValueError
        An unknown dtype, or ``jobs`` neither -1 nor a positive integer.
    CacheNotWritable
        (an ``OSError``) when the cache directory cannot be written, or caching is switched off
        (``FASTCAVI_NO_CACHE``); raised before anything is compiled.
    """
    if isinstance(dtypes, str):
        dtypes = (dtypes,)
    dtypes = tuple(dtypes)
    bad = [d for d in dtypes if d not in DTYPES]
    if bad or not dtypes:
        raise ValueError(f"dtypes must be a non-empty selection of {DTYPES}, got {dtypes!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, numbers.Integral) or not (jobs == -1 or jobs >= 1):
        raise ValueError(f"jobs must be -1 or a positive integer, got {jobs!r}")
    if jobs == -1:
        jobs = os.cpu_count() or 1
    jobs = int(jobs)
    _check_cache_possible()
    _compiling = _load_module("_compiling")  # (a clear error where no cache directory can be written)
    previous = _compiling.set_handler(_discard)  # no first-compile notice: compiling is the point here
    try:
        if jobs == 1:
            records = _compile_variants(list(_variants(dtypes)), verbose)
        else:
            _load_module("summary")  # the stale-cache check of fastcavi._kernels, once, before the children
            records = _compile_in_processes(list(_variants(dtypes)), jobs, verbose)
    finally:
        _compiling.set_handler(previous)
    if verbose:
        for d in sorted({r.cache_dir for r in records}):
            print(f"kernel cache: {d}")
    return records
