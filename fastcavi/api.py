"""``fastcavi.fit`` and its result: validation and orchestration only (no maths here)."""
import os
import warnings
import zipfile
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from . import _validation as V
from ._driver import ConvergenceWarning, Preprocess, Workspace, estep_pass, numba_threads, run_cavi
from ._sources import DataSource, round_chunk_rows


def _frozen(a):
    if isinstance(a, tuple):
        return tuple(_frozen(x) for x in a)
    if np.ndim(a) == 0:
        return float(a)
    a = np.array(a, dtype=np.float64, copy=True)
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class FitResult:
    """A fitted variational posterior. Arrays are read-only.

    Attributes
    ----------
    covariance_type : str
    weight_concentration_prior_type : str
    elbo : ndarray of shape (n_iter,)
        The full ELBO (every constant kept) after each CAVI sweep of the best run.
    n_iter : int
        Sweeps run by the best run.
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
    lower_bound : float
        The last ELBO.
    """

    covariance_type: str
    weight_concentration_prior_type: str
    elbo: np.ndarray
    n_iter: int
    converged: bool
    weights: np.ndarray
    weight_concentration: object
    means: np.ndarray
    mean_precision: np.ndarray
    covariances: np.ndarray
    precisions: np.ndarray
    precisions_cholesky: np.ndarray
    degrees_of_freedom: object
    priors: object = field(repr=False)
    _engine: object = field(repr=False)

    @property
    def lower_bound(self):
        return float(self.elbo[-1])

    @property
    def n_components(self):
        return self.means.shape[0]

    @property
    def n_features(self):
        return self.means.shape[1]

    def _stream(self, X, n_threads, chunk_size, consume):
        def checked(row0, resp, lse):
            bad = np.flatnonzero(~np.isfinite(lse))
            if bad.size:
                raise ValueError(f"Row {row0 + int(bad[0])} of X has a non-finite log-density under the model "
                                 "(its values overflow: they are far outside the fitted components' scale).")
            consume(row0, resp, lse)

        source = DataSource(X)
        V.check_features(source.n_features, self.n_features)
        n_threads = V.check_n_threads(n_threads)
        eng = self._engine
        chunk_rows = _chunk_rows(chunk_size, source, self.n_components, eng.kernel)
        with numba_threads(n_threads):
            estep_pass(source, eng, eng.coeffs, eng.prep, chunk_rows, checked, check_finite=True)
        return source.n_samples

    def save(self, path):
        """Write the result to an ``.npz`` file that :func:`fastcavi.load` reads.

        Returns
        -------
        str
            The path written (``.npz`` is appended when ``path`` lacks it, as ``np.savez`` does).
        """
        arrays = dict(covariance_type=self.covariance_type,
                      weight_concentration_prior_type=self.weight_concentration_prior_type,
                      converged=self.converged, kernel=self._engine.kernel,
                      shift=self._engine.prep.shift, format_version=1)
        for name in _ARRAY_FIELDS:
            value = getattr(self, name)
            if isinstance(value, tuple):
                for j, part in enumerate(value):
                    arrays[f"{name}__{j}"] = part
            elif value is not None:
                arrays[name] = value
        if self._engine.prep.whiten is not None:
            arrays["whiten"] = self._engine.prep.whiten
        for j, c in enumerate(self._engine.coeffs):
            arrays[f"coeffs__{j}"] = c
        for name, value in self.priors.items():
            if value is None:
                arrays[f"prior_none__{name}"] = 0
            else:
                arrays[f"prior__{name}"] = value
        path = os.fspath(path)
        if not path.endswith(".npz"):
            path += ".npz"
        np.savez(path, **arrays)
        return path

    def predict_proba(self, X, *, n_threads=None, chunk_size=None):
        """Responsibilities ``q(z_n = k)`` of new rows, shape (n_samples, K)."""
        out = []

        def consume(row0, resp, lse):
            out.append(resp.copy())

        self._stream(X, n_threads, chunk_size, consume)
        return np.concatenate(out)

    def predict(self, X, *, n_threads=None, chunk_size=None):
        """Most responsible component of each row, shape (n_samples,), int64."""
        out = []
        self._stream(X, n_threads, chunk_size, lambda r0, resp, lse: out.append(np.argmax(resp, axis=1)))
        return np.concatenate(out).astype(np.int64)

    def score_samples(self, X, *, n_threads=None, chunk_size=None):
        """``logsumexp_k (E[log pi_k] + E[log N(x | mu_k, Lambda_k)])`` per row, shape (n_samples,).

        The same quantity as scikit-learn's ``BayesianGaussianMixture.score_samples``.
        """
        out = []
        self._stream(X, n_threads, chunk_size, lambda r0, resp, lse: out.append(lse.copy()))
        return np.concatenate(out)


