"""Model coordinates: what the families work in, and the maps to and from the data's.

Every family works on ``y = x - shift`` (``shift`` the data mean: sums of squares stay
exact far from the origin); the known-covariance model also whitens, ``y = L^-1 (x - shift)``.
"""
import numpy as np

from . import fixed


class Coordinates:
    """Maps raw rows to the coordinates the model works in.

    Parameters
    ----------
    shift : ndarray of shape (D,)
        Subtracted from every row (the data mean: keeps sums of squares accurate
        for data far from the origin).
    whiten : ndarray of shape (D, D) or None
        Lower Cholesky factor ``L`` of a known covariance; rows become
        ``L^{-1} (x - shift)``, per chunk (O(chunk x D) memory), by a kernel that adds each
        row's terms in a fixed order (:mod:`fastcavi._kernels.transform`), not by LAPACK.
    """

    def __init__(self, shift, whiten=None):
        self.shift = np.array(shift, dtype=np.float64, order="C")
        self.whiten = None if whiten is None else np.array(whiten, dtype=np.float64, order="C")
        self._unwhiten = None if whiten is None else fixed.lower_inverse(self.whiten)
        self._zero = np.zeros_like(self.shift)

    def __call__(self, chunk):
        """Return ``(rows, kernel_shift)``: what to hand a kernel for this chunk."""
        if self.whiten is None:
            return chunk, self.shift
        from .._kernels.transform import transform

        chunk = np.ascontiguousarray(chunk)
        y = transform(chunk, self.shift, self._unwhiten, np.empty(chunk.shape, dtype=np.float64))
        y.flags.writeable = False
        return y, self._zero

    def to_model(self, points):
        """Map points (K, D) in data coordinates to model coordinates."""
        y = np.asarray(points, dtype=np.float64) - self.shift
        if self.whiten is not None:
            y = fixed.matmul(y, self._unwhiten.T)
        return y

    def to_data(self, points):
        """Map points (K, D) in model coordinates back to data coordinates."""
        y = np.asarray(points, dtype=np.float64)
        if self.whiten is not None:
            y = fixed.matmul(y, self.whiten.T)
        return y + self.shift
