"""Every parameter of a fit, declared once: name, default, check, a one-line doc, and its layer.

In the spirit of scikit-learn's ``_parameter_constraints``: :data:`PARAMETERS` declares each
parameter, :func:`check` validates given values against the declaration, in one place and
before any data is read, and every front end reads it:

* :func:`fastcavi.fit` keeps its signature written out and typed (users and IDEs read it);
  ``tests/test_options.py`` checks that its names, order and defaults are the declaration's,
  and ``fit`` hands its arguments to :func:`check` (:func:`given` picks them from its locals).
* :class:`fastcavi.engine.Model` takes the model layer (``n_components``, ``covariance_type``
  and the options :data:`MODEL_OPTIONS`) with the declared defaults, and checks them here.
* :class:`fastcavi.BayesianGaussianMixture` keeps its ``__init__`` written out (scikit-learn
  requires it); :data:`ESTIMATOR` declares how it differs from ``fit`` (scikit-learn's defaults,
  its own parameters, the ``fit`` parameters it does not take), a test checks ``__init__``
  against :func:`estimator_defaults`, and its ``fit`` passes its parameters through
  :func:`estimator_arguments`.
* The command line's options are generated from the declaration
  (:func:`add_command_line_options`, :func:`command_line_arguments`).

Layers
------
``"model"``
    The model: its structure (``n_components``, ``covariance_type``), its priors and options.
    What :class:`fastcavi.engine.Model` takes and a model file stores.
``"fit"``
    How :func:`fastcavi.fit` runs CAVI: the start, the stopping rule, the restarts, the seed.
``"runtime"``
    How the work is done, not what it computes: threads, chunk size, a progress callback.
``"data"``
    Inputs with one entry per row of X, streamed with it (``sample_weight``).

The checks themselves are functions of :mod:`fastcavi._validation` (its docstring lists what
is checked where).
"""
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import numpy as np

from . import _validation as V

MODEL, FIT, RUNTIME, DATA = "model", "fit", "runtime", "data"
LAYERS = (MODEL, FIT, RUNTIME, DATA)

#: The default of a parameter that must be given (``n_components``): ``inspect.Parameter.empty``,
#: so that a declaration compares equal to a signature's.
REQUIRED = inspect.Parameter.empty


def number_or_list(text: str):
    """A command-line value: ``"2.5"`` -> 2.5, ``"1,2,3"`` -> array([1., 2., 3.])."""
    values = [float(v) for v in text.split(",")]
    return values[0] if len(values) == 1 else np.array(values)


@dataclass(frozen=True)
class CommandLine:
    """How a parameter appears on the command line (``--name-with-dashes``).

    Attributes
    ----------
    parse : callable or None
        ``str -> value``; None for a switch (present: True).
    aliases : tuple of str
        Other spellings that are accepted too (``-k``, and earlier versions' ``--seed``,
        ``--threads``, ``--weight-prior-type``, ``--alpha``, ``--nu``).
    choices : tuple of str, optional
        The values offered; by default those of a :class:`fastcavi._validation.OneOf` check.
    help : str, optional
        The option's help where the parameter's one-line doc says more than the command line
        takes (``--init``: no arrays, no FitResult); by default the doc.
    """

    parse: Optional[Callable[[str], Any]]
    aliases: Tuple[str, ...] = ()
    choices: Optional[Tuple[str, ...]] = None
    help: Optional[str] = None


@dataclass(frozen=True)
class Parameter:
    """One declared parameter.

    Attributes
    ----------
    name : str
    default : object
        :data:`REQUIRED` when it must be given.
    check : callable
        ``check(name, value, context) -> checked value``, a check of :mod:`fastcavi._validation`;
        its ``needs_shape`` says whether it needs the data's (n_samples, n_features).
    doc : str
        One line.
    layer : {"model", "fit", "runtime", "data"}
    command_line : CommandLine, optional
        None when the parameter has no command-line option.
    """

    name: str
    default: Any
    check: Callable[[str, Any, V.Context], Any]
    doc: str
    layer: str
    command_line: Optional[CommandLine] = None

    @property
    def needs_shape(self) -> bool:
        """Whether the check needs (n_samples, n_features): it then runs once the data's header is read."""
        return bool(self.check.needs_shape)

    @property
    def flag(self) -> str:
        """The command-line option: ``--`` and the name with dashes."""
        return "--" + self.name.replace("_", "-")


