"""Streaming variational inference over batches of rows: memoized VI and stochastic VI.

:class:`StreamingCAVI` drives the public engine (:mod:`fastcavi.engine`) over data that
arrives in batches, and is what :meth:`fastcavi.BayesianGaussianMixture.partial_fit` uses.
It holds a :class:`~fastcavi.engine.Model`, the current :class:`~fastcavi.engine.State`
and, per batch, that batch's :class:`~fastcavi.engine.Stats` (entropy term included)::

    from fastcavi.stream import StreamingCAVI

    stream = StreamingCAVI.from_batch(batches[0], 8, covariance_type="full", random_state=0)
    for lap in range(5):                             # memoized VI: laps over fixed batches
        for b, batch in enumerate(batches):
            stream.partial_fit(batch, batch_id=b)    # replaces batch b's statistics
    stream.elbo                                      # never decreases after the first lap
    stream.result().predict(X_new)                   # a FitResult, as fastcavi.fit returns

Two methods (``learning_method``):

* ``"memoized"`` (the default; Hughes and Sudderth, NeurIPS 2013). A visit to batch ``b``
  recomputes its statistics under the current state (:func:`fastcavi.engine.estep`),
  replaces the stored ones, and runs the global update from the sum over all stored
  batches, refolded from the stored statistics in a fixed order (the order in which the
  batches were first seen) on every visit: never by adding and subtracting running sums,
  which drift. :class:`~fastcavi.engine.Stats` addition is exact anyway, so the sum does
  not depend on the order. Every global step is then the exact CAVI update of the
  whole-data objective for the current q(z) (each batch's q(z_b) is the one computed on
  its last visit), so, as long as the batches' data do not change, the ELBO
  (:attr:`StreamingCAVI.elbo`) never decreases after the first lap (for
  the exact-coordinate-ascent models: see ``Model.exact_coordinate_ascent``), and laps
  converge to the fixed points of :func:`fastcavi.fit` on all the rows. A revisit of
  unchanged rows (the batch's :class:`~fastcavi.engine.DataSummary`, kept as a
  fingerprint, is bitwise the stored one) is checked as ``fit`` checks a sweep: a drop
  beyond round-off raises :class:`fastcavi.ELBODecreaseError` (or warns
  :class:`fastcavi.ELBODecreaseWarning` for scikit-learn's inexact ``reg_covar`` step).
  Memory is O(batches x statistics), never O(rows).
* ``"online"`` (stochastic VI; Hoffman, Blei, Wang and Paisley, JMLR 2013), for unbounded
  streams whose batches are not revisited. Each batch takes a natural-gradient step
  ``lambda <- (1 - rho_t) lambda + rho_t (lambda_0 + (N / |B|) S_B)`` with
  ``rho_t = (t + learning_offset) ** -learning_decay`` (scikit-learn's
  ``LatentDirichletAllocation`` names), ``N = total_samples`` and ``|B|`` the batch's
  (weighted) row count. The natural parameters of these conjugate families are affine in
  the statistics, so the step is an exponential moving average of the rescaled statistics,
  ``S <- (1 - rho_t) S + rho_t (N / |B|) S_B``, followed by the usual update
  ``model.update(S)``; it is computed that way (:meth:`fastcavi.engine.Stats.scaled`,
  :meth:`~fastcavi.engine.Stats.from_values`). The first batch takes ``rho = 1`` (the
  initial state carries no statistics to average with), batch ``t = 1, 2, ...`` after it
  ``rho_t``. Memory is O(statistics).

The tied family's update and ELBO need the total scatter ``sum_n w_n y_n y_n^T`` of all
rows (its statistics carry only the diagonal): for it the stream also keeps each batch's
:class:`~fastcavi.engine.DataSummary` (a (D, D) matrix per batch) and rebuilds the model's
total scatter from them (memoized: their exact sum; online: their moving average, rescaled
like the statistics) whenever the set of batches changes. Only the total scatter changes:
the priors stay those the stream started with.

Errors leave the stream as it was: a batch is validated (the same errors as
:func:`fastcavi.fit`: feature count, NaN/inf naming the row, bad weights) and its new
state computed before anything is stored.
"""
import math
from typing import TYPE_CHECKING, Any, Dict, Hashable, List, Optional, Tuple

import numpy as np

from . import engine
from .engine import DataSummary, Model, State, Stats

if TYPE_CHECKING:  # pragma: no cover
    from .result import FitResult

__all__ = ["StreamingCAVI", "LEARNING_METHODS"]

#: The values of ``learning_method``.
LEARNING_METHODS: Tuple[str, ...] = ("memoized", "online")


