"""The fit report (`fastcavi.report`, `fastcavi report`), `fastcavi info` and `FitResult.summary`."""
import csv
import os
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest

import fastcavi
from fastcavi import report
from fastcavi.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FAMILIES = [("identity", "dirichlet_distribution"), ("spherical", "dirichlet_process"),
            ("diag", "dirichlet_distribution"), ("full", "dirichlet_process"), ("tied", "dirichlet_process")]


def _blobs(D, seed=0, n=300):
    rng = np.random.default_rng(seed)
    centers = np.zeros((3, D))
    centers[1, 0], centers[2, :] = 8.0, -6.0
    scales = np.linspace(0.5, 2.0, D)  # unequal spreads: the principal axes are well separated
    return np.vstack([rng.normal(size=(n, D)) * scales * s + c for s, c in zip((1.0, 0.6, 1.4), centers)])


def _fit(X, covariance_type="full", prior="dirichlet_process", K=5):
    return fastcavi.fit(X, K, covariance_type=covariance_type, weight_concentration_prior_type=prior,
                        random_state=0, tol=1e-12, max_iter=2000)


def _full_covariances(r):
    """The covariances as (K, D, D), built from scikit-learn's documented shapes of each family."""
    K, D, C = r.n_components, r.n_features, np.asarray(r.covariances)
    if r.covariance_type in ("identity", "tied"):
        return np.array([C] * K)
    if r.covariance_type == "spherical":
        return np.array([c * np.eye(D) for c in C])
    if r.covariance_type == "diag":
        return np.array([np.diag(c) for c in C])
    return C


@pytest.mark.parametrize("covariance_type, prior", FAMILIES)
def test_component_table_is_the_public_parameters(covariance_type, prior, tmp_path):
    X = _blobs(3)
    r = _fit(X, covariance_type, prior)
    t = report.component_table(r)
    order = np.argsort(-r.weights, kind="stable")
    np.testing.assert_array_equal(t["component"], order)
    np.testing.assert_array_equal(t["weight"], r.weights[order])
    assert np.all(np.diff(t["weight"]) <= 0)
    np.testing.assert_array_equal(t["mean"], r.means[order])
    covs = _full_covariances(r)[order]
    sd = np.array([np.sqrt(np.sort(np.linalg.eigvals(c).real)[::-1]) for c in covs])
    np.testing.assert_allclose(t["sd"], sd, rtol=1e-12)  # two eigen-solvers on small symmetric matrices
    np.testing.assert_allclose(t["log_det"], np.log(np.linalg.det(covs)), rtol=1e-12, atol=1e-12)
    # the expected counts N_k are those of the E-step that made the state: one more sweep from r makes a
    # state from r's responsibilities, whose sums are the reference (round-off of sums of 900 terms)
    after = fastcavi.fit(X, r.n_components, covariance_type=covariance_type, weight_concentration_prior_type=prior,
                         init=r, max_iter=1)
    sizes = report.component_table(after)
    np.testing.assert_allclose(sizes["size"], r.predict_proba(X).sum(axis=0)[sizes["component"]], rtol=1e-10,
                               atol=1e-10)
    np.testing.assert_allclose(t["size"].sum(), X.shape[0], rtol=1e-12)
    # used: the fewest heaviest components that hold 99% of the weight
    n_used = next(m for m in range(1, r.n_components + 1) if r.weights[order[:m]].sum() >= 0.99)
    assert t["used"].sum() == n_used and t["used"][:n_used].all()
    # the CSV holds the same numbers, exactly (repr round-trips floats)
    path = tmp_path / "c.csv"
    report._write_csv(t, path)
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == r.n_components
    D = r.n_features
    for i, row in enumerate(rows):
        k = int(row["component"])
        assert k == order[i]
        assert float(row["weight"]) == r.weights[k]
        assert float(row["size"]) == t["size"][i]
        assert [float(row[f"mean_{d}"]) for d in range(D)] == list(r.means[k])
        assert [float(row[f"sd_{d}"]) for d in range(D)] == list(t["sd"][i])
        assert int(row["used"]) == int(t["used"][i])