#: The parameters of :func:`fastcavi.fit` (after ``X``), in its order.
PARAMETERS: Tuple[Parameter, ...] = (
    Parameter("n_components", REQUIRED, V.IntRange(1),
              "K, the number of mixture components.", MODEL, CommandLine(int, aliases=("-k",))),
    Parameter("covariance_type", "identity", V.OneOf(V.COVARIANCE_TYPES),
              "identity: the seed's known-covariance model; the others: Normal-Wishart priors, as scikit-learn.",
              MODEL, CommandLine(str)),
    Parameter("covariance", None, V.known_covariance,
              "The known covariance of identity: None (the identity), sigma^2, a (D,) diagonal or an SPD matrix.",
              MODEL),
    Parameter("weight_concentration_prior_type", "dirichlet_distribution", V.OneOf(V.WEIGHT_PRIOR_TYPES),
              "The weights' prior: a Dirichlet, or a truncated stick-breaking Dirichlet process.",
              MODEL, CommandLine(str, aliases=("--weight-prior-type",))),
    Parameter("weight_concentration_prior", None, V.NoneOr(V.weight_concentration),
              "alpha, a number or K values (the process: a number); default 1 (identity) or 1/K.",
              MODEL, CommandLine(number_or_list, aliases=("--alpha",))),
    Parameter("mean_precision_prior", None, V.NoneOr(V.RealRange(0.0)),
              "nu (scikit-learn's beta0), > 0; default 1.", MODEL, CommandLine(float, aliases=("--nu",))),
    Parameter("mean_prior", None, V.NoneOr(V.prior_mean),
              "m0, a number or D values; default 0 (identity) or the data mean.",
              MODEL, CommandLine(number_or_list)),
    Parameter("degrees_of_freedom_prior", None, V.wishart_degrees_of_freedom,
              "Wishart nu0 > D - 1; default D (Wishart families only).", MODEL, CommandLine(float)),
    Parameter("covariance_prior", None, V.wishart_covariance_prior,
              "Wishart Psi0 in scikit-learn's shape for the type; default from the data (Wishart families only).",
              MODEL),
    Parameter("reg_covar", 1e-6, V.RealRange(0.0, strict=False),
              "Added to the diagonal of each component's scatter (Wishart families; checked for all).",
              MODEL, CommandLine(float)),
    Parameter("exact_cavi", False, V.Boolean(),
              "Carry reg_covar in the E-step too: exact coordinate ascent (Wishart families; checked for all).",
              MODEL, CommandLine(None)),
    Parameter("init", "k-means++", V.initialisation,
              "The start: k-means++ seeds, k-means|| seeds, k-means (Lloyd), random assignments, random rows, "
              "(K, D) means, or a FitResult to continue.",
              FIT, CommandLine(str, choices=V.INIT_METHODS,
                               help="The start: k-means++ (seeds), k-means|| (seeds), kmeans (k-means++ seeds then "
                                    "Lloyd's iterations), random (random assignments) or random_from_data (random "
                                    "rows as means).")),
    Parameter("init_responsibilities", None, V.NoneOr(V.initial_responsibilities),
              "(N, K) responsibilities to start from with an M-step (scikit-learn's start).", FIT),
    Parameter("max_iter", 100, V.IntRange(1),
              "Maximum CAVI sweeps per initialisation.", FIT, CommandLine(int)),
    Parameter("tol", 1e-8, V.RealRange(0.0, strict=False),
              "Stop when a sweep gains less than tol * |ELBO| (tol_type absolute: tol); 0 runs max_iter sweeps.",
              FIT, CommandLine(float)),
    Parameter("tol_type", "relative", V.OneOf(V.TOL_TYPES),
              "relative: compare the ELBO's gain with tol * |ELBO|; absolute: with tol.", FIT, CommandLine(str)),
    Parameter("n_init", 1, V.IntRange(1),
              "Initialisations to run; the one with the highest final ELBO is kept.", FIT, CommandLine(int)),
    Parameter("random_state", None, V.random_seed,
              "The seed: None, an int, a numpy Generator or RandomState.",
              FIT, CommandLine(int, aliases=("--seed",))),
    Parameter("n_threads", None, V.thread_count,
              "Threads for the kernels during the call (results do not depend on it).",
              RUNTIME, CommandLine(int, aliases=("--threads",))),
    Parameter("chunk_size", None, V.NoneOr(V.IntRange(1)),
              "Rows per chunk, rounded up to whole segments (results do not depend on it).",
              RUNTIME, CommandLine(int)),
    Parameter("callback", None, V.callable_or_none,
              "callback(iteration, elbo, change), called after every sweep.", RUNTIME),
    Parameter("sample_weight", None, V.NoneOr(V.row_weights),
              "Non-negative finite row weights, streamed like X.", DATA),
    Parameter("checkpoint", None, V.NoneOr(V.file_path),
              "A file the whole fit state is written to after every sweep (atomically), to resume from.",
              FIT, CommandLine(str)),
    Parameter("resume", None, V.NoneOr(V.file_path),
              "A checkpoint to continue from: the same data and options give the uninterrupted fit's bits.",
              FIT, CommandLine(str)),
    Parameter("client", None, V.unchecked,
              "A dask.distributed Client for Dask-array X (default: the current scheduler).", RUNTIME),
    Parameter("persist", "auto", V.persist_choice,
              "Dask-array X: keep it in the cluster's memory (auto: when it fits comfortably) or read it each sweep.",
              RUNTIME),
)

