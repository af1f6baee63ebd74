"""Model files and checkpoints are untrusted input: every field of a saved model or a checkpoint, mutated in
type, shape, dtype and value, either loads (or resumes) into a usable result or is refused with a ValueError
that names the file (and the command line prints one line and exits 2)."""
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastcavi


def _mutants(value):
    """(what, mutated array) pairs for one field's saved array."""
    v = np.asarray(value)
    yield "a string", np.array("two")
    yield "an array for a scalar" if v.ndim == 0 else "one element", np.array([2, 2]) if v.ndim == 0 else v.ravel()[:1]
    yield "an extra dimension", v[None]
    yield "empty", v.ravel()[:0]
    if v.dtype.kind in "fiub":
        yield "complex", v.astype(complex)
        yield "another float type", v.astype(float) + 0.5 if v.dtype.kind in "iub" else v.astype(np.float32)
    if v.dtype.kind == "f":
        for bad in (np.nan, np.inf, -1.0, 0.0):
            w = v.copy()
            w.flat[0] = bad
            yield f"{bad} in it", w
    if v.dtype.kind in "iub":
        for bad in (-5, 10**12):
            w = v.astype(np.int64)
            w.flat[0] = bad
            yield f"{bad} in it", w


def _attempt(read, path, label, mishandled):
    """``read()``'s result, or None when it refused with a ValueError naming ``path``; anything else is noted in
    ``mishandled`` (then None too)."""
    try:
        return read()
    except ValueError as exc:
        if path not in str(exc):
            mishandled.append(f"{label}: the error does not name the file: {exc}")
    except Exception as exc:  # noqa: BLE001 - anything else is a failure of the reader
        mishandled.append(f"{label}: {type(exc).__name__}: {exc}")
    return None


def _finite(*arrays):
    return all(a is None or np.all(np.isfinite(a)) for a in arrays)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2)) + rng.integers(0, 3, size=(400, 1)) * 4
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for cov, prior in (("full", "dirichlet_distribution"), ("identity", "dirichlet_distribution"),
                           ("tied", "dirichlet_process"), ("spherical", "dirichlet_process")):
            r = fastcavi.fit(X, 3, covariance_type=cov, weight_concentration_prior_type=prior, max_iter=4,
                             random_state=0)
            path = r.save(tmp_path_factory.mktemp("models") / cov)
            with np.load(path) as f:
                out[cov] = {k: f[k] for k in f.files}
    return X, out


@pytest.mark.parametrize("cov", ["full", "identity", "tied", "spherical"])
def test_every_mutated_field_loads_or_is_refused_naming_the_file(saved, cov, tmp_path):
    X, models = saved
    base = models[cov]
    path = str(tmp_path / "mutant.npz")
    mishandled, refused, loaded = [], 0, 0
    for key, value in base.items():
        for what, mutant in _mutants(value):
            np.savez(path, **dict(base, **{key: mutant}))
            back = _attempt(lambda: fastcavi.load(path), path, f"{key} ({what})", mishandled)
            if back is None:
                refused += 1
                continue
            loaded += 1
            if not _finite(back.elbo, back.weights, back.means, back.covariances):
                mishandled.append(f"{key} ({what}): loaded with NaN or infinite values")
                continue
            try:
                back.predict_proba(X[:20])
            except ValueError:
                pass  # a model far outside the data's scale may refuse the data, by a ValueError
            except Exception as exc:  # noqa: BLE001
                mishandled.append(f"{key} ({what}): predict raised {type(exc).__name__}: {exc}")
    assert not mishandled, "\n".join(mishandled)
    assert refused > 0 and loaded > 0  # both outcomes occur: the mutations reach the checks


def test_the_command_line_says_one_line_and_exits_2_on_a_bad_model_file(saved, tmp_path):
    _, models = saved
    for key, mutant in (("format_version", np.array("two")), ("format_version", np.array([2, 2])),
                        ("elbo", np.full(3, np.nan)), ("state__means", np.zeros((1,)))):
        path = tmp_path / "bad.npz"
        np.savez(path, **dict(models["full"], **{key: mutant}))
        done = subprocess.run([sys.executable, "-m", "fastcavi", "info", str(path)], capture_output=True, text=True)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0], done.stderr


class _Stop(Exception):
    pass


def test_every_mutated_checkpoint_field_resumes_or_is_refused_naming_the_file(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(600, 2)) + rng.integers(0, 3, size=(600, 1)) * 4
    opts = dict(covariance_type="full", n_init=2, max_iter=6, tol=0, random_state=np.random.default_rng(3))
    seen = []

    def stop(it, elbo, change):  # stop in the second run, so that the checkpoint holds a best run too
        seen.append(it)
        if len(seen) == 8:
            raise _Stop

    path = tmp_path / "fit.ckpt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(_Stop):
            fastcavi.fit(X, 3, checkpoint=path, callback=stop, **opts)
    with np.load(path) as f:
        base = {k: f[k] for k in f.files}
    assert any(k.startswith("best__") for k in base)
    mutant_path = str(tmp_path / "mutant.ckpt")
    mishandled, refused, resumed = [], 0, 0
    for key, value in base.items():
        for what, mutant in _mutants(value):
            with open(mutant_path, "wb") as fh:
                np.savez(fh, **dict(base, **{key: mutant}))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = _attempt(lambda: fastcavi.fit(X, 3, resume=mutant_path,
                                                  **dict(opts, random_state=np.random.default_rng(3))),
                             mutant_path, f"{key} ({what})", mishandled)
            if r is None:
                refused += 1
                continue
            resumed += 1
            if not _finite(r.elbo, r.weights, r.means, r.covariances):
                mishandled.append(f"{key} ({what}): resumed into NaN or infinite values")
    assert not mishandled, "\n".join(mishandled)
    assert refused > 0 and resumed > 0