_ARRAY_FIELDS = ("elbo", "weights", "weight_concentration", "means", "mean_precision", "covariances",
                 "precisions", "precisions_cholesky", "degrees_of_freedom")


@dataclass(frozen=True)
class _Engine:
    """What prediction needs: the kernel, its logit coefficients, and the preprocessing."""

    kernel: str
    coeffs: tuple
    prep: Preprocess


def _engine(model, state, prep):
    kernel, coeffs = model.prediction_coefficients(state)
    return _Engine(kernel, tuple(_frozen(c) for c in coeffs), prep)


_REQUIRED_KEYS = ("format_version", "covariance_type", "weight_concentration_prior_type", "converged", "kernel",
                  "shift", "elbo", "means", "coeffs__0")


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
    missing = [k for k in _REQUIRED_KEYS if k not in data]
    if missing:
        raise not_a_model(f"it lacks the entries {', '.join(missing)}")
    if int(data["format_version"]) != 1:
        raise not_a_model(f"its format version is {data['format_version']!r}; this fastcavi reads version 1")
    return data


def load(path):
    """Read a :class:`FitResult` written by :meth:`FitResult.save`.

    Parameters
    ----------
    path : str or os.PathLike
        An ``.npz`` file written by :meth:`FitResult.save`.

    Returns
    -------
    FitResult

    Raises
    ------
    ValueError
        When ``path`` is not a fastcavi model file (missing, a directory, a ``.npy`` file,
        text, or an ``.npz`` archive without fastcavi's entries), naming it.
    """
    path = os.fspath(path)
    data = _read_model_file(path)
    fields = {}
    for name in _ARRAY_FIELDS:
        if name in data:
            fields[name] = _frozen(data[name])
        elif f"{name}__0" in data:
            fields[name] = _frozen((data[f"{name}__0"], data[f"{name}__1"]))
        else:
            fields[name] = None
    coeffs = tuple(_frozen(data[k]) for k in sorted(k for k in data if k.startswith("coeffs__")))
    prep = Preprocess(data["shift"], data.get("whiten"))
    priors = {k[len("prior__"):]: _frozen(v) for k, v in data.items() if k.startswith("prior__")}
    priors.update({k[len("prior_none__"):]: None for k in data if k.startswith("prior_none__")})
    return FitResult(covariance_type=str(data["covariance_type"]),
                     weight_concentration_prior_type=str(data["weight_concentration_prior_type"]),
                     n_iter=int(data["elbo"].shape[0]), converged=bool(data["converged"]),
                     priors=MappingProxyType(priors),
                     _engine=_Engine(str(data["kernel"]), coeffs, prep), **fields)


