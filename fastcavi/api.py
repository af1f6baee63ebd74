"""``fastcavi.fit``: validation, then a short loop over the public engine's calls (no maths here)."""
import warnings

import numpy as np

from . import _validation as V
from ._sources import DataSource, WeightSource


def fit(X, n_components, *, covariance_type="identity", covariance=None,
        weight_concentration_prior_type="dirichlet_distribution", weight_concentration_prior=None,
        mean_precision_prior=None, mean_prior=None, degrees_of_freedom_prior=None, covariance_prior=None,
        reg_covar=1e-6, exact_cavi=False, init="k-means++", init_responsibilities=None,
        max_iter=100, tol=1e-8, tol_type="relative", n_init=1, random_state=None,
        n_threads=None, chunk_size=None, callback=None, sample_weight=None, client=None):
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
    init : {"k-means++", "random", "random_from_data"}, ndarray of shape (K, D), or FitResult
        Initial means: k-means++ seeding, the seed's random hard assignments (the means
        of K random clusters), K random rows, or given means. A :class:`FitResult` (or a
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
    client : distributed.Client, optional
        For a Dask array X only: where to compute (default: the current Dask scheduler).

    Returns
    -------
    FitResult
    """
    if type(X).__module__.split(".")[0] == "dask":  # checked by type: dask is imported only for dask input
        from .dask import fit as dask_fit

        return dask_fit(X, n_components, covariance_type=covariance_type, covariance=covariance,
                        weight_concentration_prior_type=weight_concentration_prior_type,
                        weight_concentration_prior=weight_concentration_prior,
                        mean_precision_prior=mean_precision_prior, mean_prior=mean_prior,
                        degrees_of_freedom_prior=degrees_of_freedom_prior, covariance_prior=covariance_prior,
                        reg_covar=reg_covar, exact_cavi=exact_cavi, init=init,
                        init_responsibilities=init_responsibilities, max_iter=max_iter, tol=tol,
                        tol_type=tol_type, n_init=n_init, random_state=random_state, n_threads=n_threads,
                        chunk_size=chunk_size, callback=callback, sample_weight=sample_weight, client=client)
    if client is not None:
        raise ValueError(f"'client' is for Dask arrays only; X is a {type(X).__name__} (wrap it with "
                         "dask.array.from_array to fit it on Dask).")
    from . import engine
    from ._driver import run_cavi
    from ._passes import numba_threads
    from .exceptions import ConvergenceWarning
    from .result import FitResult

    K = V.check_int("n_components", n_components, 1)
    covariance_type = V.check_choice("covariance_type", covariance_type, V.COVARIANCE_TYPES)
    wtype = V.check_choice("weight_concentration_prior_type", weight_concentration_prior_type,
                           V.WEIGHT_PRIOR_TYPES)
    max_iter = V.check_int("max_iter", max_iter, 1)
    tol = V.check_real("tol", tol, 0.0, strict=False)
    tol_type = V.check_choice("tol_type", tol_type, ("relative", "absolute"))
    n_init = V.check_int("n_init", n_init, 1)
    n_threads = V.check_n_threads(n_threads)
    rng = V.check_random_state(random_state)
    if callback is not None and not callable(callback):
        raise ValueError(f"'callback' must be callable or None. Got {callback!r}.")
    options = dict(covariance=covariance, weight_concentration_prior_type=wtype,
                   weight_concentration_prior=weight_concentration_prior, mean_precision_prior=mean_precision_prior,
                   mean_prior=mean_prior, degrees_of_freedom_prior=degrees_of_freedom_prior,
                   covariance_prior=covariance_prior, reg_covar=reg_covar, exact_cavi=exact_cavi)
    from ._models import families

    source = DataSource(X)
    N, D = source.shape
    V.check_n_samples(N, K)
    families.resolve(covariance_type, wtype, K, D,  # every option checked before the data is read
                     **{k: v for k, v in options.items() if k != "weight_concentration_prior_type"})
    warm = init if isinstance(init, FitResult) else None
    if warm is not None:
        V.check_warm_start(warm, covariance_type, K, D)
    else:
        init = V.check_init(init, K, D)
    resp0 = None if init_responsibilities is None else V.check_init_responsibilities(init_responsibilities, N, K)
    weights = None if sample_weight is None else WeightSource(sample_weight, N)
    layout = "full" if covariance_type == "full" else "diag"
    chunk_rows = engine.estep_chunk_rows(chunk_size, source, K, layout)

    with numba_threads(n_threads):
        from ._passes import estep_pass, summary_pass

        first = source.rows([0])[0]
        shift = first if np.all(np.isfinite(first)) else np.zeros(D)  # the pass names the bad row
        summary = summary_pass(source, weights, chunk_rows, shift, covariance_type in ("full", "tied"))
        if weights is not None and not summary.count > 0:
            raise ValueError("sample_weight sums to 0: there is nothing to fit.")
        model = engine.Model(K, covariance_type, summary=summary, **options)
        workspace = [None]

        def sweep(state):
            layout, coeffs = model.coefficients(state)
            stats, workspace[0] = estep_pass(source, weights, model._coords, layout, coeffs, chunk_rows,
                                             workspace=workspace[0])
            return stats

        best = None
        previous, history = None, np.zeros(0)
        if warm is not None:
            state0 = _warm_state(warm, model)
            if warm.model == model:  # the same data and priors: one long run, split in two
                previous, history = float(warm.elbo[-1]), np.asarray(warm.elbo)
        fixed_start = warm is not None or resp0 is not None or isinstance(init, np.ndarray)
        for _ in range(1 if fixed_start else n_init):  # a given start is the same every time
            if warm is None:
                state0 = _initial_state(model, init, resp0, source, weights, K, rng, chunk_rows, summary)
            state, elbos, converged = run_cavi(sweep, model, state0, max_iter=max_iter, tol=tol,
                                               tol_is_relative=tol_type == "relative", callback=callback,
                                               previous_elbo=previous)
            if best is None or elbos[-1] > best[1][-1]:
                best = (state, elbos, converged)
    state, elbos, converged = best
    if tol > 0 and not converged:
        warnings.warn("Best performing initialization did not converge. Try different init parameters, "
                      "or increase max_iter, tol, or check for degenerate data.", ConvergenceWarning,
                      stacklevel=2)
    return FitResult.from_state(model, state, np.concatenate((history, elbos)), converged)


def _warm_state(previous, model):
    """The previous result's state in this model's coordinates (means move with the shift; exact when equal)."""
    from dataclasses import replace

    from .engine import freeze_state

    state = previous.state
    old = previous.model
    if np.array_equal(old.shift, model.shift) and _same_whitening(old, model):
        return state
    means = model._coords.to_model(old._coords.to_data(state.means))
    return freeze_state(replace(state, means=means))


def _same_whitening(a, b):
    wa, wb = a.to_dict()["whiten"], b.to_dict()["whiten"]
    return (wa is None and wb is None) or (wa is not None and wb is not None and np.array_equal(wa, wb))


def _initial_state(model, init, resp0, source, weights, K, rng, chunk_rows, summary):
    """The variational state CAVI starts from (see ``init`` and ``init_responsibilities`` in :func:`fit`)."""
    from . import _init
    from ._passes import estep_pass
    from .engine import _dummy_coeffs

    if resp0 is not None:
        def given(row0, rows, shift):
            R = np.ascontiguousarray(resp0[row0:row0 + rows.shape[0]], dtype=np.float64)
            V.check_resp_chunk(R, row0)
            return R
    else:
        means = _initial_means(init, source, K, rng, chunk_rows, summary)
        if model.covariance_type == "identity":
            return model.state_from_means(means)
        given = _init.nearest_mean_resp(model._coords.to_model(means))
    stats, _ = estep_pass(source, weights, model._coords, model.layout, _dummy_coeffs(model), chunk_rows,
                          given=given)
    return model.update(stats)


def _initial_means(init, source, K, rng, chunk_rows, summary):
    from . import _init

    if isinstance(init, np.ndarray):
        return init
    if init == "random":
        return _init.random_assignment_means(source, K, rng, chunk_rows)
    if init == "random_from_data":
        return _init.random_rows(source, K, rng)
    return _init.kmeans_plusplus(source, K, rng, chunk_rows, summary.mean)
