"""What every mixture family shares: the statistics layout and the ELBO from statistics.

A family (identity/known covariance, spherical, diag, full, tied) says which
quadratic features its logits need (``layout = "diag"``: the squares ``y_d**2``;
``"full"``: all products ``y_a y_b``; ``"linear"``: none, for tied, whose quadratic
term is common to all components) and gives, for a variational state,

* ``coefficients(state)``: the kernel's logit coefficients ``(bias, W)``, which are
  ``E[log pi_k] + E[log N(x | mu_k, Lambda_k)]`` minus, at most, a part that is the
  same for every component (it changes no responsibility);
* ``dropped_sum(state, stats)``: the sum over all rows of that common part;
* ``update(stats)``: the CAVI updates of q(pi) and the component parameters;
* ``kl(state)``: ``KL(q(pi) || p(pi)) + sum_k KL(q(mu_k, Lambda_k) || p(mu_k, Lambda_k))``.

(:class:`Family`, a Protocol, declares this interface.) With those, the full ELBO after
a sweep needs no second pass over the data: the expected log joint is linear in the
sufficient statistics, and the entropy of q(z), ``-sum_nk r_nk log r_nk``, is accumulated
by the same pass.
"""
from dataclasses import dataclass, fields
from collections.abc import Mapping
from typing import Dict, Optional, Protocol, Tuple, Union

import numpy as np


@dataclass(frozen=True, eq=False)
class State:
    """The variational parameters of q(pi) q(mu, Lambda), in model coordinates.

    Parameters
    ----------
    weight_concentration : ndarray of shape (K,), or a pair of them
        Dirichlet concentrations ``alpha_tilde``, or the stick-breaking Beta parameters ``(a, b)``.
    means : ndarray of shape (K, D)
        ``E[mu_k]`` in model coordinates (shifted, and whitened for a known covariance).
    mean_precision : ndarray of shape (K,)
        ``nu_tilde_k`` (known covariance) or ``beta_k`` (Normal-Wishart).
    degrees_of_freedom : ndarray of shape (K,) or None
        Wishart ``nu_k`` (tied: K equal values); None for a known covariance.
    covariances : ndarray or None
        ``C_k`` in scikit-learn's shape for the type (``E[Lambda_k] = C_k^-1``); None for a known covariance.
    precisions_cholesky : ndarray or None
        Cholesky factors of ``C_k^-1``, scikit-learn's shape; None for a known covariance.
    """

    weight_concentration: Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]
    means: np.ndarray
    mean_precision: np.ndarray
    degrees_of_freedom: Optional[np.ndarray] = None
    covariances: Optional[np.ndarray] = None
    precisions_cholesky: Optional[np.ndarray] = None

    def frozen(self) -> "State":
        """The same state with every array read-only for good (see :func:`frozen_array`).

        Returns
        -------
        State
        """
        return State(**{f.name: frozen_array(getattr(self, f.name)) for f in fields(State)})

    def to_dict(self) -> Dict[str, np.ndarray]:
        """The arrays under stable names, for :meth:`from_dict` (an ``.npz`` file, another process).

        Returns
        -------
        dict of str to ndarray
            A stick-breaking pair as ``<name>_a``, ``<name>_b``; None fields left out.
        """
        out = {}
        for f in fields(State):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                out[f.name + "_a"], out[f.name + "_b"] = value
            elif value is not None:
                out[f.name] = value
        return out

    def __reduce__(self):  # pickles as its arrays; unpickled frozen again
        return State.from_dict, (self.to_dict(),)

    @classmethod
    def from_dict(cls, arrays: Mapping[str, np.ndarray]) -> "State":
        """A (frozen) state from :meth:`to_dict`'s output.

        Parameters
        ----------
        arrays : mapping of str to array-like

        Returns
        -------
        State
        """
        kw = {}
        for name, value in arrays.items():
            if np.asarray(value).dtype.kind not in "fiub":  # complex, strings, objects: not a state
                raise ValueError(f"{name} is not an array of real numbers (dtype {np.asarray(value).dtype})")
        for f in fields(State):
            if f.name in arrays:
                kw[f.name] = np.asarray(arrays[f.name], dtype=np.float64)
            elif f.name + "_a" in arrays:
                kw[f.name] = (np.asarray(arrays[f.name + "_a"], dtype=np.float64),
                              np.asarray(arrays[f.name + "_b"], dtype=np.float64))
        try:
            return cls(**kw).frozen()
        except TypeError as exc:
            raise ValueError(f"Incomplete variational state: {exc}") from None


