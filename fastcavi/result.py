"""The fitted result: its parameters, streamed predictions, and the model file."""
import os
import warnings
import zipfile
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

import numpy as np

from ._validation import WarmStart
from .engine import Model, State, _frozen

#: Version of the model file format written by :meth:`FitResult.save`. Version 1 (fastcavi
#: 0.1) held the public parameters only, not the variational state: it cannot be resumed.
MODEL_FORMAT_VERSION = 2


@dataclass(frozen=True, eq=False)
class FitResult(WarmStart):
    """A fitted variational posterior. Arrays are read-only (and cannot be made writable).

    Made by :func:`fastcavi.fit` and :func:`fastcavi.load` (or :meth:`from_state`), not by hand.

    Parameters
    ----------
    model : fastcavi.engine.Model
        The model: family, resolved priors, coordinates.
    state : fastcavi.engine.State
        The variational state (model coordinates): what warm starts and the engine continue from.
    covariance_type : str
    weight_concentration_prior_type : str
    elbo : ndarray of shape (n_iter,)
        The full ELBO (every constant kept) after each CAVI sweep of the best run (a warm start's
        trace continues that of the result it started from, when the model is the same).
    n_iter : int
        Sweeps in ``elbo``.
    converged : bool
    weights : ndarray of shape (K,)
        ``E[pi]`` (for the Dirichlet process, the normalised expected stick weights,
        as scikit-learn's ``weights_``).
    weight_concentration : ndarray of shape (K,) or tuple of two
        The Dirichlet posterior concentrations ``alpha_tilde`` (the seed's), or the
        stick-breaking Beta parameters ``(a, b)``.
    means : ndarray of shape (K, D)
        ``E[mu_k]``.
    mean_precision : ndarray of shape (K,)
        ``nu_tilde_k``: ``Cov[mu_k] = Sigma / nu_tilde_k`` (identity/known covariance) or
        scikit-learn's ``mean_precision_`` (beta_k).
    covariances : ndarray
        The known covariance (D, D) for ``"identity"``; scikit-learn's ``covariances_``
        for the other families.
    precisions, precisions_cholesky : ndarray
        Inverses of ``covariances`` and their Cholesky factors, scikit-learn's shapes.
    degrees_of_freedom : ndarray of shape (K,), float (tied) or None
        Wishart degrees of freedom (None for known covariances).
    priors : mapping
        The hyperparameters used, defaults resolved (scikit-learn's ``*_prior_`` attributes).

    Attributes
    ----------
    lower_bound : float
        The last ELBO.
    n_components, n_features : int
        K and D.
    """

    model: Model = field(repr=False)
    state: State = field(repr=False)
    covariance_type: str
    weight_concentration_prior_type: str
    elbo: np.ndarray
    n_iter: int
    converged: bool
    weights: np.ndarray
    weight_concentration: Any
    means: np.ndarray
    mean_precision: np.ndarray
    covariances: np.ndarray
    precisions: np.ndarray
    precisions_cholesky: np.ndarray
    degrees_of_freedom: Any
    priors: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_state(cls, model: Model, state: State, elbo, converged: bool) -> "FitResult":
        """The result for ``state`` of ``model`` (parameters in data coordinates).

        Parameters
        ----------
        model : fastcavi.engine.Model
        state : fastcavi.engine.State
        elbo : array-like of shape (n_iter,)
            The ELBO trace.
        converged : bool

        Returns
        -------
        FitResult
        """
        public = model.public_parameters(state)
        return cls(model=model, state=state, covariance_type=model.covariance_type,
                   weight_concentration_prior_type=model.weight_concentration_prior_type,
                   elbo=_frozen(np.asarray(elbo, dtype=np.float64)), n_iter=int(np.size(elbo)),
                   converged=bool(converged),
                   **{k: (_frozen(v) if v is not None else None) for k, v in public.items()},
                   priors=model.priors)

    def __reduce__(self):  # pickles as model, state and trace; unpickled immutable again
        return FitResult.from_state, (self.model, self.state, np.asarray(self.elbo), self.converged)

    @property
    def lower_bound(self) -> float:
        return float(self.elbo[-1])

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    @property
    def n_features(self) -> int:
        return self.means.shape[1]

    def _predict_chunks(self, source, what, write, *, n_threads=None, chunk_size=None):
        """Stream ``source`` (a checked DataSource) and hand ``write(row0, values)`` each chunk's predictions.

        ``what``: "proba" (responsibilities, (n, K) float64), "labels" (argmax, (n,) int64) or
        "score" (log-density, (n,) float64); chunks come in row order, in buffers reused for the next.
        """
        from . import engine

        def on_chunk(row0, resp, log_density):
            bad = np.flatnonzero(~np.isfinite(log_density))
            if bad.size:
                raise ValueError(f"Row {row0 + int(bad[0])} of X has a non-finite log-density under the model "
                                 "(its values overflow: they are far outside the fitted components' scale).")
            if what == "proba":
                write(row0, resp)
            elif what == "labels":
                write(row0, np.argmax(resp, axis=1).astype(np.int64, copy=False))
            else:
                write(row0, log_density)

        engine.predict_chunks(self.model, self.state, source, on_chunk, n_threads=n_threads, chunk_size=chunk_size)

    def _predict(self, X, what, out, n_threads, chunk_size):
        """The predictions ``what`` of new rows X, in ``out`` (checked before any work) or a new array."""
        from . import _validation as V
        from ._io.sources import DataSource

        if _is_dask(X):
            if out is not None:
                raise TypeError("'out' is not supported for Dask arrays: their predictions are a lazy Dask array "
                                "(store it with dask.array.store(predictions, target) or .to_zarr(...)).")
            from . import _dask_blocks as lazily

            lazy = {"proba": lazily.predict_proba, "labels": lazily.predict, "score": lazily.score_samples}[what]
            return lazy(self, X, n_threads=n_threads, chunk_size=chunk_size)
        source = DataSource(X)
        V.check_features(source.n_features, self.n_features)
        N, K = source.n_samples, self.n_components
        shape = (N, K) if what == "proba" else (N,)
        if out is None:
            out = np.empty(shape, dtype=np.int64 if what == "labels" else np.float64)
        else:
            V.check_prediction_out(out, what, shape, K, X)

        def write(row0, values):
            out[row0:row0 + values.shape[0]] = values

        self._predict_chunks(source, what, write, n_threads=n_threads, chunk_size=chunk_size)
        return out

    def predict_proba(self, X, *, out: Optional[np.ndarray] = None, n_threads: Optional[int] = None,
                      chunk_size: Optional[int] = None) -> np.ndarray:
        """Responsibilities ``q(z_n = k)`` of new rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), np.memmap, .npy path, h5py/zarr dataset, or dask array
            New data; streamed in chunks, checked for NaN/inf (the error names the row). A
            ``dask.array.Array`` gives a lazy Dask array, computed block by block.
        out : ndarray of shape (n_samples, K), float64, optional
            Filled chunk by chunk and returned: a writable array or ``np.memmap`` (say
            ``np.lib.format.open_memmap(path, "w+", np.float64, (n_samples, K))``), which keeps
            the memory of the call to one chunk's whatever ``n_samples``. The same bits as
            without it. Checked before any work (shape, dtype, writable, no memory shared with
            X); on an error its rows are partly written. Not supported for Dask arrays (TypeError).
        n_threads : int, optional
            Threads for this call. Results do not depend on it.
        chunk_size : int, optional
            Rows per chunk. Results do not depend on it.

        Returns
        -------
        ndarray of shape (n_samples, K)
            ``out`` when given.
        """
        return self._predict(X, "proba", out, n_threads, chunk_size)

    def predict(self, X, *, out: Optional[np.ndarray] = None, n_threads: Optional[int] = None,
                chunk_size: Optional[int] = None) -> np.ndarray:
        """Most responsible component of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), np.memmap, .npy path, h5py/zarr dataset, or dask array
            New data; streamed in chunks, checked for NaN/inf (the error names the row). A
            ``dask.array.Array`` gives a lazy Dask array, computed block by block.
        out : ndarray of shape (n_samples,), integer dtype, optional
            Filled chunk by chunk and returned (a writable array or ``np.memmap``), of any integer
            dtype that holds ``K - 1``: int64, as scikit-learn's labels, or a narrower one
            (uint8, say) for a smaller file. Checked as in :meth:`predict_proba`.
        n_threads : int, optional
            Threads for this call. Results do not depend on it.
        chunk_size : int, optional
            Rows per chunk. Results do not depend on it.

        Returns
        -------
        ndarray of shape (n_samples,), int64
            ``out`` (of its dtype) when given.
        """
        return self._predict(X, "labels", out, n_threads, chunk_size)

    def score_samples(self, X, *, out: Optional[np.ndarray] = None, n_threads: Optional[int] = None,
                      chunk_size: Optional[int] = None) -> np.ndarray:
        """``logsumexp_k (E[log pi_k] + E[log N(x | mu_k, Lambda_k)])`` per row.

        The same quantity as scikit-learn's ``BayesianGaussianMixture.score_samples``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), np.memmap, .npy path, h5py/zarr dataset, or dask array
            New data; streamed in chunks, checked for NaN/inf (the error names the row). A
            ``dask.array.Array`` gives a lazy Dask array, computed block by block.
        out : ndarray of shape (n_samples,), float64, optional
            Filled chunk by chunk and returned (a writable array or ``np.memmap``). Checked as
            in :meth:`predict_proba`.
        n_threads : int, optional
            Threads for this call. Results do not depend on it.
        chunk_size : int, optional
            Rows per chunk. Results do not depend on it.

        Returns
        -------
        ndarray of shape (n_samples,)
            ``out`` when given.
        """
        return self._predict(X, "score", out, n_threads, chunk_size)

    def summary(self, max_features: int = 8) -> str:
        """The model's summary, as ``fastcavi info`` prints it.

        Parameters
        ----------
        max_features : int, default 8
            Numbers shown of each mean and covariance summary (then ``...``).

        Returns
        -------
        str
            Lines: the covariance type, K and D; the weight prior's type; the sweeps, whether
            the fit converged, the ELBO; the model file's format version; the priors; and the
            table of components sorted by weight (index, weight ``E[pi_k]``, expected size
            ``sum_n q(z_n = k)``, mean, and the square roots of the covariance's eigenvalues), with
            how many components hold 99% of the weight (see :func:`fastcavi.report.component_table`).
        """
        from ._components import summary

        return summary(self, max_features, MODEL_FORMAT_VERSION)

    # -- the model file -----------------------------------------------------------------------
    def save(self, path: Union[str, os.PathLike]) -> str:
        """Write the whole result (model, variational state, ELBO trace) to an ``.npz`` file.

        :func:`fastcavi.load` reads it back, and ``fastcavi.fit(X, K, init=load(path))`` continues
        the fit. The file carries a format version; unknown versions are refused on load.

        Parameters
        ----------
        path : str or os.PathLike
            Where to write; ``.npz`` is appended when missing.

        Returns
        -------
        str
            The path written (``.npz`` is appended when ``path`` lacks it, as ``np.savez`` does).
        """
        arrays = dict(format_version=MODEL_FORMAT_VERSION, file_kind="fastcavi model",
                      elbo=self.elbo, converged=self.converged)
        for k, v in self.model.to_dict().items():
            if v is None:
                arrays[f"model_none__{k}"] = 0
            else:
                arrays[f"model__{k}"] = v
        for k, v in self.state.to_dict().items():
            arrays[f"state__{k}"] = v
        path = os.fspath(path)
        if not path.endswith(".npz"):
            path += ".npz"
        np.savez(path, **arrays)
        return path


