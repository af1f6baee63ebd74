"""A scikit-learn-compatible estimator: ``fastcavi.BayesianGaussianMixture``.

A thin adapter over :func:`fastcavi.fit` with the constructor, attributes and methods of
``sklearn.mixture.BayesianGaussianMixture``. scikit-learn itself is optional: when it is
installed the estimator is a real ``BaseEstimator`` (``clone``, pipelines, grid search);
without it, ``get_params``/``set_params`` are provided here.

Differences from scikit-learn, all documented on the class: ``lower_bound_`` is the full
ELBO (scikit-learn drops constants, so values differ by a constant; changes are the same);
``init_params`` have scikit-learn's meanings, with fastcavi's random numbers (the same starts in
distribution, not the same draws). ``warm_start=True`` continues from the last fit's variational state, as
scikit-learn's does; ``fit`` takes ``sample_weight``.

It passes scikit-learn's estimator checks but the sample-weight equivalence (see
``tests/test_sklearn_checks.py``). The input errors are scikit-learn's (from fastcavi's own checks in
:mod:`fastcavi._validation`, the same without scikit-learn): ``fit`` needs 2 samples, new data the
fitted number of features (the message names the class), scipy.sparse input is refused, object arrays
of numbers are converted. ``verbose`` prints scikit-learn's lines (:class:`_VerboseLines`).
"""
import math
import time

import numpy as np

from . import _compile
from . import _validation as V
from . import options
from ._io.sources import DataSource
from .api import fit as _fit
from .result import _is_dask

# A first use on this machine: the kernels start compiling in a second process before scikit-learn's import
_compile.start_early()

try:  # optional
    from sklearn.base import BaseEstimator as _Base
    from sklearn.base import DensityMixin as _DensityMixin
except ImportError:  # pragma: no cover - exercised only without scikit-learn
    class _DensityMixin:
        """scikit-learn's ``DensityMixin`` marks density estimators (its tags): nothing to add without it."""

    class _Base:
        """Minimal get_params/set_params when scikit-learn is absent."""

        def get_params(self, deep=True):
            return {name: getattr(self, name) for name in self._param_names()}

        def set_params(self, **params):
            for key, value in params.items():
                if key not in self._param_names():
                    raise ValueError(f"Invalid parameter {key!r} for estimator {type(self).__name__}.")
                setattr(self, key, value)
            return self

        @classmethod
        def _param_names(cls):
            import inspect

            return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]


class _VerboseLines:
    """scikit-learn's verbose output for a fit, from fastcavi's ``callback(iteration, elbo, change)``.

    ``verbose=1``: "Initialization 0", "  Iteration 10" every ``verbose_interval`` sweeps and
    "Initialization converged." (or "did not converge."); ``verbose >= 2`` adds the time lapses,
    the ELBO change and the final lower bound, in scikit-learn's formats. An initialisation's
    first sweep has no change: scikit-learn prints ``inf`` there (its bound starts at -inf), and
    so does this. The bound printed is fastcavi's full ELBO (see ``lower_bound_``).

    Parameters
    ----------
    verbose, verbose_interval, max_iter : int
    tol : float
        The estimator's absolute tolerance: a run has converged when a sweep's change is below it.
    """

    def __init__(self, verbose, verbose_interval, max_iter, tol):
        self.verbose, self.interval, self.max_iter, self.tol = verbose, verbose_interval, max_iter, tol
        self.run = -1
        self.init_time = self.iter_time = time.time()  # an initialisation's start: the k-means too

    def __call__(self, it, elbo, change):
        if it == 1:  # a new initialisation (its first sweep)
            self.run += 1
            print("Initialization %d" % self.run)
        if math.isnan(change):
            change = math.inf
        if it % self.interval == 0:
            if self.verbose == 1:
                print("  Iteration %d" % it)
            else:
                now = time.time()
                print("  Iteration %d\t time lapse %.5fs\t ll change %.5f" % (it, now - self.iter_time, change))
                self.iter_time = now
        converged = self.tol > 0 and change < self.tol  # fastcavi's stopping rule (change is nan: not yet)
        if converged or it == self.max_iter:
            message = "converged" if converged else "did not converge"
            if self.verbose == 1:
                print(f"Initialization {message}.")
            else:
                now = time.time()
                print(f"Initialization {message}. time lapse {now - self.init_time:.5f}s\t lower bound {elbo:.5f}.")
            self.init_time = self.iter_time = time.time()


