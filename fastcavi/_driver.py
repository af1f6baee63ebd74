"""The CAVI loop: stream chunks -> E-step kernel -> fixed-order reduction -> updates -> ELBO.

It knows nothing of any family's mathematics (that is :mod:`fastcavi._models`) and
nothing of validation (:mod:`fastcavi._validation`). The validating first pass lives in
:mod:`fastcavi._summary`, the initialisations in :mod:`fastcavi._init`.
"""
import contextlib
import importlib
import math
import warnings

import numpy as np

from ._models.base import Stats, elbo_from_stats, n_features, totals_size

#: An ELBO decrease larger than this fraction of the magnitude of the terms it is
#: added up from is not round-off: float64 sums of N terms are accurate to
#: ~N * 1e-16 relative in the worst case, far below this for any N a machine holds.
ELBO_DECREASE_RTOL = 1e-9


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


class ConvergenceWarning(UserWarning):
    """CAVI stopped at ``max_iter`` before the ELBO converged."""


def kernels():
    """The compiled-kernel modules, imported (and numba with them) on first use."""
    return importlib.import_module("fastcavi._kernels.estep")


@contextlib.contextmanager
def numba_threads(n_threads):
    """Run the block with numba's thread count set to ``n_threads``, restored afterwards."""
    if n_threads is None:
        yield
        return
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(int(n_threads))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


class Preprocess:
    """Maps raw rows to the coordinates the model works in.

    Parameters
    ----------
    shift : ndarray of shape (D,)
        Subtracted from every row (the data mean: keeps sums of squares accurate
        for data far from the origin).
    whiten : ndarray of shape (D, D) or None
        Lower Cholesky factor ``L`` of a known covariance; rows become
        ``L^{-1} (x - shift)``. Done in NumPy per chunk (O(chunk x D) memory).
    """

    def __init__(self, shift, whiten=None):
        self.shift = np.array(shift, dtype=np.float64, order="C")
        self.whiten = None if whiten is None else np.array(whiten, dtype=np.float64, order="C")
        self._zero = np.zeros_like(self.shift)

    def __call__(self, chunk):
        """Return ``(rows, kernel_shift)``: what to hand a kernel for this chunk."""
        if self.whiten is None:
            return chunk, self.shift
        from scipy.linalg import solve_triangular

        y = solve_triangular(self.whiten, (chunk - self.shift).T, lower=True).T
        y = np.ascontiguousarray(y)
        y.flags.writeable = False
        return y, self._zero

    def to_model(self, points):
        """Map points (K, D) in data coordinates to model coordinates."""
        y = np.asarray(points, dtype=np.float64) - self.shift
        if self.whiten is not None:
            from scipy.linalg import solve_triangular

            y = solve_triangular(self.whiten, y.T, lower=True).T
        return y

    def to_data(self, points):
        """Map points (K, D) in model coordinates back to data coordinates."""
        y = np.asarray(points, dtype=np.float64)
        if self.whiten is not None:
            y = y @ self.whiten.T
        return y + self.shift


_EMPTY2 = np.zeros((0, 0))
_EMPTY1 = np.zeros(0)


