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
        # and the fit's report, by the code of `fastcavi report`
        for name in ("elbo.png", "weights.png", "clusters.png"):
            assert (tmp_path / "demo-report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert len((tmp_path / "demo-report" / "components.csv").read_text().splitlines()) == 1 + 3
        assert f"report written to {tmp_path / 'demo-report' / 'index.html'}" in out.stdout


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
        # --quiet: the prediction's progress comes before the error of writing its output
        (["predict", str(model), str(tmp_path / "x.npy"), "--out", str(tmp_path / "no_dir" / "l.npy"), "--quiet"],
         "No such file or directory"),
        (["predict", str(model), str(tmp_path / "x.npy"), "--out", str(tmp_path / "d.npy"), "--quiet"],
         "Is a directory"),
        (["fit", str(tmp_path / "x.npy"), "-k", "2", "--reg-covar", "-1", "--out", str(model)], "'reg_covar'"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("fastcavi: error: ") and message in err and err.count("\n") == 1, err


# -- Zarr, HDF5 and .npy data, here and on a Dask cluster (--scheduler) -----------------------------

def _same_model(a, b):
    """Bitwise equality of two FitResults' ELBO trace, state and public parameters."""
    assert a.elbo.tobytes() == b.elbo.tobytes()
    sa, sb = a.state.to_dict(), b.state.to_dict()
    assert sa.keys() == sb.keys() and all(np.array_equal(sa[k], sb[k]) for k in sa)
    for name in ("weights", "means", "covariances", "precisions"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name


def _zarr_array_in_group(group, name, **kwargs):
    make = getattr(group, "create_array", None) or group.create_dataset  # zarr 3, zarr 2
    return make(name, **kwargs)


def test_fit_zarr_hdf5_npy_here_and_on_a_scheduler_equal_fastcavi_fit(tmp_path, capsys):
    zarr = pytest.importorskip("zarr")
    h5py = pytest.importorskip("h5py")
    distributed = pytest.importorskip("distributed")
    import fastcavi

    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(size=(7000, 2)) + c for c in ([0, 0], [6, 0], [0, 6])])[rng.permutation(21000)]
    opts = dict(covariance_type="full", init="random_from_data", random_state=4, max_iter=4, tol=0)
    local = fastcavi.fit(X, 3, **opts)
    argv = ["-k", "3", "--covariance-type", "full", "--init", "random_from_data", "--seed", "4", "--max-iter", "4",
            "--tol", "0", "--quiet"]
    z = zarr.open_array(str(tmp_path / "x.zarr"), mode="w", shape=X.shape, chunks=(5000, 2), dtype="f8")
    z[:] = X
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("group/x", data=X, chunks=(3000, 2))
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    _zarr_array_in_group(g, "x", shape=X.shape, chunks=(4096, 2), dtype="f8")[:] = X
    np.save(tmp_path / "x.npy", X)
    inputs = [str(tmp_path / "x.zarr"), f"{tmp_path / 'x.h5'}:/group/x", f"{tmp_path / 'g.zarr'}:x"]
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None,
                                  silence_logs=40) as cluster:
        runs = [(data, []) for data in inputs]
        runs += [(data, ["--scheduler", cluster.scheduler_address, "--chunk-rows", "8192"])
                 for data in inputs + [str(tmp_path / "x.npy")]]
        for i, (data, extra) in enumerate(runs):
            out = tmp_path / f"m{i}.npz"
            assert main(["fit", data, "--out", str(out)] + argv + extra) == 0, (data, capsys.readouterr().err)
            _same_model(fastcavi.load(out), local)
    # unaligned chunks on the cluster: the local fit to round-off
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None,
                                  silence_logs=40) as cluster:
        out = tmp_path / "unaligned.npz"
        assert main(["fit", inputs[0], "--out", str(out), "--scheduler", cluster.scheduler_address,
                     "--chunk-rows", "5000"] + argv) == 0
        r = fastcavi.load(out)
        assert np.max(np.abs(r.means - local.means)) <= 1e-12 * np.max(np.abs(local.means))


def test_data_path_errors_and_missing_extras(tmp_path, capsys, monkeypatch):
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("a", data=np.zeros((10, 2)))
        f.create_group("g")
    out = str(tmp_path / "m.npz")
    cases = [([str(tmp_path / "x.h5")], "Name the dataset of the HDF5 file"),
             ([f"{tmp_path / 'x.h5'}:/b"], "has no dataset '/b'"),
             ([f"{tmp_path / 'x.h5'}:/g"], "is an HDF5 group, not a dataset"),
             ([str(tmp_path / "nope.npy")], "No such data file"),
             ([str(tmp_path / "x.h5") + ":/a", "--chunk-rows", "4096", "--scheduler", "tcp://127.0.0.1:1"],
              "tcp://127.0.0.1:1")]  # no scheduler there: the client's OSError
    dask = pytest.importorskip("dask")
    for data, message in cases:
        with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
            assert main(["fit", *data, "-k", "2", "--out", out, "--quiet"]) == 2, data
        err = capsys.readouterr().err
        assert err.startswith("fastcavi: error: ") and message in err and err.count("\n") == 1, err
    zarr = pytest.importorskip("zarr")
    _zarr_array_in_group(zarr.open_group(str(tmp_path / "g.zarr"), mode="w"), "x", shape=(10, 2), dtype="f8")
    for data, message in ((str(tmp_path / "g.zarr"), "is a Zarr group: name its array"),
                          (str(tmp_path / "g.zarr") + ":nope", "g.zarr:nope' as a Zarr array")):
        assert main(["fit", data, "-k", "2", "--out", out, "--quiet"]) == 2, data
        err = capsys.readouterr().err
        assert err.startswith("fastcavi: error: ") and message in err and err.count("\n") == 1, err
    (tmp_path / "s.zarr").mkdir()
    for module, argv in (("zarr", [str(tmp_path / "s.zarr")]), ("h5py", [str(tmp_path / "x.h5") + ":/a"]),
                         ("distributed", [str(tmp_path / "x.h5") + ":/a", "--scheduler", "tcp://127.0.0.1:1"]),
                         ("dask.array", [str(tmp_path / "x.h5") + ":/a", "--scheduler", "tcp://127.0.0.1:1"])):
        with monkeypatch.context() as m:
            m.setitem(sys.modules, module, None)  # import raises ImportError
            assert main(["fit", *argv, "-k", "2", "--out", out, "--quiet"]) == 2, module
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"needs the package {module.split('.')[0]!r}" in err, err
        assert 'pip install "fastcavi[dask]"' in err


def test_predict_names_the_file_it_writes(tmp_path, capsys):
    import fastcavi

    X = np.random.default_rng(0).normal(size=(50, 2))
    np.save(tmp_path / "x.npy", X)
    model = fastcavi.fit(X, 2, random_state=0, max_iter=3).save(tmp_path / "m")
    assert main(["predict", model, str(tmp_path / "x.npy"), "--out", str(tmp_path / "labels")]) == 0
    assert f"to {tmp_path / 'labels.npy'}" in capsys.readouterr().out
    assert np.load(tmp_path / "labels.npy").shape == (50,)
