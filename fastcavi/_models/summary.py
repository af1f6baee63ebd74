"""The data summary: weighted count, mean and scatter, additive across parts of the data."""
import numpy as np

from .base import (FORMAT_VERSION, SUMMARY_TAG, ExactSums, accumulator_from_floats, accumulator_to_floats,
                   empty_accumulator, merge_accumulators)


def summary_size(D, full_scatter):
    """Statistics of a summary: ``[sum w, sum w y (D), sum w y_a y_b (a <= b) or sum w y_d**2]``."""
    return 1 + D + (D * (D + 1) // 2 if full_scatter else D)


class DataSummary(ExactSums):
    """What one validating pass over the data tells before any CAVI work.

    The moments are of ``y = x - shift`` (``shift`` a row of the data, so that sums of
    squares keep their precision far from the origin), held in exact accumulators:
    summaries of disjoint parts taken about the same ``shift`` add up (``a + b``,
    ``sum(parts)``) to bitwise the summary of the whole, in any order. Summaries about
    different shifts are combined with the parallel formula of Chan, Golub and LeVeque
    (1979) after moving the second one to the first one's shift: exact in real
    arithmetic, to round-off in floating point.

    Made by :func:`fastcavi.engine.summarize`.

    Parameters
    ----------
    shift : ndarray of shape (D,)
    full_scatter : bool
        Whether the full scatter matrix was accumulated (else only its diagonal).
    n_rows : int
        Rows seen (weighted or not).
    accumulator : ndarray of shape (size, 1 + WINDOW), int64, optional
        The exact accumulators (internal; default: no rows).

    Attributes
    ----------
    count : float
        ``sum_n w_n`` (``n_rows`` without weights).
    mean : ndarray of shape (D,)
        The weighted mean.
    scatter : ndarray of shape (D, D) or (D,)
        ``sum_n w_n (x_n - mean)(x_n - mean)^T``, or its diagonal.
    """

    __slots__ = ("shift", "full_scatter", "n_rows")

    def __init__(self, shift, full_scatter, n_rows=0, accumulator=None):
        self.shift = np.array(shift, dtype=np.float64)
        self.shift.flags.writeable = False
        self.full_scatter = bool(full_scatter)
        self.n_rows = int(n_rows)
        size = summary_size(self.n_features, self.full_scatter)
        self._acc = empty_accumulator(size) if accumulator is None else accumulator
        self._values = None

    @property
    def n_features(self):
        return self.shift.shape[0]

    def _moments(self):
        D, v = self.n_features, self.values
        S1 = v[1:1 + D]
        if self.full_scatter:
            a, b = np.triu_indices(D)
            M2 = np.zeros((D, D))
            M2[a, b] = v[1 + D:]
            M2[b, a] = v[1 + D:]
        else:
            M2 = v[1 + D:].copy()
        return S1, M2

    @property
    def mean(self):
        S1, _ = self._moments()
        return self.shift + S1 / self.count

    @property
    def scatter(self):
        S1, M2 = self._moments()
        delta = S1 / self.count
        return M2 - self.count * (np.outer(delta, delta) if self.full_scatter else delta * delta)

    def __add__(self, other):
        if isinstance(other, (int, float)) and other == 0:
            return self
        if not isinstance(other, DataSummary):
            return NotImplemented
        if other.n_features != self.n_features:
            raise ValueError(f"Cannot add DataSummary objects of {self.n_features} and {other.n_features} features.")
        full = self.full_scatter and other.full_scatter
        a, b = self._restricted(full), other._restricted(full)
        if not np.array_equal(a.shift, b.shift):
            b = b._moved_to(a.shift)
        return DataSummary(a.shift, full, a.n_rows + b.n_rows, merge_accumulators(a._acc, b._acc))

    __radd__ = __add__

    def _restricted(self, full):
        if full == self.full_scatter:
            return self
        D = self.n_features
        a, b = np.triu_indices(D)
        diag = np.flatnonzero(a == b)
        keep = np.r_[np.arange(1 + D), 1 + D + diag]
        return DataSummary(self.shift, False, self.n_rows, self._acc[keep].copy())

    def _moved_to(self, shift):
        """The same moments about another shift (Chan et al.'s update; rounded, then re-accumulated)."""
        from .._kernels.exactsum import insert_values

        D, n = self.n_features, self.count
        S1, M2 = self._moments()
        d = self.shift - shift  # y' = y + d
        S1n = S1 + n * d
        if self.full_scatter:
            M2n = M2 + np.outer(S1, d) + np.outer(d, S1) + n * np.outer(d, d)
            a, b = np.triu_indices(D)
            second = M2n[a, b]
        else:
            second = M2 + 2.0 * S1 * d + n * d * d
        acc = empty_accumulator(self._acc.shape[0])
        insert_values(np.ascontiguousarray(np.r_[n, S1n, second], dtype=np.float64), acc)
        return DataSummary(shift, self.full_scatter, self.n_rows, acc)

    def to_array(self):
        """One flat float64 array holding the summary exactly (see :meth:`from_array`).

        Returns
        -------
        ndarray of float64
        """
        head = np.array([SUMMARY_TAG, FORMAT_VERSION, float(self.full_scatter), self.n_rows, self.n_features])
        return np.concatenate((head, self.shift, accumulator_to_floats(self._acc)))

    @classmethod
    def from_array(cls, array):
        """A summary from :meth:`to_array`'s output (bitwise the same).

        Parameters
        ----------
        array : array-like of float64

        Returns
        -------
        DataSummary
        """
        a = np.asarray(array, dtype=np.float64)
        if a.ndim != 1 or a.size < 5 or a[0] != SUMMARY_TAG:
            raise ValueError("Not a serialised fastcavi DataSummary array.")
        if a[1] != FORMAT_VERSION:
            raise ValueError(f"DataSummary format version {a[1]:g} is not supported.")
        full, n_rows, D = bool(a[2]), int(a[3]), int(a[4])
        size = summary_size(D, full)
        from .._kernels.exactsum import WINDOW

        if D < 1 or a.size != 5 + D + size * (1 + 2 * WINDOW):
            raise ValueError("Corrupted DataSummary array (its length does not match its header).")
        return cls(a[5:5 + D], full, n_rows, accumulator_from_floats(a[5 + D:], size))

    def __repr__(self):
        return f"DataSummary(n_features={self.n_features}, n_rows={self.n_rows}, count={self.count!r})"