def fitted_result(model, best, history, tol, stacklevel):
    """The :class:`FitResult` of the best run of :func:`fastcavi._driver.loop.run_restarts`, after ``history``
    (a warm start's ELBOs).

    Warns (:class:`fastcavi.ConvergenceWarning`, scikit-learn's message) when that run did not
    converge and ``tol > 0``; ``stacklevel`` is the caller's, as for :func:`warnings.warn`.
    """
    state, elbos, converged = best
    if tol > 0 and not converged:
        from .exceptions import ConvergenceWarning  # made on first use: it may import scikit-learn

        warnings.warn("Best performing initialization did not converge. Try different init parameters, "
                      "or increase max_iter, tol, or check for degenerate data.", ConvergenceWarning,
                      stacklevel=stacklevel + 1)
    return FitResult.from_state(model, state, np.concatenate((history, elbos)), converged)


def _is_dask(X):
    """Whether X is a Dask collection (by its type's module: dask is not imported for other input)."""
    return type(X).__module__.split(".")[0] == "dask"


def _read_model_file(path):
    """The arrays of a model file, or a ValueError naming ``path`` and saying why it is not one."""
    def not_a_model(why):
        return ValueError(f"{path!r} is not a fastcavi model file (one written by FitResult.save): {why}.")

    if not os.path.exists(path):
        raise not_a_model("no such file")
    if os.path.isdir(path):
        raise not_a_model("it is a directory")
    try:
        f = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise not_a_model(f"it cannot be read as an .npz archive ({type(exc).__name__}: {exc})") from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise not_a_model("it holds a single array (a .npy file), not an .npz archive")
    try:
        with f:
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise not_a_model(f"an entry cannot be read ({type(exc).__name__}: {exc})") from None
    missing = [k for k in ("format_version", "elbo", "converged") if k not in data]
    if missing:
        raise not_a_model(f"it lacks the entries {', '.join(missing)}")
    raw = data["format_version"]
    if raw.shape != () or raw.dtype.kind not in "iu":
        raise not_a_model(f"its format_version is not an integer (a {raw.dtype} array of shape {raw.shape})")
    version = int(raw)
    if version != MODEL_FORMAT_VERSION:
        hint = " (version 1 files hold no variational state: refit)" if version == 1 else ""
        raise not_a_model(f"its format version is {version}; this fastcavi reads version "
                          f"{MODEL_FORMAT_VERSION}{hint}")
    return data


