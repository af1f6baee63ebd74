"""Compiled kernels only: no validation, no Python objects.

numba's on-disk cache keys a kernel on the timestamp of its own source file alone. A change to
a module it depends on (the compile policy in ``fastcavi/_config.py``, the vectorised exp/log in
``_fastexp.py``, the fixed-order sum in ``_sums.py``) would leave a stale compiled kernel in use.
So, when this package is imported, every kernel module older than one of those dependencies has
its timestamp renewed, and numba recompiles it. Nothing else relies on this for safety: every
size that indexes a caller's buffer is passed at run time.
"""
import os

_HERE = os.path.dirname(os.path.abspath(__file__))
_DEPENDENCIES = (os.path.join(os.path.dirname(_HERE), "_config.py"), os.path.join(_HERE, "_fastexp.py"),
                 os.path.join(_HERE, "_sums.py"))
_KERNEL_MODULES = ("estep.py", "summary.py", "seeding.py", "exactsum.py", "assignment.py")


def _renew_stale_kernel_sources():
    try:
        newest = max(os.stat(p).st_mtime for p in _DEPENDENCIES)
    except OSError:  # a frozen or zipped install: nothing to compare
        return
    for name in _KERNEL_MODULES:
        path = os.path.join(_HERE, name)
        try:
            if os.stat(path).st_mtime < newest:
                os.utime(path)  # now: numba's cache index no longer matches, the kernel recompiles
        except OSError:  # a read-only install cannot have been edited either
            pass


_renew_stale_kernel_sources()
