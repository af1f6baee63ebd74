"""Compiled kernels only: no validation, no Python objects.

numba's on-disk cache keys a kernel on a hash of the contents of its own source file (and on
numba's version and the CPU). A kernel also depends, at compile time, on other files: the compile
policy in ``fastcavi/_config.py``, the exp/log inlined from ``_fastexp.py``, functions inlined from
sibling kernel modules (``splitmix64`` from ``seeding.py`` into ``assignment.py``). An edit of one
of those alone would leave a stale compiled kernel in use.

So, when this package is imported, it imports every kernel module (creating numba's dispatchers
compiles nothing) and computes one fingerprint: a sha256 over the sources of ``_config.py`` and of
every ``*.py`` here, and the numba and llvmlite versions. A small stamp file in the kernels' cache
directory (the one numba's locator picked: ``NUMBA_CACHE_DIR``, ``__pycache__`` or the user-wide
cache) holds the fingerprint the cached kernels were built under. When it differs, the cached
kernels of these modules (``<module>.*.nbi`` / ``*.nbc``) are deleted and the stamp is rewritten
(atomically), only once every one of those files is gone; each kernel then recompiles on first
use. Where a file cannot be removed or the stamp cannot be written, nothing fails and no stamp is
written (the next process checks again). Concurrent processes are safe: a deleted index is a cache
miss. Not covered: a process still running the old code, started before the edit, that saves a
kernel after a new process has stamped the directory.

This relies on numba only for a dispatcher's ``stats.cache_path`` (as ``fastcavi compile`` does)
and the names of its cache files. A numba cache-locator subclass whose source stamp includes the
fingerprint would need numba's private caching classes (``_CacheLocator``, the impl's locator list)
and their constructors, which change between numba versions.
"""
import hashlib
import importlib
import os
import tempfile

_HERE = os.path.dirname(os.path.abspath(__file__))
_CONFIG = os.path.join(os.path.dirname(_HERE), "_config.py")
_STAMP = "fastcavi-kernels.stamp"


def _module_names():
    return sorted(name[:-3] for name in os.listdir(_HERE) if name.endswith(".py") and name != "__init__.py")


def _fingerprint(names):
    """sha256 (hex) over the sources the kernels are compiled from, and the compiler's versions."""
    import llvmlite
    import numba

    digest = hashlib.sha256(("numba %s llvmlite %s" % (numba.__version__, llvmlite.__version__)).encode())
    for path in [_CONFIG, os.path.join(_HERE, "__init__.py")] + [os.path.join(_HERE, n + ".py") for n in names]:
        with open(path, "rb") as f:
            source = f.read()
        digest.update(b"%s %d\n" % (os.path.basename(path).encode(), len(source)))
        digest.update(source)
    return digest.hexdigest()


def _cache_dir(modules):
    """The directory numba caches these modules' kernels in; None when caching is off."""
    for module in modules:
        for obj in vars(module).values():
            path = getattr(getattr(obj, "stats", None), "cache_path", None)  # a cached numba dispatcher
            if isinstance(path, str):
                return path
    return None


def _drop_stale_cache(cache_dir, names, fingerprint):
    """Delete the cached kernels of ``names`` in ``cache_dir`` unless its stamp is ``fingerprint``."""
    stamp = os.path.join(cache_dir, _STAMP)
    try:
        with open(stamp, encoding="ascii") as f:
            if f.read().strip() == fingerprint:
                return
    except (OSError, ValueError):  # no stamp yet (or unreadable): treat as stale
        pass
    try:
        entries = os.listdir(cache_dir)
    except OSError:
        return
    prefixes = tuple(name + "." for name in names)
    for entry in entries:
        if entry.startswith(prefixes) and entry.endswith((".nbi", ".nbc")):
            try:
                os.remove(os.path.join(cache_dir, entry))
            except FileNotFoundError:  # removed by another process
                pass
            except OSError:  # cannot be removed: no stamp, so that no stale kernel is declared fresh
                return
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=_STAMP + ".")
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(fingerprint + "\n")
        os.replace(tmp, stamp)
    except OSError:  # a read-only cache directory: no stamp, and the next process checks again
        if tmp is not None and os.path.exists(tmp):
            try:
                os.remove(tmp)
            except OSError:
                pass


def _guard():
    names = _module_names()
    modules = [importlib.import_module(__name__ + "." + name) for name in names]
    cache_dir = _cache_dir(modules)
    if cache_dir is not None:
        _drop_stale_cache(cache_dir, names, _fingerprint(names))


_guard()