BY_NAME: Mapping[str, Parameter] = {p.name: p for p in PARAMETERS}

#: The options of :class:`fastcavi.engine.Model` (its model layer after ``n_components`` and ``covariance_type``).
MODEL_OPTIONS: Tuple[str, ...] = tuple(p.name for p in PARAMETERS if p.layer == MODEL
                                       and p.name not in ("n_components", "covariance_type"))


def parameters(*layers: str) -> Tuple[Parameter, ...]:
    """The declared parameters of ``layers`` (all when none is named), in declaration order."""
    unknown = set(layers) - set(LAYERS)
    if unknown:
        raise ValueError(f"Unknown layers {sorted(unknown)}; the layers are {LAYERS}.")
    return tuple(p for p in PARAMETERS if not layers or p.layer in layers)


def defaults(*layers: str) -> Dict[str, Any]:
    """``{name: default}`` of the declared parameters of ``layers`` (all when none is named)."""
    return {p.name: p.default for p in parameters(*layers)}


def given(arguments: Mapping[str, Any]) -> Dict[str, Any]:
    """The declared parameters' values among a call's ``arguments`` (:func:`fastcavi.fit` passes ``locals()``).

    Raises
    ------
    KeyError
        When a declared parameter is missing from ``arguments`` (a front end out of step with the declaration).
    """
    return {p.name: arguments[p.name] for p in PARAMETERS}


def _context(checked, shape):
    n_samples, n_features = (None, None) if shape is None else shape
    return V.Context(n_components=checked.get("n_components"),
                     covariance_type=checked.get("covariance_type", BY_NAME["covariance_type"].default),
                     weight_concentration_prior_type=checked.get(
                         "weight_concentration_prior_type", BY_NAME["weight_concentration_prior_type"].default),
                     n_samples=n_samples, n_features=n_features)


