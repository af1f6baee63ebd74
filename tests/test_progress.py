"""Progress: the per-chunk hook of the passes, the command line's display, and that it changes nothing.

The display's numbers (rows/s, seconds, time left) are checked against a fake clock, where each
is known exactly; the hook's counts against the passes a fit makes (one validating pass, K - 1
k-means++ passes, one E-step pass per sweep, each over every row).
"""
import io
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastcavi
from fastcavi._progress import SWEEP, Reporter, reporting, stage, track


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _blobs(n, seed=0):
    rng = np.random.default_rng(seed)
    return np.vstack([rng.normal(size=(n, 2)) + c for c in ([0, 0], [6, 0], [0, 6])])


def test_nothing_listens_by_default():
    assert track("E-step pass", 10) is None
    with stage("initialisation") as current:
        assert current is None and track("E-step pass", 10) is None
    with reporting(Reporter(io.StringIO(), tty=False)):
        assert track("E-step pass", 10) is not None
    assert track("E-step pass", 10) is None  # restored on leaving the block


def test_plain_lines_with_a_fake_clock():
    clock, out = _Clock(), io.StringIO()
    r = Reporter(out, tty=False, interval=1.0, heartbeat=30.0, clock=clock)
    with reporting(r):
        tick = track("validating pass", 1000)
        clock.t = 2.0
        tick(400)
        clock.t = 4.0
        tick(600)  # the last rows: the pass is finished
        with stage("initialisation"):
            for j, t in ((2, 4.5), (3, 5.0)):
                tick = track(f"k-means++ centre {j}/3", 1000)
                clock.t = t
                tick(1000)  # centre 3/3 is held back: 0.5 s after the line of centre 2/3
        with stage(SWEEP, max_sweeps=10, rows=1000):
            elbo = -10.0
            for it, (t0, t1) in enumerate(((5.0, 6.0), (6.0, 6.5), (6.5, 7.5)), start=1):
                clock.t = t0
                tick = track("E-step pass", 1000)
                clock.t = t1
                tick(1000)
                r(it, elbo, np.nan if it == 1 else 0.5)
                elbo += 0.5
    clock.t = 8.0
    r.close()
    lines = out.getvalue().split("\n")
    assert "\r" not in out.getvalue() and lines[-1] == ""
    assert lines[:-1] == [
        "validating pass: 1,000 rows in 4.00 s (250 rows/s)",
        "initialisation: k-means++ centre 2/3: 1,000 rows in 0.50 s (2k rows/s)",
        "initialisation: k-means++ centre 3/3: 1,000 rows in 0.50 s (2k rows/s)",  # the last of its kind
        # 1000 rows in 1 s; at most 9 more sweeps of 1 s
        "iter     1  ELBO -1.0000000000e+01  change  nan  1k rows/s      6.00 s  <= 9.0s left",
        # sweep 2 (0.5 s after sweep 1's line) is held back and replaced by sweep 3: 7 sweeps of (1+0.5+1)/3 s
        "iter     3  ELBO -9.0000000000e+00  change  5.000e-01  1k rows/s      7.50 s  <= 5.8s left",
        "total: 3 sweeps, 6 passes, 6,000 rows read in 8.00 s",
    ]


def test_compile_time_is_left_out_of_rates_and_added_to_the_total():
    # a pass of 4 s of which 3 s compiled a kernel: 1,000 rows in 1 s; the first compile's notice is a line
    clock, compiling, out = _Clock(), _Clock(), io.StringIO()
    r = Reporter(out, tty=False, interval=0.0, clock=clock, compile_clock=compiling)
    with reporting(r):
        tick = track("validating pass", 1000)
        r.note("compiling fastcavi's kernels for this CPU (summarize_blocks for float64 data): ...")
        clock.t, compiling.t = 4.0, 3.0
        tick(1000)
    r.close()
    assert out.getvalue().split("\n")[:-1] == [
        "compiling fastcavi's kernels for this CPU (summarize_blocks for float64 data): ...",
        "validating pass: 1,000 rows in 1.00 s (1k rows/s)",
        "total: 0 sweeps, 1 pass, 1,000 rows read in 1.00 s (and 3.00 s compiling kernels)",
    ]