class StreamingCAVI:
    """Variational inference over a stream of batches, memoized or stochastic, on the public engine.

    Parameters
    ----------
    model : fastcavi.engine.Model
        The model: family, priors (resolved) and coordinates. For "tied", its total scatter
        is replaced by that of the batches seen (see the module docstring).
    state : fastcavi.engine.State
        The variational state to start from (e.g. ``fastcavi.fit(...).state``).
    learning_method : {"memoized", "online"}, default "memoized"
        Memoized VI (batches are kept and may be revisited) or stochastic VI.
    learning_offset : float, default 10.0
        tau >= 0 of ``rho_t = (t + tau) ** -kappa`` ("online" only). scikit-learn LDA's name.
    learning_decay : float, default 0.7
        kappa in (0.5, 1] ("online" only): the steps satisfy Robbins-Monro's conditions.
    total_samples : float, default 1e6
        N, the (weighted) number of rows the stream stands for ("online" only).
    n_threads : int, optional
        Threads for the passes over each batch. Results do not depend on it.
    chunk_size : int, optional
        Rows per chunk of those passes. Results do not depend on it.

    Attributes
    ----------
    model : fastcavi.engine.Model
    state : fastcavi.engine.State
    elbo : ndarray of shape (n_updates,)
        After each update: memoized, the full ELBO of the stored q(z) of all batches and of
        q(pi, theta) = ``state``; online, ``model.elbo`` of the averaged statistics (an
        estimate, not a bound on the stream).
    n_updates : int
    batch_ids : list
        Memoized: the stored batches, in the fixed order they are summed in (first seen
        first). Online: empty.
    total_stats : fastcavi.engine.Stats or None
        The statistics the last update used (memoized: the exact sum over the stored
        batches; online: the moving average), None before the first update.
    """

    def __init__(self, model: Model, state: State, *, learning_method: str = "memoized",
                 learning_offset: float = 10.0, learning_decay: float = 0.7, total_samples: float = 1e6,
                 n_threads: Optional[int] = None, chunk_size: Optional[int] = None) -> None:
        if not isinstance(model, Model):
            raise TypeError(f"'model' must be a fastcavi.engine.Model, got {type(model).__name__}.")
        if not isinstance(state, State):
            raise TypeError(f"'state' must be a fastcavi.engine.State, got {type(state).__name__}.")
        (self.learning_method, self.learning_offset, self.learning_decay, self.total_samples, self.n_threads,
         self.chunk_size) = _check_options(learning_method, learning_offset, learning_decay, total_samples,
                                           n_threads, chunk_size)
        self._config = model.to_dict()  # the priors; "tied" gets its total scatter from the batches
        self._model = model
        self._state = state.frozen()
        self._stats: Dict[Hashable, Stats] = {}
        self._summaries: Dict[Hashable, DataSummary] = {}  # memoized: each batch's (a fingerprint; tied's scatter)
        self._next_id = 0
        self._total: Optional[Stats] = None
        self._scatter: Optional[np.ndarray] = None  # tied, online: the moving average of (N/|B|) scatter
        self._elbo: List[float] = []

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_batch(cls, X: Any, n_components: int, *, sample_weight: Any = None, covariance_type: str = "identity",
                   init: Any = "k-means++", n_init: int = 1, random_state: Any = None,
                   learning_method: str = "memoized", learning_offset: float = 10.0, learning_decay: float = 0.7,
                   total_samples: float = 1e6, n_threads: Optional[int] = None, chunk_size: Optional[int] = None,
                   **options: Any) -> "StreamingCAVI":
        """A stream initialised as :func:`fastcavi.fit` initialises, on one batch.

        The model and the initial state are those of ``fastcavi.fit(X, n_components,
        max_iter=1, tol=0, ...)``: the data-dependent default priors (the Wishart families'
        ``mean_prior`` and ``covariance_prior``) and the coordinates' shift come from this
        batch's summary, and stay fixed for the whole stream (pass the priors explicitly to
        make them independent of the first batch). The batch is not stored: pass it to
        :meth:`partial_fit` too (as :meth:`fastcavi.BayesianGaussianMixture.partial_fit` does).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), np.memmap, .npy path or h5py/zarr dataset
        n_components : int
        sample_weight : array-like of shape (n_samples,), optional
        covariance_type, init, n_init, random_state, **options
            As in :func:`fastcavi.fit` (the priors and ``covariance``, ``reg_covar``, ``exact_cavi``).
        learning_method, learning_offset, learning_decay, total_samples, n_threads, chunk_size
            As in :class:`StreamingCAVI`.

        Returns
        -------
        StreamingCAVI

        Raises
        ------
        ValueError
            Whatever :func:`fastcavi.fit` raises for this batch and these options.
        """
        from .api import fit

        stream_options = dict(learning_method=learning_method, learning_offset=learning_offset,
                              learning_decay=learning_decay, total_samples=total_samples, n_threads=n_threads,
                              chunk_size=chunk_size)
        _check_options(**stream_options)  # before the fit's work
        r = fit(X, n_components, covariance_type=covariance_type, init=init, n_init=n_init,
                random_state=random_state, max_iter=1, tol=0.0, sample_weight=sample_weight, n_threads=n_threads,
                chunk_size=chunk_size, **options)
        return cls(r.model, r.state, **stream_options)

    # -- state ---------------------------------------------------------------------------------
    @property
    def model(self) -> Model:
        return self._model

    @property
    def state(self) -> State:
        return self._state

    @property
    def elbo(self) -> np.ndarray:
        return np.array(self._elbo, dtype=np.float64)

    @property
    def n_updates(self) -> int:
        return len(self._elbo)

    @property
    def batch_ids(self) -> List[Hashable]:
        return list(self._stats)

    @property
    def total_stats(self) -> Optional[Stats]:
        return self._total

    def batch_stats(self, batch_id: Hashable) -> Stats:
        """The stored statistics of a batch (memoized), as computed on its last visit.

        Raises
        ------
        KeyError
            For an unknown batch.
        """
        return self._stats[batch_id]

    def learning_rate(self, t: int) -> float:
        """``rho_t = (t + learning_offset) ** -learning_decay``: the online step for batch ``t`` (``t >= 1``)."""
        return float((t + self.learning_offset) ** -self.learning_decay)

    def result(self, converged: bool = False) -> "FitResult":
        """The current model and state as a :class:`fastcavi.FitResult` (predictions, ``save``, warm starts).

        Parameters
        ----------
        converged : bool, default False
            What the result's ``converged`` says (the stream does not decide it).

        Returns
        -------
        FitResult
            Its ``elbo`` is :attr:`elbo` (one entry per update).

        Raises
        ------
        ValueError
            Before the first update.
        """
        from .result import FitResult

        if not self._elbo:
            raise ValueError("The stream has not been updated yet: call partial_fit first.")
        return FitResult.from_state(self._model, self._state, self.elbo, converged)

    # -- updates -------------------------------------------------------------------------------
    def partial_fit(self, X: Any, sample_weight: Any = None, batch_id: Optional[Hashable] = None) -> Hashable:
        """Take one batch into the posterior: one memoized visit, or one stochastic step.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), np.memmap, .npy path or h5py/zarr dataset
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative row weights (integer weights count a row that many times).
        batch_id : hashable, optional
            Memoized only. A known id replaces that batch's statistics (a revisit, or new
            data for that batch: the old version is then forgotten); an unknown one adds a
            batch under that id; None adds a batch under a new integer id.

        Returns
        -------
        hashable
            The batch's id (None for "online").

        Raises
        ------
        ValueError
            For a batch that :func:`fastcavi.fit` would refuse (the same messages), with the
            wrong number of features, or (online) with a ``batch_id``; and when the update
            fails (a component covariance not positive definite). The stream is then left
            exactly as it was.
        FloatingPointError
            When a statistic is not finite (the stream is left as it was).
        fastcavi.ELBODecreaseError
            Memoized, on a revisit of unchanged rows, when the ELBO drops by more than
            round-off (the stream is left as it was).
        """
        from . import _validation as V
        from ._io.sources import DataSource

        online, revisit = self.learning_method == "online", False
        if online and batch_id is not None:
            raise ValueError("batch_id applies to learning_method='memoized' (stochastic VI does not revisit "
                             "batches).")
        if batch_id is not None:
            hash(batch_id)  # a TypeError for unhashable ids, before any work
        # validate and compute everything first; commit at the end
        model, state = self._model, self._state
        V.check_features(DataSource(X).n_features, model.n_features, owner="the model")
        tied = model.covariance_type == "tied"
        common = dict(n_threads=self.n_threads, chunk_size=self.chunk_size)
        summary = engine.summarize(X, sample_weight, shift=model.shift, full_scatter=tied, **common)  # fit's errors
        stats = engine.estep(model, state, X, sample_weight=sample_weight, check_finite=False, **common)
        if not stats.is_finite():
            raise FloatingPointError("Non-finite sufficient statistics in this batch: the data or the priors are "
                                     "numerically degenerate.")
        if online:
            first = self._total is None
            rho = 1.0 if first else self.learning_rate(self.n_updates)
            scale = self.total_samples / stats.count
            step = stats.scaled(scale)
            if first:
                total = step
            else:
                total = Stats.from_values(stats.layout, stats.n_components, stats.n_features,
                                          (1.0 - rho) * self._total.values + rho * step.values)
            scatter = None
            if tied:
                batch_scatter = scale * _second_moment(summary, model.shift)
                scatter = batch_scatter if first else (1.0 - rho) * self._scatter + rho * batch_scatter
                model = self._rebuilt(scatter)
            new_stats, new_summaries, new_id = self._stats, self._summaries, self._next_id
            bid = None
        else:
            if batch_id is None:
                bid = self._next_id
                while bid in self._stats:  # user ids may be integers too
                    bid += 1
                new_id = bid + 1
            else:
                bid, new_id = batch_id, self._next_id
            new_stats = dict(self._stats)
            new_stats[bid] = stats  # a known id keeps its place in the fixed order
            total = Stats.zeros(stats.layout, stats.n_components, stats.n_features)
            for s in new_stats.values():  # refolded from the stored statistics on every visit
                total = total + s
            # the same rows again: the objective is the one the last ELBO was of, which must not go down
            revisit = bid in self._summaries and np.array_equal(self._summaries[bid].to_array(), summary.to_array())
            new_summaries, scatter = dict(self._summaries), None
            new_summaries[bid] = summary
            if tied:
                model = self._rebuilt(_second_moment(sum(new_summaries.values()), model.shift))
        new_state = model.update(total)
        elbo, magnitude = model.elbo_and_magnitude(total, new_state)
        if not math.isfinite(elbo):
            raise FloatingPointError(f"The ELBO is not finite ({elbo}) after this batch.")
        if not online and revisit:
            _check_no_decrease(model, self._elbo[-1], elbo, magnitude, bid)
        # commit
        self._model, self._state, self._total = model, new_state, total
        self._stats, self._summaries, self._next_id = new_stats, new_summaries, new_id
        if online and tied:
            self._scatter = scatter
        self._elbo.append(float(elbo))
        return bid

    def _rebuilt(self, total_scatter: np.ndarray) -> Model:
        """The model with the given total scatter (tied): the same priors and coordinates."""
        return Model.from_dict(dict(self._config, total_scatter=np.asarray(total_scatter, dtype=np.float64)))

    def __repr__(self) -> str:
        return (f"StreamingCAVI({self._model!r}, learning_method={self.learning_method!r}, "
                f"n_batches={len(self._stats)}, n_updates={self.n_updates})")


