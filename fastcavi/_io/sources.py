"""Data sources: contiguous, native-endian, read-only row chunks from anything array-like.

fastcavi never loads a whole data set. A :class:`DataSource` wraps an ndarray, an
``np.memmap``, a path to a ``.npy`` file (memory-mapped read-only), or any object
with ``.shape``, ``.dtype`` and row slicing (an h5py or zarr dataset), and yields
chunks that the kernels can read directly:

* float32 and float64 stay as they are (no copy for C-ordered arrays and memmaps);
* big-endian floats become native floats of the same width; float16, integers and
  booleans become float64. These conversions are exact (integers up to 2**53), so
  big-endian input gives exactly the native result and float16/integer input exactly
  the result of the same values as float64. (float32 input is read as float32 and computed in
  float64; its kernel is compiled separately, so it agrees with the float64 result
  of the same values to round-off, ~1e-15 relative, not bit for bit.)
* ``np.longdouble`` (float96/float128: x87 extended or IEEE quad precision) is rounded
  to float64, chunk by chunk, which loses its extra precision: the result is bit for
  bit that of ``X.astype(np.float64)``. Values beyond float64's range become infinite
  and are reported as such by the validating first pass.
* Fortran-ordered or strided slices are made C-contiguous, one chunk at a time;
* every chunk is handed over as a read-only view, so the kernels compile once per
  float width and can never write into the caller's data.

scipy.sparse input is refused with scikit-learn's error; an object-dtype array is converted to
float64 as scikit-learn converts it (a non-number in it raises numpy's TypeError or ValueError).
The checks of the data's header (its shape and dtype, and ``sample_weight``'s) are here, with
scikit-learn's wording, and so is what opening the data raises: a missing, truncated or unreadable
``.npy`` file, an object that cannot be read as an array. (The other checks that need no data are
:mod:`fastcavi._validation`'s.)
"""
import os

import numpy as np

from .._config import CHUNK_BYTES, SEGMENT_ROWS


# -- the data's header: shape and dtype (no values read) ------------------------------------------
def is_sparse(X):
    """Whether ``X`` is a scipy.sparse matrix or array (without importing scipy when X is not one)."""
    module = type(X).__module__ or ""
    if not module.startswith("scipy.sparse"):
        return False
    import scipy.sparse

    return scipy.sparse.issparse(X)


def check_dense(X):
    """scikit-learn's ``accept_sparse=False`` error for scipy.sparse input."""
    if is_sparse(X):
        raise TypeError("Sparse data was passed for X, but dense data is required. Use '.toarray()' to convert "
                        "to a dense numpy array.")


def numeric_object_array(arr):
    """An object-dtype array converted to float64, as scikit-learn does (a non-number: TypeError or ValueError).

    Parameters
    ----------
    arr : ndarray of dtype object

    Returns
    -------
    ndarray of dtype float64
    """
    return arr.astype(np.float64)  # float() of each element: numpy's TypeError/ValueError for a non-number


def check_data_shape(shape):
    """scikit-learn's errors for data that is not a 2-D array with at least one row and one column."""
    ndim = len(shape)
    if ndim == 1:
        raise ValueError(
            "Expected 2D array, got 1D array instead. Reshape your data either using "
            "array.reshape(-1, 1) if your data has a single feature or array.reshape(1, -1) "
            "if it contains a single sample.")
    if ndim != 2:
        raise ValueError(f"Found array with dim {ndim}. Expected 2D array (n_samples, n_features).")
    if shape[0] < 1:
        raise ValueError(f"Found array with 0 sample(s) (shape={tuple(shape)}) while a minimum of 1 is required.")
    if shape[1] < 1:
        raise ValueError(f"Found array with 0 feature(s) (shape={tuple(shape)}) while a minimum of 1 is required.")


def check_data_dtype(dtype):
    """Real numbers (floats, integers, bools): not complex, not strings or objects."""
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        raise ValueError("Complex data not supported: X has dtype %s." % dtype)
    if dtype.kind not in "fiub":
        raise ValueError(f"X must hold numbers, but its dtype is {dtype} (kind {dtype.kind!r}); "
                         "convert it to a float array first.")
    return dtype


