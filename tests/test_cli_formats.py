"""The command line's data formats: .npy, CSV, TSV, Parquet, HDF5, Zarr (a directory or a URL).

The same numbers in any format give the same model, bit for bit (the text holds each float's
``repr``, which Python's correctly rounded parser reads back exactly). Text and Parquet files are
parsed once into a temporary ``.npy`` file, which is gone when the command ends, also on an error.
Bad files are reported as one line naming the file, the line or row, and the column.
"""
import contextlib
import os
import sys

import numpy as np
import pytest

import fastcavi
from fastcavi._io import readers as _readers, tables as _tables
from fastcavi.cli import build_parser, main
from test_cli import _same_model  # bitwise equality of two FitResults

FIT = ["-k", "3", "--covariance-type", "full", "--init", "random_from_data", "--seed", "4", "--max-iter", "4",
       "--tol", "0", "--quiet"]


def _blobs(n=9000):
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(size=(n // 3, 2)) + c for c in ([0, 0], [6, 0], [0, 6])])[rng.permutation(n)]
    X[:, 1] *= 1e-3  # values whose repr has many digits and exponents
    return X


def _write_text(path, rows, delimiter=",", header=None):
    with open(path, "w", newline="") as f:
        if header is not None:
            f.write(delimiter.join(header) + "\n")
        for row in rows:
            f.write(delimiter.join(v if isinstance(v, str) else repr(float(v)) for v in row) + "\n")


def _one_error_line(capsys, *messages):
    err = capsys.readouterr().err
    assert err.startswith("fastcavi: error: ") and err.count("\n") == 1, err
    for message in messages:
        assert message in err, err
    return err


def test_every_format_gives_the_same_model_and_labels(tmp_path, capsys):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    h5py = pytest.importorskip("h5py")
    zarr = pytest.importorskip("zarr")
    X = _blobs()
    n = len(X)
    np.save(tmp_path / "x.npy", X)
    # a header and an extra column (the index pandas writes) that --columns leaves out
    _write_text(tmp_path / "x.csv", [(str(i), a, b) for i, (a, b) in enumerate(X)], header=["", "x", "y"])
    _write_text(tmp_path / "x.tsv", X, delimiter="\t")  # no header
    _write_text(tmp_path / "x.txt", X, delimiter=";")  # another name: --delimiter says it is text
    labels = pa.array(["abc"] * n)
    pq.write_table(pa.table({"label": labels, "x": X[:, 0], "y": X[:, 1]}), tmp_path / "x.parquet",
                   row_group_size=2500)
    pq.write_table(pa.table({"x": X[:, 0], "y": X[:, 1]}), tmp_path / "x.pq", row_group_size=4000)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("group/x", data=X, chunks=(3000, 2))
    z = zarr.open_array(str(tmp_path / "x.zarr"), mode="w", shape=X.shape, chunks=(5000, 2), dtype="f8")
    z[:] = X
    inputs = [[str(tmp_path / "x.csv"), "--columns", "x,y"], [str(tmp_path / "x.csv"), "--columns", "1,2"],
              [str(tmp_path / "x.tsv")], [str(tmp_path / "x.txt"), "--delimiter", ";"],
              [str(tmp_path / "x.parquet"), "--columns", "x,y"], [str(tmp_path / "x.pq")],
              [f"{tmp_path / 'x.h5'}:/group/x"], [str(tmp_path / "x.zarr")],
              [(tmp_path / "x.zarr").as_uri()]]  # a file:// URL, read through fsspec
    if _has("fsspec"):
        zarr.open_array("memory://fastcavi-test/x.zarr", mode="w", shape=X.shape, chunks=(4096, 2), dtype="f8")[:] = X
        inputs.append(["memory://fastcavi-test/x.zarr"])
    reference = tmp_path / "ref.npz"
    assert main(["fit", str(tmp_path / "x.npy"), "--out", str(reference)] + FIT) == 0
    ref = fastcavi.load(reference)
    np.testing.assert_array_equal(ref.n_features, 2)
    assert main(["predict", str(reference), str(tmp_path / "x.npy"), "--out", str(tmp_path / "ref_labels.npy")]) == 0
    ref_labels = np.load(tmp_path / "ref_labels.npy")
    for i, data in enumerate(inputs):
        out = tmp_path / f"m{i}.npz"
        assert main(["fit", data[0], "--out", str(out)] + data[1:] + FIT) == 0, (data, capsys.readouterr().err)
        _same_model(fastcavi.load(out), ref)
        lab = tmp_path / f"l{i}.npy"
        assert main(["predict", str(reference), data[0], "--out", str(lab)] + data[1:]) == 0, data
        assert np.array_equal(np.load(lab), ref_labels), data


def _has(module):
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def test_float32_and_integer_parquet_columns_are_read_as_the_npy_of_the_same_values(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    X = _blobs(300).astype(np.float32)
    pq.write_table(pa.table({"x": X[:, 0], "y": X[:, 1]}), tmp_path / "f.parquet", row_group_size=100)
    I = np.arange(12, dtype=np.int64).reshape(6, 2) * 3 - 7
    pq.write_table(pa.table({"i": I[:, 0], "b": I[:, 1] > 0, "f": I[:, 1].astype(np.float32)}),
                   tmp_path / "i.parquet")
    with contextlib.ExitStack() as stack:
        f32 = np.load(_readers.open_local(str(tmp_path / "f.parquet"), stack))
        mixed = np.load(_readers.open_local(str(tmp_path / "i.parquet"), stack))
    # float32 columns stay float32 (the fit of the float32 .npy); any other column makes float64
    assert f32.dtype == np.float32 and f32.tobytes() == X.tobytes()
    assert mixed.dtype == np.float64
    np.testing.assert_array_equal(mixed, np.column_stack([I[:, 0], I[:, 1] > 0, I[:, 1]]).astype(np.float64))


def test_text_parsing(tmp_path):
    """Quotes, a byte-order mark, CRLF, blank lines, spaces after delimiters, and the header switch."""
    path = tmp_path / "t.csv"
    path.write_bytes(b'\xef\xbb\xbf"a","b"\r\n"1.5", 2\r\n\r\n  \r\n-3e-300,  4\r\n')
    with contextlib.ExitStack() as stack:
        got = np.load(_readers.open_local(str(path), stack))
        np.testing.assert_array_equal(got, [[1.5, 2.0], [-3e-300, 4.0]])
        # a numeric first row is data; --header makes it a header, --no-header makes a header data (an error)
        numeric = tmp_path / "n.csv"
        numeric.write_text("1,2\n3,4\n")
        np.testing.assert_array_equal(np.load(_readers.open_local(str(numeric), stack)), [[1, 2], [3, 4]])
        # --columns names the header's names first: "1" is the first column's name here, not index 1
        table = _readers.Table(header=True, columns=("1",))
        np.testing.assert_array_equal(np.load(_readers.open_local(str(numeric), stack, table)), [[3]])
        with pytest.raises(ValueError, match=r"line 1, column 0 \(0-based\): 'a' is not a number"):
            _readers.open_local(str(path), stack, _readers.Table(header=False))
        # a text file whose name says nothing, with --delimiter
        spaced = tmp_path / "s.dat"
        spaced.write_text("1  2\n3 4\n")
        got = np.load(_readers.open_local(str(spaced), stack, _readers.Table(delimiter=" ")))
        np.testing.assert_array_equal(got, [[1, 2], [3, 4]])


def test_line_numbers_across_blocks(tmp_path):
    rows = [(i, i + 0.5) for i in range(20)]
    rows[13] = ("13", "oops")
    _write_text(tmp_path / "x.csv", rows, header=["p", "q"])
    # line 15: the header is line 1, rows[13] is line 15; blocks of 4 rows put it in the fourth block
    with pytest.raises(ValueError, match=r"x.csv: line 15, column 'q': 'oops' is not a number\.$"):
        _tables.text_to_npy(str(tmp_path / "x.csv"), str(tmp_path / "o.npy"), block_rows=4)
    rows[13] = (13, 13.5, 1)
    _write_text(tmp_path / "x.csv", rows, header=["p", "q"])
    with pytest.raises(ValueError, match=r"line 15 has 3 fields, line 1 has 2 \(ragged rows\)"):
        _tables.text_to_npy(str(tmp_path / "x.csv"), str(tmp_path / "o.npy"), block_rows=4)
    del rows[13]
    _write_text(tmp_path / "x.csv", rows, header=["p", "q"])
    for block_rows in (1, 4, 19, 1000):
        _tables.text_to_npy(str(tmp_path / "x.csv"), str(tmp_path / "o.npy"), block_rows=block_rows)
        got = np.load(tmp_path / "o.npy")
        assert got.tobytes() == np.array(rows, dtype=np.float64).tobytes(), block_rows


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_rows", [1, 7, 10 ** 6 + 3])
def test_npy_writer_header_is_numpys(tmp_path, dtype, n_rows):
    """The header written last, in the room of the largest shape: numpy reads the file, aligned."""
    path = str(tmp_path / "w.npy")
    writer = _tables.NpyWriter(path, dtype, 3)
    block = np.arange(3 * min(n_rows, 5), dtype=dtype).reshape(-1, 3)
    writer.write(block)
    writer.n_rows = n_rows  # the header of a file this long (the data itself is not needed to read the header)
    writer.close()
    with open(path, "rb") as f:
        assert np.lib.format.read_magic(f) == (1, 0)
        shape, fortran, read_dtype = np.lib.format.read_array_header_1_0(f)
        assert f.tell() % 64 == 0
    assert (shape, fortran, read_dtype) == ((n_rows, 3), False, np.dtype(dtype))
    if n_rows <= 5:
        assert np.load(path).tobytes() == block.tobytes()


def test_the_temporary_file_is_removed_when_the_command_ends(tmp_path, capsys, monkeypatch):
    X = _blobs(600)
    _write_text(tmp_path / "x.csv", X, header=["a", "b"])
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    model = str(tmp_path / "m.npz")
    seen = []
    real_fit = fastcavi.fit

    def fit(data, *args, **kwargs):
        seen.append(data)
        assert isinstance(data, str) and os.path.dirname(os.path.dirname(data)) == str(tmp)
        assert np.load(data, mmap_mode="r").tobytes() == X.tobytes()
        return real_fit(data, *args, **kwargs)

    monkeypatch.setattr(fastcavi, "fit", fit)
    parsed = []
    real_parse = _tables.text_to_npy
    monkeypatch.setattr(_tables, "text_to_npy", lambda *a, **k: parsed.append(a) or real_parse(*a, **k))
    assert main(["fit", str(tmp_path / "x.csv"), "--out", model, "--tmp-dir", str(tmp)] + FIT) == 0
    assert len(seen) == 1 and len(parsed) == 1 and fastcavi.load(model).n_iter == 4  # parsed once, 4 sweeps
    assert os.listdir(tmp) == []
    # an error in the fit (more components than rows) and in predict (a model with other features)
    assert main(["fit", str(tmp_path / "x.csv"), "--out", model, "--tmp-dir", str(tmp), "-k", "700"]) == 2
    _one_error_line(capsys, "n_samples >= n_components")
    assert os.listdir(tmp) == []
    _write_text(tmp_path / "x3.csv", np.ones((5, 3)))
    assert main(["predict", model, str(tmp_path / "x3.csv"), "--out", str(tmp_path / "l.npy"),
                 "--tmp-dir", str(tmp)]) == 2
    _one_error_line(capsys, "X has 3 features, but the fitted model is expecting 2 features")
    assert os.listdir(tmp) == []
    # an error while parsing; and TMPDIR (tempfile's default) when --tmp-dir is not given
    monkeypatch.setattr("tempfile.tempdir", str(tmp))
    _write_text(tmp_path / "bad.csv", [(1, 2), (3, "x")])
    assert main(["fit", str(tmp_path / "bad.csv"), "--out", model] + FIT) == 2
    _one_error_line(capsys, "line 2, column 1 (0-based): 'x' is not a number")
    assert len(parsed) == 4 and os.listdir(tmp) == []


def test_a_text_file_on_a_dask_cluster_gives_the_local_model(tmp_path, capsys):
    distributed = pytest.importorskip("distributed")
    X = _blobs()
    _write_text(tmp_path / "x.tsv", X, delimiter="\t", header=["x", "y"])
    local = fastcavi.fit(X, 3, covariance_type="full", init="random_from_data", random_state=4, max_iter=4, tol=0)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None,
                                  silence_logs=40) as cluster:
        out = tmp_path / "m.npz"
        assert main(["fit", str(tmp_path / "x.tsv"), "--out", str(out), "--scheduler", cluster.scheduler_address,
                     "--chunk-rows", "4096", "--tmp-dir", str(tmp)] + FIT) == 0, capsys.readouterr().err
    _same_model(fastcavi.load(out), local)
    assert os.listdir(tmp) == []


def test_bad_files_are_one_line_naming_file_line_and_column(tmp_path, capsys):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    t = tmp_path
    _write_text(t / "ok.csv", [(1, 2), (3, 4), (5, 6)], header=["a", "b"])
    _write_text(t / "nohead.tsv", [(1, 2), (3, 4), (5, 6)], delimiter="\t")
    _write_text(t / "text.csv", [(1, 2), (3, "abc"), (5, 6)], header=["a", "b"])
    _write_text(t / "blank.csv", [(1, 2), ("", 4)], header=["a", "b"])
    _write_text(t / "ragged.csv", [(1, 2), (3, 4, 5)], header=["a", "b"])
    (t / "empty.csv").write_text("")
    _write_text(t / "header.csv", [], header=["a", "b"])
    (t / "x.dat").write_text("who knows\n")
    (t / "notpq.parquet").write_text("a,b\n1,2\n")
    (t / "quote.csv").write_text('a,b\n1,"2\n')
    pq.write_table(pa.table({"a": [1.0, 2.0, 3.0], "s": ["u", "v", "w"]}), t / "str.parquet")
    pq.write_table(pa.table({"a": [1.0, 2.0, 3.0], "b": pa.array([1.0, None, 3.0])}), t / "null.parquet",
                   row_group_size=1)
    pq.write_table(pa.table({"a": pa.array([], pa.float64())}), t / "empty.parquet")
    np.save(t / "x.npy", np.zeros((4, 2)))
    cases = [
        ([str(t / "ok.csv"), "--columns", "a,z"], [f"{t / 'ok.csv'} has no column 'z' (it has: a, b)"]),
        ([str(t / "ok.csv"), "--columns", "2"], ["ok.csv: there is no column 2 (0-based): it has 2 columns"]),
        ([str(t / "ok.csv"), "--columns", "a,0"], ["ok.csv: --columns names column 'a' twice"]),
        ([str(t / "nohead.tsv"), "--columns", "a"], ["nohead.tsv has no header row: name its columns by 0-based"]),
        ([str(t / "text.csv")], [f"{t / 'text.csv'}: line 3, column 'b': 'abc' is not a number."]),
        ([str(t / "blank.csv")], ["blank.csv: line 3, column 'a': an empty field is not a number."]),
        ([str(t / "ragged.csv")], ["ragged.csv: line 3 has 3 fields, line 1 has 2 (ragged rows)"]),
        ([str(t / "empty.csv")], [f"{t / 'empty.csv'} is empty: it holds no rows"]),
        ([str(t / "header.csv")], ["header.csv holds a header (line 1) but no data rows"]),
        ([str(t / "quote.csv")], ["quote.csv: line 2: unexpected end of data"]),
        ([str(t / "x.dat")], [f"Cannot tell the format of {str(t / 'x.dat')!r}", "needs --delimiter"]),
        ([str(t / "missing.csv")], [f"No such data file: {str(t / 'missing.csv')!r}"]),
        ([str(t / "ok.csv") + ":/a"], ["only HDF5 files and Zarr stores hold named arrays"]),
        ([str(t / "notpq.parquet")], [f"Cannot read {str(t / 'notpq.parquet')!r} as a Parquet file"]),
        ([str(t / "str.parquet")], ["str.parquet: column 's' holds string, not numbers"]),
        ([str(t / "str.parquet"), "--columns", "a,t"], ["str.parquet has no column 't' (it has: a, s)"]),
        ([str(t / "null.parquet")], ["null.parquet: row 2, column 'b' is null (a missing value)"]),
        ([str(t / "empty.parquet")], ["empty.parquet is empty: it holds no rows"]),
        ([str(t / "x.npy"), "--columns", "0"], ["--columns applies to CSV, TSV and Parquet files", "a .npy file"]),
        ([str(t / "str.parquet"), "--delimiter", ";"], ["--delimiter applies to text files (CSV, TSV)"]),
        ([str(t / "x.npy"), "--no-header"], ["--header/--no-header applies to text files"]),
        (["memory://fastcavi-test/nothing.zarr"], ["Cannot read 'memory://fastcavi-test/nothing.zarr' as a Zarr"]),
    ]
    for data, messages in cases:
        assert main(["fit", *data, "-k", "1", "--out", str(t / "m.npz"), "--quiet"]) == 2, data
        _one_error_line(capsys, *messages)
    model = fastcavi.fit(np.zeros((5, 2)) + np.arange(5)[:, None], 1, max_iter=2).save(t / "m")
    assert main(["predict", model, str(t / "text.csv"), "--out", str(t / "l.npy")]) == 2
    _one_error_line(capsys, "text.csv: line 3, column 'b': 'abc' is not a number.")
    # bad option values: argparse's usage error (status 2)
    for argv in (["--delimiter", "ab"], ["--columns", "a,,b"]):
        with pytest.raises(SystemExit) as stop:
            main(["fit", str(t / "ok.csv"), "-k", "1", "--out", str(t / "m.npz")] + argv)
        assert stop.value.code == 2


def test_missing_readers_name_the_extra(tmp_path, capsys, monkeypatch):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"a": [1.0, 2.0]}), tmp_path / "x.parquet")
    out = str(tmp_path / "m.npz")
    for module in ("pyarrow", "pyarrow.parquet"):
        with monkeypatch.context() as m:
            m.setitem(sys.modules, module, None)  # import raises ImportError
            assert main(["fit", str(tmp_path / "x.parquet"), "-k", "1", "--out", out, "--quiet"]) == 2
        _one_error_line(capsys, "Reading a Parquet file needs the package 'pyarrow'", 'pip install "fastcavi[parquet]"')
    pytest.importorskip("zarr")
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "fsspec", None)
        assert main(["fit", "s3://bucket/x.zarr", "-k", "1", "--out", out, "--quiet"]) == 2
    _one_error_line(capsys, "Reading the Zarr store 's3://bucket/x.zarr' needs the package 'fsspec'",
                    'pip install "fastcavi[dask]"')
    pytest.importorskip("fsspec")
    if not _has("s3fs"):  # fsspec's own message names the package of the scheme
        assert main(["fit", "s3://bucket/x.zarr:g/x", "-k", "1", "--out", out, "--quiet"]) == 2
        _one_error_line(capsys, "Reading 's3://bucket/x.zarr:g/x' needs a package for its URL scheme", "s3fs")


def test_help_says_what_the_command_line_takes(capsys):
    for command in ("fit", "predict"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        for word in ("--columns", "--delimiter", "--header", "--no-header", "--tmp-dir", "FILE.csv", "FILE.parquet",
                     "s3://bucket/store.zarr", "FILE.h5:/path/to/dataset"):
            assert word in text, (command, word)
        if command == "fit":
            # --init: the methods it takes, not the arrays or FitResult of fastcavi.fit
            from fastcavi._validation import INIT_METHODS

            assert "{" + ",".join(INIT_METHODS) + "}" in text
            assert "FitResult" not in text and "(K, D) means" not in text


def test_importing_fastcavi_and_its_command_line_imports_no_reader():
    import subprocess

    readers = ("pyarrow", "zarr", "h5py", "fsspec", "dask", "numba")
    code = f"import sys, fastcavi, fastcavi.cli; print(sorted(m for m in {readers!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