class Workspace:
    """Buffers a kernel reuses across chunks and sweeps (no allocation, no page faults per pass).

    Parameters
    ----------
    kernel : {"diag", "full"}
    K, D : int
    chunk_rows : int
        The largest chunk that will be passed.
    """

    def __init__(self, kernel, K, D, chunk_rows):
        from ._config import BLOCK_ROWS
        import numba

        k = kernels()
        self.key = (kernel, K, D, chunk_rows)
        self.partials = np.empty((-(-chunk_rows // BLOCK_ROWS), totals_size(kernel, K, D)))
        self.scratch = np.empty((numba.config.NUMBA_NUM_THREADS, k.scratch_rows(K, n_features(D, kernel)),
                                 k.SUB_ROWS))


def estep_pass(source, model, coeffs, prep, chunk_rows, outputs=None, workspace=None, check_finite=False):
    """One pass over the data: the statistics of q(z) for the logits ``coeffs``.

    Parameters
    ----------
    source : DataSource
    model : object with a ``kernel`` attribute
        ``"diag"`` or ``"full"``: which quadratic features the coefficients weigh.
    coeffs : tuple of ndarrays
        The kernel's logit coefficients.
    prep : Preprocess
    chunk_rows : int
        A multiple of ``BLOCK_ROWS``.
    outputs : callable or None
        When given, called as ``outputs(row0, resp, lse)`` with each chunk's
        responsibilities (rows, K) and log-sum-exp (rows,), in buffers that are
        reused for the next chunk.
    workspace : Workspace, optional
        Reused buffers (made here when not given).
    check_finite : bool
        Check each chunk for NaN/inf (naming the row) just before its kernel runs: new data
        met at prediction time gets the same error as in fit.

    Returns
    -------
    Stats
    """
    kern = kernels().estep
    full_quad = model.kernel == "full"
    K, D = coeffs[0].shape[0], source.n_features
    totals = np.zeros(totals_size(model.kernel, K, D))
    if workspace is None or workspace.key != (model.kernel, K, D, chunk_rows):
        workspace = Workspace(model.kernel, K, D, chunk_rows)
    # writable C-ordered float64 copies: a read-only array is another numba type (another compile)
    coeffs = tuple(np.array(c, dtype=np.float64, order="C") for c in coeffs)
    want = outputs is not None
    resp_buf = np.empty((chunk_rows, K)) if want else _EMPTY2
    lse_buf = np.empty(chunk_rows) if want else _EMPTY1
    for row0, chunk in source.chunks(chunk_rows):
        if check_finite:
            from ._summary import check_finite_chunk

            check_finite_chunk(chunk, row0)
        rows, shift = prep(chunk)
        n = rows.shape[0]
        resp, lse = (resp_buf[:n], lse_buf[:n]) if want else (resp_buf, lse_buf)
        kern(rows, shift, *coeffs, full_quad, want, resp, lse, workspace.partials, workspace.scratch, totals)
        if want:
            outputs(row0, resp, lse)
    return Stats.from_totals(totals, model.kernel, K, D)


def run_cavi(sweep, model, state, *, max_iter, tol, tol_is_relative=True, callback=None):
    """Coordinate ascent from ``state`` until the ELBO converges or ``max_iter`` sweeps.

    Each sweep updates q(z) (one pass over the data: ``sweep(coeffs)``), then q(pi),
    then the component factors, then evaluates the full ELBO from the same pass.

    Parameters
    ----------
    sweep : callable
        ``sweep(coeffs) -> Stats``.
    model : family object
    state : the starting variational state
    max_iter : int
    tol : float
        Stop when the ELBO gains less than ``tol`` (times ``|ELBO|`` when
        ``tol_is_relative``). ``tol=0`` runs exactly ``max_iter`` sweeps.
    callback : callable or None
        ``callback(iteration, elbo, change)`` after each sweep.

    Returns
    -------
    state, elbos (ndarray of shape (n_iter,)), converged (bool)

    Raises
    ------
    ELBODecreaseError
        When the ELBO decreases by more than round-off.
    FloatingPointError
        When a sweep produces a non-finite statistic or ELBO.
    """
    elbos = []
    converged = False
    for it in range(1, max_iter + 1):
        coeffs = model.coefficients(state)
        stats = sweep(coeffs)
        if not (math.isfinite(stats.lse_sum) and np.all(np.isfinite(stats.S1))
                and np.all(np.isfinite(stats.S2)) and np.all(np.isfinite(stats.Nk))):
            raise FloatingPointError(f"Non-finite sufficient statistics at CAVI iteration {it}; "
                                     "the data or the priors are numerically degenerate.")
        new_state = model.update(stats)
        elbo, magnitude = elbo_from_stats(model, stats, coeffs, new_state)
        if not math.isfinite(elbo):
            raise FloatingPointError(f"The ELBO is not finite ({elbo}) at CAVI iteration {it}.")
        change = math.nan
        if elbos:
            change = elbo - elbos[-1]
            scale = max(magnitude, 1.0)
            if change < -ELBO_DECREASE_RTOL * scale:
                message = (f"The ELBO went down at CAVI iteration {it}: from {elbos[-1]!r} to {elbo!r} "
                           f"(a drop of {-change:.6g}, {-change / scale:.3g} of the magnitude of its terms), "
                           "more than round-off.")
                if getattr(model, "exact_cavi", True):
                    raise ELBODecreaseError(message + " Coordinate ascent never decreases the ELBO: this is a "
                                            "bug or a numerical breakdown.")
                warnings.warn(message + " With reg_covar > 0 scikit-learn's M-step (reproduced exactly) is not an "
                              "exact coordinate-ascent step; pass exact_cavi=True (or reg_covar=0 with a "
                              "positive definite covariance_prior) for exact CAVI.", ELBODecreaseWarning,
                              stacklevel=3)
        elbos.append(elbo)
        state = new_state
        if callback is not None:
            callback(it, elbo, change)
        if len(elbos) >= 2 and tol > 0:
            threshold = tol * abs(elbo) if tol_is_relative else tol
            if change < threshold:
                converged = True
                break
    return state, np.asarray(elbos, dtype=np.float64), converged