def _check_no_decrease(model: Model, last: float, elbo: float, magnitude: float, batch_id: Hashable) -> None:
    """fit's rule (:data:`fastcavi._driver.loop.ELBO_DECREASE_RTOL`) for a memoized revisit of unchanged rows.

    Raises :class:`fastcavi.ELBODecreaseError` for a drop beyond round-off when every step is
    exact coordinate ascent, else warns :class:`fastcavi.ELBODecreaseWarning` (scikit-learn's
    ``reg_covar`` M-step), as :func:`fastcavi.fit` does.
    """
    from ._driver.loop import check_elbo_drop

    check_elbo_drop(model, last, elbo, magnitude, f"on a revisit of batch {batch_id!r} (the same rows)",
                    "Memoized VI is coordinate ascent, which never decreases the ELBO", "", stacklevel=3)


def _check_options(learning_method, learning_offset, learning_decay, total_samples, n_threads, chunk_size):
    """The stream's options, checked (scikit-learn-style messages)."""
    from . import _validation as V

    return (V.check_choice("learning_method", learning_method, LEARNING_METHODS),
            V.check_real("learning_offset", learning_offset, 0.0, strict=False),
            V.check_real("learning_decay", learning_decay, 0.5, high=1.0),
            V.check_real("total_samples", total_samples, 0.0),
            V.check_n_threads(n_threads),
            None if chunk_size is None else V.check_int("chunk_size", chunk_size, 1))


def _second_moment(summary: DataSummary, shift: np.ndarray) -> np.ndarray:
    """``sum_n w_n (x_n - shift)(x_n - shift)^T`` from a full-scatter summary (the tied model's total scatter).

    The scatter about the mean plus ``count d d^T``, ``d = mean - shift``: the moments
    about ``shift`` (exact in real arithmetic; in float64 to round-off).
    """
    d = summary.mean - shift
    return summary.scatter + summary.count * np.outer(d, d)
