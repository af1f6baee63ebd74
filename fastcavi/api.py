"""``fastcavi.fit``: validation, then a short loop over the public engine's calls (no maths here)."""
import os
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional, Union

import numpy as np

from . import _validation as V
from . import _progress, options
from ._driver import checkpoint as _checkpoint
from ._io.sources import DataSource

if TYPE_CHECKING:  # pragma: no cover
    from .result import FitResult


def fit(X: Any, n_components: int, *,
        covariance_type: Literal["identity", "spherical", "diag", "full", "tied"] = "identity",
        covariance: Optional[Union[float, np.ndarray]] = None,
        weight_concentration_prior_type: Literal["dirichlet_distribution", "dirichlet_process"]
        = "dirichlet_distribution",
        weight_concentration_prior: Optional[Union[float, np.ndarray]] = None,
        mean_precision_prior: Optional[float] = None,
        mean_prior: Optional[Union[float, np.ndarray]] = None,
        degrees_of_freedom_prior: Optional[float] = None,
        covariance_prior: Optional[Union[float, np.ndarray]] = None,
        reg_covar: float = 1e-6,
        exact_cavi: bool = False,
        init: Union[Literal["k-means++", "k-means||", "kmeans", "random", "random_from_data"], np.ndarray,
                    "FitResult"] = "k-means++",
        init_responsibilities: Optional[np.ndarray] = None,
        max_iter: int = 100,
        tol: float = 1e-8,
        tol_type: Literal["relative", "absolute"] = "relative",
        n_init: int = 1,
        random_state: Union[None, int, np.random.Generator, np.random.RandomState] = None,
        n_threads: Optional[int] = None,
        chunk_size: Optional[int] = None,
        callback: Optional[Callable[[int, float, float], Any]] = None,
        sample_weight: Optional[Union[np.ndarray, str, "os.PathLike[str]"]] = None,
        checkpoint: Optional[Union[str, "os.PathLike[str]"]] = None,
        resume: Optional[Union[str, "os.PathLike[str]"]] = None,
        client: Any = None,
        persist: Union[Literal["auto"], bool] = "auto") -> "FitResult":
    """Fit a variational Bayesian Gaussian mixture by CAVI, streaming over the data.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), np.memmap, path to a .npy file, h5py/zarr dataset, or dask.array.Array
        The data; any real dtype. It is read in chunks and never modified or copied whole.
        A Dask array is fitted on Dask, one graph per sweep (:func:`fastcavi.dask.fit`): the
        same result, bit for bit when its row chunks are whole multiples of 4096 rows.
    n_components : int
        K, the number of mixture components.
    covariance_type : {"identity", "spherical", "diag", "full", "tied"}
        ``"identity"``: the seed's model, components with a known covariance
        (``covariance``; the identity by default). The others: unknown covariances
        with conjugate Normal-Wishart priors, exactly scikit-learn's
        ``BayesianGaussianMixture`` (same parameters, defaults and updates).
    covariance : None, float, ndarray of shape (D,) or (D, D)
        The known covariance Sigma of every component for ``covariance_type="identity"``:
        None for the identity, a number for sigma^2 I, a vector for a diagonal, or an SPD
        matrix. The prior on each mean is then N(m0, Sigma / nu).
    weight_concentration_prior_type : {"dirichlet_distribution", "dirichlet_process"}
    weight_concentration_prior : float or ndarray of shape (K,), optional
        alpha (the seed's ``alpha``); for the Dirichlet process, its concentration (a
        float). Default: 1.0 for "identity" (the seed's), 1/K for the others (scikit-learn's).
    mean_precision_prior : float, default 1.0
        nu, the seed's ``nu`` (scikit-learn's beta0).
    mean_prior : float or ndarray of shape (D,), optional
        m0 = phi / nu (the seed's ``phi`` is ``nu * m0``). Default: 0 for "identity"
        (the seed's), the data mean for the others (scikit-learn's).
    degrees_of_freedom_prior : float, optional
        Wishart nu0 > D - 1 (default D). Wishart families only.
    covariance_prior : float, ndarray of shape (D,) or (D, D), optional
        Wishart Psi0 in scikit-learn's shape for the type (default: the empirical
        covariance, its diagonal or the mean of its diagonal; ``reg_covar`` is added to
        it when it is singular). Wishart families only.
    reg_covar : float, default 1e-6
        Added to the diagonal of each component's scatter, as scikit-learn adds it.
        Validated for every family, used by the Wishart families only.
    exact_cavi : bool, default False
        Validated for every family; it matters for the Wishart families with ``reg_covar > 0`` only. False: scikit-learn's updates exactly;
        its M-step carries ``reg_covar`` but its E-step does not, so a sweep is not an exact
        coordinate-ascent step and on degenerate data the ELBO can dip slightly (an
        ``ELBODecreaseWarning``; scikit-learn's own bound dips there too). True: the logits
        also carry ``-reg_covar/2 tr E[Lambda_k]``, making every sweep exact coordinate ascent
        on the ELBO of the model whose observations carry extra N(0, reg_covar I) noise (that
        is the ELBO reported); it never decreases, and responsibilities differ from
        scikit-learn's by O(reg_covar tr E[Lambda_k]).
    init : {"k-means++", "k-means||", "kmeans", "random", "random_from_data"}, ndarray of shape (K, D), or FitResult
        Initial means. ``"k-means++"``: the k-means++ seeds themselves (K rows, one streaming
        pass per seed; with ``sample_weight``, drawn in proportion to the weight times the squared
        distance, as scikit-learn's ``kmeans_plusplus``, the first seed by weight in one more pass). ``"k-means||"``: k-means|| seeding (Bahmani et al. 2012: 6 passes
        whatever K, one per round and one to weigh the candidates, then k-means on the candidates
        in memory). ``"kmeans"``: k-means as
        scikit-learn's ``KMeans(n_init=1)`` runs it: k-means++ seeds, then Lloyd's iterations
        (one compiled streaming pass each, weighted by ``sample_weight``) until the centres'
        total squared move is at most 1e-4 times the mean per-feature variance, or 300
        iterations; the means are the final centres. ``"random"``: the seed notebook's start,
        each row hashed to a random cluster, the means of those K clusters.
        ``"random_from_data"``: K distinct random rows. An array: given means. The draws depend
        on ``random_state`` only, never on the chunk size or thread count, and each gives the
        same means on a Dask array with aligned chunks as here (``"kmeans"`` on Dask: see
        :func:`fastcavi.dask.fit`). (:class:`BayesianGaussianMixture`'s ``init_params`` are
        scikit-learn's starts, which differ; see there.) A :class:`FitResult` (or a
        loaded model file) continues that fit from its variational state (a warm start):
        ``fit(X, K, max_iter=a)`` then ``fit(X, K, init=r, max_iter=b)`` is bitwise
        ``fit(X, K, max_iter=a + b)``, ELBO trace included. Its covariance type, K and D must
        match; the priors are resolved again from this call's arguments and data. "identity" starts as the
        seed does: q(mu_k) = N(init_k, Sigma), q(pi) = the prior; the Wishart families
        start as scikit-learn does, with an M-step from the hard assignment of each row
        to its nearest initial mean.
    init_responsibilities : array-like of shape (n_samples, K), optional
        Start instead with an M-step from these responsibilities (scikit-learn's
        initialisation), for every covariance type. Rows must be probability vectors.
    max_iter : int, default 100
        Maximum CAVI sweeps per initialisation.
    tol : float, default 1e-8
        Stop when a sweep raises the ELBO by less than ``tol * |ELBO|``. ``tol=0`` runs
        exactly ``max_iter`` sweeps.
    tol_type : {"relative", "absolute"}, default "relative"
        ``"absolute"`` compares the gain with ``tol`` itself (the seed notebook's rule,
        and scikit-learn's).
    n_init : int, default 1
        Initialisations to run; the one with the highest final ELBO is kept (one run when
        ``init_responsibilities`` or an array ``init`` fixes the start).
    random_state : None, int, numpy.random.Generator or RandomState
    n_threads : int, optional
        Threads for the kernels during this call (restored afterwards). Results do not
        depend on it.
    chunk_size : int, optional
        Rows per chunk, rounded up to a multiple of ``fastcavi.engine.GRANULARITY`` (4096).
        Results do not depend on it.
    callback : callable, optional
        ``callback(iteration, elbo, change)`` after every sweep.
    sample_weight : array-like of shape (n_samples,), np.memmap or path to a .npy file, optional
        Non-negative finite row weights, streamed like X. Every statistic, the entropy term
        and the data-dependent default priors are weighted: integer weights give the fit of
        the repeated rows, zero weights the fit without those rows (to round-off).
    checkpoint : str or os.PathLike, optional
        Write the whole fit state to this file after every sweep: the variational state, the
        iteration, the ELBO trace, which of the ``n_init`` runs is in progress and the best one
        so far, the random generator's state, and a fingerprint of the data and the options.
        Each write is atomic (a temporary file, fsync, rename): a crash during a write leaves
        the previous checkpoint whole.
    resume : str or os.PathLike, optional
        Continue the fit saved in this checkpoint. The result is bit for bit the one the
        uninterrupted fit gives. The data and the options must be those the checkpoint was made
        with: a difference raises a ValueError that says what differs.
    client : distributed.Client, optional
        For a Dask array X only: where to compute (default: the current Dask scheduler).
    persist : {"auto", True, False}, default "auto"
        For a Dask array X only: whether X (converted to float32/float64 once) is kept in the
        cluster's memory for the whole fit (``client.persist``; a lost worker's part is
        recomputed from the graph) or read from its source on every pass. ``"auto"`` keeps it
        when it takes at most :data:`fastcavi.dask.PERSIST_FRACTION` of the workers' total
        memory limit (see :func:`fastcavi.dask.fit`). Results do not depend on it.

    Returns
    -------
    FitResult

    Notes
    -----
    The parameters are declared in :mod:`fastcavi.options` (with their checks, in
    :mod:`fastcavi._validation`); this signature is kept written out for readers and IDEs,
    and a test checks it against the declaration.
    """
    arguments = options.given(locals())  # first: the declared parameters, as given
    if type(X).__module__.split(".")[0] == "dask":  # checked by type: dask is imported only for dask input
        from .dask import fit as dask_fit

        return dask_fit(X, **arguments)
    from ._compile import build_early
    from ._io.sources import _compute_dtype

    # a first fit on a machine: the E-step starts compiling in a second process now
    build_early(_compute_dtype(X.dtype) if isinstance(X, np.ndarray) and X.dtype.kind in "fiub" else None)
    from . import engine
    from ._driver.loop import run_restarts
    from ._init import initial_state, warm_state
    from ._models.base import layout_of
    from ._passes import estep_chunk_rows, numba_threads
    from .result import FitResult, fitted_result

    checked = options.check(arguments)  # every check that needs neither the data nor its shape
    if client is not None:
        raise ValueError(f"'client' is for Dask arrays only; X is a {type(X).__name__} (wrap it with "
                         "dask.array.from_array to fit it on Dask).")
    if checked["persist"] != "auto":
        raise ValueError(f"'persist' is for Dask arrays only; X is a {type(X).__name__} (in-memory and "
                         "file-backed data is read where it is).")
    source = DataSource(X)  # reads the header only: its shape and dtype are checked
    N, D = source.shape
    V.check_n_samples(N, checked["n_components"])
    checked = options.check(arguments, shape=(N, D), checked=checked)  # the checks that need (N, D)
    K, covariance_type = checked["n_components"], checked["covariance_type"]
    init, resp0, weights = checked["init"], checked["init_responsibilities"], checked["sample_weight"]
    max_iter, tol, n_init, rng = checked["max_iter"], checked["tol"], checked["n_init"], checked["random_state"]
    callback = checked["callback"]
    saved = None if checked["resume"] is None else _checkpoint.read(checked["resume"])  # before any pass
    warm = init if isinstance(init, FitResult) else None
    chunk_rows = estep_chunk_rows(checked["chunk_size"], source, K, layout_of(covariance_type))

    with numba_threads(checked["n_threads"]):
        first = source.rows([0])[0]
        shift = first if np.all(np.isfinite(first)) else np.zeros(D)  # the pass names the bad row
        summary = engine.summarize(source, weights, shift=shift, full_scatter=covariance_type in ("full", "tied"),
                                   chunk_size=chunk_rows)  # raises when the weights sum to 0
        model = engine.Model._from_checked(checked, summary)

        def sweep(state):  # the data was validated by the summary pass
            return engine.estep(model, state, source, sample_weight=weights, chunk_size=chunk_rows,
                                check_finite=False)

        previous, history, state0 = None, np.zeros(0), None
        if warm is not None:
            state0 = warm_state(warm, model)
            if warm.model == model:  # the same data and priors: one long run, split in two
                previous, history = float(warm.elbo[-1]), np.asarray(warm.elbo)
        fixed_start = warm is not None or resp0 is not None or isinstance(init, np.ndarray)
        fingerprint = _checkpoint.prepare(saved, checked["checkpoint"], checked["resume"], source.shape,
                                          source.dtype, summary, model, arguments, checked)

        def start():
            with _progress.stage("initialisation"):
                return initial_state(model, init, resp0, source, weights, K, rng, chunk_rows, summary)

        n_runs = 1 if fixed_start else n_init  # a given start is the same every time
        with _progress.stage(_progress.SWEEP, max_sweeps=max_iter, runs=n_runs, rows=N):
            best = run_restarts(sweep, model, start, n_runs=n_runs, max_iter=max_iter, tol=tol,
                                tol_is_relative=checked["tol_type"] == "relative", callback=callback, rng=rng,
                                warm_state=state0, warm_elbo=previous, saved=saved, checkpoint=checked["checkpoint"],
                                fingerprint=fingerprint)
    return fitted_result(model, best, history, tol, stacklevel=2)