def _chunk_rows(chunk_size, source, K, kernel):
    """Rows per chunk: the user's, rounded to whole blocks, or what fits ``CHUNK_BYTES`` of working memory.

    Per row: the converted row (D float64), responsibilities and log-sum-exp when they are
    returned (K + 1), and its share of the per-block partial sums (``totals_size / BLOCK_ROWS``).
    """
    if chunk_size is None:
        from ._config import BLOCK_ROWS
        from ._models.base import totals_size

        D = source.n_features
        rows = source.default_chunk_rows(8 * (D + K + 1) + 8 * totals_size(kernel, K, D) // BLOCK_ROWS)
    else:
        rows = round_chunk_rows(V.check_int("chunk_size", chunk_size, 1))
    return min(rows, round_chunk_rows(source.n_samples))  # never a buffer larger than the data


def fit(X, n_components, *, covariance_type="identity", covariance=None,
        weight_concentration_prior_type="dirichlet_distribution", weight_concentration_prior=None,
        mean_precision_prior=None, mean_prior=None, degrees_of_freedom_prior=None, covariance_prior=None,
        reg_covar=1e-6, exact_cavi=False, init="k-means++", init_responsibilities=None,
        max_iter=100, tol=1e-8, tol_type="relative", n_init=1, random_state=None,
        n_threads=None, chunk_size=None, callback=None):
    """Fit a variational Bayesian Gaussian mixture by CAVI, streaming over the data.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), np.memmap, path to a .npy file, or an h5py/zarr dataset
        The data; any real dtype. It is read in chunks and never modified or copied whole.
        float32 is computed as float32 (accumulated in float64); every other dtype is converted
        to float64 chunk by chunk (``np.longdouble`` is rounded, losing its extra precision).
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
        Added to the diagonal of each component's scatter, as scikit-learn adds it. A finite
        number >= 0 for every covariance type; ``"identity"`` checks it and ignores it.
    exact_cavi : bool, default False
        Wishart families with ``reg_covar > 0`` only (a bool for every covariance type;
        ``"identity"`` checks it and ignores it). False: scikit-learn's updates exactly;
        its M-step carries ``reg_covar`` but its E-step does not, so a sweep is not an exact
        coordinate-ascent step and on degenerate data the ELBO can dip slightly (an
        ``ELBODecreaseWarning``; scikit-learn's own bound dips there too). True: the logits
        also carry ``-reg_covar/2 tr E[Lambda_k]``, making every sweep exact coordinate ascent
        on the ELBO of the model whose observations carry extra N(0, reg_covar I) noise (that
        is the ELBO reported); it never decreases, and responsibilities differ from
        scikit-learn's by O(reg_covar tr E[Lambda_k]).
    init : {"k-means++", "random", "random_from_data"} or ndarray of shape (K, D)
        Initial means: k-means++ seeding, the seed's random hard assignments (the means
        of K random clusters), K random rows, or given means. "identity" starts as the
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
        Rows per chunk, rounded up to a multiple of 256. Results do not depend on it.
    callback : callable, optional
        ``callback(iteration, elbo, change)`` after every sweep.

    Returns
    -------
    FitResult
    """
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

    source = DataSource(X)
    N, D = source.shape
    V.check_n_samples(N, K)
    init = V.check_init(init, K, D)
    resp0 = None if init_responsibilities is None else V.check_init_responsibilities(init_responsibilities, N, K)
    from ._models import families

    spec = families.resolve(covariance_type, wtype, K, D,
                            covariance=covariance,
                            weight_concentration_prior=weight_concentration_prior,
                            mean_precision_prior=mean_precision_prior,
                            mean_prior=mean_prior, degrees_of_freedom_prior=degrees_of_freedom_prior,
                            covariance_prior=covariance_prior, reg_covar=reg_covar, exact_cavi=exact_cavi)
    chunk_rows = _chunk_rows(chunk_size, source, K, "full" if covariance_type == "full" else "diag")

    with numba_threads(n_threads):
        from ._summary import summarize_source

        summary = summarize_source(source, chunk_rows, full_scatter=spec.needs_full_scatter)
        model, prep, priors = spec.build(summary)

        workspace = Workspace(model.kernel, K, D, chunk_rows)

        def sweep(coeffs):
            return estep_pass(source, model, coeffs, prep, chunk_rows, workspace=workspace)

        best = None
        fixed_start = resp0 is not None or isinstance(init, np.ndarray)
        for _ in range(1 if fixed_start else n_init):  # a given start is the same every time
            state0 = _initial_state(model, prep, init, resp0, source, K, rng, chunk_rows, summary)
            state, elbos, converged = run_cavi(sweep, model, state0, max_iter=max_iter, tol=tol,
                                               tol_is_relative=tol_type == "relative", callback=callback)
            if best is None or elbos[-1] > best[1][-1]:
                best = (state, elbos, converged)
    state, elbos, converged = best
    if tol > 0 and not converged:
        warnings.warn("Best performing initialization did not converge. Try different init parameters, "
                      "or increase max_iter, tol, or check for degenerate data.", ConvergenceWarning,
                      stacklevel=2)
    public = model.public_parameters(state, prep)
    return FitResult(covariance_type=covariance_type, weight_concentration_prior_type=wtype,
                     elbo=_frozen(elbos), n_iter=len(elbos), converged=bool(converged),
                     **{k: (_frozen(v) if v is not None else None) for k, v in public.items()},
                     priors=MappingProxyType({k: _frozen(v) if v is not None else None for k, v in priors.items()}),
                     _engine=_engine(model, state, prep))


def _initial_state(model, prep, init, resp0, source, K, rng, chunk_rows, summary):
    """The variational state CAVI starts from (see ``init`` and ``init_responsibilities`` in :func:`fit`)."""
    from . import _init

    if resp0 is not None:
        def given(row0, y):
            R = np.asarray(resp0[row0:row0 + y.shape[0]], dtype=np.float64)
            V.check_resp_chunk(R, row0)
            return R

        return model.update(_init.responsibility_stats(source, prep, model.kernel, K, chunk_rows, given))
    means = prep.to_model(_initial_means(init, source, K, rng, chunk_rows, summary))
    if hasattr(model, "state_from_means"):
        return model.state_from_means(means)
    hard = _init.nearest_mean_resp(means)
    return model.update(_init.responsibility_stats(source, prep, model.kernel, K, chunk_rows, hard))


def _initial_means(init, source, K, rng, chunk_rows, summary):
    from . import _init

    if isinstance(init, np.ndarray):
        return init
    if init == "random":
        return _init.random_assignment_means(source, K, rng, chunk_rows)
    if init == "random_from_data":
        return _init.random_rows(source, K, rng)
    return _init.kmeans_plusplus(source, K, rng, chunk_rows, summary.mean)
