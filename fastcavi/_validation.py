"""Parameter and hyperparameter checks, in one place, with scikit-learn's wording.

Every check runs before any pass over the data and raises ``ValueError`` (or
``TypeError`` for a wrong type) naming the parameter and the offending value. Those of the
data's header (its shape and dtype, and ``sample_weight``'s) and of the engine's call
arguments are here too; the checks that need the data's values stay where the data is.
"""
import numbers

import numpy as np

COVARIANCE_TYPES = ("identity", "spherical", "diag", "full", "tied")
WEIGHT_PRIOR_TYPES = ("dirichlet_distribution", "dirichlet_process")
INIT_METHODS = ("k-means++", "random", "random_from_data")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


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


def check_reg_covar_and_exact_cavi(reg_covar, exact_cavi):
    """``reg_covar`` (a finite real >= 0) and ``exact_cavi`` (a bool), for every covariance type.

    They only act on the Wishart families, but a bad value is an error whatever the family.
    """
    return check_real("reg_covar", reg_covar, 0.0, strict=False), check_bool("exact_cavi", exact_cavi)


def check_choice(name, value, choices):
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
    try:
        return np.linalg.cholesky(arr)
    except np.linalg.LinAlgError:
        raise ValueError("'covariance' should be symmetric, positive-definite.") from None


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
    if n_threads is None:
        return None
    import numba

    top = numba.config.NUMBA_NUM_THREADS
    return check_int("n_threads", n_threads, 1, top)


def check_n_samples(n_samples, n_components):
    if n_samples < n_components:
        raise ValueError(f"Expected n_samples >= n_components but got n_components = {n_components}, "
                         f"n_samples = {n_samples}")


def check_features(n_features, expected, owner="the fitted model"):
    if n_features != expected:
        raise ValueError(f"X has {n_features} features, but {owner} is expecting {expected} features as input.")


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
    """Shape (N, K), finite, non-negative, rows summing to 1 (checked on the given array)."""
    arr = np.asarray(R)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"'init_responsibilities' must be a numeric array. Got dtype {arr.dtype}.")
    if arr.shape != (N, K):
        raise ValueError(f"'init_responsibilities' should have the shape ({N}, {K}), but got {arr.shape}.")
    return arr


def check_resp_chunk(R, row0):
    """Rows of init_responsibilities: finite, >= 0, summing to 1 (within 1e-6)."""
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


# -- the data's header: shape and dtype (no values read) ------------------------------------------
def check_data_shape(shape):
    """scikit-learn's errors for data that is not a 2-D array with at least one row and one column."""
    ndim = len(shape)
    if ndim == 1:
        raise ValueError(
            "Expected 2D array, got 1D array instead. Reshape your data either using "
            "array.reshape(-1, 1) if your data has a single feature or array.reshape(1, -1) "
            "if it contains a single sample.")
    if ndim != 2:
        raise ValueError(f"Found array with dim {ndim}. Expected 2D array (n_samples, n_features).")
    if shape[0] < 1:
        raise ValueError(f"Found array with 0 sample(s) (shape={tuple(shape)}) while a minimum of 1 is required.")
    if shape[1] < 1:
        raise ValueError(f"Found array with 0 feature(s) (shape={tuple(shape)}) while a minimum of 1 is required.")


def check_data_dtype(dtype):
    """Real numbers (floats, integers, bools): not complex, not strings or objects."""
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        raise ValueError("Complex data not supported: X has dtype %s." % dtype)
    if dtype.kind not in "fiub":
        raise ValueError(f"X must hold numbers, but its dtype is {dtype} (kind {dtype.kind!r}); "
                         "convert it to a float array first.")
    return dtype


def check_sample_weight_array(w, n_samples):
    """A 1-D array of real numbers of length ``n_samples`` (the values are checked in the validating pass)."""
    if w.dtype.kind not in "fiub":
        raise ValueError(f"sample_weight must hold real numbers, but its dtype is {w.dtype}.")
    if w.ndim != 1:
        raise ValueError(f"Sample weights must be 1D array or scalar, got {w.ndim}D array of shape "
                         f"{w.shape}.")
    if w.shape[0] != n_samples:
        raise ValueError(f"sample_weight.shape == ({w.shape[0]},), expected ({n_samples},)!")
    return w


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


def check_output_array(name, out, shape):
    """None, or a writable float64 ndarray of ``shape`` for a pass to fill."""
    if out is not None and (not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != np.float64
                            or not out.flags.writeable):
        raise ValueError(f"'{name}' must be a writable float64 ndarray of shape {shape}.")
    return out


def check_sample_count(n_samples):
    """The estimator's ``sample(n_samples)``: at least one draw (scikit-learn's message)."""
    if n_samples < 1:
        raise ValueError(f"Invalid value for 'n_samples': {n_samples}. The sampling requires at least "
                         "one sample.")
    return n_samples