class FrozenDict(Mapping):
    """A read-only mapping (unlike ``types.MappingProxyType``, it pickles)."""

    __slots__ = ("_data",)

    def __init__(self, *args, **kwargs):
        object.__setattr__(self, "_data", dict(*args, **kwargs))

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)

    def __setattr__(self, name, value):
        raise AttributeError("FrozenDict is read-only")

    def __reduce__(self):
        return FrozenDict, (self._data,)

    def __repr__(self):
        return f"FrozenDict({self._data!r})"


def frozen_array(a):
    """A read-only float64 copy whose read-only flag cannot be reset (its memory is an immutable bytes object).

    Tuples are frozen element-wise; None stays None.
    """
    if a is None:
        return None
    if isinstance(a, tuple):
        return tuple(frozen_array(x) for x in a)
    arr = np.asarray(a, dtype=np.float64)
    return np.frombuffer(arr.tobytes(), dtype=np.float64).reshape(arr.shape)


class Family(Protocol):
    """What the engine needs from a mixture family (known covariance, Normal-Wishart)."""

    layout: str

    def coefficients(self, state: State) -> Tuple[np.ndarray, np.ndarray]:
        """Logit coefficients ``(bias (K,), W (K, F))`` for the E-step kernel."""

    def common_log_density(self, state: State, rows: np.ndarray, shift: np.ndarray):
        """The per-row log-density term the logits leave out (the same for every component)."""

    def dropped_sum(self, state: State, stats: "Stats") -> float:
        """The part of the expected log-likelihood common to all components, summed over the rows."""

    def update(self, stats: "Stats") -> State:
        """The CAVI updates of q(pi) and of the component factors."""

    def kl(self, state: State) -> float:
        """``KL(q(pi) || p(pi)) + sum_k KL(q(theta_k) || p(theta_k))``."""


