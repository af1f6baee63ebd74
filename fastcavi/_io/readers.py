"""The command line's data paths: ``.npy``, CSV/TSV, Parquet, a Zarr store (local or a URL), an HDF5 dataset.

``fastcavi fit DATA`` (and ``fastcavi predict MODEL DATA``) names its data as

* ``FILE.npy``: memory-mapped (locally, the path goes to :func:`fastcavi.fit` as before);
* ``FILE.csv``, ``FILE.tsv`` (another name with ``--delimiter``) or ``FILE.parquet`` (``.pq``):
  parsed once, a block of rows at a time, into a temporary ``.npy`` file that the fit
  memory-maps (:mod:`fastcavi._io.tables`); :class:`Table` says which columns, the delimiter,
  whether there is a header and where the temporary file goes; the file is removed when the
  ``contextlib.ExitStack`` the command holds closes (also on an error);
* ``STORE.zarr`` (a directory), or ``STORE.zarr:ARRAY`` for an array inside a group; or a
  URL that zarr reads through fsspec (``s3://bucket/store.zarr``, ``gs://...``, ``memory://...``,
  ``file://...``; ``URL.zarr:ARRAY`` in a group);
* ``FILE.h5:/path/to/dataset`` (also ``.hdf5``, ``.hdf``, ``.he5``).

A file whose name ends otherwise is recognised by its first bytes (``.npy``, HDF5, Parquet).

Locally, a Zarr array or an h5py dataset goes to :func:`fastcavi.fit` as it is (it reads
row slices). On a cluster (``--scheduler``) each becomes a ``dask.array.Array`` of row
chunks of ``chunk_rows`` rows: a Zarr store through ``dask.array.from_zarr``, a ``.npy``
file (a converted text or Parquet file too) or an HDF5 dataset through :class:`LazyRows`,
which each worker opens itself (the file must be at the same path on every worker), so that
no data travels in the graph.

zarr, h5py, pyarrow and dask are optional: a missing one raises :class:`MissingExtra`, whose
one-line message names the extra to install.
"""
import importlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

#: What to install for the optional readers and Dask.
EXTRA = 'pip install "fastcavi[dask]"'
#: What to install to read Parquet files.
PARQUET_EXTRA = 'pip install "fastcavi[parquet]"'

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
PARQUET_SUFFIXES = (".parquet", ".pq")
#: Text files and their default delimiter.
TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t"}

#: A file's first bytes, for a name that does not say its format.
_MAGIC = ((b"\x93NUMPY", "npy"), (b"\x89HDF\r\n\x1a\n", "hdf5"), (b"PAR1", "parquet"))
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_NAMES = "its name ends in none of .npy, .csv, .tsv, .parquet, .pq, .h5, .hdf5, .hdf, .he5"


class MissingExtra(Exception):
    """An optional package the data or the scheduler needs is not installed (one line: what to install)."""


