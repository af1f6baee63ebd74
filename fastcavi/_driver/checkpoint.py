"""Checkpoints of a running fit: everything needed to finish it bit for bit, written atomically.

A checkpoint holds the model (its resolved configuration), the state of the run in progress
and its ELBO trace, which of the ``n_init`` runs is in progress and the best finished one so
far, the random generator's state after the current run's initialisation, and a fingerprint
of the data and of the options. :func:`write` goes through a temporary file in the same
folder, ``fsync`` and ``os.replace``: a crash during a write leaves the previous checkpoint
whole.
"""
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np

from .._models.base import State

#: Version 2: the kernels' sums run in a fixed order on every CPU (version 1 checkpoints were written
#: by a fastcavi whose sums followed the CPU's vector width: they cannot resume bit for bit).
CHECKPOINT_VERSION = 2
_KIND = "fastcavi checkpoint"


def arithmetic():
    """The kind of CPU arithmetic a fit's bits depend on: the architecture, and whether multiply-adds are fused.

    fastcavi's results are the same bit for bit on every CPU of one kind (x86-64 with FMA: AVX2 and
    AVX-512 machines alike, whatever BLAS kernels are in use); a CPU without FMA rounds each
    multiply-add twice, so its bits differ.
    """
    import platform

    from llvmlite import binding
    from numba.core import config

    fma = bool(binding.get_host_cpu_features().get("fma")) or platform.machine().lower() in ("arm64", "aarch64")
    if config.CPU_NAME:  # numba told to compile for another target (NUMBA_CPU_NAME / NUMBA_CPU_FEATURES)
        features = (config.CPU_FEATURES or "").split(",")
        fma = fma and config.CPU_NAME != "generic" and "-fma" not in features
    return f"{platform.machine()} {'with' if fma else 'without'} FMA"


@dataclass(frozen=True)
class Checkpoint:
    """A fit in progress (see the module docstring)."""

    fingerprint: Dict[str, Any]
    model_config: Dict[str, Any]
    run: int
    state: State
    elbo: np.ndarray
    rng_state: Dict[str, Any]
    best: Optional[Tuple[State, np.ndarray, bool]]
    converged: bool = False