def test_a_dirichlet_process_counts_the_components_it_uses():
    r = _fit(_blobs(2), "full", "dirichlet_process", K=8)
    t = report.component_table(r)
    assert t["used"].sum() == 3  # three blobs
    with pytest.raises(ValueError, match="mass must be in"):
        report.component_table(r, mass=0.0)


def test_sample_rows_is_seeded_without_replacement_and_reads_only_sampled_blocks(tmp_path):
    X = np.arange(10 * 65536 * 2, dtype=np.float64).reshape(-1, 2)
    i1, r1 = report.sample_rows(X, 1000, seed=3)
    i2, r2 = report.sample_rows(X, 1000, seed=3)
    i3, _ = report.sample_rows(X, 1000, seed=4)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(r1, r2)
    assert not np.array_equal(i1, i3)
    assert np.unique(i1).size == 1000 and np.all(np.diff(i1) > 0)
    np.testing.assert_array_equal(r1, X[i1])
    assert r1.dtype == np.float64
    # a .npy path is memory-mapped: the same rows
    np.save(tmp_path / "x.npy", X.astype(np.float32))
    i4, r4 = report.sample_rows(str(tmp_path / "x.npy"), 1000, seed=3)
    np.testing.assert_array_equal(i4, i1)
    np.testing.assert_array_equal(r4, X[i1].astype(np.float32))

    class Rows:  # an h5py-like dataset that records what it is asked for
        shape, dtype = X.shape, X.dtype

        def __init__(self):
            self.reads = []

        def __getitem__(self, index):
            assert isinstance(index, slice)
            self.reads.append((index.start, index.stop))
            return X[index]

    rows = Rows()
    i5, r5 = report.sample_rows(rows, 3, seed=0)
    np.testing.assert_array_equal(r5, X[i5])
    assert len(rows.reads) <= 3 and all(stop - start <= 65536 for start, stop in rows.reads)
    # fewer rows than asked for: all of them, in order
    i6, r6 = report.sample_rows(X[:10], 20000)
    np.testing.assert_array_equal(i6, np.arange(10))
    np.testing.assert_array_equal(r6, X[:10])
    with pytest.raises(ValueError, match="positive integer"):
        report.sample_rows(X, 0)


