"""Every check that does not need the data, in one place, with scikit-learn's wording.

The parameters of :func:`fastcavi.fit`, :class:`fastcavi.engine.Model`, the estimator and
the command line are declared once, in :mod:`fastcavi.options`; each declaration names its
check here (the section "Checks of the declared parameters" below). :func:`fastcavi.options.check`
runs them, in the declaration's order, before any data is read. Every check raises
``ValueError`` (``TypeError`` for a wrong kind of object) naming the parameter and the
offending value.

What is checked where
---------------------
Here, before any data is read (a few checks need the data's shape, from its header):

* the declared parameters (:mod:`fastcavi.options`): first those that need neither the data
  nor its shape (types, ranges, choices; ``weight_concentration_prior`` against K), then,
  once the data's header gives (n_samples, n_features), those that need them
  (``covariance``, ``mean_prior``, ``degrees_of_freedom_prior > D - 1``, ``covariance_prior``,
  ``init``, ``init_responsibilities``, ``sample_weight``'s kind, shape and length), and the
  combinations of ``covariance_type`` with ``covariance``, ``degrees_of_freedom_prior`` and
  ``covariance_prior``;
* the data's shape and dtype, and ``sample_weight``'s: where the data's header is read, in
  :mod:`fastcavi._io.sources` (``check_data_shape``, ``check_data_dtype``, called by
  :class:`~fastcavi._io.sources.DataSource` when it opens the data; scipy.sparse input is refused
  there, ``check_dense``, and an object-dtype array is converted to float64, as scikit-learn does,
  ``numeric_object_array``); here, n_samples >= n_components (:func:`check_n_samples`), the
  estimator's two samples at least (:func:`check_min_samples`), the number of features of new
  data (:func:`check_features`);
* the engine's call arguments: ``Model``'s option names and ``summary``, ``estep``'s ``model``,
  ``state`` and output arrays, ``summarize``'s ``shift``, ``row_offset``, ``nearest_mean_stats``'s
  ``means`` (:func:`check_option_names`, :func:`check_instance`, :func:`check_output_array`,
  :func:`check_shift`, :func:`check_means`);
* the estimator's own: ``init_params``, ``covariance_type`` without "identity", and
  ``sample``'s ``n_samples`` (:func:`check_sample_count`);
* the ``out=`` array of a prediction (shape, dtype, writable, no memory or file shared with X:
  :func:`check_prediction_out`).

Where the data is, because they need its values (each place says so in a comment):

* NaN/inf in X, and negative or non-finite sample weights: the validating first pass
  (:func:`fastcavi._passes.raise_bad_row`), naming the first bad row and column; new data at
  prediction: the same check on each chunk of the E-step;
* weights that sum to 0: after that pass (:func:`check_weight_total`, called by
  :func:`fastcavi.engine.summarize` and the Dask fit);
* the rows of ``init_responsibilities`` (probability vectors): :func:`check_resp_chunk`, defined
  here, called on each chunk as it is read;
* the default ``covariance_prior`` (at least 2 samples; singular with ``reg_covar = 0``), and a
  summary without the full scatter for "full"/"tied": :class:`fastcavi._models.families.WishartSpec`;
* a component covariance that is not positive definite: the Wishart update
  (:mod:`fastcavi._models.wishart`); non-finite statistics or ELBO and an ELBO decrease:
  :mod:`fastcavi._driver.loop` and :class:`fastcavi.engine.Model`; statistics that do not fit the model
  (``Model._check_stats``), and ``state_from_means`` for a Wishart model: the engine;
* a non-finite log-density of new rows: :class:`fastcavi.FitResult`, on each chunk as it is
  computed (with ``out=``, the rows before it are written by then).

Where files and serialised objects are read: a missing, truncated or unreadable ``.npy`` file, or
an object that cannot be read as an array (:mod:`fastcavi._io.sources`); a model file
(:func:`fastcavi.load`); ``Stats``/``DataSummary`` arrays and ``State``/``Model`` dicts (their
``from_array``/``from_dict``).
"""
import numbers
import os
from typing import NamedTuple, Optional