def need(module, purpose, extra=EXTRA):
    """Import ``module`` or raise :class:`MissingExtra` naming ``purpose`` and the extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{purpose} needs the package {module.split('.')[0]!r}, which is not installed: "
                           f"{extra}") from None


@dataclass(frozen=True)
class Table:
    """How to read a CSV, TSV or Parquet file (the command line's ``--columns``, ``--delimiter``, ...).

    Attributes
    ----------
    columns : tuple of str, optional
        Names or 0-based indices of the columns to read; default all.
    delimiter : str, optional
        One character; default by the name: ``,`` for ``.csv``, a tab for ``.tsv``.
    header : bool, optional
        Whether a text file's first row is a header; default: when none of its fields is a number.
    tmp_dir : str, optional
        Where the temporary ``.npy`` file goes; default ``tempfile``'s (``TMPDIR``).
    """

    columns: Optional[Tuple[str, ...]] = None
    delimiter: Optional[str] = None
    header: Optional[bool] = None
    tmp_dir: Optional[str] = None


def _kind_of_file(path):
    """``"npy"``, ``"text"``, ``"parquet"``, ``"hdf5"`` from the name or the first bytes; else ``"unknown"``."""
    lower = path.lower()
    if lower.endswith(".npy"):
        return "npy"
    if lower.endswith(tuple(TEXT_SUFFIXES)):
        return "text"
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if lower.endswith(HDF5_SUFFIXES):
        return "hdf5"
    with open(path, "rb") as f:
        start = f.read(8)
    return next((kind for magic, kind in _MAGIC if start.startswith(magic)), "unknown")


def parse(text):
    """``(kind, path, inner)`` of a command-line data path.

    Parameters
    ----------
    text : str
        ``FILE.npy``, ``FILE.csv``, ``FILE.tsv``, ``FILE.parquet``, ``STORE.zarr`` (a directory or
        a URL), ``STORE.zarr:ARRAY`` or ``FILE.h5:/dataset``.

    Returns
    -------
    kind : str
        ``"npy"``, ``"text"``, ``"parquet"``, ``"zarr"``, ``"hdf5"``, or ``"unknown"`` (a file whose
        name and first bytes say none of them).
    path : str
        The file, directory or URL.
    inner : str or None
        The array or dataset inside it.

    Raises
    ------
    ValueError
        No such text, Parquet or HDF5 file (a missing ``.npy`` file is the reader's to report); a
        name inside a file that is not HDF5.
    """
    if _URL.match(text) and not os.path.exists(text):
        head, sep, inner = text.rpartition(":")
        if sep and head.lower().endswith(".zarr") and _URL.match(head):
            return "zarr", head, inner or None
        return "zarr", text, None
    if os.path.isdir(text):
        return "zarr", text, None
    if os.path.exists(text):
        return _kind_of_file(text), text, None
    head, sep, inner = text.rpartition(":")
    if sep and head and os.path.exists(head):
        if os.path.isdir(head):
            return "zarr", head, inner or None
        if _kind_of_file(head) != "hdf5":
            raise ValueError(f"No such data file: {text!r} (only HDF5 files and Zarr stores hold named arrays: "
                             "FILE.h5:/dataset, STORE.zarr:ARRAY).")
        return "hdf5", head, inner or None
    if text.lower().endswith(tuple(TEXT_SUFFIXES) + PARQUET_SUFFIXES + HDF5_SUFFIXES):
        raise ValueError(f"No such data file: {text!r}.")
    return "npy", text, None  # a missing file: the .npy reader says so


def _check_table_options(kind, path, table):
    """A ValueError where ``table`` asks for what the format does not have (columns of a ``.npy`` file)."""
    if kind == "unknown" and table.delimiter is None:
        raise ValueError(f"Cannot tell the format of {path!r}: {_NAMES}, and its first bytes are none of theirs "
                         "(a Zarr store is a directory; a text file with another name needs --delimiter).")
    what = {"npy": "a .npy file", "zarr": "a Zarr array", "hdf5": "an HDF5 dataset", "parquet": "a Parquet file"}
    if table.columns and kind not in ("text", "parquet", "unknown"):
        raise ValueError(f"--columns applies to CSV, TSV and Parquet files; {path!r} is {what[kind]}.")
    for flag, value in (("--delimiter", table.delimiter), ("--header/--no-header", table.header)):
        if value is not None and kind not in ("text", "unknown"):
            raise ValueError(f"{flag} applies to text files (CSV, TSV); {path!r} is {what[kind]}.")


def _to_npy(kind, path, table, stack):
    """Parse a text or Parquet file into a temporary ``.npy`` file, removed when ``stack`` closes; its path."""
    if kind == "parquet":
        pa = need("pyarrow", "Reading a Parquet file", PARQUET_EXTRA)
        pq = need("pyarrow.parquet", "Reading a Parquet file", PARQUET_EXTRA)
    directory = tempfile.mkdtemp(prefix="fastcavi-", dir=table.tmp_dir)
    stack.callback(shutil.rmtree, directory, ignore_errors=True)
    out = os.path.join(directory, "data.npy")
    from . import tables as _tables

    if kind == "parquet":
        return _tables.parquet_to_npy(pa, pq, path, out, columns=table.columns)
    delimiter = table.delimiter or TEXT_SUFFIXES.get(os.path.splitext(path)[1].lower(), ",")
    return _tables.text_to_npy(path, out, delimiter=delimiter, columns=table.columns, header=table.header)


def _open_path(text, stack, table):
    """``(kind, path, inner)`` with a text or Parquet file already converted: kind ``"npy"``, ``"zarr"`` or ``"hdf5"``."""
    kind, path, inner = parse(text)
    table = table if table is not None else Table()
    _check_table_options(kind, path, table)
    if kind in ("text", "parquet", "unknown"):
        return "npy", _to_npy(kind, path, table, stack), None
    return kind, path, inner


def _hdf5_dataset(h5py, handle, path, inner):
    if inner is None:
        names = []
        handle.visititems(lambda name, obj: names.append("/" + name) if isinstance(obj, h5py.Dataset) else None)
        raise ValueError(f"Name the dataset of the HDF5 file {path!r}: {path}:/path/to/dataset "
                         f"(it holds {', '.join(names[:5]) or 'no dataset'}{' ...' if len(names) > 5 else ''}).")
    try:
        obj = handle[inner]
    except KeyError:
        raise ValueError(f"The HDF5 file {path!r} has no dataset {inner!r}.") from None
    if not isinstance(obj, h5py.Dataset):
        raise ValueError(f"{path}:{inner} is an HDF5 group, not a dataset.")
    return obj


def open_zarr(path, inner):
    """The Zarr array at ``path`` (a directory or a URL; and ``inner``), opened read-only."""
    zarr = need("zarr", "Reading a Zarr store")
    name = path + ":" + inner if inner else path
    if _URL.match(path):
        need("fsspec", f"Reading the Zarr store {path!r}")
    try:
        z = zarr.open(store=path, mode="r", path=inner) if inner else zarr.open(store=path, mode="r")
    except ImportError as exc:  # fsspec's filesystem of the URL's scheme: "Install s3fs to access S3"
        raise MissingExtra(f"Reading {name!r} needs a package for its URL scheme: {exc}") from None
    except Exception as exc:  # zarr's errors differ between versions: a missing or unreadable store
        raise ValueError(f"Cannot read {name!r} as a Zarr array: {exc}") from None
    if not hasattr(z, "dtype"):
        names = sorted(getattr(z, "array_keys", lambda: [])())
        raise ValueError(f"{path!r} is a Zarr group: name its array, {path}:ARRAY "
                         f"(it holds {', '.join(names[:5]) or 'no array'}).")
    return z


def open_local(text, stack, table=None):
    """The data for a local fit: a ``.npy`` path (a text or Parquet file converted to one), a Zarr array,
    or an h5py dataset.

    Parameters
    ----------
    text : str
        The command line's data path (see :func:`parse`).
    stack : contextlib.ExitStack
        Closes the HDF5 file and removes the temporary ``.npy`` file when the command is over.
    table : Table, optional
        How to read a text or Parquet file.

    Returns
    -------
    str, zarr array or h5py.Dataset
    """
    kind, path, inner = _open_path(text, stack, table)
    if kind == "npy":
        return path
    if kind == "zarr":
        return open_zarr(path, inner)
    h5py = need("h5py", "Reading an HDF5 file")
    handle = stack.enter_context(h5py.File(path, "r"))
    return _hdf5_dataset(h5py, handle, path, inner)


class LazyRows:
    """Row slices of a ``.npy`` file or an HDF5 dataset, opened in the process that reads them.

    What a Dask graph holds instead of the data: pickling keeps the path and the header
    only, and each worker opens the file on its first read (memory-mapped for ``.npy``).

    Parameters
    ----------
    kind : {"npy", "hdf5"}
    path : str
    inner : str or None
        The HDF5 dataset.
    """

    def __init__(self, kind, path, inner=None):
        self.kind, self.path, self.inner = kind, os.path.abspath(path), inner
        self._array = self._file = None
        a = self._open()
        self.shape, self.dtype = tuple(int(s) for s in a.shape), np.dtype(a.dtype)
        self.ndim = len(self.shape)
        if self._file is not None:  # the header is read: the client holds no open HDF5 file
            self._file.close()
            self._array = self._file = None

    def _open(self):
        if self._array is None:
            if self.kind == "npy":
                from .sources import _open_npy

                self._array = _open_npy(self.path)
            else:
                h5py = need("h5py", "Reading an HDF5 file")
                self._file = h5py.File(self.path, "r")
                self._array = _hdf5_dataset(h5py, self._file, self.path, self.inner)
        return self._array

    def __getstate__(self):
        return dict(self.__dict__, _array=None, _file=None)

    def __getitem__(self, index):
        return np.asarray(self._open()[index])

    def token(self):
        """What identifies the data for Dask's key names: the path, the dataset, the file's size and time."""
        st = os.stat(self.path)
        return (self.kind, self.path, self.inner, st.st_size, st.st_mtime_ns)


def open_dask(text, chunk_rows, stack, table=None):
    """The data as a ``dask.array.Array`` with row chunks of ``chunk_rows`` rows (all columns in one chunk).

    Parameters
    ----------
    text : str
        The command line's data path (see :func:`parse`).
    chunk_rows : int
        Rows per Dask chunk (whole multiples of ``fastcavi.engine.GRANULARITY`` give the local fit's bits).
    stack : contextlib.ExitStack
        Removes the temporary ``.npy`` file of a text or Parquet file when the command is over (it
        goes to ``table.tmp_dir``, which every worker must see).
    table : Table, optional
        How to read a text or Parquet file.

    Returns
    -------
    dask.array.Array
    """
    da = need("dask.array", "--scheduler")
    kind, path, inner = _open_path(text, stack, table)
    if kind == "zarr":
        z = open_zarr(path, inner)
        if len(z.shape) != 2:
            return da.from_zarr(path, component=inner)  # fastcavi.fit names the shape it expects
        return da.from_zarr(path, component=inner, chunks=(chunk_rows, int(z.shape[1])))
    from dask.base import tokenize

    rows = LazyRows(kind, path, inner)
    chunks = (chunk_rows,) + tuple(rows.shape[1:])
    return da.from_array(rows, chunks=chunks, name=f"fastcavi-{kind}-" + tokenize(rows.token(), chunks),
                         asarray=False, fancy=False, meta=np.empty((0,) * rows.ndim, dtype=rows.dtype))
