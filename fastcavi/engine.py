"""The public engine: the pieces of a CAVI sweep, for tools that drive fastcavi as a backend.

``fastcavi.fit`` is a short loop over these calls, and so can be any other driver (a
process pool, Dask, a stream of batches)::

    import fastcavi
    from fastcavi import engine

    r = fastcavi.fit(X, K, covariance_type="full", init=M0, max_iter=1, tol=0)
    model, state = r.model, r.state
    for it in range(n):
        stats = sum(engine.estep(model, state, part) for part in parts)  # Stats support + and sum()
        state = model.update(stats)                                      # q(pi), then the components
        elbo = model.elbo(stats, state)                                  # the full ELBO, as FitResult.elbo

The contract:

* :func:`summarize` and :func:`estep` are one compiled pass each over any data
  ``fastcavi.fit`` accepts (ndarray, ``np.memmap``, ``.npy`` path, h5py/zarr dataset).
* :class:`Stats` and :class:`DataSummary` are additive, exactly: the sum over parts does
  not depend on the order or grouping of the additions, so parts whose sizes are whole
  multiples of :data:`GRANULARITY` rows (the last part may be shorter) give bitwise the
  statistics of a single pass, and a sweep over them equals ``fit`` bit for bit. Both
  serialise to one flat float64 array (``to_array`` / ``from_array``).
* :class:`Model` and :class:`State` are immutable, and serialise to plain dicts of arrays
  (``to_dict`` / ``from_dict``): no pickle needed.
* Results do not depend on the number of threads. Several Python threads may run passes at
  once (the kernels run on fastcavi's own threads, under any numba threading layer); a driver
  that does (a Dask worker's tasks) divides the cores among them with :func:`kernel_threads`.
"""
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from . import options as _declared
from ._config import SEGMENT_ROWS
from ._models import fixed
from ._models.base import State, Stats, frozen_array
from ._models.summary import DataSummary

__all__ = ["GRANULARITY", "Model", "State", "Stats", "DataSummary", "summarize", "estep", "responsibility_stats",
           "nearest_mean_stats", "predict_chunks", "kernel_threads"]

#: Rows per segment: parts of whole multiples of this many rows (except the last) give bitwise
#: the statistics of one pass over all rows. It divides 65,536.
GRANULARITY: int = SEGMENT_ROWS

#: :class:`Model`'s options and their defaults: those of :data:`fastcavi.options.PARAMETERS`.
_OPTION_DEFAULTS = {name: _declared.BY_NAME[name].default for name in _declared.MODEL_OPTIONS}


_frozen = frozen_array


def freeze_state(state: State) -> State:
    """``state`` with every array read-only for good."""
    return state.frozen()