import numpy as np

from ._io.sources import WeightSource

COVARIANCE_TYPES = ("identity", "spherical", "diag", "full", "tied")
WISHART_COVARIANCE_TYPES = ("spherical", "diag", "full", "tied")
WEIGHT_PRIOR_TYPES = ("dirichlet_distribution", "dirichlet_process")
INIT_METHODS = ("k-means++", "k-means||", "kmeans", "random", "random_from_data")
TOL_TYPES = ("relative", "absolute")
#: The estimator's ``init_params`` (scikit-learn's names, and meanings): "kmeans" is ``fit``'s
#: ``init="kmeans"``; the others start from responsibilities (:class:`ResponsibilityStart`).
INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


# -- basic checks ---------------------------------------------------------------------------------
def check_int(name, value, low, high=None):
    """An int in [low, high] (high=None: unbounded)."""
    if not _is_int(value) or value < low or (high is not None and value > high):
        upper = "inf)" if high is None else f"{high}]"
        raise ValueError(f"The '{name}' parameter must be an int in the range [{low}, {upper}. "
                         f"Got {value!r} instead.")
    return int(value)


def check_real(name, value, low=None, *, strict=True, high=None):
    """A finite real number above ``low`` (strictly, unless ``strict=False``)."""
    ok = _is_real(value) and np.isfinite(value)
    if ok and low is not None:
        ok = value > low if strict else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        bound = "" if low is None else (f" {'>' if strict else '>='} {low}")
        raise ValueError(f"The '{name}' parameter must be a finite real number{bound}. Got {value!r} instead.")
    return float(value)


def check_bool(name, value):
    """A Python or NumPy bool (not an int, not a string)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"The '{name}' parameter must be a bool. Got {value!r} instead.")
    return bool(value)


def check_choice(name, value, choices):
    """One of the strings ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"The '{name}' parameter must be a str among {{{', '.join(map(repr, choices))}}}. "
                         f"Got {value!r} instead.")
    return value


