"""CSV, TSV and Parquet files for the command line: read once, streamed into a temporary ``.npy``.

A fit sweeps its data many times; a text or Parquet file is parsed once, a block of rows at a
time, into a float ``.npy`` file in a temporary directory, which the fit then memory-maps like
any ``.npy`` file (and which the command removes when it ends, also on an error).

* Text (``.csv``, ``.tsv``): read with the :mod:`csv` module, :data:`BLOCK_ROWS` rows at a time,
  each block converted by ``np.array(rows, dtype=np.float64)`` (Python's correctly rounded
  ``float``: the ``repr`` of a float64 reads back bit for bit). The first row is a header when
  none of its fields is a number (``header=True`` or ``False`` says so instead). Blank lines are
  skipped. A field that is not a number, a row with another number of fields than the first,
  an empty file: a ``ValueError`` naming the file, the 1-based line and the column.
* Parquet (``.parquet``, ``.pq``): ``pyarrow.parquet.ParquetFile.iter_batches``. Integer, float
  and boolean columns are read (float32 when every column read is float32, float64 otherwise,
  as :class:`fastcavi._io.sources.DataSource` converts them); a column of another type or a null
  value is a ``ValueError`` naming the column (and the 1-based row).

``columns`` picks columns by name (a header's or the Parquet schema's) or by 0-based index.
"""
import csv

import numpy as np

#: Rows parsed and written per block.
BLOCK_ROWS = 1 << 16

#: The ``.npy`` header's room: that of the largest shape, so that the row count can be written last.
_MAX_ROWS = 10 ** 19