def feature_count(D, layout):
    """Length of the feature vector phi(y) of the E-step kernel.

    ``D`` linear features, then ``D`` squares (``layout="diag"``), the ``D (D + 1) / 2``
    products ``y_a y_b, a <= b`` of the upper triangle in row-major order (``"full"``), or
    nothing (``"linear"``).
    """
    return D + {"full": D * (D + 1) // 2, "diag": D, "linear": 0}[layout]


def layout_of(covariance_type):
    """The statistics layout of a covariance type: ``"full"`` for full, ``"linear"`` for tied, else ``"diag"``.

    Tied's quadratic term ``-y^T E[Lambda] y / 2`` is the same for every component: its
    logits weigh no quadratic feature, and its updates read only ``N_k`` and ``sum r y``
    (the pooled scatter comes from the data summary's total scatter).
    """
    return {"full": "full", "tied": "linear"}.get(covariance_type, "diag")


def quadratic_weights(Lam):
    """Weights of the quadratic features for the logit term ``-y^T Lam_k y / 2``.

    Parameters
    ----------
    Lam : ndarray of shape (K, D, D)
        Symmetric matrices.

    Returns
    -------
    ndarray of shape (K, D (D + 1) / 2)
        ``-Lam_aa / 2`` for the squares and ``-Lam_ab`` for the products ``a < b``.
    """
    D = Lam.shape[1]
    a, b = np.triu_indices(D)
    return np.where(a == b, -0.5, -1.0) * Lam[:, a, b]


_LAYOUT_CODES = {"diag": 0, "full": 1, "linear": 2}
#: First two entries of a serialised Stats or DataSummary: a tag and the format version.
STATS_TAG, SUMMARY_TAG, FORMAT_VERSION = 7.1e7, 7.2e7, 1.0


def _exactsum():
    from .._kernels import exactsum  # numba loads on first use, not at import

    return exactsum


def empty_accumulator(size):
    """An exact accumulator of ``size`` statistics holding 0 (see :mod:`fastcavi._kernels.exactsum`)."""
    from .._kernels.exactsum import EMPTY, WINDOW  # noqa: F401  (constants only; cheap once numba is loaded)

    acc = np.zeros((size, 1 + WINDOW), dtype=np.int64)
    acc[:, 0] = EMPTY
    return acc


def accumulator_to_floats(acc):
    """Serialise an int64 accumulator as exact float64 values (each limb as two 32-bit halves)."""
    top = acc[:, :1].astype(np.float64)
    limbs = acc[:, 1:]
    hi = (limbs >> 32).astype(np.float64)
    lo = (limbs & 0xFFFFFFFF).astype(np.float64)
    return np.hstack((top, hi, lo)).ravel()


def accumulator_from_floats(flat, size):
    """Inverse of :func:`accumulator_to_floats`."""
    from .._kernels.exactsum import WINDOW

    a = np.asarray(flat, dtype=np.float64).reshape(size, 1 + 2 * WINDOW)
    acc = np.empty((size, 1 + WINDOW), dtype=np.int64)
    acc[:, 0] = a[:, 0].astype(np.int64)
    acc[:, 1:] = (a[:, 1:1 + WINDOW].astype(np.int64) << 32) + a[:, 1 + WINDOW:].astype(np.int64)
    return acc


def merge_accumulators(a, b):
    out = np.empty_like(a)
    _exactsum().merge(a, b, out)
    return out


def round_accumulator(acc):
    out = np.empty(acc.shape[0])
    _exactsum().finalize(acc, out)
    out.flags.writeable = False
    return out


class ExactSums:
    """Sums held in exact accumulators (``_acc``), read rounded to float64 (``values``, cached)."""

    __slots__ = ("_acc", "_values")

    @property
    def values(self):
        """Every sum rounded to float64, flat, read-only."""
        if self._values is None:
            self._values = round_accumulator(self._acc)
        return self._values

    @property
    def count(self):
        """``sum_n w_n``: the (weighted) number of rows."""
        return float(self.values[0])


class Stats(ExactSums):
    """Additive sufficient statistics of q(z) over some rows, in model coordinates.

    Statistics of disjoint sets of rows add up (``a + b``, ``sum(parts)``). The sum is
    exact and does not depend on the order or grouping of the additions (an exact
    fixed-point accumulator per statistic, see :mod:`fastcavi._kernels.exactsum`), so
    any split of the rows into parts of whole segments (``fastcavi.engine.GRANULARITY``
    rows) gives the same bits as one pass. The values below are the accumulators
    rounded to float64.

    Parameters
    ----------
    layout : {"diag", "full", "linear"}
        Which quadratic features were accumulated: ``y_d**2``, ``y_a y_b, a <= b``, or none.
    n_components, n_features : int
        K and D.
    accumulator : ndarray of shape (size, 1 + WINDOW), int64, optional
        The exact accumulators (internal; default: the statistics of no rows).

    Attributes
    ----------
    count : float
        ``sum_n w_n``: the (weighted) number of rows.
    lse_sum : float
        ``sum_n w_n logsumexp_k logit_nk`` (0 for statistics of given responsibilities).
    entropy : float
        ``-sum_nk w_n r_nk log r_nk``: the entropy of q(z).
    Nk : ndarray of shape (K,)
        ``sum_n w_n r_nk``.
    S : ndarray of shape (K, F)
        ``sum_n w_n r_nk phi(y_n)``, ``phi(y) = [y, y**2]`` ("diag"), ``[y, y_a y_b (a <= b)]`` ("full")
        or ``y`` ("linear").
    S1 : ndarray of shape (K, D)
        ``sum_n w_n r_nk y_n``.
    S2 : ndarray of shape (K, D) or (K, D, D)
        ``sum_n w_n r_nk y_n**2`` ("diag") or ``sum_n w_n r_nk y_n y_n^T`` ("full", symmetric); the
        "linear" layout holds no second moments (reading ``S2`` raises ValueError).
    """

    __slots__ = ("layout", "n_components", "n_features")

    def __init__(self, layout, n_components, n_features, accumulator=None):
        if layout not in _LAYOUT_CODES:
            raise ValueError(f"Stats layout must be 'diag', 'full' or 'linear', got {layout!r}.")
        self.layout = layout
        self.n_components = int(n_components)
        self.n_features = int(n_features)
        size = stats_size(layout, self.n_components, self.n_features)
        if accumulator is None:
            accumulator = empty_accumulator(size)
        elif accumulator.shape[0] != size:
            raise ValueError(f"Stats: accumulator of {accumulator.shape[0]} statistics for a layout of {size}.")
        self._acc = accumulator
        self._values = None

    @classmethod
    def zeros(cls, layout, n_components, n_features):
        """Statistics of no rows (the neutral element of ``+``).

        Parameters
        ----------
        layout : {"diag", "full", "linear"}
        n_components, n_features : int

        Returns
        -------
        Stats
        """
        return cls(layout, n_components, n_features)

    @classmethod
    def from_values(cls, layout: str, n_components: int, n_features: int, values) -> "Stats":
        """Statistics holding given float64 values exactly (the inverse of :attr:`values`).

        For drivers that combine statistics other than by adding those of disjoint rows
        (stochastic VI's moving average of rescaled statistics): the result is an ordinary
        :class:`Stats`, additive and exact as any other, whose :attr:`values` are bitwise
        ``values``.

        Parameters
        ----------
        layout : {"diag", "full", "linear"}
        n_components, n_features : int
            K and D.
        values : array-like of shape (stats_size(layout, K, D),)
            ``[count, lse_sum, entropy, Nk (K), S (K F)]``, as :attr:`values` lays them out.

        Returns
        -------
        Stats

        Raises
        ------
        ValueError
            When ``values`` has the wrong length.
        """
        from .._kernels.exactsum import insert_values

        stats = cls(layout, n_components, n_features)
        v = np.ascontiguousarray(values, dtype=np.float64)
        if v.shape != (stats.size,):
            raise ValueError(f"Stats.from_values: expected {stats.size} values for layout {layout!r}, "
                             f"K={n_components}, D={n_features}, got an array of shape {v.shape}.")
        insert_values(v, stats._acc)  # a float64 fits in the window exactly: it rounds back to itself
        return stats

    def scaled(self, factor: float) -> "Stats":
        """These statistics times ``factor`` (each value multiplied, then rounded once to float64).

        Stochastic VI rescales a batch's statistics to the size of the stream, ``(N / |B|) S_B``.
        The product is of the rounded :attr:`values`, so it is exact only to float64 rounding.

        Parameters
        ----------
        factor : float
            Finite.

        Returns
        -------
        Stats
        """
        factor = float(factor)
        if not np.isfinite(factor):
            raise ValueError(f"Stats.scaled: the factor must be finite, got {factor!r}.")
        return Stats.from_values(self.layout, self.n_components, self.n_features, self.values * factor)

    @property
    def size(self):
        return self._acc.shape[0]

    @property
    def lse_sum(self):
        return float(self.values[1])

    @property
    def entropy(self):
        return float(self.values[2])

    @property
    def Nk(self):
        return self.values[3:3 + self.n_components]

    @property
    def S(self):
        return self.values[3 + self.n_components:].reshape(self.n_components, -1)

    @property
    def S1(self):
        return self.S[:, :self.n_features]

    @property
    def S2(self):
        D, S = self.n_features, self.S
        if self.layout == "diag":
            return S[:, D:]
        if self.layout == "linear":
            raise ValueError("Stats of the 'linear' layout (tied) hold no per-component second moments.")
        a, b = np.triu_indices(D)
        S2 = np.zeros((self.n_components, D, D))
        S2[:, a, b] = S[:, D:]
        S2[:, b, a] = S[:, D:]
        return S2

    def is_finite(self):
        """Whether every statistic is finite.

        Returns
        -------
        bool
        """
        return bool(np.all(np.isfinite(self.values)))

    def _check_same_layout(self, other):
        if not isinstance(other, Stats):
            return NotImplemented
        if (self.layout, self.n_components, self.n_features) != (other.layout, other.n_components,
                                                                  other.n_features):
            raise ValueError(f"Cannot add Stats of different layouts: ({self.layout!r}, K={self.n_components}, "
                             f"D={self.n_features}) and ({other.layout!r}, K={other.n_components}, "
                             f"D={other.n_features}).")
        return None

    def __add__(self, other):
        if isinstance(other, (int, float)) and other == 0:
            return self
        bad = self._check_same_layout(other)
        if bad is NotImplemented:
            return bad
        return Stats(self.layout, self.n_components, self.n_features, merge_accumulators(self._acc, other._acc))

    __radd__ = __add__  # sum() starts from 0

    def to_array(self):
        """One flat float64 array holding the statistics exactly (see :meth:`from_array`).

        Returns
        -------
        ndarray of shape (5 + size * (1 + 2 WINDOW),), float64
            A tag, the format version and the layout, then each limb of the accumulators as two
            exact 32-bit halves.
        """
        head = np.array([STATS_TAG, FORMAT_VERSION, _LAYOUT_CODES[self.layout], self.n_components,
                         self.n_features])
        return np.concatenate((head, accumulator_to_floats(self._acc)))

    @classmethod
    def from_array(cls, array):
        """Statistics from :meth:`to_array`'s output (bitwise the same).

        Parameters
        ----------
        array : array-like of float64

        Returns
        -------
        Stats

        Raises
        ------
        ValueError
            When the array is not a serialised Stats, of an unknown version, or of the wrong length.
        """
        a = np.asarray(array, dtype=np.float64)
        if a.ndim != 1 or a.size < 5 or a[0] != STATS_TAG:
            raise ValueError("Not a serialised fastcavi Stats array.")
        if a[1] != FORMAT_VERSION:
            raise ValueError(f"Stats format version {a[1]:g} is not supported (this fastcavi reads "
                             f"version {FORMAT_VERSION:g}).")
        layout = {v: k for k, v in _LAYOUT_CODES.items()}.get(a[2])
        K, D = int(a[3]), int(a[4])
        if layout is None or K < 1 or D < 1:
            raise ValueError("Corrupted Stats array (bad layout header).")
        size = stats_size(layout, K, D)
        from .._kernels.exactsum import WINDOW

        if a.size != 5 + size * (1 + 2 * WINDOW):
            raise ValueError(f"Corrupted Stats array: {a.size} values for a layout of {size} statistics.")
        return cls(layout, K, D, accumulator_from_floats(a[5:], size))

    def __eq__(self, other):
        if not isinstance(other, Stats):
            return NotImplemented
        return (self.layout, self.n_components, self.n_features) == (
            other.layout, other.n_components, other.n_features) and bool(
            np.array_equal(self.values, other.values, equal_nan=True))

    __hash__ = None

    def __repr__(self):
        return (f"Stats(layout={self.layout!r}, n_components={self.n_components}, n_features={self.n_features}, "
                f"count={self.count!r})")


def stats_size(layout, K, D):
    """Length of the flat statistics vector: ``[count, lse_sum, entropy, Nk (K), S (K, F)]``."""
    return 3 + K + K * feature_count(D, layout)


def kernel_dot(coeffs, stats):
    """``sum_nk r_nk logit_nk`` for the kernel logits ``bias + W phi`` given by ``coeffs``.

    Parameters
    ----------
    coeffs : tuple ``(bias (K,), W (K, F))``
    stats : Stats

    Returns
    -------
    float
    """
    bias, W = coeffs
    return float(np.sum(bias * stats.Nk) + np.sum(W * stats.S))


def elbo_from_stats(family, stats, new_state):
    """The full ELBO of ``q(z)`` (whose statistics are ``stats``) and the updated ``new_state``.

    Parameters
    ----------
    family : a family object (see the module docstring)
    stats : Stats
        Statistics of the pass whose responsibilities define q(z), entropy included.
    new_state : State
        The state after updating q(pi) and the component factors from ``stats``.

    Returns
    -------
    elbo : float
        ``E_q[log p(X, Z, pi, theta)] - E_q[log q(Z, pi, theta)]``.
    magnitude : float
        The sum of the absolute values of the parts it was added up from: what its
        round-off is relative to (the ELBO itself can be near 0 while its parts are large).
    """
    expected_log_lik = kernel_dot(family.coefficients(new_state), stats)
    dropped = family.dropped_sum(new_state, stats)
    kl = family.kl(new_state)
    elbo = expected_log_lik + dropped + stats.entropy - kl
    magnitude = abs(expected_log_lik) + abs(dropped) + abs(stats.entropy) + abs(kl)
    return elbo, magnitude
