"""Model files are untrusted input: every field of a saved model, mutated in type, shape, dtype and value,
either loads into a usable model or is refused with a ValueError that names the file (and the command line
prints one line and exits 2)."""
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
            try:
                back = fastcavi.load(path)
            except ValueError as exc:
                refused += 1
                if path not in str(exc):
                    mishandled.append(f"{key} ({what}): the error does not name the file: {exc}")
                continue
            except Exception as exc:  # noqa: BLE001 - anything else is a failure of the loader
                mishandled.append(f"{key} ({what}): {type(exc).__name__}: {exc}")
                continue
            loaded += 1
            arrays = (back.elbo, back.weights, back.means) + (() if back.covariances is None else (back.covariances,))
            if not all(np.all(np.isfinite(a)) for a in arrays):
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