def check_vector(name, value, length, *, positive=False, what="n_components"):
    """A scalar (broadcast) or a 1-D array of ``length`` finite values (positive if asked)."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu" or arr.ndim > 1:
        raise ValueError(f"The '{name}' parameter must be a real number or a 1-D array of shape ({length},). "
                         f"Got {value!r} instead.")
    arr = arr.astype(np.float64)
    if arr.ndim == 1 and arr.shape[0] != length:
        raise ValueError(f"The '{name}' parameter should have the shape ({length},) ({what} = {length}), "
                         f"but got {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"The '{name}' parameter must be finite. Got {value!r} instead.")
    if positive and not np.all(arr > 0):
        raise ValueError(f"The '{name}' parameter must be positive. Got {value!r} instead.")
    return np.broadcast_to(arr, (length,)).copy()


def check_known_covariance(covariance, D):
    """The lower Cholesky factor of a known covariance, or None for the identity.

    Accepts None (identity), a positive scalar (sigma^2 I), a positive vector of
    shape (D,) (a diagonal), or a symmetric positive definite (D, D) matrix.
    """
    if covariance is None:
        return None
    arr = np.asarray(covariance, dtype=np.float64) if np.asarray(covariance).dtype.kind in "fiu" else None
    if arr is None or arr.ndim > 2 or not np.all(np.isfinite(arr)):
        raise ValueError(f"'covariance' must be None, a positive number, a positive (D,) vector or a symmetric "
                         f"positive definite (D, D) matrix of finite numbers. Got {covariance!r}.")
    if arr.ndim == 0 or arr.ndim == 1:
        arr = np.broadcast_to(arr, (D,)) if arr.ndim == 0 else arr
        if arr.shape != (D,) or not np.all(arr > 0):
            raise ValueError(f"'covariance' as a vector must have shape ({D},) and positive entries. "
                             f"Got {covariance!r}.")
        return np.diag(np.sqrt(arr))
    if arr.shape != (D, D):
        raise ValueError(f"'covariance' should have the shape ({D}, {D}), but got {arr.shape}.")
    if not np.allclose(arr, arr.T, rtol=1e-10, atol=0.0):
        raise ValueError("'covariance' should be symmetric.")
    from ._models.fixed import cholesky, not_positive_definite

    L = cholesky(arr)  # in a fixed order (the same bits on every CPU), not LAPACK's
    if not_positive_definite(L).size:
        raise ValueError("'covariance' should be symmetric, positive-definite.")
    return L


def check_init(init, K, D):
    """A method name or an array of initial means of shape (K, D)."""
    if isinstance(init, str):
        return check_choice("init", init, INIT_METHODS)
    arr = np.asarray(init)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"The 'init' parameter must be one of {INIT_METHODS} or an array of initial means. "
                         f"Got {init!r} instead.")
    if arr.shape != (K, D):
        raise ValueError(f"The initial means 'init' should have the shape ({K}, {D}), but got {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError("The initial means 'init' contain NaN or infinity.")
    return arr.astype(np.float64).copy()


def check_random_state(random_state):
    """A numpy Generator from None, an int, a Generator or a RandomState."""
    if random_state is None or _is_int(random_state):
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    raise ValueError(f"{random_state!r} cannot be used to seed a numpy.random.Generator instance.")


def check_n_threads(n_threads):
    """None, or an int in [1, numba's thread count]."""
    if n_threads is None:
        return None
    import numba

    top = numba.config.NUMBA_NUM_THREADS
    return check_int("n_threads", n_threads, 1, top)


def check_n_samples(n_samples, n_components):
    """At least as many rows as components (scikit-learn's check; the data's header gives n_samples)."""
    if n_samples < n_components:
        raise ValueError(f"Expected n_samples >= n_components but got n_components = {n_components}, "
                         f"n_samples = {n_samples}")


def check_min_samples(shape, minimum, owner):
    """scikit-learn's ``ensure_min_samples``: at least ``minimum`` rows, naming the estimator's class ``owner``."""
    if shape[0] < minimum:
        raise ValueError(f"Found array with {shape[0]} sample(s) (shape={tuple(shape)}) while a minimum of "
                         f"{minimum} is required by {owner}.")


def check_features(n_features, expected, owner="the fitted model"):
    """New data has the model's number of features (``owner``: the estimator's class name, as scikit-learn)."""
    if n_features != expected:
        raise ValueError(f"X has {n_features} features, but {owner} is expecting {expected} features as input.")


def check_weight_total(total):
    """Weights that sum to more than 0 (scikit-learn's message; needs the weights' values: after the pass)."""
    if not total > 0:
        raise ValueError("Sample weights must contain at least one non-zero number.")


def check_covariance_prior(value, covariance_type, D):
    """scikit-learn's checks of a given ``covariance_prior``: shape, symmetry, positivity."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu" or not np.all(np.isfinite(arr)):
        raise ValueError(f"The '{covariance_type} covariance_prior' must hold finite numbers. Got {value!r}.")
    arr = arr.astype(np.float64)
    if covariance_type in ("full", "tied"):
        if arr.shape != (D, D):
            raise ValueError(f"The parameter '{covariance_type} covariance_prior' should have the shape "
                             f"({D}, {D}), but got {arr.shape}")
        if not np.allclose(arr, arr.T) or np.any(np.linalg.eigvalsh(arr) <= 0.0):
            raise ValueError(f"'{covariance_type} covariance_prior' should be symmetric, positive-definite")
        return arr.copy()
    if covariance_type == "diag":
        if arr.shape != (D,):
            raise ValueError(f"The parameter 'diag covariance_prior' should have the shape ({D},), "
                             f"but got {arr.shape}")
        if np.any(arr <= 0.0):
            raise ValueError("'diag covariance_prior' should be positive")
        return arr.copy()
    if arr.ndim != 0 or not arr > 0.0:
        raise ValueError(f"The 'spherical covariance_prior' must be a positive number. Got {value!r}.")
    return float(arr)


def check_init_responsibilities(R, N, K):
    """Shape (N, K) and numeric (the values are checked chunk by chunk: :func:`check_resp_chunk`)."""
    arr = np.asarray(R)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"'init_responsibilities' must be a numeric array. Got dtype {arr.dtype}.")
    if arr.shape != (N, K):
        raise ValueError(f"'init_responsibilities' should have the shape ({N}, {K}), but got {arr.shape}.")
    return arr


def check_resp_chunk(R, row0):
    """Rows of init_responsibilities: finite, >= 0, summing to 1 (within 1e-6).

    It needs the values: it runs on each chunk as the pass reads it, not before the data.
    """
    bad = ~np.isfinite(R).all(1) | (R < 0).any(1) | (np.abs(R.sum(1) - 1.0) > 1e-6)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"'init_responsibilities' row {row0 + i} is not a probability vector "
                         f"(finite, non-negative, summing to 1): {R[i]!r}.")


def check_warm_start(previous, covariance_type, n_components, n_features):
    """A FitResult to continue from must be of the same covariance type, K and D."""
    got = (previous.covariance_type, previous.n_components, previous.n_features)
    want = (covariance_type, n_components, n_features)
    if got != want:
        raise ValueError(f"Cannot warm-start from a result with (covariance_type, n_components, n_features) = "
                         f"{got}: this fit has {want}.")


# -- the engine's call arguments ------------------------------------------------------------------
def check_option_names(given, known, owner):
    """No option outside ``known`` (a ``TypeError``, as Python raises for an unexpected keyword)."""
    unknown = set(given) - set(known)
    if unknown:
        raise TypeError(f"{owner} got unexpected options {sorted(unknown)}.")


def check_instance(name, value, cls, qualname):
    """``value`` is a ``cls`` (a ``TypeError`` naming ``qualname`` otherwise)."""
    if not isinstance(value, cls):
        raise TypeError(f"'{name}' must be a {qualname}, got {type(value).__name__}.")
    return value


def check_shift(shift, D):
    """A finite vector of shape (D,), as float64."""
    shift = np.asarray(shift, dtype=np.float64)
    if shift.shape != (D,) or not np.all(np.isfinite(shift)):
        raise ValueError(f"'shift' must be a finite vector of shape ({D},), got {shift!r}.")
    return shift


def check_means(means, K, D):
    """Means of shape (K, D), finite, as float64."""
    arr = np.asarray(means)
    if arr.dtype.kind not in "fiu" or arr.shape != (K, D) or not np.all(np.isfinite(arr)):
        raise ValueError(f"'means' must be a finite real array of shape ({K}, {D}), got {means!r}.")
    return arr.astype(np.float64, copy=False)


def check_output_array(name, out, shape):
    """None, or a writable float64 ndarray of ``shape`` for a pass to fill."""
    if out is not None and (not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != np.float64
                            or not out.flags.writeable):
        raise ValueError(f"'{name}' must be a writable float64 ndarray of shape {shape}.")
    return out


def check_prediction_out(out, what, shape, n_components, X):
    """The ``out=`` array of a prediction, checked before any work; ``what``: "labels", "proba" or "score".

    A writable ndarray (an ``np.memmap`` too) of ``shape``: float64 for responsibilities and
    log-densities; for labels any integer dtype that holds ``n_components - 1`` (int64, as
    scikit-learn's labels, when fastcavi allocates). It must not share memory with X (nor map
    the file that X is read from): the pass would overwrite rows before reading them.
    """
    if what == "labels":
        wanted = f"an integer dtype holding {n_components - 1} (int64, as scikit-learn's labels)"
        dtype_ok = lambda dt: dt.kind in "iu" and np.iinfo(dt).max >= n_components - 1  # noqa: E731
    else:
        wanted = "float64"
        dtype_ok = lambda dt: dt == np.float64  # noqa: E731
    if not isinstance(out, np.ndarray):
        raise TypeError(f"'out' must be a numpy array (or np.memmap) of shape {shape} and {wanted}, "
                        f"got {type(out).__name__}.")
    if out.shape != shape or not dtype_ok(out.dtype):
        raise ValueError(f"'out' must have shape {shape} and {wanted}; got shape {out.shape}, dtype {out.dtype}.")
    if not out.flags.writeable:
        raise ValueError("'out' is read-only: it must be a writable array.")
    if isinstance(X, np.ndarray) and _overlap(out, X):
        raise ValueError("'out' shares memory with X: the predictions would overwrite the data being read.")
    out_file, x_file = _mapped_file(out), _mapped_file(X)
    if out_file is not None and x_file is not None and _same_file(out_file, x_file):
        raise ValueError(f"'out' is a memory map of {out_file!r}, the file X is read from: the predictions "
                         "would overwrite the data being read.")
    return out


_TooHardError = np.exceptions.TooHardError if hasattr(np, "exceptions") else np.TooHardError  # numpy < 1.25


def _overlap(a, b):
    """Whether two arrays share memory (when numpy cannot tell within its work bound: assumed yes)."""
    if not np.may_share_memory(a, b):
        return False
    try:
        return bool(np.shares_memory(a, b, max_work=10**6))
    except _TooHardError:
        return True


def _mapped_file(X):
    """The file that X (a path, an np.memmap or a view of one) maps, or None."""
    if isinstance(X, (str, os.PathLike)):
        return os.fspath(X)
    while isinstance(X, np.ndarray):
        if isinstance(X, np.memmap) and getattr(X, "filename", None):
            return os.fspath(X.filename)
        X = X.base
    return None


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_sample_count(n_samples):
    """The estimator's ``sample(n_samples)``: at least one draw (scikit-learn's message)."""
    if n_samples < 1:
        raise ValueError(f"Invalid value for 'n_samples': {n_samples}. The sampling requires at least "
                         "one sample.")
    return n_samples


# -- what ``init`` may be besides a method's name or means ---------------------------------------
class ResponsibilityStart:
    """scikit-learn's starts (the estimator's ``init_params``): an M-step from responsibilities.

    Internal: :func:`estimator_init_params` makes one from ``init_params`` and passes it to
    :func:`fastcavi.fit` as ``init`` (declared here, where ``init``'s check accepts it). The
    responsibilities are drawn afresh for every initialisation
    (:func:`fastcavi._init.start_responsibilities`):

    * ``"k-means++"``: one-hot on the K rows k-means++ seeding chooses (row ``i_k`` is
      component k's only row; every other row has responsibility 0);
    * ``"random_from_data"``: the same on K distinct rows drawn uniformly;
    * ``"random"``: soft, uniform draws normalised per row, from a hash of (seed, row, k).

    Parameters
    ----------
    method : {"k-means++", "random", "random_from_data"}
    """

    METHODS = ("k-means++", "random", "random_from_data")

    __slots__ = ("method",)

    def __init__(self, method):
        if method not in self.METHODS:
            raise ValueError(f"Unknown responsibility start {method!r}; expected one of {self.METHODS}.")
        self.method = method

    def __eq__(self, other):
        return isinstance(other, ResponsibilityStart) and other.method == self.method

    def __hash__(self):
        return hash(("ResponsibilityStart", self.method))

    def __repr__(self):
        return f"ResponsibilityStart({self.method!r})"


class WarmStart:
    """A fitted result that ``init`` continues (a warm start): :class:`fastcavi.FitResult` derives from it.

    Declared here so that ``init``'s check (:func:`initialisation`) knows one without importing
    :mod:`fastcavi.result`, a higher layer.
    """

    __slots__ = ()


# -- checks of the declared parameters ------------------------------------------------------------
# fastcavi.options names one of these for each parameter. Each is called as
# ``check(name, value, context) -> the checked value`` (``context``: a :class:`Context`); those
# marked ``needs_shape`` run once the data's header has given (n_samples, n_features).
class Context(NamedTuple):
    """What a check may depend on: the structural parameters checked before it, and the data's shape."""

    n_components: Optional[int] = None
    covariance_type: Optional[str] = None
    weight_concentration_prior_type: Optional[str] = None
    n_samples: Optional[int] = None
    n_features: Optional[int] = None


def _parameter_check(*, needs_shape):
    """Mark a function as a declared parameter's check; ``needs_shape``: it runs once the data's header
    has given (n_samples, n_features)."""
    def mark(check):
        check.needs_shape = needs_shape
        return check
    return mark


class IntRange:
    """An int in [low, high] (``high=None``: unbounded)."""

    needs_shape = False

    def __init__(self, low, high=None):
        self.low, self.high = low, high

    def __call__(self, name, value, context):
        return check_int(name, value, self.low, self.high)

    def __repr__(self):
        return f"IntRange({self.low}, {self.high})"


class RealRange:
    """A finite real number above ``low`` (strictly unless ``strict=False``)."""

    needs_shape = False

    def __init__(self, low, *, strict=True):
        self.low, self.strict = low, strict

    def __call__(self, name, value, context):
        return check_real(name, value, self.low, strict=self.strict)

    def __repr__(self):
        return f"RealRange({self.low}, strict={self.strict})"


class OneOf:
    """One of the strings ``choices`` (the command line offers them as its choices)."""

    needs_shape = False

    def __init__(self, choices):
        self.choices = tuple(choices)

    def __call__(self, name, value, context):
        return check_choice(name, value, self.choices)

    def __repr__(self):
        return f"OneOf({self.choices})"


class Boolean:
    """A Python or NumPy bool."""

    needs_shape = False

    def __call__(self, name, value, context):
        return check_bool(name, value)

    def __repr__(self):
        return "Boolean()"


class NoneOr:
    """None (kept as None: a default resolved later), or a value that passes ``check``."""

    def __init__(self, check):
        self.check = check
        self.needs_shape = getattr(check, "needs_shape", False)

    def __call__(self, name, value, context):
        return None if value is None else self.check(name, value, context)

    def __repr__(self):
        return f"NoneOr({self.check!r})"


@_parameter_check(needs_shape=False)
def unchecked(name, value, context):
    """Any value, used as given (the estimator's ``verbose``, ``verbose_interval``, ``warm_start``)."""
    return value


@_parameter_check(needs_shape=False)
def persist_choice(name, value, context):
    """``"auto"``, True or False (a Dask-array X kept in the cluster's memory, or read each sweep)."""
    if isinstance(value, str) and value == "auto":
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"The '{name}' parameter must be 'auto', True or False. Got {value!r} instead.")


@_parameter_check(needs_shape=False)
def thread_count(name, value, context):
    """None, or an int in [1, numba's thread count]."""
    return check_n_threads(value)


@_parameter_check(needs_shape=False)
def random_seed(name, value, context):
    """None, an int, a Generator or a RandomState; returns a ``numpy.random.Generator``."""
    return check_random_state(value)


@_parameter_check(needs_shape=False)
def file_path(name, value, context):
    """A path: a str or an os.PathLike (returned as a str)."""
    import os

    if not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"The '{name}' parameter must be a path (str or os.PathLike). Got {value!r} instead.")
    return os.fspath(value)


