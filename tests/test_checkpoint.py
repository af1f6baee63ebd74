"""Checkpoints and resume: an interrupted fit, resumed, is bit for bit the uninterrupted one."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import fastcavi

REPO = Path(__file__).resolve().parents[1]


def _blobs(N=6000, D=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(4, D))[rng.integers(4, size=N)] * 4 + rng.normal(size=(N, D))


class Stop(Exception):
    pass


def _stop_after(n):
    seen = []

    def callback(it, elbo, change):
        seen.append(it)
        if len(seen) == n:
            raise Stop
    return callback


def _same(a, b):
    for name in ("elbo", "weights", "means", "mean_precision", "covariances"):
        assert np.asarray(getattr(a, name)).tobytes() == np.asarray(getattr(b, name)).tobytes(), name
    assert a.n_iter == b.n_iter and a.converged == b.converged


@pytest.mark.parametrize("cov", ["identity", "full", "tied"])
@pytest.mark.parametrize("stop_at", [1, 4, 9])
def test_resume_after_an_interruption_is_bitwise_the_whole_fit(cov, stop_at, tmp_path):
    # n_init=3 with k-means++: the checkpoint must carry the run in progress, the best finished run
    # and the generator's state after the run's initialisation (the later runs draw from it)
    X = _blobs()
    opts = dict(covariance_type=cov, n_init=3, max_iter=4, tol=0, random_state=5)
    whole = fastcavi.fit(X, 3, **opts)
    path = tmp_path / "fit.ckpt"
    with pytest.raises(Stop):
        fastcavi.fit(X, 3, checkpoint=path, callback=_stop_after(stop_at), **opts)
    _same(fastcavi.fit(X, 3, resume=path, **opts), whole)
    # and resuming while checkpointing again, after a second interruption
    with pytest.raises(Stop):
        fastcavi.fit(X, 3, checkpoint=path, resume=path, callback=_stop_after(1), **opts)
    _same(fastcavi.fit(X, 3, resume=path, **opts), whole)


def test_resume_of_a_converged_run(tmp_path):
    X = _blobs()
    opts = dict(covariance_type="diag", tol=1e-4, random_state=0, max_iter=200)
    whole = fastcavi.fit(X, 3, **opts)
    path = tmp_path / "fit.ckpt"
    fastcavi.fit(X, 3, checkpoint=path, **opts)  # the last checkpoint holds the converged run
    _same(fastcavi.fit(X, 3, resume=path, **opts), whole)


def test_a_mismatched_resume_is_refused_and_says_what_differs(tmp_path):
    X = _blobs()
    path = tmp_path / "fit.ckpt"
    fastcavi.fit(X, 3, checkpoint=path, max_iter=3, tol=0, random_state=0)
    with pytest.raises(ValueError, match="max_iter: 3 in the checkpoint, 4 now"):
        fastcavi.fit(X, 3, resume=path, max_iter=4, tol=0, random_state=0)
    with pytest.raises(ValueError, match="the data content differs"):
        fastcavi.fit(X + 1e-3, 3, resume=path, max_iter=3, tol=0, random_state=0)
    with pytest.raises(ValueError, match="the model differs"):
        fastcavi.fit(X, 3, resume=path, max_iter=3, tol=0, random_state=0, mean_precision_prior=2.0)
    with pytest.raises(ValueError, match="random_state: 0 in the checkpoint, 1 now"):
        fastcavi.fit(X, 3, resume=path, max_iter=3, tol=0, random_state=1)
    with pytest.raises(ValueError, match="No checkpoint to resume from"):
        fastcavi.fit(X, 3, resume=tmp_path / "missing.ckpt")
    (tmp_path / "junk.ckpt").write_text("junk")
    with pytest.raises(ValueError, match="is not a fastcavi checkpoint"):
        fastcavi.fit(X, 3, resume=tmp_path / "junk.ckpt")


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    from fastcavi._driver import checkpoint as _checkpoint

    X = _blobs()
    path = tmp_path / "fit.ckpt"
    fastcavi.fit(X, 3, checkpoint=path, max_iter=2, tol=0, random_state=0)
    before = path.read_bytes()

    def failing_savez(fh, **arrays):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(_checkpoint.np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        fastcavi.fit(X, 3, checkpoint=path, max_iter=2, tol=0, random_state=0)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["fit.ckpt"]  # no temporary file left behind


CHILD = textwrap.dedent("""
    import sys, time, numpy as np, fastcavi
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, 2))[rng.integers(4, size=20000)] * 4 + rng.normal(size=(20000, 2))
    slow = lambda it, elbo, change: time.sleep(0.15)  # a long fit, as seen from outside
    fastcavi.fit(X, 3, covariance_type="full", max_iter=40, tol=0, random_state=2, checkpoint=sys.argv[1],
                 callback=slow)
