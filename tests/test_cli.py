"""The command line, run as a user runs it."""
import subprocess
import sys

import numpy as np
import pytest

from fastcavi.cli import main


def _run(*args):
    return subprocess.run([sys.executable, "-m", "fastcavi", *args], capture_output=True, text=True, timeout=600)


def test_demo_prints_the_seed_table(tmp_path):
    out = _run("demo", "--out-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "E[mu_k]:  [7.3993, 7.4017]" in out.stdout
    assert "E[mu_k]:  [4.4907, 4.1577]" in out.stdout
    assert "E[mu_k]:  [1.2618, 1.6898]" in out.stdout
    assert "E[pi_k]:  0.3061" in out.stdout
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in out.stdout
    else:
        for name in ("seed_elbo.png", "seed_clusters.png"):
            assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fit_then_predict(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(300, 2)) + c for c in ([0, 0], [6, 0], [0, 6])])
    np.save(tmp_path / "x.npy", X)
    model, labels = tmp_path / "m.npz", tmp_path / "labels.npy"
    assert main(["fit", str(tmp_path / "x.npy"), "-k", "3", "--out", str(model), "--seed", "1"]) == 0
    err = capsys.readouterr().err
    assert "iter     1  ELBO" in err and "change" in err
    assert main(["predict", str(model), str(tmp_path / "x.npy"), "--out", str(labels)]) == 0
    lab = np.load(labels)
    assert lab.shape == (900,)
    # three blobs 6 sd apart: each gets its own label (a point or two may sit past the midpoint)
    majority = [np.bincount(lab[i * 300:(i + 1) * 300], minlength=3).argmax() for i in range(3)]
    assert sorted(majority) == [0, 1, 2]
    assert np.mean(lab == np.repeat(majority, 300)) > 0.99
    assert main(["predict", str(model), str(tmp_path / "x.npy"), "--out", str(labels), "--proba"]) == 0
    np.testing.assert_allclose(np.load(labels).sum(1), 1.0)


def test_fit_full_covariance_with_process_prior(tmp_path, capsys):
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(size=(200, 2)) @ np.array([[1.0, 0.8], [0.0, 0.5]]) + c for c in ([0, 0], [8, 8])])
    np.save(tmp_path / "x.npy", X)
    model = tmp_path / "m.npz"
    assert main(["fit", str(tmp_path / "x.npy"), "-k", "6", "--covariance-type", "full", "--weight-prior-type",
                 "dirichlet_process", "--out", str(model), "--seed", "0", "--quiet"]) == 0
    import fastcavi

    r = fastcavi.load(model)
    assert r.covariance_type == "full" and r.covariances.shape == (6, 2, 2)
    assert np.sum(r.weights > 0.1) == 2


def test_errors_are_reported_not_raised(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((3, 2)))
    assert main(["fit", str(tmp_path / "x.npy"), "-k", "5", "--out", str(tmp_path / "m.npz")]) == 2
    assert "n_samples >= n_components" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["fit"])


def test_bad_model_file_is_one_line_and_status_2(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((10, 2)))
    x, out = str(tmp_path / "x.npy"), str(tmp_path / "labels.npy")
    # as a user runs it: one line on stderr, no traceback, status 2
    run = _run("predict", x, x, "--out", out)
    assert run.returncode == 2, run.stderr
    assert run.stderr == f"fastcavi: error: {x!r} is not a fastcavi model file (one written by FitResult.save): " \
                         "it holds a single array (a .npy file), not an .npz archive.\n"
    assert run.stdout == ""
    for model in (str(tmp_path / "missing.npz"), str(tmp_path)):
        assert main(["predict", model, x, "--out", out]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"fastcavi: error: {model!r} is not a fastcavi model file") and err.count("\n") == 1


def test_bad_data_and_unwritable_output_are_reported(tmp_path, capsys):
    X = np.random.default_rng(0).normal(size=(60, 2))
    np.save(tmp_path / "x.npy", X)
    model = tmp_path / "m.npz"
    assert main(["fit", str(tmp_path / "x.npy"), "-k", "2", "--out", str(model), "--quiet", "--max-iter", "3",
                 "--tol", "0"]) == 0
    (tmp_path / "d.npy").mkdir()
    capsys.readouterr()
    np.save(tmp_path / "x3.npy", np.zeros((5, 3)))
    cases = [
        (["predict", str(model), str(tmp_path / "x3.npy"), "--out", str(tmp_path / "l.npy")],
         "X has 3 features, but the fitted model is expecting 2 features"),
        (["predict", str(model), str(tmp_path / "nope.npy"), "--out", str(tmp_path / "l.npy")], "No such data file"),
        (["predict", str(model), str(tmp_path / "x.npy"), "--out", str(tmp_path / "no_dir" / "l.npy")],
         "No such file or directory"),
        (["predict", str(model), str(tmp_path / "x.npy"), "--out", str(tmp_path / "d.npy")], "Is a directory"),
        (["fit", str(tmp_path / "x.npy"), "-k", "2", "--reg-covar", "-1", "--out", str(model)], "'reg_covar'"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("fastcavi: error: ") and message in err and err.count("\n") == 1, err