def test_the_view_for_more_than_two_features_is_numpy_pca_of_the_sample():
    X = _blobs(5)
    _, rows = report.sample_rows(X, 500, seed=1)
    center, axes = report.principal_axes(rows)
    Y = rows - rows.mean(axis=0)
    _, _, vt = np.linalg.svd(Y, full_matrices=False)
    ref = vt[:2].T
    signs = np.sign(np.sum(axes * ref, axis=0))
    np.testing.assert_allclose(center, rows.mean(axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(axes, ref * signs, rtol=0, atol=1e-10)
    np.testing.assert_allclose((rows - center) @ axes, (Y @ ref) * signs, rtol=0, atol=1e-10)
    np.testing.assert_allclose(axes.T @ axes, np.eye(2), atol=1e-12)
    # the components in the same view: means and covariances projected onto the axes
    r = _fit(X, "diag", "dirichlet_distribution", K=3)
    means, covs = report._projected(r, center, axes)
    for k in range(3):
        np.testing.assert_allclose(means[k], axes.T @ (r.means[k] - center), rtol=0, atol=1e-12)
        np.testing.assert_allclose(covs[k], axes.T @ np.diag(r.covariances[k]) @ axes, rtol=1e-12, atol=1e-14)
    for D in (1, 2):  # the features themselves
        c, a = report.principal_axes(X[:, :D])
        np.testing.assert_array_equal(c, np.zeros(D))
        np.testing.assert_array_equal(a, np.eye(D))


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.links, self.tags, self.body_rows, self._in_tbody = [], [], [], 0, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(attrs["src"])
            assert attrs.get("alt")
        if tag in ("a", "link", "script"):
            self.links.append(attrs.get("href") or attrs.get("src"))
        if tag == "tbody":
            self._in_tbody = True
        if tag == "tr" and self._in_tbody:
            self.body_rows += 1

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_tbody = False


def _check_report(out, K):
    import matplotlib.image

    names = ["elbo.png", "weights.png", "clusters.png", "components.csv", "index.html"]
    for name in names:
        assert (out / name).stat().st_size > 0, name
    for name in names[:3]:
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE
        image = matplotlib.image.imread(out / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    text = (out / "index.html").read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>\n<html lang=\"en\">")
    page = _Page()
    page.feed(text)
    page.close()
    assert sorted(page.imgs) == ["clusters.png", "elbo.png", "weights.png"]
    assert page.links == ["components.csv"]
    for src in page.imgs + page.links:
        assert (out / src).is_file()  # relative and present: nothing from elsewhere
    assert "http" not in text and "//" not in text
    assert page.body_rows == K
    assert page.tags.count("table") == 1 and "meta" in page.tags and "title" in page.tags


@pytest.mark.parametrize("D, covariance_type, prior", [(1, "spherical", "dirichlet_process"),
                                                       (2, "identity", "dirichlet_distribution"),
                                                       (4, "tied", "dirichlet_process"),
                                                       (3, "diag", "dirichlet_distribution"),
                                                       (5, "full", "dirichlet_process")])
def test_write_report_writes_valid_png_and_html(D, covariance_type, prior, tmp_path):
    pytest.importorskip("matplotlib")
    X = _blobs(D)
    r = _fit(X, covariance_type, prior, K=4)
    X_before = X.copy()
    paths = report.write_report(r, X, tmp_path / "rep", sample=500)
    np.testing.assert_array_equal(X, X_before)  # the caller's data is not modified
    assert paths == {k: os.path.join(str(tmp_path / "rep"), v) for k, v in report.FILES.items()}
    _check_report(tmp_path / "rep", r.n_components)
    with pytest.raises(ValueError, match="X has 7 features, but the fitted model is expecting"):
        report.write_report(r, np.zeros((10, 7)), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_the_report_and_info_commands(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    X = _blobs(3)
    np.save(tmp_path / "x.npy", X)
    model = str(tmp_path / "m.npz")
    assert main(["fit", str(tmp_path / "x.npy"), "-k", "4", "--covariance-type", "full", "--weight-prior-type",
                 "dirichlet_process", "--out", model,
                 "--seed", "0", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["report", model, str(tmp_path / "x.npy"), "--out", str(tmp_path / "rep"), "--sample", "400"]) == 0
    assert "index.html" in capsys.readouterr().out
    r = fastcavi.load(model)
    _check_report(tmp_path / "rep", r.n_components)
    # the same figures whatever the thread count
    assert main(["report", model, str(tmp_path / "x.npy"), "--out", str(tmp_path / "rep1"), "--sample", "400",
                 "--n-threads", "1"]) == 0
    for name in report.FILES.values():
        assert (tmp_path / "rep" / name).read_bytes() == (tmp_path / "rep1" / name).read_bytes(), name
    capsys.readouterr()

    assert main(["info", model]) == 0
    out = capsys.readouterr().out
    assert out.strip() == r.summary()
    lines = out.splitlines()
    assert lines[0] == "fastcavi model: covariance_type=full, K=4, D=3"
    assert lines[1] == "weight prior: dirichlet_process"
    assert lines[2] == f"sweeps: {r.n_iter}, converged: {r.converged}, ELBO: {r.lower_bound:.10e}"
    assert lines[3] == "model file format: version 2"
    assert f"  degrees_of_freedom_prior: {r.priors['degrees_of_freedom_prior']:.4g}" in lines
    order = np.argsort(-r.weights, kind="stable")
    head = lines.index(next(line for line in lines if line.startswith("components, by weight")))
    assert lines[head].startswith("components, by weight (3 of 4 hold 99% of the weight")
    table = lines[head + 2:]
    assert len(table) == 4
    for line, k in zip(table, order):
        fields = line.split()
        assert int(fields[0]) == k and fields[1] == f"{r.weights[k]:.6f}"
        assert [float(v) for v in fields[3:6]] == [float(f"{m:.4g}") for m in r.means[k]]

    # a model file that is not one, and data of the wrong width: one line, status 2, nothing written
    assert main(["info", str(tmp_path / "x.npy")]) == 2
    assert "is not a fastcavi model file" in capsys.readouterr().err
    np.save(tmp_path / "y.npy", np.zeros((10, 2)))
    assert main(["report", model, str(tmp_path / "y.npy"), "--out", str(tmp_path / "rep2")]) == 2
    assert "X has 2 features" in capsys.readouterr().err
    assert not (tmp_path / "rep2").exists()


def test_report_of_an_hdf5_dataset_and_of_bad_rows(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    h5py = pytest.importorskip("h5py")
    X = _blobs(2, n=100)
    r = _fit(X, "spherical", K=3)
    r.save(tmp_path / "m.npz")
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("g/x", data=X)
    assert main(["report", str(tmp_path / "m.npz"), f"{tmp_path / 'x.h5'}:/g/x", "--out", str(tmp_path / "h5"),
                 "--sample", "150", "--sample-seed", "2"]) == 0
    np.save(tmp_path / "x.npy", X)
    assert main(["report", str(tmp_path / "m.npz"), str(tmp_path / "x.npy"), "--out", str(tmp_path / "npy"),
                 "--sample", "150", "--sample-seed", "2"]) == 0
    for name in report.FILES.values():  # the same rows, whatever the format
        assert (tmp_path / "h5" / name).read_bytes() == (tmp_path / "npy" / name).read_bytes(), name
    capsys.readouterr()
    X[123, 1] = np.nan
    np.save(tmp_path / "bad.npy", X)
    assert main(["report", str(tmp_path / "m.npz"), str(tmp_path / "bad.npy"), "--out", str(tmp_path / "bad")]) == 2
    assert capsys.readouterr().err == ("fastcavi: error: Row 123 of X holds nan (column 1): the report draws finite "
                                       "rows only.\n")
    assert not (tmp_path / "bad").exists()


def test_report_without_matplotlib_names_the_extra(tmp_path):
    X = _blobs(2, n=50)
    np.save(tmp_path / "x.npy", X)
    _fit(X, "diag", K=3).save(tmp_path / "m.npz")
    code = ("import sys; sys.modules['matplotlib'] = None; from fastcavi.cli import main; "
            f"sys.exit(main(['report', {str(tmp_path / 'm.npz')!r}, {str(tmp_path / 'x.npy')!r}, "
            f"'--out', {str(tmp_path / 'rep')!r}]))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("fastcavi: error: The report's figures need matplotlib, which is not installed: "
                                 'pip install "fastcavi[plot]"')
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert not (tmp_path / "rep").exists()
    code = "import sys; sys.modules['matplotlib'] = None; import fastcavi.report as r; r.write_report(None, None, 'x')"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 1 and "ImportError: The report's figures need matplotlib" in run.stderr


def test_importing_the_report_module_imports_no_plotting_nor_numba():
    code = ("import sys, fastcavi, fastcavi.report; fastcavi.report.component_table; "
            "print(sorted(m for m in ('matplotlib', 'numba', 'dask', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_demo_without_matplotlib_still_prints_the_table(tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None; from fastcavi.cli import main; "
            f"sys.exit(main(['demo', '--out-dir', {str(tmp_path)!r}]))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "E[pi_k]:  0.3061" in run.stdout
    assert "(matplotlib is not installed: no figures; pip install 'fastcavi[plot]')" in run.stdout
    assert list(tmp_path.iterdir()) == []