class Model:
    """A Bayesian Gaussian mixture: the family, its priors (defaults resolved) and its coordinates.

    Parameters
    ----------
    n_components : int
        K.
    covariance_type : {"identity", "spherical", "diag", "full", "tied"}, default "identity"
        As in :func:`fastcavi.fit`.
    summary : DataSummary
        The data's summary (:func:`summarize`): it gives the coordinates' shift (its mean)
        and the data-dependent defaults of the priors (scikit-learn's ``mean_prior``,
        ``covariance_prior``, and the tied family's total scatter).
    **options
        The priors and options of :func:`fastcavi.fit`, with the same names and defaults
        (declared in :mod:`fastcavi.options`, layer "model"): ``covariance``,
        ``weight_concentration_prior_type``, ``weight_concentration_prior``,
        ``mean_precision_prior``, ``mean_prior``, ``degrees_of_freedom_prior``,
        ``covariance_prior``, ``reg_covar``, ``exact_cavi``.

    Attributes
    ----------
    n_components, n_features : int
    covariance_type, weight_concentration_prior_type, layout : str
        ``layout`` is the statistics' layout: ``"full"`` (full), ``"linear"`` (tied: no quadratic
        features) or ``"diag"`` (the others).
    priors : mapping
        The hyperparameters with their defaults resolved (scikit-learn's ``*_prior_``).
    shift : ndarray of shape (D,)
        Model coordinates are ``x - shift`` (whitened by the known covariance for "identity").

    Raises
    ------
    ValueError
        For any invalid option (before any data is read).
    """

    def __init__(self, n_components: int, covariance_type: str = "identity", *, summary: DataSummary,
                 **options: Any) -> None:
        from . import _validation as V

        V.check_option_names(options, _OPTION_DEFAULTS, "Model()")
        V.check_instance("summary", summary, DataSummary, "fastcavi.engine.DataSummary")
        values = dict(_OPTION_DEFAULTS, **options, n_components=n_components, covariance_type=covariance_type)
        self._build(_declared.check(values, shape=(None, summary.n_features)), summary)

    @classmethod
    def _from_checked(cls, checked: Mapping[str, Any], summary: DataSummary) -> "Model":
        """The model of parameters that :func:`fastcavi.options.check` has checked (``fit``'s path)."""
        model = cls.__new__(cls)
        model._build(checked, summary)
        return model

    def _build(self, checked, summary):
        from ._models import families

        self._set_config(families.resolve(checked, summary.n_features).build(summary))

    def _set_config(self, config):
        from ._models import families

        self._config = {k: (_frozen(v) if isinstance(v, np.ndarray) else v) for k, v in config.items()}
        self._family, self._coords = families.rebuild(self._config)

    # -- identity --------------------------------------------------------------------------
    @property
    def n_components(self) -> int:
        return int(self._config["n_components"])

    @property
    def n_features(self) -> int:
        return int(self._config["n_features"])

    @property
    def covariance_type(self) -> str:
        return self._config["covariance_type"]

    @property
    def weight_concentration_prior_type(self) -> str:
        return self._config["weight_concentration_prior_type"]

    @property
    def layout(self) -> str:
        return self._family.layout

    @property
    def shift(self) -> np.ndarray:
        return self._config["shift"]

    @property
    def exact_coordinate_ascent(self) -> bool:
        """Whether a sweep is exact coordinate ascent (the ELBO can then never go down).

        False only for the Wishart families with ``reg_covar > 0`` and ``exact_cavi=False``
        (scikit-learn's updates; see :class:`fastcavi.ELBODecreaseWarning`).
        """
        return bool(getattr(self._family, "exact_cavi", True))

    @property
    def priors(self) -> Mapping[str, Any]:
        from ._models.base import FrozenDict

        names = ("weight_concentration_prior", "mean_precision_prior", "mean_prior")
        if self.covariance_type == "identity":
            whiten = self._config["whiten"]
            extra = dict(covariance=None if whiten is None else _frozen(fixed.gram(whiten)))
        else:
            names += ("degrees_of_freedom_prior", "covariance_prior", "reg_covar")
            extra = {}
        return FrozenDict({n: self._config[n] for n in names}, **extra)

    # -- CAVI ------------------------------------------------------------------------------
    def update(self, stats: Stats) -> State:
        """q(pi), then the component factors, from the statistics of q(z) (the CAVI updates).

        Parameters
        ----------
        stats : Stats
            Statistics of q(z) over all the rows (summed over parts).

        Returns
        -------
        State
            The updated variational state (frozen).

        Raises
        ------
        ValueError
            When ``stats`` do not fit the model, or a component covariance is not positive
            definite (scikit-learn's "ill-defined empirical covariance").
        FloatingPointError
            When a statistic is not finite.
        """
        self._check_stats(stats)
        return freeze_state(self._family.update(stats))

    def elbo(self, stats: Stats, state: State) -> float:
        """The full ELBO of q(z) (whose statistics are ``stats``) and q(pi, theta) = ``state``.

        After ``state = model.update(stats)`` this is the ELBO that :func:`fastcavi.fit`
        reports for the sweep that produced ``stats``.

        Parameters
        ----------
        stats : Stats
        state : State

        Returns
        -------
        float
            ``E_q[log p(X, Z, pi, theta)] - E_q[log q(Z, pi, theta)]``, every constant kept.
        """
        return self.elbo_and_magnitude(stats, state)[0]

    def elbo_and_magnitude(self, stats: Stats, state: State) -> Tuple[float, float]:
        """The ELBO and the sum of the magnitudes of its terms (what its round-off is relative to).

        Parameters
        ----------
        stats : Stats
        state : State

        Returns
        -------
        elbo : float
        magnitude : float
            The sum of the absolute values of the terms the ELBO is added up from.
        """
        from ._models.base import elbo_from_stats

        self._check_stats(stats)
        return elbo_from_stats(self._family, stats, state)

    def state_from_means(self, means: np.ndarray) -> State:
        """The seed's start for "identity": q(mu_k) = N(means_k, Sigma), q(pi) = the prior.

        Parameters
        ----------
        means : ndarray of shape (K, D)
            In data coordinates.

        Returns
        -------
        State
        """
        if self.covariance_type != "identity":
            raise ValueError("state_from_means is the known-covariance model's start; the Wishart families start "
                             "with an M-step: model.update(engine.responsibility_stats(model, X, R)).")
        return freeze_state(self._family.state_from_means(self._coords.to_model(means)))

    def _check_stats(self, stats):
        # statistics come from the data: whether they fit this model and are finite is checked here, where they are
        if not isinstance(stats, Stats):
            raise TypeError(f"Expected fastcavi.engine.Stats, got {type(stats).__name__}.")
        if (stats.layout, stats.n_components, stats.n_features) != (self.layout, self.n_components,
                                                                    self.n_features):
            hint = (" Tied models now accumulate the 'linear' layout (no quadratic features): statistics of the "
                    "'diag' layout come from an earlier fastcavi; compute them again with this one."
                    if (stats.layout, self.layout) == ("diag", "linear") else "")
            raise ValueError(f"Stats of layout ({stats.layout!r}, K={stats.n_components}, D={stats.n_features}) "
                             f"do not fit this model ({self.layout!r}, K={self.n_components}, "
                             f"D={self.n_features}).{hint}")
        if not stats.is_finite():
            raise FloatingPointError("Non-finite sufficient statistics: the data or the priors are numerically "
                                     "degenerate.")

    # -- results -----------------------------------------------------------------------------
    def public_parameters(self, state: State) -> Dict[str, Any]:
        """scikit-learn's attributes of ``state``, in data coordinates.

        Parameters
        ----------
        state : State

        Returns
        -------
        dict
            ``weights``, ``weight_concentration``, ``means``, ``mean_precision``, ``covariances``,
            ``precisions``, ``precisions_cholesky``, ``degrees_of_freedom``.
        """
        return self._family.public_parameters(state, self._coords)

    def coefficients(self, state: State):
        """The logit coefficients the E-step kernel uses for ``state``.

        They are ``E[log pi_k] + E[log N(x | mu_k, Lambda_k)]`` less, at most, a part common to
        every component (tied's quadratic term), which changes no responsibility; ``estep``'s
        ``log_density`` output adds it back.

        Parameters
        ----------
        state : State

        Returns
        -------
        layout : {"diag", "full", "linear"}
        coefficients : tuple of ndarray
            ``(bias (K,), W (K, F))``: ``logit_k(y) = bias_k + W_k . phi(y)``.
        """
        return self._family.layout, self._family.coefficients(state)

    # -- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        """The resolved configuration, for :meth:`from_dict`.

        Returns
        -------
        dict
            Plain values and float64 arrays (None where not applicable): the family, K, D, the
            shift (and whitening), and every prior with its default resolved.
        """
        return dict(self._config)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> "Model":
        """A model from :meth:`to_dict`'s output.

        Parameters
        ----------
        config : mapping
            As :meth:`to_dict` returns it (arrays may come back from an ``.npz`` file).

        Returns
        -------
        Model
        """
        from ._models import families

        missing = [k for k in families.CONFIG_KEYS if k not in config]
        if missing:
            raise ValueError(f"Incomplete model configuration: missing {missing}.")
        model = cls.__new__(cls)
        clean = {}
        for k in families.CONFIG_KEYS:
            v = config[k]
            if isinstance(v, np.ndarray) and v.dtype.kind in "US":
                v = str(v)
            elif isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype == bool:
                v = bool(v)
            clean[k] = v
        clean["n_components"], clean["n_features"] = int(clean["n_components"]), int(clean["n_features"])
        model._set_config(clean)
        return model

    def _check_state(self, state: "State") -> None:
        """Raise a ValueError naming the first field of ``state`` that this model cannot hold.

        For a state read from a file or another process (untrusted): each field must have the shape the
        covariance type gives it for this model's K and D, be finite, and lie in its domain (positive
        concentrations, mean precisions and covariances, degrees of freedom above D - 1, Cholesky factors
        with a positive diagonal).
        """
        K, D, cov = self.n_components, self.n_features, self.covariance_type

        def check(name, value, shape, positive=False, above=None):
            value = np.asarray(value)
            if value.shape != shape:
                raise ValueError(f"{name} has shape {value.shape}; this model ({cov}, K={K}, D={D}) needs {shape}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{name} holds NaN or infinite values")
            if positive and not np.all(value > 0):
                raise ValueError(f"{name} holds values that are not positive")
            if above is not None and not np.all(value > above):
                raise ValueError(f"{name} holds values not above {above}")

        wc = state.weight_concentration
        if self.weight_concentration_prior_type == "dirichlet_process":
            if not isinstance(wc, tuple):
                raise ValueError("weight_concentration must be a stick-breaking pair (_a, _b) for a Dirichlet process")
            check("weight_concentration_a", wc[0], (K,), positive=True)
            check("weight_concentration_b", wc[1], (K,), positive=True)
        else:
            if isinstance(wc, tuple):
                raise ValueError("weight_concentration is a stick-breaking pair, but the weights are Dirichlet")
            check("weight_concentration", wc, (K,), positive=True)
        check("means", state.means, (K, D))
        check("mean_precision", state.mean_precision, (K,), positive=True)
        wishart = cov != "identity"
        for name in ("degrees_of_freedom", "covariances", "precisions_cholesky"):
            if (getattr(state, name) is None) == wishart:
                raise ValueError(f"{name} is {'missing' if wishart else 'present'}: "
                                 f"the {cov!r} covariance type {'has' if wishart else 'has no'} such field")
        if not wishart:
            return
        shapes = dict(spherical=(K,), diag=(K, D), full=(K, D, D), tied=(D, D))
        check("degrees_of_freedom", state.degrees_of_freedom, (K,), above=D - 1)
        check("covariances", state.covariances, shapes[cov], positive=cov in ("spherical", "diag"))
        check("precisions_cholesky", state.precisions_cholesky, shapes[cov], positive=cov in ("spherical", "diag"))
        if cov in ("full", "tied"):
            chol = np.asarray(state.precisions_cholesky).reshape(-1, D, D)
            if not np.all(np.diagonal(chol, axis1=1, axis2=2) > 0):
                raise ValueError("precisions_cholesky has a diagonal entry that is not positive")

    def __reduce__(self):  # pickles as its configuration (no family objects)
        return Model.from_dict, (self.to_dict(),)

    def __eq__(self, other):
        if not isinstance(other, Model):
            return NotImplemented
        a, b = self._config, other._config
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)

    __hash__ = None

    def __repr__(self):
        return (f"Model(n_components={self.n_components}, covariance_type={self.covariance_type!r}, "
                f"n_features={self.n_features})")


def _same(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return a is not None and b is not None and np.array_equal(np.asarray(a), np.asarray(b))
    return a == b


def _source(X):
    from ._io.sources import DataSource

    return X if isinstance(X, DataSource) else DataSource(X)


def _weights(sample_weight, n_samples):
    from ._io.sources import WeightSource

    if sample_weight is None or isinstance(sample_weight, WeightSource):
        return sample_weight
    return WeightSource(sample_weight, n_samples)


def summarize(X, sample_weight=None, *, shift: Optional[np.ndarray] = None, full_scatter: bool = True,
              n_threads: Optional[int] = None, chunk_size: Optional[int] = None, row_offset: int = 0,
              check_weight_sum: bool = True) -> DataSummary:
    """Validate the data and take its weighted count, mean and scatter, in one compiled pass.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), np.memmap, path to a .npy file, or an h5py/zarr dataset
    sample_weight : array-like of shape (n_samples,), np.memmap or path to a .npy file, optional
        Non-negative finite weights (frequency weights: weight 2 counts a row twice).
    shift : ndarray of shape (D,), optional
        The point the moments are taken about (default: the first row of X). Summaries
        of parts add up exactly when they share it: pass the same shift to every part.
    full_scatter : bool, default True
        Accumulate the full scatter matrix (needed by "full" and "tied"), or only its diagonal.
    n_threads : int, optional
        Threads for this call. Results do not depend on it.
    chunk_size : int, optional
        Rows per chunk, rounded up to a multiple of :data:`GRANULARITY`. Results do not depend on it.
    row_offset : int, default 0
        The global index of X's first row when X is a part of a larger data set: errors then
        name the global row.
    check_weight_sum : bool, default True
        Raise scikit-learn's error when the weights sum to 0. Pass False for a part of a larger
        data set, whose weights may all be 0: the sum that matters is that of the parts' summaries
        added up (``DataSummary.count``).

    Returns
    -------
    DataSummary

    Raises
    ------
    ValueError
        For data that is not a finite real 2-D array (naming the first row and column with a
        NaN or inf), for weights of the wrong length or with a negative or non-finite value
        (naming the first such row), and for weights that sum to 0 (unless ``check_weight_sum``
        is False).
    """
    from . import _validation as V
    from ._passes import numba_threads, summary_chunk_rows, summary_pass

    source = _source(X)
    weights = _weights(sample_weight, source.n_samples)
    n_threads = V.check_n_threads(n_threads)
    D = source.n_features
    if shift is None:
        shift = source.rows([0])[0]
        if not np.all(np.isfinite(shift)):
            shift = np.zeros(D)  # the pass below names the bad row
    else:
        shift = V.check_shift(shift, D)
    F = D * (D + 1) // 2 if full_scatter else D
    chunk_rows = summary_chunk_rows(chunk_size, source, D + F)
    with numba_threads(n_threads):
        summary = summary_pass(source, weights, chunk_rows, shift, bool(full_scatter),
                               row_offset=V.check_int("row_offset", row_offset, 0))
    if weights is not None and check_weight_sum:  # needs the weights' values: checked after the pass
        V.check_weight_total(summary.count)
    return summary


def estep(model: Model, state: State, X, *, sample_weight=None, responsibilities: Optional[np.ndarray] = None,
          log_density: Optional[np.ndarray] = None, n_threads: Optional[int] = None,
          chunk_size: Optional[int] = None, check_finite: bool = True, row_offset: int = 0) -> Stats:
    """One compiled pass: the responsibilities of q(z) under ``state`` and their sufficient statistics.

    Parameters
    ----------
    model : Model
    state : State
    X : array-like of shape (n_samples, n_features), np.memmap, path to a .npy file, or an h5py/zarr dataset
    sample_weight : array-like of shape (n_samples,), optional
        Row weights; every statistic (counts, sums, the entropy term) is weighted.
    responsibilities : ndarray of shape (n_samples, K), float64, optional
        Filled with ``q(z_n = k)`` (unweighted), when given.
    log_density : ndarray of shape (n_samples,), float64, optional
        Filled with each row's variational log-density ``logsumexp_k (E[log pi_k] + E[log N(x_n |
        mu_k, Lambda_k)])`` (scikit-learn's ``score_samples``), when given.
    n_threads : int, optional
    chunk_size : int, optional
        Rows per chunk, rounded up to a multiple of :data:`GRANULARITY`. Results do not depend on it.
    check_finite : bool, default True
        Check each chunk for NaN/inf first (a fast extra read of the chunk); the error names the row.
    row_offset : int, default 0
        The global index of X's first row when X is a part of a larger data set: errors then
        name the global row.

    Returns
    -------
    Stats
        Additive statistics of these rows (add those of other parts with ``+``).
    """
    from . import _validation as V

    V.check_instance("model", model, Model, "fastcavi.engine.Model")
    V.check_instance("state", state, State, "fastcavi.engine.State")
    source = _source(X)
    V.check_features(source.n_features, model.n_features, owner="the model")
    weights = _weights(sample_weight, source.n_samples)
    n_threads = V.check_n_threads(n_threads)
    N, K = source.n_samples, model.n_components
    V.check_output_array("responsibilities", responsibilities, (N, K))
    V.check_output_array("log_density", log_density, (N,))
    outputs = None if responsibilities is None and log_density is None else _output_writer(
        model, state, responsibilities, log_density)
    return _run_estep(model, state, source, weights, outputs, n_threads, chunk_size, check_finite,
                      V.check_int("row_offset", row_offset, 0))


def _run_estep(model, state, source, weights, outputs, n_threads, chunk_size, check_finite, row_offset):
    """The E-step pass of checked arguments (``outputs``: the pass's per-chunk callback, or None)."""
    from ._passes import estep_chunk_rows, estep_pass, numba_threads

    layout, coeffs = model.coefficients(state)
    chunk_rows = estep_chunk_rows(chunk_size, source, model.n_components, layout)
    with numba_threads(n_threads):
        stats, _ = estep_pass(source, weights, model._coords, layout, coeffs, chunk_rows, outputs=outputs,
                              check_finite=check_finite, row_offset=row_offset)
    return stats


def predict_chunks(model: Model, state: State, X, on_chunk, *, n_threads: Optional[int] = None,
                   chunk_size: Optional[int] = None) -> None:
    """Stream new data through the E-step, handing each chunk's predictions to ``on_chunk``.

    The pass behind :meth:`FitResult.predict_proba` and the other predictions: its memory is
    one chunk's, whatever the number of rows. Each chunk is checked for NaN/inf first.

    Parameters
    ----------
    model : Model
    state : State
    X : array-like of shape (n_samples, n_features), np.memmap, path to a .npy file, or an h5py/zarr dataset
    on_chunk : callable
        Called as ``on_chunk(row0, responsibilities, log_density)`` for the rows ``row0, row0 + 1, ...``
        of each chunk, in row order: ``responsibilities`` of shape (n, K) and ``log_density`` (the
        full per-row variational log-density, as :func:`estep` fills it) of shape (n,). Both are
        buffers reused for the next chunk: copy what is kept.
    n_threads : int, optional
    chunk_size : int, optional
        Rows per chunk, rounded up to a multiple of :data:`GRANULARITY`. Results do not depend on it.
    """
    from . import _validation as V

    V.check_instance("model", model, Model, "fastcavi.engine.Model")
    V.check_instance("state", state, State, "fastcavi.engine.State")
    source = _source(X)
    V.check_features(source.n_features, model.n_features, owner="the model")
    family = model._family

    def outputs(row0, resp, lse, rows, shift):
        # the log-density exactly as _output_writer writes it (the same expression: the same bits)
        on_chunk(row0, resp, lse + family.common_log_density(state, rows, shift))

    _run_estep(model, state, source, None, outputs, V.check_n_threads(n_threads), chunk_size, True, 0)


def _output_writer(model, state, responsibilities, log_density):
    """The ``outputs`` callback of an E-step pass that fills the caller's arrays, chunk by chunk."""
    family = model._family

    def outputs(row0, resp, lse, rows, shift):
        n = resp.shape[0]
        if responsibilities is not None:
            responsibilities[row0:row0 + n] = resp
        if log_density is not None:
            # plus the part of the log-density that the fitting logits leave out (tied: the same for every k)
            log_density[row0:row0 + n] = lse + family.common_log_density(state, rows, shift)

    return outputs


def responsibility_stats(model: Model, X, responsibilities, *, sample_weight=None,
                         n_threads: Optional[int] = None, chunk_size: Optional[int] = None) -> Stats:
    """The statistics of given responsibilities (the input of an M-step: ``model.update``).

    Parameters
    ----------
    model : Model
    X : array-like of shape (n_samples, n_features), np.memmap, path to a .npy file, or an h5py/zarr dataset
    responsibilities : array-like of shape (n_samples, K)
        Rows must be probability vectors (finite, non-negative, summing to 1).
    sample_weight : array-like of shape (n_samples,), optional
    n_threads : int, optional
        Threads for this call. Results do not depend on it.
    chunk_size : int, optional
        Rows per chunk. Results do not depend on it.

    Returns
    -------
    Stats
        With the entropy of the given responsibilities and ``lse_sum = 0``.
    """
    from . import _validation as V
    from ._passes import estep_chunk_rows, estep_pass, numba_threads

    source = _source(X)
    V.check_features(source.n_features, model.n_features, owner="the model")
    weights = _weights(sample_weight, source.n_samples)
    R = V.check_init_responsibilities(responsibilities, source.n_samples, model.n_components)
    n_threads = V.check_n_threads(n_threads)

    def given(row0, rows, shift):
        chunk = np.ascontiguousarray(R[row0:row0 + rows.shape[0]], dtype=np.float64)
        V.check_resp_chunk(chunk, row0)
        return chunk

    layout, coeffs = model.layout, _dummy_coeffs(model)
    chunk_rows = estep_chunk_rows(chunk_size, source, model.n_components, layout)
    with numba_threads(n_threads):
        stats, _ = estep_pass(source, weights, model._coords, layout, coeffs, chunk_rows, given=given)
    return stats


def nearest_mean_stats(model: Model, X, means, *, sample_weight=None, n_threads: Optional[int] = None,
                       chunk_size: Optional[int] = None) -> Stats:
    """The statistics of the hard assignment of each row to the nearest of ``means`` (the lowest index on ties).

    The Wishart families start from initial means with an M-step from these statistics (as
    scikit-learn does): ``model.update(engine.nearest_mean_stats(model, X, means))``. The
    assignment is made in the E-step kernel; no (n_samples, K) array is formed.

    Parameters
    ----------
    model : Model
    X : array-like of shape (n_samples, n_features), np.memmap, path to a .npy file, or an h5py/zarr dataset
    means : ndarray of shape (K, n_features)
        In data coordinates.
    sample_weight : array-like of shape (n_samples,), optional
        Row weights, as in :func:`estep`.
    n_threads, chunk_size : int, optional
        Threads, and rows per chunk, for this call. Results depend on neither.

    Returns
    -------
    Stats
        Of the one-hot responsibilities (their entropy is 0) with ``lse_sum = 0``.
    """
    from . import _validation as V
    from ._passes import estep_chunk_rows, estep_pass, numba_threads

    V.check_instance("model", model, Model, "fastcavi.engine.Model")
    source = _source(X)
    V.check_features(source.n_features, model.n_features, owner="the model")
    weights = _weights(sample_weight, source.n_samples)
    means = V.check_means(means, model.n_components, model.n_features)
    n_threads = V.check_n_threads(n_threads)
    chunk_rows = estep_chunk_rows(chunk_size, source, model.n_components, model.layout)
    with numba_threads(n_threads):
        stats, _ = estep_pass(source, weights, model._coords, model.layout, None, chunk_rows,
                              hard_means=model._coords.to_model(means))
    return stats


def kernel_threads(n_threads: Optional[int]):
    """A context in which the kernels that this Python thread calls run on ``n_threads`` threads.

    numba's thread count is restored when the context ends. Results do not depend on it.

    Parameters
    ----------
    n_threads : int or None
        At most numba's ``NUMBA_NUM_THREADS``; None leaves the count as it is.

    Returns
    -------
    context manager
    """
    from . import _validation as V
    from ._passes import numba_threads

    return numba_threads(V.check_n_threads(n_threads))


def _dummy_coeffs(model):
    from ._models.base import feature_count

    K = model.n_components
    return np.zeros(K), np.zeros((K, feature_count(model.n_features, model.layout)))