@_parameter_check(needs_shape=False)
def callable_or_none(name, value, context):
    """None, or something callable."""
    if value is not None and not callable(value):
        raise ValueError(f"'{name}' must be callable or None. Got {value!r}.")
    return value


@_parameter_check(needs_shape=False)
def weight_concentration(name, value, context):
    """The Dirichlet's alpha: a positive number or (K,) vector, returned as a (K,) vector; the process's
    concentration: a positive number."""
    if context.weight_concentration_prior_type == "dirichlet_process":
        return check_real(name, value, 0.0)
    return check_vector(name, value, context.n_components, positive=True)


@_parameter_check(needs_shape=True)
def known_covariance(name, value, context):
    """The known covariance of "identity" (see :func:`check_known_covariance`); returns its lower Cholesky
    factor, or None for the identity. Only "identity" takes one."""
    if value is not None and context.covariance_type != "identity":
        raise ValueError("'covariance' (a known covariance) applies only to covariance_type='identity'.")
    return check_known_covariance(value, context.n_features)


@_parameter_check(needs_shape=True)
def prior_mean(name, value, context):
    """A number or a (D,) vector of finite numbers, returned as a (D,) vector."""
    return check_vector(name, value, context.n_features, what="n_features")


def _wishart_only(value, context):
    if value is not None and context.covariance_type == "identity":
        raise ValueError("degrees_of_freedom_prior and covariance_prior apply to the Wishart families "
                         "(spherical, diag, full, tied), not to covariance_type='identity' "
                         "(use 'covariance' for its known covariance).")