def check_sample_weight_array(w, n_samples):
    """A 1-D array of real numbers of length ``n_samples`` (the values are checked in the validating pass)."""
    if w.dtype.kind not in "fiub":
        raise ValueError(f"sample_weight must hold real numbers, but its dtype is {w.dtype}.")
    if w.ndim != 1:
        raise ValueError(f"Sample weights must be 1D array or scalar, got {w.ndim}D array of shape "
                         f"{w.shape}.")
    if w.shape[0] != n_samples:
        raise ValueError(f"sample_weight.shape == ({w.shape[0]},), expected ({n_samples},)!")
    return w



def _compute_dtype(dtype):
    """The float type the kernels read for data of ``dtype``, or a ValueError."""
    dtype = check_data_dtype(dtype)
    if dtype.kind == "f" and dtype.itemsize == 8:
        return np.dtype(np.float64)
    if dtype.kind == "f" and dtype.itemsize == 4:
        return np.dtype(np.float32)
    # float16 is exact in float64 and gives bit for bit the float64 result; longdouble (itemsize
    # 12 or 16) is rounded to float64, losing its extra precision; integers and bools are exact
    # up to 2**53
    return np.dtype(np.float64)


def _open_npy(path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"No such data file: {path!r}.")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        if "mmap length" in str(exc) or "cannot reshape" in str(exc):
            raise ValueError(f"Data file {path!r} is truncated: its header promises more data than it holds "
                             f"({exc}).") from None
        raise ValueError(f"Cannot read {path!r} as a .npy array: {exc}") from None
    except (OSError, EOFError) as exc:
        raise ValueError(f"Cannot read {path!r} as a .npy array: {exc}") from None
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{path!r} holds an archive of several arrays, not one .npy array.")
    return arr