def check(values: Mapping[str, Any], *, shape: Optional[Tuple[Optional[int], int]] = None,
          checked: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Check ``values`` (``{name: value as given}``) against the declaration, in its order.

    Two steps, neither of which reads the data. Without ``shape``: the parameters whose checks
    need neither the data nor its shape. With ``shape``: the others as well, or only the others
    when ``checked`` (the first step's output) is given. The checks of later parameters see
    the checked ``n_components``, ``covariance_type`` and ``weight_concentration_prior_type``.

    Parameters
    ----------
    values : mapping
        Values of declared parameters (any subset).
    shape : tuple (n_samples, n_features), optional
        From the data's header; ``n_samples`` may be None when no check given needs it.
    checked : mapping, optional
        The output of the first step, to which the second step adds.

    Returns
    -------
    dict
        ``{name: checked value}``: the first step's and this step's. A checked value may differ
        in kind from the given one (a ``random_state`` becomes a Generator, ``covariance`` its
        Cholesky factor, ``sample_weight`` a stream; see each check).

    Raises
    ------
    ValueError
        Naming the first parameter, in declaration order, whose value is invalid.
    """
    V.check_option_names(values, BY_NAME, "options.check()")
    out = {} if checked is None else dict(checked)
    steps = (False,) if shape is None else ((True,) if checked is not None else (False, True))
    for needs_shape in steps:
        for p in PARAMETERS:
            if p.name in values and p.needs_shape == needs_shape:
                out[p.name] = p.check(p.name, values[p.name], _context(out, shape))
    return out


# -- the estimator ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class EstimatorDeclaration:
    """How :class:`fastcavi.BayesianGaussianMixture`'s parameters differ from :func:`fastcavi.fit`'s.

    Attributes
    ----------
    defaults : mapping
        scikit-learn's defaults where they differ from :data:`PARAMETERS`'.
    checks : mapping
        Stricter checks of shared parameters, run before :func:`fastcavi.fit`'s own.
    not_taken : mapping
        The parameters of :func:`fastcavi.fit` the estimator does not take, and what it passes instead.
    own : tuple of Parameter
        The estimator's own parameters (scikit-learn's), which :func:`fastcavi.fit` does not take.
    """

    defaults: Mapping[str, Any]
    checks: Mapping[str, Callable[[str, Any, V.Context], Any]]
    not_taken: Mapping[str, str]
    own: Tuple[Parameter, ...]


ESTIMATOR = EstimatorDeclaration(
    defaults={"n_components": 1, "covariance_type": "full", "tol": 1e-3,
              "weight_concentration_prior_type": "dirichlet_process"},
    checks={"covariance_type": V.estimator_covariance_type},
    not_taken={"covariance": "none: scikit-learn's families have no known covariance",
               "init": "the init of init_params, or the last fit's result when warm_start",
               "init_responsibilities": "none: scikit-learn's estimator has no such parameter",
               "tol_type": "'absolute', scikit-learn's rule",
               "callback": "progress lines, when verbose",
               "sample_weight": "the sample_weight given to the estimator's fit",
               "client": "none: a Dask-array X uses the current scheduler",
               "persist": "'auto': a Dask-array X is kept in the cluster's memory when it fits comfortably",
               "checkpoint": "none: checkpoints are fastcavi.fit's and the command line's",
               "resume": "none: checkpoints are fastcavi.fit's and the command line's"},
    own=(Parameter("init_params", "kmeans", V.estimator_init_params,
                   "scikit-learn's: kmeans (Lloyd's labels), k-means++ (one-hot on K seed rows), random (soft), "
                   "or random_from_data (one-hot on K random rows); then an M-step.", FIT),
         Parameter("verbose", 0, V.unchecked, "scikit-learn's progress lines: 1, each initialisation's start and "
                   "end and every verbose_interval-th sweep; 2, with time lapses, ELBO changes and the lower "
                   "bound.", RUNTIME),
         Parameter("verbose_interval", 10, V.unchecked, "Sweeps between progress lines.", RUNTIME),
         Parameter("warm_start", False, V.unchecked, "Continue from the last fit's variational state.", FIT),
         # partial_fit's (scikit-learn LatentDirichletAllocation's names), checked by fastcavi.stream
         Parameter("learning_method", "memoized", V.unchecked, "partial_fit: 'memoized' or 'online' VI.", FIT),
         Parameter("learning_offset", 10.0, V.unchecked, "partial_fit, online: tau in rho_t = (t + tau)^-kappa.", FIT),
         Parameter("learning_decay", 0.7, V.unchecked, "partial_fit, online: kappa in (0.5, 1].", FIT),
         Parameter("total_samples", 1e6, V.unchecked, "partial_fit, online: the stream's total rows N.", FIT)),
)


def estimator_defaults() -> Dict[str, Any]:
    """``{name: default}`` of the estimator's ``__init__`` (any order)."""
    shared = {p.name: ESTIMATOR.defaults.get(p.name, p.default) for p in PARAMETERS
              if p.name not in ESTIMATOR.not_taken}
    return dict(shared, **{p.name: p.default for p in ESTIMATOR.own})


def estimator_arguments(params: Mapping[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Check the estimator's own parameters and its stricter checks; split ``params`` (its ``get_params()``).

    Returns
    -------
    fit_arguments : dict
        The parameters it shares with :func:`fastcavi.fit`, as given (``fit`` checks them).
    own : dict
        Its own parameters, checked (``init_params`` becomes the ``init`` it means).
    """
    context = V.Context()
    own = {p.name: p.check(p.name, params[p.name], context) for p in ESTIMATOR.own}
    for name, stricter in ESTIMATOR.checks.items():
        stricter(name, params[name], context)
    shared = {p.name: params[p.name] for p in PARAMETERS if p.name not in ESTIMATOR.not_taken}
    return shared, own


# -- the command line ------------------------------------------------------------------------------
def add_command_line_options(parser, *layers: str) -> None:
    """Add an option for each declared parameter of ``layers`` that has a command-line form.

    The option's default is the declaration's; a parameter without a default is a required
    option; ``parse=None`` makes a switch (``--exact-cavi``).
    """
    for p in parameters(*layers):
        cl = p.command_line
        if cl is None:
            continue
        flags = tuple(a for a in cl.aliases if not a.startswith("--")) + (p.flag,) + tuple(
            a for a in cl.aliases if a.startswith("--"))
        doc = (cl.help or p.doc).replace("%", "%%")
        if cl.parse is None:
            parser.add_argument(*flags, dest=p.name, action="store_true", help=doc)
            continue
        choices = cl.choices if cl.choices is not None else getattr(p.check, "choices", None)
        if p.default is REQUIRED:
            parser.add_argument(*flags, dest=p.name, type=cl.parse, required=True, help=doc)
        else:
            shown = "" if p.default is None else f" Default: {p.default}."
            parser.add_argument(*flags, dest=p.name, type=cl.parse, default=p.default, choices=choices,
                                help=doc + shown)


def command_line_arguments(args, *layers: str) -> Dict[str, Any]:
    """``{name: value}`` of the options :func:`add_command_line_options` added for ``layers``, from parsed ``args``."""
    return {p.name: getattr(args, p.name) for p in parameters(*layers) if p.command_line is not None}