""")


def test_resume_after_sigkill_is_bitwise_the_uninterrupted_fit(tmp_path):
    path = tmp_path / "fit.ckpt"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:  # wait for a few sweeps' checkpoints
            if path.exists():
                from fastcavi._driver import checkpoint as _checkpoint

                try:
                    if _checkpoint.read(path).elbo.size >= 3:
                        break
                except ValueError:
                    pass
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, 2))[rng.integers(4, size=20000)] * 4 + rng.normal(size=(20000, 2))
    opts = dict(covariance_type="full", max_iter=40, tol=0, random_state=2)
    resumed = fastcavi.fit(X, 3, resume=path, **opts)
    assert 3 <= _sweeps_in(path) < 40
    _same(resumed, fastcavi.fit(X, 3, **opts))


def _sweeps_in(path):
    from fastcavi._driver import checkpoint as _checkpoint

    return _checkpoint.read(path).elbo.size


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_cli_signal_writes_a_usable_checkpoint(tmp_path, signum, status):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(4, 2))[rng.integers(4, size=400_000)] * 4 + rng.normal(size=(400_000, 2))
    data, ckpt, out = tmp_path / "x.npy", tmp_path / "fit.ckpt", tmp_path / "m.npz"
    np.save(data, X)
    args = [str(data), "-k", "3", "--covariance-type", "full", "--max-iter", "3000", "--tol", "0",
            "--random-state", "0", "--out", str(out), "--quiet"]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child = subprocess.Popen([sys.executable, "-m", "fastcavi", "fit", *args, "--checkpoint", str(ckpt)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline and child.poll() is None:
        time.sleep(0.05)
    child.send_signal(signum)
    stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == status, stderr.decode()[-2000:]
    message = stderr.decode()
    assert f"--resume {ckpt}" in message and "stopped after sweep" in message
    done = _sweeps_in(ckpt)
    assert 1 <= done < 3000 and not out.exists()
    # the checkpoint is usable: resuming it (here for the API's shorter run) is refused only for max_iter
    with pytest.raises(ValueError, match="max_iter: 3000 in the checkpoint, 5 now"):
        fastcavi.fit(data, 3, covariance_type="full", max_iter=5, tol=0, random_state=0, resume=ckpt)
    from fastcavi._driver import checkpoint as _checkpoint

    saved = _checkpoint.read(ckpt)
    assert saved.run == 0 and np.all(np.isfinite(saved.elbo)) and np.all(np.diff(saved.elbo) >= -1e-6)


def test_a_signal_between_the_first_checkpoint_and_its_callback_is_noted(tmp_path):
    """The first checkpoint is written before the first callback: a signal in between stops after sweep 1."""
    from fastcavi.cli import _Interrupted, _StopOnSignal

    ckpt = tmp_path / "fit.ckpt"
    with _StopOnSignal(None, str(ckpt)) as stopper:
        with pytest.raises(_Interrupted) as before:  # nothing written yet: stop at once
            stopper._note(signal.SIGTERM, None)
        assert before.value.sweeps == 0
        stopper.signum = None
        ckpt.write_bytes(b"state")  # the fit wrote its first checkpoint ...
        stopper._note(signal.SIGTERM, None)  # ... and the signal falls before the callback: only noted
        with pytest.raises(_Interrupted) as after:
            stopper(1, -1.0, float("nan"))
        assert after.value.sweeps == 1 and after.value.signum == signal.SIGTERM
    # a checkpoint left by an earlier run is not this run's
    with _StopOnSignal(None, str(ckpt)) as stopper, pytest.raises(_Interrupted):
        stopper._note(signal.SIGINT, None)


def _committed_fit_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3, 3))[rng.integers(3, size=2000)] * 4 + rng.normal(size=(2000, 3))
    R = rng.dirichlet(np.ones(3), size=2000)
    return X, dict(covariance_type="tied", init_responsibilities=R, max_iter=6, tol=0)


def test_a_committed_checkpoint_resumes_bitwise_on_any_cpu():
    # tests/data/tied_checkpoint.npz: the fit below, stopped after 3 of its 6 sweeps, written on an AVX-512
    # machine (Intel, LLVM's "rocketlake" target). Every sum runs in a fixed order on every x86-64 CPU with FMA,
    # whatever its vector width or BLAS, so the resumed fit is the uninterrupted one bit for bit on AVX2 machines
    # too (tests/test_cpu_independence.py checks the same across numba targets on one machine).
    saved = REPO / "tests" / "data" / "tied_checkpoint.npz"
    X, opts = _committed_fit_data()
    whole = fastcavi.fit(X, 3, **opts)
    resumed = fastcavi.fit(X, 3, resume=saved, **opts)
    with np.load(saved) as f:
        assert f["elbo"].shape == (3,) and int(f["checkpoint_version"]) == 2
    for name in ("elbo", "weights", "means", "mean_precision", "covariances", "degrees_of_freedom"):
        assert np.asarray(getattr(resumed, name)).tobytes() == np.asarray(getattr(whole, name)).tobytes(), name
    assert resumed.n_iter == whole.n_iter == 6


def test_a_checkpoint_of_version_1_is_refused_by_name():
    # tests/data/checkpoint_version1.npz was written by fastcavi before its sums ran in a fixed order on every CPU
    X, opts = _committed_fit_data()
    with pytest.raises(ValueError, match=r"checkpoint version 1; this fastcavi reads version 2 \(version 1 "
                                         r"checkpoints were written by an earlier fastcavi"):
        fastcavi.fit(X, 3, resume=REPO / "tests" / "data" / "checkpoint_version1.npz", **opts)


def _stopped_full_fit(tmp_path):
    """Data and the checkpoint of a full-covariance fit from given means, stopped after 2 of 6 sweeps."""
    X = _blobs()
    path = tmp_path / "fit.ckpt"
    with pytest.raises(Stop):
        fastcavi.fit(X, 3, covariance_type="full", max_iter=6, tol=0, init=X[:3], checkpoint=path,
                     callback=_stop_after(2))
    return X, path


def test_a_checkpoint_from_a_cpu_of_another_kind_is_refused_without_blaming_the_data(tmp_path, monkeypatch):
    from fastcavi._driver import checkpoint as checkpoint_module

    X, path = _stopped_full_fit(tmp_path)
    monkeypatch.setattr(checkpoint_module, "arithmetic", lambda: "x86_64 without FMA")
    with pytest.raises(ValueError, match=r"written on a CPU of another kind \(x86_64 with FMA; this one is x86_64 "
                                         r"without FMA\)") as info:
        fastcavi.fit(X, 3, covariance_type="full", max_iter=6, tol=0, init=X[:3], resume=path)
    assert "data content differs" not in str(info.value)


@pytest.mark.parametrize("make", [np.random.default_rng, np.random.RandomState], ids=["Generator", "RandomState"])
def test_a_checkpoint_from_one_generator_resumes_only_under_the_same_seed(make, tmp_path):
    # a generator stands for its stream: the same seed resumes bitwise, another seed is refused by name
    X = _blobs()
    opts = dict(covariance_type="full", n_init=2, max_iter=4, tol=0)
    whole = fastcavi.fit(X, 3, random_state=make(1), **opts)
    path = tmp_path / "fit.ckpt"
    with pytest.raises(Stop):
        fastcavi.fit(X, 3, checkpoint=path, callback=_stop_after(5), random_state=make(1), **opts)
    with pytest.raises(ValueError, match="random_state"):
        fastcavi.fit(X, 3, resume=path, random_state=make(2), **opts)
    _same(fastcavi.fit(X, 3, resume=path, random_state=make(1), **opts), whole)


def test_a_checkpoint_from_another_fastcavi_version_is_refused_naming_the_versions(tmp_path, monkeypatch):
    from fastcavi._driver import checkpoint as checkpoint_module

    X, path = _stopped_full_fit(tmp_path)
    monkeypatch.setattr(checkpoint_module, "_version", lambda: "99.0")
    with pytest.raises(ValueError, match=rf"written by fastcavi {fastcavi.__version__} and this is fastcavi 99.0") \
            as info:
        fastcavi.fit(X, 3, covariance_type="full", max_iter=6, tol=0, init=X[:3], resume=path)
    assert "differs" not in str(info.value)