class DataSource:
    """Row chunks of a 2-D data set, ready for the kernels.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), np.memmap, str or os.PathLike
        The data. A path is opened with ``np.load(path, mmap_mode="r")``; an object
        with ``shape``, ``dtype`` and ``__getitem__`` is read by row slices.

    Attributes
    ----------
    n_samples, n_features : int
    dtype : numpy.dtype
        The data's own dtype.
    compute_dtype : numpy.dtype
        float32 or float64: what the kernels are handed. float32 stays float32; every
        other real dtype becomes float64, one chunk at a time. That is exact for float16,
        integers up to 2**53 and bools; ``np.longdouble`` (float96/float128) is rounded
        to float64 and loses its extra precision (values beyond float64's range become
        infinite and are reported as such).
    """

    def __init__(self, X):
        check_dense(X)  # scipy.sparse: scikit-learn's TypeError (it has shape, dtype and row slicing)
        if isinstance(X, (str, os.PathLike)):
            X = _open_npy(X)
        if isinstance(X, np.ndarray):
            self._data = np.asarray(X)  # an ndarray view of a memmap: no copy
            if self._data.dtype == object:  # numbers held as objects: converted as scikit-learn does
                self._data = numeric_object_array(self._data)
        elif hasattr(X, "shape") and hasattr(X, "dtype") and hasattr(X, "__getitem__"):
            self._data = X
        else:
            try:
                self._data = np.asarray(X)
            except Exception as exc:  # ragged lists and the like
                raise ValueError(f"X cannot be read as a 2-D array: {exc}") from None
            if self._data.dtype == object:  # a list of mixed numbers and strings, say
                self._data = numeric_object_array(self._data)
        shape = tuple(int(s) for s in self._data.shape)
        check_data_shape(shape)
        self.n_samples, self.n_features = shape
        self.dtype = np.dtype(self._data.dtype)
        self.compute_dtype = _compute_dtype(self.dtype)

    @property
    def data(self):
        """The array that the chunks are read from: the memmap of a path, an object array converted to
        float64, otherwise ``X`` itself (passing it on opens it again without a second conversion)."""
        return self._data

    @property
    def shape(self):
        return (self.n_samples, self.n_features)

    def default_chunk_rows(self, bytes_per_row):
        """Rows per chunk so that the per-chunk working memory is about ``CHUNK_BYTES``."""
        rows = max(1, CHUNK_BYTES // max(1, int(bytes_per_row)))
        return round_chunk_rows(rows)

    def _convert(self, block):
        block = np.asarray(block)
        if block.dtype != self.compute_dtype:  # other types, and big-endian floats (compute_dtype is native)
            with np.errstate(over="ignore"):  # longdouble beyond float64's range: inf, reported by the summary
                block = block.astype(self.compute_dtype)
        if not block.flags.c_contiguous:
            block = np.ascontiguousarray(block)
        view = block.view()
        view.flags.writeable = False
        return view

    def chunks(self, chunk_rows, start=0, stop=None):
        """Yield ``(row0, chunk)`` for consecutive row ranges.

        Parameters
        ----------
        chunk_rows : int
            Rows per chunk; a multiple of ``SEGMENT_ROWS`` (see :func:`round_chunk_rows`).
        start, stop : int
            The row range to read (default: all rows).

        Yields
        ------
        row0 : int
            Index of the chunk's first row.
        chunk : ndarray of shape (rows, n_features), C-contiguous, native, read-only
        """
        stop = self.n_samples if stop is None else stop
        for row0 in range(start, stop, chunk_rows):
            yield row0, self._convert(self._data[row0:min(row0 + chunk_rows, stop)])

    def rows(self, index):
        """Rows at the (sorted, unique) integer positions ``index``, as float64, shape (len(index), D)."""
        index = np.asarray(index, dtype=np.int64)
        out = np.empty((index.size, self.n_features))
        for j, i in enumerate(index):
            out[j] = np.asarray(self._data[int(i):int(i) + 1], dtype=np.float64)[0]
        return out


def round_chunk_rows(rows):
    """Round a chunk size up to a whole number of segments (what keeps results split invariant)."""
    rows = int(rows)
    return max(SEGMENT_ROWS, -(-rows // SEGMENT_ROWS) * SEGMENT_ROWS)


class WeightSource:
    """Row chunks of a 1-D array of sample weights, streamed like the data.

    Parameters
    ----------
    sample_weight : array-like of shape (n_samples,), np.memmap, str or os.PathLike
        A path is opened with ``np.load(path, mmap_mode="r")``.
    n_samples : int
        The number of rows of the data the weights go with.

    Raises
    ------
    ValueError
        When the weights are not a 1-D numeric array of length ``n_samples``.
        (Their values, finite and non-negative, are checked in the validating pass.)
    """

    def __init__(self, sample_weight, n_samples):
        w = _open_npy(sample_weight) if isinstance(sample_weight, (str, os.PathLike)) else sample_weight
        if not isinstance(w, np.ndarray):
            try:
                w = np.asarray(w)
            except Exception as exc:
                raise ValueError(f"sample_weight cannot be read as a 1-D array: {exc}") from None
        if w.dtype == object:  # numbers held as objects: converted as scikit-learn's _check_sample_weight does
            w = numeric_object_array(w)
        self._data = check_sample_weight_array(w, n_samples)
        self.n_samples = n_samples

    def values_at(self, index):
        """The weights at the (sorted, unique) integer positions ``index``, as float64, shape (len(index),)."""
        return np.asarray(self._data[np.asarray(index, dtype=np.int64)], dtype=np.float64)

    def chunks(self, chunk_rows, start=0, stop=None):
        """Yield ``(row0, weights)``: float64, C-contiguous, read-only, for the same ranges as the data's."""
        stop = self.n_samples if stop is None else stop
        for row0 in range(start, stop, chunk_rows):
            block = np.ascontiguousarray(self._data[row0:min(row0 + chunk_rows, stop)], dtype=np.float64)
            view = block.view()
            view.flags.writeable = False
            yield row0, view