def _digest(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(np.ascontiguousarray(p).tobytes() if isinstance(p, np.ndarray) else repr(p).encode())
    return h.hexdigest()[:32]


def _version():
    from .._version import __version__

    return __version__


def fingerprint(shape, dtype, summary, model, controls):
    """What a checkpoint must match to be resumed: the data and every option that changes the result.

    Parameters
    ----------
    shape : tuple of int
    dtype : numpy.dtype
        The data's shape and dtype.
    summary : DataSummary
        The data's summary (its exact accumulators stand for the data's content).
    model : fastcavi.engine.Model
    controls : dict
        The fit's other options (max_iter, tol, tol_type, n_init, init, random_state, ...), as
        plain values or arrays.

    Returns
    -------
    dict of str to str
    """
    out = {"data shape": repr(tuple(int(s) for s in shape)), "data dtype": str(np.dtype(dtype)),
           "data content": _digest(summary.to_array()), "arithmetic": arithmetic(), "fastcavi": _version()}
    config = model.to_dict()
    out["model"] = _digest(*[(k, config[k]) if not isinstance(config[k], np.ndarray) else config[k]
                             for k in sorted(config)])
    for key, value in sorted(controls.items()):
        out[key] = _digest(value) if isinstance(value, np.ndarray) else repr(value)
    return out


def differences(saved, current):
    """A sentence naming what differs between two fingerprints (empty when they match)."""
    keys = [k for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]
    if not keys:
        return ""
    parts = []
    if "fastcavi" in keys:
        # another release may sum in another order: the digests of the same data and model may differ too
        parts.append(f"it was written by fastcavi {saved.get('fastcavi', 'of another version')} and this is "
                     f"fastcavi {current.get('fastcavi')}: a fit resumes bit for bit only under the version that "
                     f"started it")
        keys = [k for k in keys if k not in ("fastcavi", "data content", "model")]
    if "arithmetic" in keys:
        # the data's digest and the model's (whose priors default to the data's moments) are sums of the
        # data: under another arithmetic they differ for the same data, so they cannot be blamed on it
        parts.append(f"it was written on a CPU of another kind ({saved.get('arithmetic')}; this one is "
                     f"{current.get('arithmetic')}): fastcavi gives the same bits only on CPUs of one kind, so "
                     f"a fit cannot resume across them, even on the same data")
        keys = [k for k in keys if k not in ("arithmetic", "data content", "model")]
    for k in keys:
        if k in ("data content", "model"):
            parts.append(f"the {k} differs")
        else:
            parts.append(f"{k}: {saved.get(k)} in the checkpoint, {current.get(k)} now")
    return "; ".join(parts)


def write(path, ckpt: Checkpoint):
    """Write ``ckpt`` to ``path`` atomically (temporary file, fsync, rename)."""
    path = os.fspath(path)
    arrays = dict(file_kind=_KIND, checkpoint_version=CHECKPOINT_VERSION,
                  fingerprint=json.dumps(ckpt.fingerprint), rng_state=json.dumps(ckpt.rng_state),
                  run=ckpt.run, elbo=np.asarray(ckpt.elbo), converged=bool(ckpt.converged))
    for k, v in ckpt.model_config.items():
        arrays[f"model_none__{k}" if v is None else f"model__{k}"] = 0 if v is None else v
    for k, v in ckpt.state.to_dict().items():
        arrays[f"state__{k}"] = v
    if ckpt.best is not None:
        best_state, best_elbo, best_converged = ckpt.best
        for k, v in best_state.to_dict().items():
            arrays[f"best__{k}"] = v
        arrays["best_elbo"], arrays["best_converged"] = np.asarray(best_elbo), bool(best_converged)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    try:  # make the rename itself durable
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # some file systems cannot fsync a folder
        pass


def read(path) -> Checkpoint:
    """Read a checkpoint written by :func:`write`.

    Raises
    ------
    ValueError
        When ``path`` is missing or is not a fastcavi checkpoint of a version this fastcavi reads.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"No checkpoint to resume from at {path!r}.")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except Exception as exc:
        raise ValueError(f"{path!r} is not a fastcavi checkpoint ({type(exc).__name__}: {exc}).") from None
    if str(data.get("file_kind", "")) != _KIND:
        raise ValueError(f"{path!r} is not a fastcavi checkpoint.")
    try:
        return _parse(data)
    except Exception as exc:  # anything in an untrusted file: a clear error naming the file and the field
        raise ValueError(f"{path!r} is a corrupted fastcavi checkpoint ({exc}).") from None


def _scalar(data, key, kinds):
    value = data[key]
    if value.shape != () or value.dtype.kind not in kinds:
        raise ValueError(f"{key} is not a scalar of kind {kinds!r} (a {value.dtype} array of shape {value.shape})")
    return value.item()


def _trace(data, key):
    value = data[key]
    if value.ndim != 1 or value.dtype.kind not in "fiu" or not np.all(np.isfinite(value)):
        raise ValueError(f"{key} is not a 1-D array of finite numbers")
    return np.asarray(value, dtype=np.float64)


def _flag(data, key):
    value = _scalar(data, key, "biu")
    if value not in (0, 1):
        raise ValueError(f"{key} is not a boolean")
    return bool(value)


def _json(data, key, kind):
    value = json.loads(str(_scalar(data, key, "U")))
    if not isinstance(value, kind):
        raise ValueError(f"{key} is not a JSON {kind.__name__}")
    return value


def _parse(data):
    version = _scalar(data, "checkpoint_version", "iu")
    if version != CHECKPOINT_VERSION:
        hint = (" (version 1 checkpoints were written by an earlier fastcavi whose sums followed the CPU's vector "
                "width: start the fit again)") if version == 1 else ""
        raise ValueError(f"checkpoint version {version}; this fastcavi reads version {CHECKPOINT_VERSION}{hint}")

    def state_of(prefix):
        return State.from_dict({k[len(prefix):]: v for k, v in data.items() if k.startswith(prefix)})

    config = {k[len("model__"):]: v for k, v in data.items() if k.startswith("model__")}
    config.update({k[len("model_none__"):]: None for k in data if k.startswith("model_none__")})
    best = None
    if "best_elbo" in data:
        best = (state_of("best__"), _trace(data, "best_elbo"), _flag(data, "best_converged"))
    fingerprint = _json(data, "fingerprint", dict)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in fingerprint.items()):
        raise ValueError("fingerprint is not a mapping of names to strings")
    run = _scalar(data, "run", "iu")
    if run < 0:
        raise ValueError("run is negative")
    return Checkpoint(fingerprint=fingerprint, model_config=config, run=int(run), state=state_of("state__"),
                      elbo=_trace(data, "elbo"), rng_state=_json(data, "rng_state", dict), best=best,
                      converged=_flag(data, "converged"))


def writer(path, fingerprint, model, run, done, rng_state, best):
    """``on_sweep(state, elbos, converged)`` for :func:`fastcavi._driver.loop.run_cavi`: a checkpoint after every sweep.

    ``done`` is the run's trace before this call (a resumed run), ``rng_state`` the generator's
    state after the run's initialisation, ``best`` the best finished run so far.
    """
    config = model.to_dict()
    rng_state = json.loads(json.dumps(rng_state))  # a copy, as plain JSON values

    def on_sweep(state, elbos, converged):
        write(path, Checkpoint(fingerprint=fingerprint, model_config=config, run=run, state=state,
                               elbo=np.concatenate((done, np.asarray(elbos, dtype=np.float64))),
                               rng_state=rng_state, best=best, converged=converged))

    return on_sweep


def controls(arguments, checked):
    """The options besides the model's that change a fit's result, for a checkpoint's fingerprint.

    Parameters
    ----------
    arguments : dict
        The fit's arguments as given.
    checked : dict
        The same, checked.

    Returns
    -------
    dict
    """
    init = arguments["init"]
    if hasattr(init, "method"):  # the estimator's start from responsibilities (_validation.ResponsibilityStart)
        init = "responsibilities:" + init.method
    elif not isinstance(init, str):
        init = np.asarray(init.state.means if hasattr(init, "state") else init, dtype=np.float64)
    resp = arguments["init_responsibilities"]
    random_state = arguments["random_state"]
    if resp is not None:
        resp = np.asarray(resp, dtype=np.float64)  # (a Dask array is computed here: checkpoints are rare)
    if not (random_state is None or isinstance(random_state, int)):
        # a Generator or RandomState stands for its stream: the state of the generator the fit draws from,
        # taken before any draw (the same object seeded the same way gives the same state; another seed
        # another), never its type alone
        state = checked["random_state"].bit_generator.state
        random_state = f"{type(random_state).__name__} {_digest(json.dumps(state, sort_keys=True, default=str))}"
    return dict(max_iter=checked["max_iter"], tol=checked["tol"], tol_type=checked["tol_type"],
                n_init=checked["n_init"], init=init, init_responsibilities=resp, random_state=random_state)


def prepare(saved, checkpoint, resume, shape, dtype, summary, model, arguments, checked):
    """The fingerprint to write with checkpoints (None without checkpoints), after checking ``saved`` against it.

    Raises
    ------
    ValueError
        When ``saved`` (the checkpoint to resume) was made with other data or options, naming what differs.
    """
    if saved is None and checkpoint is None:
        return None
    current = fingerprint(shape, dtype, summary, model, controls(arguments, checked))
    if saved is not None:
        differs = differences(saved.fingerprint, current)
        if differs:
            raise ValueError(f"Cannot resume from {resume!r}: it was made with other data or options ({differs}).")
        try:
            _check_resumable(saved, model, checked)
        except Exception as exc:  # a checkpoint is untrusted input: a clear error naming the file
            raise ValueError(f"{os.fspath(resume)!r} is a corrupted fastcavi checkpoint ({exc}).") from None
    return current


def _check_resumable(saved, model, checked):
    """Raise a ValueError naming what in ``saved`` this fit cannot resume from (states, run, trace, generator)."""
    model._check_state(saved.state)
    if saved.best is not None:
        model._check_state(saved.best[0])
        if saved.best[1].size == 0:
            raise ValueError("best_elbo is empty: a finished run has made at least one sweep")
    if not saved.run < checked["n_init"]:
        raise ValueError(f"run {saved.run} is not below n_init={checked['n_init']}")
    if saved.elbo.size > checked["max_iter"]:
        raise ValueError(f"its ELBO trace has {saved.elbo.size} sweeps, more than max_iter={checked['max_iter']}")
    generator = type(checked["random_state"].bit_generator)
    if saved.rng_state.get("bit_generator") != generator.__name__:
        raise ValueError(f"rng_state is not the state of a {generator.__name__}")
    generator().state = saved.rng_state  # raises on a malformed state