def load(path: Union[str, os.PathLike]) -> FitResult:
    """Read a :class:`FitResult` written by :meth:`FitResult.save`.

    Parameters
    ----------
    path : str or os.PathLike
        An ``.npz`` model file.

    Returns
    -------
    FitResult
        With its model and variational state: it predicts, and ``fit(X, K, init=load(path))`` continues it.

    Raises
    ------
    ValueError
        When the file is missing, is not a fastcavi model file, is corrupted, or has a format
        version this fastcavi does not read.
    """
    path = os.fspath(path)
    data = _read_model_file(path)
    try:
        config = {k[len("model__"):]: v for k, v in data.items() if k.startswith("model__")}
        for k, v in config.items():  # numbers in the configuration (priors, shift): real and finite
            if v.dtype.kind == "c" or (v.dtype.kind in "fiub" and not np.all(np.isfinite(v))):
                raise ValueError(f"model__{k} is {'complex' if v.dtype.kind == 'c' else 'not finite'}")
        config.update({k[len("model_none__"):]: None for k in data if k.startswith("model_none__")})
        config = {k: (v.item() if isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype.kind in "fiub" and
                      k not in ("weight_concentration_prior", "covariance_prior", "mean_prior") else v)
                  for k, v in config.items()}
        model = Model.from_dict(config)
        shift = np.asarray(model.shift)
        if model.n_features < 1 or shift.shape != (model.n_features,) or not np.all(np.isfinite(shift)):
            raise ValueError(f"model__shift of shape {shift.shape} does not fit n_features={model.n_features}, "
                             "or is not finite")
        state = State.from_dict({k[len("state__"):]: v for k, v in data.items() if k.startswith("state__")})
        model._check_state(state)
        elbo, converged = data["elbo"], data["converged"]
        if elbo.ndim != 1 or elbo.dtype.kind != "f" or not np.all(np.isfinite(elbo)):
            raise ValueError("elbo is not a 1-D array of finite floats")
        if converged.shape != () or converged.dtype.kind not in "biu" or int(converged) not in (0, 1):
            raise ValueError("converged is not a boolean")
        result = FitResult.from_state(model, state, elbo, bool(converged))
    except Exception as exc:  # anything in an untrusted file: a clear error naming the file
        raise ValueError(f"{path!r} is a corrupted fastcavi model file ({exc}).") from None
    return result