@_parameter_check(needs_shape=True)
def wishart_degrees_of_freedom(name, value, context):
    """None, or a finite number > D - 1 (the Wishart families only)."""
    _wishart_only(value, context)
    if value is None:
        return None
    nu0 = check_real(name, value)
    D = context.n_features
    if not nu0 > D - 1.0:
        raise ValueError("The parameter 'degrees_of_freedom_prior' should be greater than %d, "
                         "but got %.3f." % (D - 1, nu0))
    return nu0


@_parameter_check(needs_shape=True)
def wishart_covariance_prior(name, value, context):
    """None, or scikit-learn's ``covariance_prior`` for the type (see :func:`check_covariance_prior`)."""
    _wishart_only(value, context)
    return None if value is None else check_covariance_prior(value, context.covariance_type, context.n_features)


@_parameter_check(needs_shape=True)
def initialisation(name, value, context):
    """A method name, (K, D) initial means, or a FitResult to continue (same covariance type, K, D).

    The estimator passes scikit-learn's starts from responsibilities as a
    :class:`ResponsibilityStart` (internal), accepted as it is.
    """
    if isinstance(value, ResponsibilityStart):
        return value
    if isinstance(value, WarmStart):  # a FitResult
        check_warm_start(value, context.covariance_type, context.n_components, context.n_features)
        return value
    return check_init(value, context.n_components, context.n_features)


