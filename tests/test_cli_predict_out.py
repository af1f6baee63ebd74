"""``fastcavi predict --out``: streamed to the .npy file chunk by chunk, atomically, in a chunk's memory."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastcavi
from fastcavi.cli import main


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A saved K=3 model and 9,000 + 123 rows of new data (two whole chunks of 4,096 and a partial one)."""
    tmp = tmp_path_factory.mktemp("predict_out")
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(300, 2)) + c for c in ([0, 0], [6, 0], [0, 6])])
    model = fastcavi.fit(X, 3, covariance_type="tied", random_state=1, max_iter=20).save(tmp / "m")
    new = rng.normal(size=(9123, 2)) * 4
    np.save(tmp / "x.npy", new)
    return fastcavi.load(model), model, str(tmp / "x.npy"), new


def _npy_bytes(tmp_path, array):
    np.save(tmp_path / "reference.npy", array)
    data = (tmp_path / "reference.npy").read_bytes()
    os.unlink(tmp_path / "reference.npy")
    return data


@pytest.mark.parametrize("flag, method", [(None, "predict"), ("--proba", "predict_proba"),
                                          ("--log-density", "score_samples")])
def test_the_file_is_np_saves_of_the_predictions(case, tmp_path, capsys, flag, method):
    result, model, x, new = case
    expected = _npy_bytes(tmp_path, getattr(result, method)(new))
    for chunk in ([], ["--chunk-size", "4096"], ["--chunk-size", "100000"]):
        out = tmp_path / "out.npy"
        assert main(["predict", model, x, "--out", str(out), *([flag] if flag else []), *chunk]) == 0
        assert out.read_bytes() == expected, (flag, chunk)  # header and every bit of every row
        assert os.listdir(tmp_path) == ["out.npy"]  # no temporary file left
        what = {"predict": "labels", "predict_proba": "responsibilities", "score_samples": "log-densities"}[method]
        shape = (9123, 3) if method == "predict_proba" else (9123,)
        assert capsys.readouterr().out == f"wrote {shape} {what} to {out}\n"


def test_proba_and_log_density_exclude_each_other(case, tmp_path, capsys):
    _, model, x, _ = case
    with pytest.raises(SystemExit):
        main(["predict", model, x, "--out", str(tmp_path / "o.npy"), "--proba", "--log-density"])
    assert "not allowed with argument" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_an_error_midway_leaves_no_file_and_the_old_one_intact(case, tmp_path, capsys, monkeypatch):
    result, model, _, new = case
    bad = new.copy()
    bad[5000, 1] = np.nan  # in the second chunk of 4,096 rows: the first is written by then
    overflow = new.copy()
    overflow[9000] = 1e160  # finite data whose log-density overflows
    np.save(tmp_path / "bad.npy", bad)
    np.save(tmp_path / "overflow.npy", overflow)
    out = tmp_path / "out.npy"
    out.write_bytes(b"an earlier result")
    for data, message in (("bad.npy", "Input X contains NaN (first at row 5000, column 1)"),
                          ("overflow.npy", "Row 9000 of X has a non-finite log-density")):
        assert main(["predict", model, str(tmp_path / data), "--out", str(out), "--proba",
                     "--chunk-size", "4096"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("fastcavi: error: ") and message in err, err
        assert out.read_bytes() == b"an earlier result"
        assert sorted(os.listdir(tmp_path)) == ["bad.npy", "out.npy", "overflow.npy"]
    # an interrupt after the first chunk: the same (KeyboardInterrupt goes on up, the file is removed)
    streamed = type(result)._predict_chunks

    def interrupted(self, source, what, write, **kwargs):
        def write_then_stop(row0, values):
            write(row0, values)
            raise KeyboardInterrupt

        streamed(self, source, what, write_then_stop, **kwargs)

    monkeypatch.setattr(type(result), "_predict_chunks", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main(["predict", model, str(tmp_path / "bad.npy"), "--out", str(out), "--chunk-size", "4096"])
    assert out.read_bytes() == b"an earlier result"
    assert sorted(os.listdir(tmp_path)) == ["bad.npy", "out.npy", "overflow.npy"]


_CHILD = r"""
import sys
from fastcavi.cli import main

def status():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {k: int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM")}

model, small, big, out = sys.argv[1:5]
assert main(["predict", model, small, "--out", out, "--proba", "--chunk-size", "65536"]) == 0  # compiles
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident size (Linux >= 4.0)
except OSError as exc:
    print("cannot reset the peak:", exc)
    sys.exit(3)
before = status()["VmRSS"]
assert main(["predict", model, big, "--out", out, "--proba", "--chunk-size", "65536"]) == 0
print("GROWTH", status()["VmHWM"] - before)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux's /proc peak-RSS reset")
def test_peak_memory_of_a_large_proba_run_is_far_below_its_output(tmp_path):
    """2e6 x 2 rows, K = 8: 128 MB of responsibilities, while the process's peak resident size grows < 64 MB.

    Measured in a child process, from its resident size after a first (compiling) run to its
    peak during the large run (VmHWM, reset in between). What the large run may add: the input's
    pages, read through a memory map (2e6 * 2 * 8 = 32 MB, resident once read), and one chunk's
    buffers at 65,536 rows (responsibilities 4 MiB, a few row vectors of 0.5 MiB): about 38 MB.
    The bound, 64 MB, is half the output: holding the output (as ``np.save`` of the in-memory
    responsibilities did), or writing it through a memory map (whose written pages are resident
    too), adds 128 MB and fails it.
    """
    N, K = 2_000_000, 8
    rng = np.random.default_rng(0)
    model = fastcavi.fit(rng.normal(size=(4096, 2)) * 3, K, covariance_type="diag", random_state=0,
                         max_iter=3, tol=0).save(tmp_path / "m")
    np.save(tmp_path / "small.npy", rng.normal(size=(1000, 2)))
    big = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.float64, shape=(N, 2))
    for row0 in range(0, N, 1 << 18):
        big[row0:row0 + (1 << 18)] = rng.normal(size=(min(1 << 18, N - row0), 2)) * 3
    big.flush()
    del big
    out = tmp_path / "p.npy"
    run = subprocess.run([sys.executable, "-c", _CHILD, model, str(tmp_path / "small.npy"), str(tmp_path / "big.npy"),
                          str(out)], capture_output=True, text=True, timeout=600)
    if run.returncode == 3:
        pytest.skip(run.stdout.strip())
    assert run.returncode == 0, run.stderr
    growth = int(run.stdout.split("GROWTH")[1])
    assert growth < 64 * 10**6, growth
    assert os.path.getsize(out) > N * K * 8  # the output was written, in full
    proba = np.load(out, mmap_mode="r")
    assert proba.shape == (N, K)
    rows = np.r_[0:5, N - 5:N]
    expected = fastcavi.load(model).predict_proba(np.load(tmp_path / "big.npy", mmap_mode="r")[rows])
    assert proba[rows].tobytes() == expected.tobytes()