def test_a_first_compile_under_a_reporter_is_one_progress_line():
    # the compile notice goes to the installed reporter while it listens, and back to the logger after
    from fastcavi._kernels import _compiling

    out = io.StringIO()
    r = Reporter(out, tty=False, interval=0.0)
    with reporting(r):
        assert _compiling.set_handler(None) == r.note  # the reporter's line writer is the handler
        _compiling.set_handler(r.note)
    assert _compiling.set_handler(None) is None  # restored


def test_a_long_pass_prints_a_line_every_heartbeat_off_a_terminal():
    clock, out = _Clock(), io.StringIO()
    r = Reporter(out, tty=False, heartbeat=30.0, clock=clock)
    with reporting(r), stage("prediction"):
        tick = track("E-step pass", 1000)
        for t, rows in ((10.0, 100), (40.0, 300), (50.0, 100), (80.0, 100)):
            clock.t = t
            tick(rows)
    assert out.getvalue().split("\n")[:-1] == [
        # 400 rows in 40 s: 10 rows/s, 600 rows left
        "prediction: E-step pass [####......]  40%  1m00s left  10 rows/s  400/1,000 rows",
        "prediction: E-step pass [######....]  60%  53.3s left  7.5 rows/s  600/1,000 rows",
    ]


def test_a_terminal_gets_a_bar_rewritten_in_place(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # the bar is cut to the terminal's width
    clock, out = _Clock(), io.StringIO()
    r = Reporter(out, tty=True, refresh=0.0, clock=clock)
    with reporting(r):
        tick = track("validating pass", 1000)
        clock.t = 1.0
        tick(250)
        clock.t = 2.0
        tick(750)
    with reporting(r), stage(SWEEP, max_sweeps=4, rows=1000):
        for it in (1, 2):
            tick = track("E-step pass", 1000)
            clock.t += 1.0
            tick(500)
            clock.t += 1.0
            tick(500)
            r(it, -float(it), 1.0)
    r.close()
    text = out.getvalue()
    assert "\riter 2/4 [#####.....]  50%  <= 6.0s left  500 rows/s  ELBO -1.0000000e+00  change 1.00e+00" in text
    # on a terminal the sweeps rewrite one line: the first is kept, the last is written out at the end
    lines = [seg.rstrip() for seg in text.split("\n")]
    # 250 rows in 1 s, 750 rows left
    assert lines[0] == ("\rvalidating pass [##........]  25%  3.0s left  250 rows/s  250/1,000 rows"
                        "\rvalidating pass: 1,000 rows in 2.00 s (500 rows/s)")
    assert lines[1].endswith("iter     1  ELBO -1.0000000000e+00  change  1.000e+00  500 rows/s      4.00 s"
                             "  <= 6.0s left")
    assert lines[2].rsplit("\r", 1)[1] == ("iter     2  ELBO -2.0000000000e+00  change  1.000e+00  500 rows/s"
                                           "      6.00 s  <= 4.0s left")
    assert lines[3].endswith("total: 2 sweeps, 3 passes, 3,000 rows read in 6.00 s") and lines[4] == ""


def _fit(X, reporter, **kw):
    with reporting(reporter):
        return fastcavi.fit(X, 3, random_state=0, tol=0, callback=reporter, **kw)


def test_a_fit_with_progress_gives_the_bits_of_one_without_and_counts_every_pass():
    X = _blobs(2000)
    N = X.shape[0]
    out = io.StringIO()
    reporter = Reporter(out, tty=False, interval=0.0)
    for covariance_type, passes in (("identity", 1 + 2 + 5), ("diag", 1 + 2 + 1 + 5)):
        reporter.passes = reporter.rows = reporter.sweeps = 0
        with_progress = _fit(X, reporter, covariance_type=covariance_type, max_iter=5, chunk_size=4096)
        without = fastcavi.fit(X, 3, random_state=0, tol=0, covariance_type=covariance_type, max_iter=5,
                               chunk_size=4096)
        for name in ("weights", "means", "elbo"):
            assert np.array_equal(getattr(with_progress, name), getattr(without, name)), name
        # validating pass, k-means++ centres 2 and 3, (diag: the statistics of the starting responsibilities), 5 sweeps
        assert (reporter.passes, reporter.rows, reporter.sweeps) == (passes, passes * N, 5)
    lines = out.getvalue().split("\n")
    assert sum(line.startswith("iter ") for line in lines) == 10  # interval 0: every sweep
    assert "initialisation: statistics of the starting responsibilities: 6,000 rows in" in out.getvalue()


def test_concurrent_fits_report_to_their_own_reporter_only():
    data = {"a": _blobs(1000, 1), "b": _blobs(3000, 2), "quiet": _blobs(2000, 3)}
    reporters = {name: Reporter(io.StringIO(), tty=False, interval=0.0) for name in ("a", "b")}
    results, errors = {}, []
    barrier = threading.Barrier(3)

    def work(name):
        try:
            barrier.wait()
            results[name] = _fit(data[name], reporters.get(name), max_iter=4)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(name,)) for name in data]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for name, r in reporters.items():
        # validating pass + 2 k-means++ passes + 4 sweeps, each over this thread's rows only
        assert (r.passes, r.rows, r.sweeps) == (7, 7 * data[name].shape[0], 4), name
    for name, X in data.items():
        alone = fastcavi.fit(X, 3, random_state=0, tol=0, max_iter=4)
        assert np.array_equal(results[name].means, alone.means) and np.array_equal(results[name].elbo, alone.elbo)