class BayesianGaussianMixture(_DensityMixin, _Base):
    """Variational Bayesian Gaussian mixture, scikit-learn's API, fastcavi's engine.

    Parameters are scikit-learn's (same names, defaults and meaning), plus ``n_threads``,
    ``chunk_size`` and ``exact_cavi`` (see :func:`fastcavi.fit`). They are declared in
    :mod:`fastcavi.options` (``PARAMETERS``, and ``ESTIMATOR`` for the differences: scikit-learn's
    defaults ``n_components=1``, ``covariance_type="full"``, ``tol=1e-3``,
    ``weight_concentration_prior_type="dirichlet_process"``, and its own ``init_params``,
    ``verbose``, ``verbose_interval``, ``warm_start``); ``__init__`` is written out, as
    scikit-learn requires, and a test checks it against the declaration. ``X`` may also be a ``np.memmap``, a ``.npy`` path or an h5py/zarr
    dataset: it is streamed, never copied whole.
    ``learning_method`` ("memoized" or "online"), ``learning_offset``, ``learning_decay`` and
    ``total_samples`` are :meth:`partial_fit`'s (see :mod:`fastcavi.stream`).

    Parameters
    ----------
    n_components : int, default 1
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"
    tol : float, default 1e-3
        Stop when a sweep raises the ELBO by less than ``tol`` (scikit-learn's absolute rule).
    reg_covar : float, default 1e-6
    max_iter : int, default 100
    n_init : int, default 1
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}, default "kmeans"
        scikit-learn's starts, each followed by an M-step from the responsibilities it gives.
        ``"kmeans"``: the hard labels of k-means run as scikit-learn's ``KMeans(n_init=1)``
        (k-means++ seeds, then Lloyd's iterations until the centres' total squared move is at
        most 1e-4 times the mean per-feature variance, at most 300; compiled, streamed, weighted
        by ``sample_weight``; each row labelled by its nearest final centre). ``"k-means++"``:
        responsibility 1 of component k on the k-th k-means++ seed row, 0 on every other row.
        ``"random"``: uniform draws normalised per row (soft). ``"random_from_data"``:
        responsibility 1 of component k on the k-th of K distinct random rows, 0 elsewhere.
        The draws come from ``random_state`` and a hash of the row index (not scikit-learn's
        generator calls), so results do not depend on the chunk size or thread count.
        :func:`fastcavi.fit`'s ``init`` keeps fastcavi's own starts.
    weight_concentration_prior_type : {"dirichlet_process", "dirichlet_distribution"}, default "dirichlet_process"
    weight_concentration_prior : float, optional
    mean_precision_prior : float, optional
    mean_prior : array-like of shape (n_features,), optional
    degrees_of_freedom_prior : float, optional
    covariance_prior : float or array-like, optional
    random_state : int, RandomState instance or None, default None
    verbose : int, default 0
        scikit-learn's progress lines: 1, each initialisation's start and end and every
        ``verbose_interval``-th sweep; 2, with time lapses, ELBO changes and the lower bound.
    verbose_interval : int, default 10
    warm_start : bool, default False
        Continue from the last fit's variational state.
    n_threads : int, optional
        Threads for the kernels (results do not depend on it).
    chunk_size : int, optional
        Rows per chunk (results do not depend on it).
    exact_cavi : bool, default False
        See :func:`fastcavi.fit`.
    learning_method : {"memoized", "online"}, default "memoized"
        :meth:`partial_fit`'s algorithm: memoized VI, or stochastic (online) VI.
    learning_offset : float, default 10.0
        Online VI: ``tau`` in the step size ``rho_t = (t + tau)^-kappa``.
    learning_decay : float, default 0.7
        Online VI: ``kappa``.
    total_samples : float, default 1e6
        Online VI: the number of rows in the whole stream.

    Attributes
    ----------
    weights_, means_, covariances_, precisions_, precisions_cholesky_ : ndarray
    weight_concentration_, mean_precision_, degrees_of_freedom_ : ndarray (tuple for the process)
    weight_concentration_prior_, mean_precision_prior_, mean_prior_, degrees_of_freedom_prior_,
    covariance_prior_ : the resolved priors
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        The full ELBO of the best initialisation (scikit-learn's ``lower_bound_`` plus the
        constants it drops; see ``tests/naive_bayesian.py``).
    lower_bounds_ : list of float
    n_features_in_ : int
    result_ : fastcavi.FitResult
    """

    #: scikit-learn before 1.6 read the estimator's kind here (now its tags, from ``DensityMixin``).
    _estimator_type = "DensityEstimator"

    def __init__(self, *, n_components=1, covariance_type="full", tol=1e-3, reg_covar=1e-6, max_iter=100,
                 n_init=1, init_params="kmeans", weight_concentration_prior_type="dirichlet_process",
                 weight_concentration_prior=None, mean_precision_prior=None, mean_prior=None,
                 degrees_of_freedom_prior=None, covariance_prior=None, random_state=None, verbose=0,
                 verbose_interval=10, warm_start=False, n_threads=None, chunk_size=None, exact_cavi=False,
                 learning_method="memoized", learning_offset=10.0, learning_decay=0.7, total_samples=1e6):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.random_state = random_state
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.warm_start = warm_start
        self.n_threads = n_threads
        self.chunk_size = chunk_size
        self.exact_cavi = exact_cavi
        self.learning_method = learning_method  # partial_fit's (scikit-learn LatentDirichletAllocation's names)
        self.learning_offset = learning_offset
        self.learning_decay = learning_decay
        self.total_samples = total_samples

    def fit(self, X, y=None, sample_weight=None):
        """Fit by CAVI.

        With ``warm_start=True`` and an earlier fit, CAVI continues from that fit's variational
        state (``n_init`` is then ignored, as in scikit-learn).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), np.memmap, .npy path or h5py/zarr dataset
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative row weights (integer weights fit the repeated rows).

        Returns
        -------
        self
        """
        fit_arguments, own = options.estimator_arguments(
            {name: getattr(self, name) for name in options.estimator_defaults()})
        if not _is_dask(X):  # a Dask array is checked by the Dask fit (its shape may be unknown)
            source = DataSource(X)  # the header: scikit-learn's checks of X, with its messages
            V.check_min_samples(source.shape, 2, type(self).__name__)
            X = source.data  # opened (a path) or converted (an object array) once
        callback = None
        if own["verbose"]:
            callback = _VerboseLines(own["verbose"], own["verbose_interval"], fit_arguments["max_iter"],
                                     fit_arguments["tol"])
        previous = getattr(self, "result_", None) if own["warm_start"] else None
        init = previous if previous is not None else own["init_params"]  # the init that init_params means
        result = _fit(X, init=init, tol_type="absolute", callback=callback, sample_weight=sample_weight,
                      **fit_arguments)
        self._store(result)
        if previous is not None and result.model == previous.model:  # the trace continues the last fit's
            self.n_iter_ = result.n_iter - previous.n_iter
        return self

    def _store(self, r):
        self.result_ = r
        self.weights_ = r.weights
        self.means_ = r.means
        self.covariances_ = r.covariances
        self.precisions_ = r.precisions
        self.precisions_cholesky_ = r.precisions_cholesky
        self.weight_concentration_ = r.weight_concentration
        self.mean_precision_ = r.mean_precision
        self.degrees_of_freedom_ = r.degrees_of_freedom
        p = r.priors
        wcp = p["weight_concentration_prior"]
        self.weight_concentration_prior_ = float(np.ravel(wcp)[0]) if np.ndim(wcp) else wcp
        self.mean_precision_prior_ = p["mean_precision_prior"]
        self.mean_prior_ = p["mean_prior"]
        self.degrees_of_freedom_prior_ = p["degrees_of_freedom_prior"]
        self.covariance_prior_ = p["covariance_prior"]
        self.converged_ = r.converged
        self.n_iter_ = r.n_iter
        self.lower_bound_ = r.lower_bound
        self.lower_bounds_ = [float(v) for v in r.elbo]
        self.n_features_in_ = r.n_features

    def _fitted(self):
        if not hasattr(self, "result_"):
            try:
                from sklearn.exceptions import NotFittedError
            except ImportError:  # pragma: no cover
                NotFittedError = ValueError
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                                 "appropriate arguments before using this estimator.")
        return self.result_

    def _new_data(self, X):
        """X opened for prediction, with the fitted number of features (scikit-learn's message)."""
        self._fitted()
        if _is_dask(X):
            V.check_features(X.shape[1], self.n_features_in_, owner=type(self).__name__)
            return X
        source = DataSource(X)
        V.check_features(source.n_features, self.n_features_in_, owner=type(self).__name__)
        return source.data

    def fit_predict(self, X, y=None):
        """Fit, then label X with the fitted model (a final E-step: it equals ``fit(X).predict(X)``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), np.memmap, .npy path or h5py/zarr dataset
        y : ignored

        Returns
        -------
        ndarray of shape (n_samples,), int64
        """
        return self.fit(X).predict(X)

    def predict(self, X, *, out=None):
        """Most responsible component of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), np.memmap, .npy path or h5py/zarr dataset
        out : ndarray of shape (n_samples,), integer dtype, optional
            Filled chunk by chunk and returned: see :meth:`fastcavi.FitResult.predict`.

        Returns
        -------
        ndarray of shape (n_samples,), int64
            ``out`` when given.
        """
        return self._fitted().predict(self._new_data(X), out=out, n_threads=self.n_threads,
                                      chunk_size=self.chunk_size)

    def predict_proba(self, X, *, out=None):
        """Responsibilities ``q(z_n = k)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), np.memmap, .npy path or h5py/zarr dataset
        out : ndarray of shape (n_samples, n_components), float64, optional
            Filled chunk by chunk and returned (an ``np.memmap`` keeps the call's memory to one
            chunk's): see :meth:`fastcavi.FitResult.predict_proba`.

        Returns
        -------
        ndarray of shape (n_samples, n_components)
            ``out`` when given.
        """
        return self._fitted().predict_proba(self._new_data(X), out=out, n_threads=self.n_threads,
                                            chunk_size=self.chunk_size)

    def score_samples(self, X, *, out=None):
        """scikit-learn's ``score_samples``: the log-sum-exp of the variational logits per row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), np.memmap, .npy path or h5py/zarr dataset
        out : ndarray of shape (n_samples,), float64, optional
            Filled chunk by chunk and returned: see :meth:`fastcavi.FitResult.score_samples`.

        Returns
        -------
        ndarray of shape (n_samples,)
            ``out`` when given.
        """
        return self._fitted().score_samples(self._new_data(X), out=out, n_threads=self.n_threads,
                                            chunk_size=self.chunk_size)

    def score(self, X, y=None):
        """Mean of :meth:`score_samples`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), np.memmap, .npy path or h5py/zarr dataset
        y : ignored

        Returns
        -------
        float
        """
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples=1):
        """Draw ``n_samples`` rows from the plug-in mixture (``weights_``, ``means_``, ``covariances_``), as
        scikit-learn does.

        Parameters
        ----------
        n_samples : int, default 1

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)
        """
        r = self._fitted()
        V.check_sample_count(n_samples)
        rng = np.random.default_rng(self.random_state if not isinstance(self.random_state, np.random.RandomState)
                                    else self.random_state.randint(2**31 - 1))
        counts = rng.multinomial(n_samples, self.weights_)
        D = r.n_features
        ct = self.covariance_type
        parts = []
        for k, n in enumerate(counts):
            if ct == "full":
                cov = self.covariances_[k]
            elif ct == "tied":
                cov = self.covariances_
            elif ct == "diag":
                cov = np.diag(self.covariances_[k])
            else:
                cov = self.covariances_[k] * np.eye(D)
            parts.append(rng.multivariate_normal(self.means_[k], cov, size=n))
        return np.vstack(parts), np.repeat(np.arange(len(counts)), counts)

    # -- streaming: partial_fit (fastcavi.stream.StreamingCAVI does the work) -------------------
    def partial_fit(self, X, y=None, sample_weight=None, batch_id=None):
        """Take one batch of a stream into the posterior; returns self.

        ``learning_method="memoized"`` (the default; memoized VI): each batch's sufficient
        statistics are kept, a known ``batch_id`` replaces that batch's statistics (a
        revisit, or a new version of it: the old one is forgotten), ``None`` adds a new
        batch; every call then runs the exact CAVI update from the sum over all stored
        batches. Laps over fixed batches reach :meth:`fit`'s fixed points on their rows,
        with an ELBO that never decreases after the first lap. ``learning_method="online"``
        (stochastic VI) takes one natural-gradient step per batch, with step
        ``(t + learning_offset) ** -learning_decay`` and the batch rescaled to
        ``total_samples`` rows (scikit-learn ``LatentDirichletAllocation``'s names); batches
        are not kept and ``batch_id`` must be None. See :mod:`fastcavi.stream`.

        The first call (or the first after :meth:`fit`, which ends a stream) initialises as
        :meth:`fit` does, on this batch (``init_params``, ``n_init``, ``random_state``): the
        data-dependent default priors (``mean_prior``, ``covariance_prior``) come from this
        first batch and stay fixed; pass them explicitly to avoid that. The fitted attributes
        are refreshed after every call, so the estimator predicts at any time;
        ``lower_bounds_`` holds the ELBO after each call, ``n_iter_`` the number of calls,
        ``converged_`` is False, and ``stream_`` is the :class:`fastcavi.stream.StreamingCAVI`
        (``stream_.batch_ids``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), np.memmap, .npy path or h5py/zarr dataset
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative row weights (integer weights count a row that many times).
        batch_id : hashable, optional
            The batch's name (memoized only).

        Returns
        -------
        self

        Raises
        ------
        ValueError
            For a batch that :meth:`fit` would refuse (the same messages) or with the wrong
            number of features: the estimator is then left exactly as it was.
        """
        from .stream import StreamingCAVI

        stream = getattr(self, "stream_", None)
        if stream is None or getattr(self, "result_", None) is not getattr(self, "_stream_result", None):
            fit_arguments, own = options.estimator_arguments(
                {name: getattr(self, name) for name in options.estimator_defaults()})
            for name in ("max_iter", "tol"):  # the stream's updates are one per call, not sweeps to convergence
                fit_arguments.pop(name)
            stream = StreamingCAVI.from_batch(
                X, sample_weight=sample_weight, init=own["init_params"], learning_method=own["learning_method"],
                learning_offset=own["learning_offset"], learning_decay=own["learning_decay"],
                total_samples=own["total_samples"], **fit_arguments)
        else:  # a later batch: the fitted number of features, with scikit-learn's message
            X = self._new_data(X)
        stream.partial_fit(X, sample_weight=sample_weight, batch_id=batch_id)  # changes nothing when it raises
        result = stream.result()
        self._store(result)
        self.n_iter_ = stream.n_updates
        self.stream_, self._stream_result = stream, result
        return self
