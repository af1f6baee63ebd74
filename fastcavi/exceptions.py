"""The exceptions and warnings fastcavi raises (public: catch them by these names).

``ConvergenceWarning`` subclasses ``sklearn.exceptions.ConvergenceWarning`` when scikit-learn is
installed, so that code (and scikit-learn's own tests) catching scikit-learn's warning catches
fastcavi's; without scikit-learn it is a ``UserWarning``, as scikit-learn's is. Importing
scikit-learn takes about a second, so the class is made on first use (``fastcavi.ConvergenceWarning``,
``from fastcavi.exceptions import ConvergenceWarning``, or the first fit that warns), not at
``import fastcavi``; it is the same class every time. A first fit that waits, idle, for a kernel being
compiled in another process makes it meanwhile, in a thread.
"""
import importlib.util
import threading

__all__ = list(("ELBODecreaseError", "ELBODecreaseWarning", "ConvergenceWarning"))  # the last made on first use


class ELBODecreaseError(ArithmeticError):
    """The ELBO went down during CAVI, which exact coordinate ascent never does."""


class ELBODecreaseWarning(RuntimeWarning):
    """The ELBO went down under updates that are not exact coordinate ascent.

    scikit-learn's M-step adds ``N_k * reg_covar`` to each Wishart scale matrix; the
    E-step has no matching term, so with ``reg_covar > 0`` a sweep is not an exact
    CAVI step and can lower the ELBO slightly (seen on degenerate data: constant
    columns, duplicate points). fastcavi reproduces scikit-learn's updates exactly and
    reports the true ELBO, so it warns rather than raises.
    """


def _convergence_warning_base():
    """scikit-learn's ``ConvergenceWarning`` when it is installed (and imports), else ``UserWarning``."""
    if importlib.util.find_spec("sklearn") is not None:  # looks for it without importing it
        try:
            from sklearn.exceptions import ConvergenceWarning as base
        except ImportError:  # pragma: no cover - a broken install
            return UserWarning
        return base
    return UserWarning


def _make_convergence_warning():
    base = _convergence_warning_base()

    class ConvergenceWarning(base):
        """CAVI stopped at ``max_iter`` before the ELBO converged.

        A subclass of ``sklearn.exceptions.ConvergenceWarning`` when scikit-learn is installed,
        otherwise of ``UserWarning``.
        """

    ConvergenceWarning.__module__, ConvergenceWarning.__qualname__ = __name__, "ConvergenceWarning"  # pickles
    return ConvergenceWarning


_MAKING = threading.Lock()  # two threads asking at once get one class


def __getattr__(name):
    # PEP 562: ConvergenceWarning is made on first use (scikit-learn is imported then, not at import fastcavi)
    if name == "ConvergenceWarning":
        with _MAKING:
            cls = globals().get(name)
            if cls is None:
                cls = _make_convergence_warning()
                globals()[name] = cls  # the same class from now on
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _make_convergence_warning_in_background():
    """Make :class:`ConvergenceWarning` in a daemon thread, unless it is made already or needs no import.

    For a process that is about to wait, idle, for seconds (a first fit waiting for a kernel compiled in another
    process): importing scikit-learn takes 0.7-0.9 s of CPU, which a fit that stops at ``max_iter`` would
    otherwise spend after its sweeps. The class is the same whichever thread makes it.
    """
    if "ConvergenceWarning" in globals() or importlib.util.find_spec("sklearn") is None:
        return
    threading.Thread(target=__getattr__, args=("ConvergenceWarning",), daemon=True,
                     name="fastcavi-convergence-warning").start()
