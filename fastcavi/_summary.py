"""The validating first pass: finiteness (with the first offending row), count, mean, scatter."""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DataSummary:
    """What one pass over the data tells before any CAVI work.

    Attributes
    ----------
    n_samples : int
    mean : ndarray of shape (D,)
    scatter : ndarray of shape (D, D) or (D,)
        ``sum_n (x_n - mean)(x_n - mean)^T`` (or its diagonal when only that was asked for).
    """

    n_samples: int
    mean: np.ndarray
    scatter: np.ndarray


def raise_if_non_finite(chunk, row0, bad):
    """Raise scikit-learn's NaN/inf error for row ``bad`` of ``chunk`` (the summary kernel's answer), if any."""
    if bad < 0:
        return
    row = np.asarray(chunk[bad], dtype=np.float64)
    col = int(np.flatnonzero(~np.isfinite(row))[0])
    what = "NaN" if np.isnan(row[col]) else "infinity or a value too large for dtype('float64')"
    raise ValueError(f"Input X contains {what} (first at row {row0 + bad}, column {col}).")


def check_finite_chunk(chunk, row0):
    """The NaN/inf check alone, for one chunk (used while predicting, chunk by chunk)."""
    from ._kernels.summary import first_non_finite

    raise_if_non_finite(chunk, row0, first_non_finite(chunk))


def summarize_source(source, chunk_rows, full_scatter):
    """Check every value is finite and take the data's moments, in one streaming pass.

    The moments are accumulated about the first row (so data far from the origin
    keeps its precision) in fixed block order, then moved to the mean.

    Raises
    ------
    ValueError
        ``"Input X contains NaN."`` or ``"Input X contains infinity ..."``, naming the
        first offending row and column.
    """
    from ._kernels.summary import summarize

    D = source.n_features
    first = source.rows([0])[0]
    shift = first if np.all(np.isfinite(first)) else np.zeros(D)
    totals = np.zeros(D + (D * D if full_scatter else D))
    for row0, chunk in source.chunks(chunk_rows):
        raise_if_non_finite(chunk, row0, summarize(chunk, shift, full_scatter, totals))
    N = source.n_samples
    delta = totals[:D] / N
    mean = shift + delta
    if full_scatter:
        s2 = totals[D:].reshape(D, D)
        scatter = np.triu(s2) + np.triu(s2, 1).T - N * np.outer(delta, delta)
    else:
        scatter = totals[D:] - N * delta * delta
    return DataSummary(N, mean, scatter)
