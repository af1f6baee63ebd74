"""The command line's data paths: a ``.npy`` file, a Zarr store, an HDF5 dataset; read locally or as Dask arrays.

``fastcavi fit DATA`` names its data as

* ``FILE.npy``: memory-mapped (locally, the path goes to :func:`fastcavi.fit` as before);
* ``STORE.zarr`` (a directory), or ``STORE.zarr:ARRAY`` for an array inside a group;
* ``FILE.h5:/path/to/dataset`` (also ``.hdf5``, ``.hdf``, ``.he5``).

Locally, a Zarr array or an h5py dataset goes to :func:`fastcavi.fit` as it is (it reads
row slices). On a cluster (``--scheduler``) each becomes a ``dask.array.Array`` of row
chunks of ``chunk_rows`` rows: a Zarr store through ``dask.array.from_zarr``, a ``.npy``
file or an HDF5 dataset through :class:`LazyRows`, which each worker opens itself (the file
must be at the same path on every worker), so that no data travels in the graph.

zarr, h5py and dask are optional: a missing one raises :class:`MissingExtra`, whose one-line
message names the extra to install.
"""
import importlib
import os

import numpy as np

#: What to install for the optional readers and Dask.
EXTRA = 'pip install "fastcavi[dask]"'

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")


class MissingExtra(Exception):
    """An optional package the data or the scheduler needs is not installed (one line: what to install)."""


def need(module, purpose):
    """Import ``module`` or raise :class:`MissingExtra` naming ``purpose`` and the extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{purpose} needs the package {module.split('.')[0]!r}, which is not installed: "
                           f"{EXTRA}") from None


def parse(text):
    """``(kind, path, inner)`` of a command-line data path: kind ``"npy"``, ``"zarr"`` or ``"hdf5"``.

    Parameters
    ----------
    text : str
        ``FILE.npy``, ``STORE.zarr`` (a directory), ``STORE.zarr:ARRAY`` or ``FILE.h5:/dataset``.

    Returns
    -------
    kind : str
    path : str
        The file or directory.
    inner : str or None
        The array or dataset inside it.
    """
    if os.path.isdir(text):
        return "zarr", text, None
    if os.path.exists(text):
        return ("hdf5" if text.lower().endswith(HDF5_SUFFIXES) else "npy"), text, None
    head, sep, inner = text.rpartition(":")
    if sep and head and os.path.exists(head):
        return ("zarr" if os.path.isdir(head) else "hdf5"), head, inner or None
    return "npy", text, None  # a missing file: the .npy reader says so


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
    """The Zarr array at ``path`` (and ``inner``), opened read-only."""
    zarr = need("zarr", "Reading a Zarr store")
    try:
        z = zarr.open(store=path, mode="r", path=inner) if inner else zarr.open(store=path, mode="r")
    except Exception as exc:  # zarr's errors differ between versions: a missing or unreadable store
        raise ValueError(f"Cannot read {path + ':' + inner if inner else path!r} as a Zarr array: {exc}") from None
    if not hasattr(z, "dtype"):
        names = sorted(getattr(z, "array_keys", lambda: [])())
        raise ValueError(f"{path!r} is a Zarr group: name its array, {path}:ARRAY "
                         f"(it holds {', '.join(names[:5]) or 'no array'}).")
    return z


def open_local(text, stack):
    """The data for a local fit: the ``.npy`` path itself, a Zarr array, or an h5py dataset.

    Parameters
    ----------
    text : str
        The command line's data path (see :func:`parse`).
    stack : contextlib.ExitStack
        Closes the HDF5 file when the fit is over.

    Returns
    -------
    str, zarr array or h5py.Dataset
    """
    kind, path, inner = parse(text)
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
                from ._sources import _open_npy

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


def open_dask(text, chunk_rows):
    """The data as a ``dask.array.Array`` with row chunks of ``chunk_rows`` rows (all columns in one chunk).

    Parameters
    ----------
    text : str
        The command line's data path (see :func:`parse`).
    chunk_rows : int
        Rows per Dask chunk (whole multiples of ``fastcavi.engine.GRANULARITY`` give the local fit's bits).

    Returns
    -------
    dask.array.Array
    """
    da = need("dask.array", "--scheduler")
    kind, path, inner = parse(text)
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