@_parameter_check(needs_shape=True)
def initial_responsibilities(name, value, context):
    """An (N, K) numeric array (its rows are checked as they are read: :func:`check_resp_chunk`)."""
    return check_init_responsibilities(value, context.n_samples, context.n_components)


@_parameter_check(needs_shape=True)
def row_weights(name, value, context):
    """Row weights streamed like X: returns a :class:`fastcavi._io.sources.WeightSource` (kind, shape and
    length checked as it opens them; values in the validating pass)."""
    return WeightSource(value, context.n_samples)


@_parameter_check(needs_shape=False)
def estimator_init_params(name, value, context):
    """scikit-learn's ``init_params``; returns the ``init`` of :func:`fastcavi.fit` it means.

    "kmeans" is ``init="kmeans"`` (k-means++ seeds, Lloyd's iterations, an M-step from the hard
    labels); the others are :class:`ResponsibilityStart` (an M-step from drawn
    responsibilities, as scikit-learn's ``_initialize_parameters``).
    """
    if not isinstance(value, str) or value not in INIT_PARAMS:
        raise ValueError(f"The 'init_params' parameter of BayesianGaussianMixture must be a str among "
                         f"{sorted(INIT_PARAMS)}. Got {value!r} instead.")
    return value if value == "kmeans" else ResponsibilityStart(value)


@_parameter_check(needs_shape=False)
def estimator_covariance_type(name, value, context):
    """scikit-learn's covariance types ("identity" is :func:`fastcavi.fit`'s only)."""
    if value == "identity":
        raise ValueError("The 'covariance_type' parameter of BayesianGaussianMixture must be a str among "
                         "{'full', 'tied', 'diag', 'spherical'} (use fastcavi.fit for 'identity').")
    return value

