"""One declaration of the parameters (fastcavi.options): fit, engine.Model, the estimator and the CLI follow it."""
import inspect
import re
import typing
import warnings

import numpy as np
import pytest

import fastcavi
from fastcavi import _validation as V
from fastcavi import engine, options
from fastcavi.cli import build_parser, main

NAMES = [p.name for p in options.PARAMETERS]
#: What needs the data's shape (n_samples, n_features), so runs after its header is read.
SHAPE_DEPENDENT = {"covariance", "mean_prior", "degrees_of_freedom_prior", "covariance_prior", "init",
                   "init_responsibilities", "sample_weight"}


def _blobs(N=600, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    return centres[rng.integers(3, size=N)] + rng.normal(size=(N, 2))


def _fit(X, K=3, **kwargs):
    args = dict(random_state=0, max_iter=4, tol=0.0)
    args.update(kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fastcavi.fit(X, K, **args)


# -- the declaration itself --------------------------------------------------------------------------
def test_declaration_is_complete_and_its_checks_are_validations():
    assert len(set(NAMES)) == len(NAMES)
    for p in options.PARAMETERS:
        assert p.layer in options.LAYERS, p.name
        assert p.doc and "\n" not in p.doc and p.doc.endswith("."), p.name
        check = p.check.check if isinstance(p.check, V.NoneOr) else p.check
        assert type(check).__module__ == "fastcavi._validation" or check.__module__ == "fastcavi._validation", p.name
        assert p.needs_shape == (p.name in SHAPE_DEPENDENT), p.name
    assert {p.name for p in options.parameters(options.MODEL)} == {
        "n_components", "covariance_type", "covariance", "weight_concentration_prior_type",
        "weight_concentration_prior", "mean_precision_prior", "mean_prior", "degrees_of_freedom_prior",
        "covariance_prior", "reg_covar", "exact_cavi"}
    assert {p.name for p in options.parameters(options.RUNTIME)} == {"n_threads", "chunk_size", "callback", "client",
                                                                      "persist"}
    with pytest.raises(ValueError, match="Unknown layers"):
        options.parameters("priors")


def test_check_runs_in_two_steps_and_resolves_values():
    given = dict(options.defaults(), n_components=3, covariance_type="diag", random_state=5,
                 weight_concentration_prior=2.0, mean_prior=1.0, degrees_of_freedom_prior=4.0)
    first = options.check(given)
    assert set(first) == set(NAMES) - SHAPE_DEPENDENT  # nothing that needs the shape yet
    assert isinstance(first["random_state"], np.random.Generator)
    np.testing.assert_array_equal(first["weight_concentration_prior"], [2.0, 2.0, 2.0])  # (K,) for the Dirichlet
    both = options.check(given, shape=(100, 2), checked=first)
    assert set(both) == set(NAMES)
    assert both["random_state"] is first["random_state"]  # not checked (drawn from) twice
    np.testing.assert_array_equal(both["mean_prior"], [1.0, 1.0])
    assert both["degrees_of_freedom_prior"] == 4.0 and both["init"] == "k-means++"
    once = options.check(given, shape=(100, 2))  # both steps at once
    assert set(once) == set(NAMES)
    with pytest.raises(ValueError, match="degrees_of_freedom_prior' should be greater than 4"):
        options.check(given, shape=(100, 5), checked=first)  # D = 5 needs nu0 > 4
    with pytest.raises(TypeError, match="unexpected options \\['priors'\\]"):
        options.check({"priors": 1})


# -- fastcavi.fit ---------------------------------------------------------------------------------------
def test_fit_signature_is_the_declaration():
    params = list(inspect.signature(fastcavi.fit).parameters.values())
    assert params[0].name == "X"
    assert [p.name for p in params[1:]] == NAMES  # same names, same order
    for p in params[1:]:
        assert p.default is options.BY_NAME[p.name].default or p.default == options.BY_NAME[p.name].default, p.name
        assert p.annotation is not inspect.Parameter.empty, f"{p.name} is not typed"
    assert params[1].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and params[1].default is inspect.Parameter.empty
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[2:])


def test_fit_annotations_offer_the_declared_choices():
    params = inspect.signature(fastcavi.fit).parameters
    for name in ("covariance_type", "weight_concentration_prior_type", "tol_type"):
        assert typing.get_args(params[name].annotation) == options.BY_NAME[name].check.choices, name
    init_literal = [a for a in typing.get_args(params["init"].annotation) if typing.get_origin(a) is typing.Literal]
    assert typing.get_args(init_literal[0]) == V.INIT_METHODS


def test_fit_docstring_documents_the_declared_parameters():
    doc = inspect.getdoc(fastcavi.fit)
    section = doc.split("Parameters\n----------\n")[1].split("\nReturns\n")[0]
    documented = re.findall(r"^(\w+) :", section, flags=re.M)
    assert documented == ["X"] + NAMES


def test_fit_hands_every_argument_to_the_declared_checks(monkeypatch):
    sentinels = {name: object() for name in NAMES}
    seen = {}

    class Stop(Exception):
        pass

    def recording_check(values, **kwargs):
        seen.update(values)
        raise Stop

    monkeypatch.setattr(options, "check", recording_check)
    with pytest.raises(Stop):
        fastcavi.fit(np.zeros((10, 2)), sentinels["n_components"],
                     **{k: v for k, v in sentinels.items() if k != "n_components"})
    assert set(seen) == set(NAMES)
    assert all(seen[name] is sentinels[name] for name in NAMES)


def test_every_declared_fit_option_acts_on_the_fit(monkeypatch, tmp_path):
    """A non-default value of each declared parameter changes what the fit does, as documented."""
    X = _blobs()
    ckpt_path = tmp_path / "fit.ckpt"
    means0 = X[[0, 1, 2]].copy()
    ref = _fit(X)
    diag = _fit(X, covariance_type="diag")

    def sweeps_seen(**kwargs):
        calls = []
        _fit(X, callback=lambda it, elbo, change: calls.append(it), **kwargs)
        return len(calls)

    def recorded(module, name, **kwargs):
        seen = []
        original = getattr(module, name)

        def spy(*args, **kw):
            seen.append(args)
            return original(*args, **kw)

        with monkeypatch.context() as m:
            m.setattr(module, name, spy)
            _fit(X, **kwargs)
        return seen

    import fastcavi._passes as passes

    w = np.full(X.shape[0], 2)
    doubled = np.vstack([X, X])
    R = np.eye(3)[np.arange(X.shape[0]) % 3]
    effects = {
        "n_components": lambda: _fit(X, K=2).n_components == 2,
        "covariance_type": lambda: diag.covariance_type == "diag" and diag.covariances.shape == (3, 2),
        "covariance": lambda: np.allclose(_fit(X, covariance=2.0).priors["covariance"], 2.0 * np.eye(2),
                                          rtol=1e-15, atol=0),
        "weight_concentration_prior_type": lambda: _fit(
            X, weight_concentration_prior_type="dirichlet_process").weight_concentration_prior_type
        == "dirichlet_process",
        "weight_concentration_prior": lambda: np.array_equal(
            _fit(X, weight_concentration_prior=5.0).priors["weight_concentration_prior"], [5.0] * 3),
        "mean_precision_prior": lambda: _fit(X, mean_precision_prior=0.5).priors["mean_precision_prior"] == 0.5,
        "mean_prior": lambda: np.array_equal(_fit(X, mean_prior=[1.0, -1.0]).priors["mean_prior"], [1.0, -1.0]),
        "degrees_of_freedom_prior": lambda: _fit(
            X, covariance_type="diag", degrees_of_freedom_prior=4.0).priors["degrees_of_freedom_prior"] == 4.0,
        "covariance_prior": lambda: np.array_equal(
            _fit(X, covariance_type="diag", covariance_prior=[2.0, 3.0]).priors["covariance_prior"], [2.0, 3.0]),
        "reg_covar": lambda: _fit(X, covariance_type="diag", reg_covar=0.1).priors["reg_covar"] == 0.1
        and diag.priors["reg_covar"] == 1e-6,
        "exact_cavi": lambda: _fit(X, covariance_type="diag", exact_cavi=True).model.exact_coordinate_ascent
        and not diag.model.exact_coordinate_ascent,
        "init": lambda: not np.array_equal(_fit(X, init=means0).elbo, ref.elbo),
        "init_responsibilities": lambda: not np.array_equal(_fit(X, init_responsibilities=R).elbo, ref.elbo),
        "max_iter": lambda: _fit(X, max_iter=2).n_iter == 2,
        "tol": lambda: _fit(X, max_iter=50, tol=0.5).n_iter == 2,
        "tol_type": lambda: _fit(X, max_iter=50, tol=1.0, tol_type="absolute").n_iter
        > _fit(X, max_iter=50, tol=1.0).n_iter == 2,
        "n_init": lambda: sweeps_seen(n_init=3) == 3 * sweeps_seen() == 12,
        "random_state": lambda: not np.array_equal(_fit(X, init="random", random_state=1).elbo,
                                                   _fit(X, init="random", random_state=0).elbo),
        "n_threads": lambda: recorded(passes, "numba_threads", n_threads=1)[0] == (1,),
        "chunk_size": lambda: recorded(passes, "estep_chunk_rows", chunk_size=5000)[0][0] == 5000,
        "callback": lambda: sweeps_seen() == 4,
        # a checkpoint file is written; resuming from it continues (tests/test_checkpoint.py: bitwise)
        "checkpoint": lambda: _fit(X, checkpoint=ckpt_path) is not None and ckpt_path.exists(),
        "resume": lambda: np.array_equal(_fit(X, resume=ckpt_path).elbo, _fit(X).elbo),
        # a Dask client: tests/test_dask.py fits with one; in-memory data with a client is refused
        "client": lambda: pytest.raises(ValueError, _fit, X, client=object()) is not None,
        # keeping a Dask array in the cluster's memory: tests/test_dask.py; in-memory data refuses a choice
        "persist": lambda: pytest.raises(ValueError, _fit, X, persist=False) is not None,
        # integer weights are the fit of the repeated rows
        "sample_weight": lambda: np.allclose(_fit(X, init=means0, sample_weight=w).means,
                                             _fit(doubled, init=means0).means, rtol=1e-10, atol=1e-10),
    }
    assert set(effects) == set(NAMES), "every declared parameter needs an effect here"
    for name in NAMES:
        assert effects[name](), name


#: A bad value of every declared parameter, and what its error says.
BAD_VALUES = [
    (dict(n_components=0), "'n_components'"),
    (dict(covariance_type="fullish"), "'covariance_type'"),
    (dict(covariance=-1.0), "'covariance'"),
    (dict(covariance=2.0, covariance_type="diag"), "'covariance' \\(a known covariance\\) applies only"),
    (dict(weight_concentration_prior_type="dp"), "'weight_concentration_prior_type'"),
    (dict(weight_concentration_prior=0.0), "'weight_concentration_prior'"),
    (dict(mean_precision_prior=0.0), "'mean_precision_prior'"),
    (dict(mean_prior=[1.0, 2.0, 3.0]), "'mean_prior'"),
    (dict(degrees_of_freedom_prior=0.5, covariance_type="diag"), "'degrees_of_freedom_prior' should be greater"),
    (dict(degrees_of_freedom_prior=3.0), "apply to the Wishart families"),
    (dict(covariance_prior=[1.0], covariance_type="diag"), "'diag covariance_prior' should have the shape"),
    (dict(covariance_prior=1.0), "apply to the Wishart families"),
    (dict(reg_covar=-1.0), "'reg_covar'"),
    (dict(exact_cavi="yes"), "'exact_cavi'"),
    (dict(init="kmeanz"), "'init'"),
    (dict(init_responsibilities=np.ones((3, 3))), "'init_responsibilities' should have the shape \\(100, 2\\)"),
    (dict(max_iter=0), "'max_iter'"),
    (dict(tol=-1.0), "'tol'"),
    (dict(tol_type="rel"), "'tol_type'"),
    (dict(n_init=0), "'n_init'"),
    (dict(random_state="seed"), "cannot be used to seed"),
    (dict(n_threads=0), "'n_threads'"),
    (dict(chunk_size=0), "'chunk_size'"),
    (dict(callback=3), "'callback'"),
    (dict(sample_weight=np.ones(5)), "sample_weight.shape == \\(5,\\), expected \\(100,\\)"),
    (dict(client=object()), "'client' is for Dask arrays only"),
    (dict(persist="yes"), "'persist' parameter must be 'auto', True or False"),
    (dict(persist=True), "'persist' is for Dask arrays only"),
    (dict(checkpoint=3), "'checkpoint' parameter must be a path"),
    (dict(resume=3.5), "'resume' parameter must be a path"),
]


@pytest.mark.parametrize("kwargs, message", BAD_VALUES)
def test_every_bad_parameter_is_refused_before_any_data_is_read(kwargs, message):
    class CountingReads:
        def __init__(self, a):
            self._a, self.shape, self.dtype, self.reads = a, a.shape, a.dtype, 0

        def __getitem__(self, key):
            self.reads += 1
            return self._a[key]

    kwargs = dict(kwargs)
    K = kwargs.pop("n_components", 2)
    data = CountingReads(np.random.default_rng(0).normal(size=(100, 2)))
    with pytest.raises(ValueError, match=message):
        fastcavi.fit(data, K, **kwargs)
    assert data.reads == 0


def test_every_declared_parameter_has_a_bad_value_case():
    assert {name for kwargs, _ in BAD_VALUES for name in kwargs} == set(NAMES)


# -- engine.Model ---------------------------------------------------------------------------------------
def test_model_options_are_the_declared_model_layer():
    model_layer = options.defaults(options.MODEL)
    assert engine._OPTION_DEFAULTS == {k: v for k, v in model_layer.items()
                                       if k not in ("n_components", "covariance_type")}
    sig = inspect.signature(engine.Model.__init__).parameters
    assert sig["covariance_type"].default == model_layer["covariance_type"]
    with pytest.raises(TypeError, match=r"Model\(\) got unexpected options \['max_iter'\]"):
        engine.Model(2, summary=engine.summarize(_blobs()), max_iter=3)


@pytest.mark.parametrize("covariance_type, extra", [
    ("identity", dict(covariance=np.diag([2.0, 3.0]))),
    ("diag", dict(degrees_of_freedom_prior=4.0, covariance_prior=[2.0, 3.0], reg_covar=0.1, exact_cavi=True)),
])
def test_model_from_options_equals_fit_model(covariance_type, extra):
    X = _blobs()
    opts = dict(weight_concentration_prior_type="dirichlet_process", weight_concentration_prior=2.0,
                mean_precision_prior=0.5, mean_prior=[1.0, -1.0], **extra)
    r = _fit(X, covariance_type=covariance_type, max_iter=1, **opts)
    summary = engine.summarize(X, full_scatter=covariance_type in ("full", "tied"))
    assert engine.Model(3, covariance_type, summary=summary, **opts) == r.model


# -- the estimator ------------------------------------------------------------------------------------
def test_estimator_init_matches_the_declaration():
    from fastcavi.estimator import BayesianGaussianMixture

    params = inspect.signature(BayesianGaussianMixture.__init__).parameters
    names = [n for n in params if n != "self"]
    assert all(params[n].kind is inspect.Parameter.KEYWORD_ONLY for n in names)
    assert {n: params[n].default for n in names} == options.estimator_defaults()
    # the documented differences from fit: scikit-learn's defaults and its own parameters
    assert dict(options.ESTIMATOR.defaults) == {"n_components": 1, "covariance_type": "full", "tol": 1e-3,
                                                "weight_concentration_prior_type": "dirichlet_process"}
    assert {p.name: p.default for p in options.ESTIMATOR.own} == {
        "init_params": "kmeans", "verbose": 0, "verbose_interval": 10, "warm_start": False,
        "learning_method": "memoized", "learning_offset": 10.0, "learning_decay": 0.7, "total_samples": 1e6}
    assert set(options.ESTIMATOR.not_taken) == {"covariance", "init", "init_responsibilities", "tol_type",
                                                "callback", "sample_weight", "client", "persist", "checkpoint",
                                                "resume"}
    assert set(names) | set(options.ESTIMATOR.not_taken) == set(NAMES) | {p.name for p in options.ESTIMATOR.own}


def test_estimator_passes_every_shared_parameter_to_fit(monkeypatch):
    import fastcavi.estimator as est_module

    shared = [n for n in NAMES if n not in options.ESTIMATOR.not_taken]
    sentinels = {name: object() for name in shared}
    seen = {}

    class Stop(Exception):
        pass

    def recording_fit(X, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(est_module, "_fit", recording_fit)
    est = est_module.BayesianGaussianMixture(init_params="random_from_data", **sentinels)
    weights = np.ones(5)
    with pytest.raises(Stop):
        est.fit(np.zeros((5, 2)), sample_weight=weights)
    assert all(seen[name] is sentinels[name] for name in shared)
    from fastcavi._init import ResponsibilityStart  # scikit-learn's "random_from_data": one-hot on K random rows

    assert seen["init"] == ResponsibilityStart("random_from_data")
    assert seen["tol_type"] == "absolute" and seen["callback"] is None
    assert seen["sample_weight"] is weights
    assert set(seen) == set(shared) | {"init", "tol_type", "callback", "sample_weight"}


# -- the command line -----------------------------------------------------------------------------------
def _subparser(name):
    parser = build_parser()
    action = [a for a in parser._actions if a.dest == "command"][0]
    return action.choices[name]


def test_cli_fit_options_are_generated_from_the_declaration():
    sub = _subparser("fit")
    dests = {a.dest: a for a in sub._actions}
    on_cli = [p for p in options.PARAMETERS if p.command_line is not None]
    assert {p.name for p in on_cli} == {
        "n_components", "covariance_type", "weight_concentration_prior_type", "weight_concentration_prior",
        "mean_precision_prior", "mean_prior", "degrees_of_freedom_prior", "reg_covar", "exact_cavi", "init",
        "max_iter", "tol", "tol_type", "n_init", "random_state", "n_threads", "chunk_size", "checkpoint", "resume"}
    for p in on_cli:
        action = dests[p.name]
        assert p.flag in action.option_strings, p.name
        if p.default is not options.REQUIRED:
            assert action.default == p.default, p.name
    assert dests["n_components"].required
    assert list(dests["covariance_type"].choices) == list(V.COVARIANCE_TYPES)
    for flag in ("--reg-covar", "--covariance-type", "--weight-concentration-prior-type", "--max-iter", "--tol",
                 "--n-init", "--random-state", "--n-threads", "--chunk-size"):
        assert any(flag in a.option_strings for a in sub._actions), flag
    # the spellings of earlier versions still work
    args = sub.parse_args(["x.npy", "--out", "m", "-k", "4", "--seed", "3", "--threads", "1", "--alpha", "1,2,3,4",
                           "--nu", "0.5", "--weight-prior-type", "dirichlet_process"])
    assert (args.n_components, args.random_state, args.n_threads, args.mean_precision_prior) == (4, 3, 1, 0.5)
    assert args.weight_concentration_prior_type == "dirichlet_process"
    np.testing.assert_array_equal(args.weight_concentration_prior, [1.0, 2.0, 3.0, 4.0])


def test_cli_fit_hands_every_option_to_fit(monkeypatch, tmp_path, capsys):
    seen = {}

    def recording_fit(data, **kwargs):
        seen.update(kwargs, data=data)
        raise ValueError("stop")

    monkeypatch.setattr(fastcavi, "fit", recording_fit)
    argv = ["fit", "x.npy", "--out", str(tmp_path / "m"), "-k", "4", "--covariance-type", "diag",
            "--weight-concentration-prior-type", "dirichlet_process", "--weight-concentration-prior", "2",
            "--mean-precision-prior", "0.5", "--mean-prior", "1,2", "--degrees-of-freedom-prior", "5",
            "--reg-covar", "0.01", "--exact-cavi", "--init", "random", "--max-iter", "7", "--tol", "0.001",
            "--tol-type", "absolute", "--n-init", "2", "--random-state", "9", "--n-threads", "1",
            "--chunk-size", "8192", "--checkpoint", "c.ckpt", "--resume", "r.ckpt", "--quiet"]
    assert main(argv) == 2 and "stop" in capsys.readouterr().err
    expected = dict(n_components=4, covariance_type="diag", weight_concentration_prior_type="dirichlet_process",
                    weight_concentration_prior=2.0, mean_precision_prior=0.5, degrees_of_freedom_prior=5.0,
                    reg_covar=0.01, exact_cavi=True, init="random", max_iter=7, tol=0.001, tol_type="absolute",
                    n_init=2, random_state=9, n_threads=1, chunk_size=8192, checkpoint="c.ckpt", resume="r.ckpt",
                    data="x.npy")
    np.testing.assert_array_equal(seen.pop("mean_prior"), [1.0, 2.0])
    assert callable(seen.pop("callback"))  # the CLI's own: it stops cleanly on SIGINT/SIGTERM
    assert seen == expected


def test_cli_predict_hands_the_runtime_options_to_predict(monkeypatch, tmp_path):
    seen = {}

    class FakeResult:
        n_features, n_components = 2, 4

        def _predict_chunks(self, source, what, write, **kwargs):  # the CLI's streamed predictions
            seen.update(kwargs)
            write(0, np.zeros(source.n_samples, dtype=np.int64))

    monkeypatch.setattr(fastcavi, "load", lambda path: FakeResult())
    out, x = tmp_path / "labels.npy", tmp_path / "x.npy"
    np.save(x, np.zeros((3, 2)))
    assert main(["predict", "m.npz", str(x), "--out", str(out), "--threads", "1", "--chunk-size", "4096"]) == 0
    assert seen == {"n_threads": 1, "chunk_size": 4096}