def test_a_dask_fit_reports_its_sweeps_not_its_tasks_passes():
    da = pytest.importorskip("dask.array")
    X = _blobs(3000)
    out = io.StringIO()
    reporter = Reporter(out, tty=False, interval=0.0)
    with reporting(reporter):
        result = fastcavi.fit(da.from_array(X, chunks=(4096, 2)), 3, random_state=0, tol=0, max_iter=3,
                              callback=reporter)
    assert result.n_iter == 3
    assert reporter.passes == 0  # the tasks' passes (in dask's threads) are not this reporter's
    lines = out.getvalue().split("\n")
    assert [line.split()[1] for line in lines if line.startswith("iter ")] == ["1", "2", "3"]
    assert all("rows/s" in line and "left" in line for line in lines if line.startswith("iter "))
    assert reporter.rows == 3 * X.shape[0]


def _run(*args):
    return subprocess.run([sys.executable, "-m", "fastcavi", *args], capture_output=True, text=True, timeout=600)


def test_the_command_line_prints_lines_to_a_pipe_and_nothing_when_quiet(tmp_path):
    np.save(tmp_path / "x.npy", _blobs(3000))
    data, model, labels = str(tmp_path / "x.npy"), str(tmp_path / "m.npz"), str(tmp_path / "l.npy")
    run = _run("fit", data, "-k", "3", "--out", model, "--seed", "0", "--max-iter", "20")
    assert run.returncode == 0, run.stderr
    err = run.stderr
    assert "\r" not in err
    lines = err.split("\n")
    assert lines[0].startswith("validating pass: 9,000 rows in ")
    assert lines[1].startswith("initialisation: k-means++ centre 2/3: 9,000 rows in ")
    sweeps = [line for line in lines if line.startswith("iter ")]
    assert sweeps and all(" ELBO " in line and " change " in line and " rows/s " in line and " left" in line
                          for line in sweeps)
    n_iter = int(run.stdout.split()[0])
    assert int(sweeps[-1].split()[1]) == n_iter  # the last sweep is always written
    assert lines[-2].startswith(f"total: {n_iter} sweeps, {n_iter + 3} passes, {9000 * (n_iter + 3):,} rows read")
    assert lines[-1] == ""

    run = _run("fit", data, "-k", "3", "--out", model, "--seed", "0", "--max-iter", "20", "--quiet")
    assert run.returncode == 0 and run.stderr == ""

    run = _run("predict", model, data, "--out", labels)
    assert run.returncode == 0, run.stderr
    assert run.stderr.split("\n")[0].startswith("prediction: E-step pass: 9,000 rows in ")
    assert run.stderr.split("\n")[1].startswith("total: 0 sweeps, 1 pass, 9,000 rows read in ")
    run = _run("predict", model, data, "--out", labels, "--quiet", "--proba")
    assert run.returncode == 0 and run.stderr == ""