def _npy_header(dtype, shape, size=None):
    """A version 1.0 ``.npy`` header for ``dtype`` and ``shape``, padded with spaces to ``size`` bytes
    (default: the next multiple of 64, numpy's alignment)."""
    text = f"{{'descr': {np.lib.format.dtype_to_descr(dtype)!r}, 'fortran_order': False, 'shape': {shape!r}, }}"
    if size is None:
        size = -(-(10 + len(text) + 1) // 64) * 64
    pad = size - 10 - len(text) - 1
    if pad < 0:
        raise ValueError(f"A .npy header for shape {shape} does not fit in {size} bytes.")
    body = (text + " " * pad + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body


class NpyWriter:
    """A 2-D ``.npy`` file written a block of rows at a time; the row count goes into its header last.

    Parameters
    ----------
    path : str
    dtype : numpy.dtype
        float32 or float64 (written little-endian).
    n_columns : int
    """

    def __init__(self, path, dtype, n_columns):
        self.path, self.dtype, self.n_columns, self.n_rows = path, np.dtype(dtype).newbyteorder("<"), n_columns, 0
        self._size = len(_npy_header(self.dtype, (_MAX_ROWS, n_columns)))  # room for any row count
        self._file = open(path, "wb")
        self._file.write(b"\0" * self._size)

    def write(self, block):
        """Append the rows of ``block``, shape (rows, n_columns)."""
        block = np.ascontiguousarray(block, dtype=self.dtype)
        self._file.write(block.data)  # C-contiguous: its bytes, not a copy
        self.n_rows += block.shape[0]

    def close(self):
        """Write the header with the row count and close the file; return its path."""
        self._file.seek(0)
        self._file.write(_npy_header(self.dtype, (self.n_rows, self.n_columns), self._size))
        self._file.close()
        return self.path


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _column_indices(columns, names, path):
    """0-based indices of ``columns`` (names or indices) among ``names`` (a header, or None: indices only)."""
    n = len(names) if names is not None else None
    out = []
    for c in columns:
        if names is not None and c in names:
            out.append(names.index(c))
        elif c.isdigit():
            if n is not None and int(c) >= n:
                raise ValueError(f"{path}: there is no column {int(c)} (0-based): it has {n} columns.")
            out.append(int(c))
        elif names is None:
            raise ValueError(f"{path} has no header row: name its columns by 0-based index (--columns 0,2), "
                             f"not {c!r}.")
        else:
            raise ValueError(f"{path} has no column {c!r} (it has: {', '.join(map(str, names))}).")
        if out[-1] in out[:-1]:
            raise ValueError(f"{path}: --columns names {_column_name(names, out[-1])} twice.")
    return out


def _column_name(names, index):
    return f"column {names[index]!r}" if names is not None else f"column {index} (0-based)"


def _bad_field(path, rows, lines, picked, names):
    """The ValueError naming the first field of a block that is not a number."""
    for row, line in zip(rows, lines):
        for i in picked:
            if not _is_number(row[i]):
                what = "an empty field" if not row[i].strip() else f"{row[i]!r}"
                return ValueError(f"{path}: line {line}, {_column_name(names, i)}: {what} is not a number.")
    return ValueError(f"{path}: a block of rows ending at line {lines[-1]} cannot be read as numbers.")


def text_to_npy(path, out, *, delimiter=",", columns=None, header=None, block_rows=BLOCK_ROWS):
    """Parse a delimited text file into a float64 ``.npy`` file, a block of rows at a time.

    Parameters
    ----------
    path : str
        The text file.
    out : str
        The ``.npy`` file to write.
    delimiter : str
        One character.
    columns : sequence of str, optional
        Names (of the header) or 0-based indices of the columns to read; default all.
    header : bool, optional
        Whether the first row is a header; None: when none of its fields is a number.
    block_rows : int
        Rows per block.

    Returns
    -------
    str
        ``out``.
    """
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=delimiter, skipinitialspace=True, strict=True)
        try:
            return _parse(reader, path, out, columns=columns, header=header, block_rows=block_rows)
        except csv.Error as exc:  # a NUL byte, an unclosed quote, a field beyond the csv module's limit
            raise ValueError(f"{path}: line {reader.line_num}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path} is not UTF-8 text: {exc}") from None


def _rows(reader):
    """The rows of ``reader`` that are not blank lines."""
    for row in reader:
        if row and (len(row) > 1 or row[0].strip()):
            yield row


def _parse(reader, path, out, *, columns, header, block_rows):
    rows_of = _rows(reader)
    first = next(rows_of, None)
    if first is None:
        raise ValueError(f"{path} is empty: it holds no rows.")
    first_line = reader.line_num
    if header is None:
        header = not any(_is_number(v) for v in first)
    names = [v.strip() for v in first] if header else None
    width = len(first)
    picked = _column_indices(columns, names, path) if columns else list(range(width))
    writer = NpyWriter(out, np.float64, len(picked))
    try:
        rows, lines = ([], []) if header else ([first], [first_line])
        while True:
            for row in rows_of:
                if len(row) != width:
                    raise ValueError(f"{path}: line {reader.line_num} has {len(row)} fields, line {first_line} "
                                     f"has {width} (ragged rows).")
                rows.append(row)
                lines.append(reader.line_num)
                if len(rows) == block_rows:
                    break
            if not rows:
                break
            selected = rows if len(picked) == width else [[row[i] for i in picked] for row in rows]
            try:
                block = np.array(selected, dtype=np.float64)
            except ValueError:
                raise _bad_field(path, rows, lines, picked, names) from None
            writer.write(block)
            rows, lines = [], []
    finally:
        writer.close()
    if writer.n_rows == 0:
        raise ValueError(f"{path} holds a header (line {first_line}) but no data rows.")
    return out


def parquet_to_npy(pa, pq, path, out, *, columns=None, block_rows=BLOCK_ROWS):
    """Copy the numeric columns of a Parquet file into a ``.npy`` file, a batch of rows at a time.

    Parameters
    ----------
    pa, pq : module
        ``pyarrow`` and ``pyarrow.parquet``.
    path : str
        The Parquet file.
    out : str
        The ``.npy`` file to write.
    columns : sequence of str, optional
        Names or 0-based indices of the columns to read; default all.
    block_rows : int
        Rows per batch.

    Returns
    -------
    str
        ``out``.
    """
    try:
        f = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"Cannot read {path!r} as a Parquet file: {exc}") from None
    try:
        return _parquet_batches(pa, f, path, out, columns, block_rows)
    finally:
        getattr(f, "close", lambda: None)()  # pyarrow >= 13 (earlier: the file object's finaliser)


def _parquet_batches(pa, f, path, out, columns, block_rows):
    schema = f.schema_arrow
    names = list(schema.names)
    picked = _column_indices(columns, names, path) if columns else list(range(len(names)))
    if not picked:
        raise ValueError(f"{path} holds no columns.")
    types = [schema.field(i).type for i in picked]
    for i, t in zip(picked, types):
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
            raise ValueError(f"{path}: column {names[i]!r} holds {t}, not numbers.")
    dtype = np.float32 if all(pa.types.is_float32(t) for t in types) else np.float64
    if f.metadata.num_rows == 0:
        raise ValueError(f"{path} is empty: it holds no rows.")
    writer = NpyWriter(out, dtype, len(picked))
    try:
        for batch in f.iter_batches(batch_size=block_rows, columns=[names[i] for i in picked]):
            block = np.empty((batch.num_rows, len(picked)), dtype=dtype)
            for j, i in enumerate(picked):
                column = batch.column(j)
                if column.null_count:
                    row = writer.n_rows + int(np.argmax(column.is_null().to_numpy(zero_copy_only=False)))
                    raise ValueError(f"{path}: row {row + 1}, column {names[i]!r} is null (a missing value).")
                block[:, j] = column.to_numpy(zero_copy_only=False)
            writer.write(block)
    finally:
        writer.close()
    return out
