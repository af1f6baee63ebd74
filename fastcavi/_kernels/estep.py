"""The single-pass E-step kernel: responsibilities and sufficient statistics.

Every family's variational logit is linear in a vector of features of the row
``y = x - shift``:

    logit_k(y) = bias_k + W_k . phi(y),
    phi(y) = [y_1 .. y_D, q_1 .. q_Q],

where the quadratic features ``q`` are ``y_d**2`` (identity, spherical, diag;
``Q = D``), the products ``y_a y_b, a <= b``, of the upper triangle in row-major
order (full covariances; ``Q = D (D + 1) / 2``), or none (tied, whose quadratic term is
the same for every component; ``Q = 0``). So one kernel serves every family:
per row it computes the features, the K logits, their log-sum-exp and the
responsibilities, and adds ``r_k`` and ``r_k phi(y)`` to the statistics, which are all
the updates and the ELBO need. Two run-time modes replace the soft responsibilities:
given ones (an M-step from responsibilities) and the hard assignment to each row's largest
logit (the nearest-mean start, ``hard``).

The two products (logits ``W phi`` and statistics ``r phi^T``) run over tiles of 4 components
x 4 features, the rows innermost so they vectorise, the exponential included
(:func:`~fastcavi._kernels._fastexp.exp_normal_range`). The statistics' sums over the rows run
in four explicit lanes (:mod:`~fastcavi._kernels._lanes`), so that their bits do not depend on
the CPU's vector width.

Per sub-block of rows the kernel makes these passes over its scratch slot: the features (for
narrow rows, D < 4, with squares as the quadratic terms: ``y`` and ``y**2`` in one pass over
each column); the logits, with the bias added in the first feature tile and the row maximum
taken per tile of 4 components; the exponentials ``e_k = exp(logit_k - max)`` and their row sum
``z``; the log-sum-exp and the row factor ``s = w / z``; then the statistics. ``r_k = e_k s``,
so ``sum r_k phi = sum e_k (s phi)`` and ``sum r_k = sum e_k s``: where there are fewer
features than components (small D), ``s`` is folded into the features (F multiplies a row
instead of K) and the responsibilities are never formed (only written out when asked for);
otherwise into the exponentials (and ``s`` set to 1). ``sum r_k`` is then ``sum e_k s`` in a
read-only pass per tile of 4 components.

Determinism: the chunk is cut into blocks of ``BLOCK_ROWS`` rows (computed in
sub-blocks of ``SUB_ROWS`` rows, in order). Contiguous runs of blocks run on separate threads
(:func:`~fastcavi._kernels._threads.run_slots`) and each block writes its own float64 partial
sums, added in row order: a block's partials depend on its rows alone. The kernel stops there. Adding the blocks up is the job of
:func:`fastcavi._kernels.exactsum.fold_segments`, compiled without fast-math and called
from Python.

Memory: the caller passes ``partials`` (one row per block of the largest chunk) and
``scratch`` (a few slots, normally one per thread), both reused across chunks and
sweeps. Slot ``g`` serves a fixed set of blocks and is rewritten for every sub-block, so
neither the number of slots nor which thread runs which block can change a result.

The kernel validates nothing: shapes, dtypes and finiteness are the caller's job.
"""
import numpy as np
from numba import njit

from .._config import CACHE, FASTMATH
from ._fastexp import exp_normal_range, log_ge1
from ._lanes import tile4x1, tile4x2, tile4x4, wide_vector_registers
from ._sums import lane_dot, lane_sum
from ._threads import run_slots

#: The kernel's options (it releases the GIL: :func:`~fastcavi._kernels._threads.run_slots` runs one call
#: per thread), and its phases': the same, cached, with no Python entry point (only the kernel calls them;
#: building one for each took as long as compiling the phase itself).
_KERNEL = dict(fastmath=FASTMATH, nogil=True, cache=CACHE, error_model="numpy")
_HELPER = dict(_KERNEL, no_cpython_wrapper=True, no_cfunc_wrapper=True)

#: Rows computed together inside a block: the features of SUB_ROWS rows stay in cache.
SUB_ROWS = 128

#: Features per tile of the statistics: 4 x 4 sums per loop where the CPU has 32 vector registers, 4 x 2 where
#: it has 16 (a 4 x 4 tile spilled there: full D = 16 sweeps 15% slower in AVX2 code). The same bits either way
#: (:mod:`~fastcavi._kernels._lanes`).
_TILE_COLUMNS = 4 if wide_vector_registers() else 2


def scratch_rows(K, F):
    """Rows of SUB_ROWS float64 one thread's scratch slot needs for K components and F features."""
    return (K + 3) // 4 * 4 + (F + 3) // 4 * 4 + 2


# Compile cost: each phase below is a function compiled on its own (and cached on its own), called once
# per sub-block, not numba IR inlined into the parallel loop. Inlined, every phase went through numba's
# front end and LLVM once per mode and again inside the parfor's generated gufunc: the kernel took 25 s
# of CPU to compile per float width. Separately, the phases take 0.2-1 s each and, apart from the
# feature loader, which reads the data, are compiled once for both float widths.
@njit(**_HELPER)
def _features(X, row0, m, shift, full_quad, F, phi):
    """phi[:, :m] = features of rows row0 .. row0+m of X (minus shift), transposed (quadratic ones when F > D)."""
    D = X.shape[1]
    if D < 4 and not full_quad:
        # Narrow rows: a column at a time (y and y**2 in one pass), vectorised over the rows.
        if F > D:
            for d in range(D):
                sd = shift[d]
                for i in range(m):
                    y = np.float64(X[row0 + i, d]) - sd
                    phi[d, i] = y
                    phi[D + d, i] = y * y
            f = 2 * D
        else:  # the "linear" layout (F = D): no squares
            for d in range(D):
                sd = shift[d]
                for i in range(m):
                    phi[d, i] = np.float64(X[row0 + i, d]) - sd
            f = D
    else:
        for i in range(m):
            for d in range(D):
                phi[d, i] = np.float64(X[row0 + i, d]) - shift[d]
        f = D
        if full_quad:
            for a in range(D):
                for e in range(a, D):
                    for i in range(m):
                        phi[f, i] = phi[a, i] * phi[e, i]
                    f += 1
        elif F > D:  # the squares (the "linear" layout, F = D, has none)
            for d in range(D):
                for i in range(m):
                    phi[f, i] = phi[d, i] * phi[d, i]
                f += 1
    for g in range(f, phi.shape[0]):  # padding features: zero
        for i in range(m):
            phi[g, i] = 0.0


@njit(**_HELPER)
def _logits(Wp, biasp, phi, L, mx, m):
    """L[:K4, :m] = biasp + Wp phi, in tiles of 4 components x 4 features; mx[:m] = the row maxima.

    Padding components have bias -1e300 (and zero weights), so they never are the maximum.
    """
    K4, F4 = Wp.shape
    for k0 in range(0, K4, 4):
        for f0 in range(0, F4, 4):
            w00, w01, w02, w03 = Wp[k0, f0], Wp[k0, f0 + 1], Wp[k0, f0 + 2], Wp[k0, f0 + 3]
            w10, w11, w12, w13 = Wp[k0 + 1, f0], Wp[k0 + 1, f0 + 1], Wp[k0 + 1, f0 + 2], Wp[k0 + 1, f0 + 3]
            w20, w21, w22, w23 = Wp[k0 + 2, f0], Wp[k0 + 2, f0 + 1], Wp[k0 + 2, f0 + 2], Wp[k0 + 2, f0 + 3]
            w30, w31, w32, w33 = Wp[k0 + 3, f0], Wp[k0 + 3, f0 + 1], Wp[k0 + 3, f0 + 2], Wp[k0 + 3, f0 + 3]
            if f0 == 0:
                b0, b1, b2, b3 = biasp[k0], biasp[k0 + 1], biasp[k0 + 2], biasp[k0 + 3]
                for i in range(m):
                    p0 = phi[0, i]
                    p1 = phi[1, i]
                    p2 = phi[2, i]
                    p3 = phi[3, i]
                    L[k0, i] = b0 + (w00 * p0 + w01 * p1 + w02 * p2 + w03 * p3)
                    L[k0 + 1, i] = b1 + (w10 * p0 + w11 * p1 + w12 * p2 + w13 * p3)
                    L[k0 + 2, i] = b2 + (w20 * p0 + w21 * p1 + w22 * p2 + w23 * p3)
                    L[k0 + 3, i] = b3 + (w30 * p0 + w31 * p1 + w32 * p2 + w33 * p3)
            else:
                for i in range(m):
                    p0 = phi[f0, i]
                    p1 = phi[f0 + 1, i]
                    p2 = phi[f0 + 2, i]
                    p3 = phi[f0 + 3, i]
                    L[k0, i] += w00 * p0 + w01 * p1 + w02 * p2 + w03 * p3
                    L[k0 + 1, i] += w10 * p0 + w11 * p1 + w12 * p2 + w13 * p3
                    L[k0 + 2, i] += w20 * p0 + w21 * p1 + w22 * p2 + w23 * p3
                    L[k0 + 3, i] += w30 * p0 + w31 * p1 + w32 * p2 + w33 * p3
        if k0 == 0:
            for i in range(m):
                mx[i] = max(max(L[0, i], L[1, i]), max(L[2, i], L[3, i]))
        else:
            for i in range(m):
                mx[i] = max(mx[i], max(max(L[k0, i], L[k0 + 1, i]), max(L[k0 + 2, i], L[k0 + 3, i])))


@njit(**_HELPER)
def _normalise(L, mx, s, m, K, weights, has_weights, row0, p):
    """Logits L[:K, :m] -> exponentials ``e_k = exp(logit_k - max)`` in place; padding rows zeroed.

    ``mx`` holds each row's maximum logit (from :func:`_logits`) and gets its log-sum-exp; ``s``
    gets the reciprocal of the row's sum of exponentials (``L * s`` are the responsibilities); the
    weighted sum of the log-sum-exp goes to ``p[1]``.
    """
    for i in range(m):
        s[i] = 0.0
    for k in range(K):
        for i in range(m):
            d = L[k, i] - mx[i]
            # Responsibilities below e**-460 (1e-200) are set to 0: their products with the
            # features would be subnormal, and subnormal arithmetic is slow (it cost a quarter
            # of a sweep on well-separated data). No statistic can see them: sums are taken
            # against N_k + 10 eps (scikit-learn's floor) and O(1) entries. Above -460 every
            # result is a normal number, so the exponential needs no clamps or subnormal path.
            e = exp_normal_range(d) if d > -460.0 else 0.0
            L[k, i] = e
            s[i] += e
    for k in range(K, L.shape[0]):  # padding components: zero
        for i in range(m):
            L[k, i] = 0.0
    for i in range(m):
        mx[i] = mx[i] + log_ge1(s[i])  # s >= 1: the largest term is exp(0)
        s[i] = 1.0 / s[i]
    # in lanes, in a fixed order (see _sums)
    p[1] += lane_dot(weights, row0, mx, m) if has_weights else lane_sum(mx, 0, m)


@njit(**_HELPER)
def _weigh(L, phi, s, m, K, F, weights, has_weights, row0):
    """Fold the row factors ``s`` (times the row weights) into the features or the exponentials.

    Where F < K, ``phi[:F] *= s`` (F multiplies a row) and ``s`` stays; otherwise ``L[:K] *= s`` and
    ``s = 1``. Either way ``sum_i L[k, i] phi[f, i]`` and ``sum_i L[k, i] s[i]`` are the statistics.
    """
    if has_weights:
        for i in range(m):
            s[i] *= weights[row0 + i]
    if F < K:
        for f in range(F):
            for i in range(m):
                phi[f, i] = phi[f, i] * s[i]
    else:
        for k in range(K):
            for i in range(m):
                L[k, i] = L[k, i] * s[i]
        for i in range(m):
            s[i] = 1.0


@njit(**_HELPER)
def _given(R, L, s, m, K, weights, has_weights, row0, p):
    """Load given responsibilities R[row0:row0+m] into L (s = 1, padding rows 0); their weighted entropy to
    ``p[2]``."""
    for k in range(K):
        for i in range(m):
            L[k, i] = R[row0 + i, k]
    ent = 0.0  # summed in a loop that stores nothing (see _normalise)
    for k in range(K):
        for i in range(m):
            r = L[k, i]
            if r > 1e-300:  # -r log r, as r log(1/r) with 1/r >= 1 (finite)
                ent += (weights[row0 + i] if has_weights else 1.0) * r * log_ge1(1.0 / r)
    for k in range(K, L.shape[0]):  # padding components: zero
        for i in range(m):
            L[k, i] = 0.0
    for i in range(m):
        s[i] = 1.0
    p[2] += ent


@njit(**_HELPER)
def _hard(L, mx, s, m, K):
    """Logits L[:K, :m] -> 1 at each row's largest logit (the lowest k on ties), 0 elsewhere (padding rows too); s = 1.

    ``mx`` holds each row's largest logit so far and ``s`` its component (a float), then 1.
    """
    for i in range(m):
        mx[i] = L[0, i]
        s[i] = 0.0
    for k in range(1, K):
        for i in range(m):
            if L[k, i] > mx[i]:  # strictly: an earlier component keeps a tie
                mx[i] = L[k, i]
                s[i] = k
    for k in range(L.shape[0]):  # padding components too: 0
        for i in range(m):
            L[k, i] = 1.0 if s[i] == k else 0.0
    for i in range(m):
        s[i] = 1.0


@njit(**_HELPER)
def _statistics(L, phi, s, m, K, F, p):
    """p[3 + k] += sum_i L_ki s_i and p[3 + K + k F + f] += sum_i L_ki phi_fi, in tiles of 4 components x
    ``_TILE_COLUMNS`` features.

    Each sum runs in four lanes over the rows (:mod:`~fastcavi._kernels._lanes`: the same bits for any vector
    width). The rows past ``m`` up to a multiple of 4 are zeroed first, so they add exact zeros.
    """
    K4 = L.shape[0]
    F4 = phi.shape[0]
    base = 3 + K
    m4 = (m + 3) // 4 * 4
    for i in range(m, m4):
        s[i] = 0.0
        for k in range(K4):
            L[k, i] = 0.0
        for f in range(F4):
            phi[f, i] = 0.0
    s_row = s.reshape((1, s.shape[0]))
    for k0 in range(0, K4, 4):
        col = tile4x1(L, k0, s_row, 0, m4)
        for r in range(4):
            if k0 + r < K:
                p[3 + k0 + r] += col[r]
        for f0 in range(0, F4, _TILE_COLUMNS):  # (a constant: the other tile is not compiled)
            if _TILE_COLUMNS == 4:
                tile = tile4x4(L, k0, phi, f0, m4)
            else:
                tile = tile4x2(L, k0, phi, f0, m4)
            for r in range(4):
                k = k0 + r
                if k < K:
                    for c in range(_TILE_COLUMNS):
                        f = f0 + c
                        if f < F:
                            p[base + k * F + f] += tile[_TILE_COLUMNS * r + c]


@njit(**_KERNEL)
def estep_blocks(X, shift, bias, W, Wp, biasp, full_quad, weights, has_weights, given, hard, resp_in, want_out,
                 resp_out, lse_out, partials, slot, block_rows, b0, b1):
    """:func:`estep` for blocks ``b0 .. b1 - 1`` of the chunk, in scratch slot ``slot`` (one call per thread,
    :func:`~fastcavi._kernels._threads.run_slots`). ``Wp`` and ``biasp`` are ``W`` and ``bias`` padded to
    whole tiles of 4 (zero weights; padding components' bias ``-1e300``, never a row's maximum)."""
    n = X.shape[0]
    K, F = W.shape
    K4, F4 = Wp.shape
    B = block_rows
    S = 3 + K + K * F
    L = slot[:K4]
    phi = slot[K4:K4 + F4]
    mx = slot[K4 + F4]
    s = slot[K4 + F4 + 1]
    for b in range(b0, b1):
        start = b * B
        stop = min(n, start + B)
        p = partials[b]
        for j in range(S):
            p[j] = 0.0
        for row0 in range(start, stop, SUB_ROWS):
            m = min(SUB_ROWS, stop - row0)
            if has_weights:
                p[0] += lane_sum(weights, row0, m)  # in a fixed order (see _sums)
            else:
                p[0] += m
            _features(X, row0, m, shift, full_quad, F, phi)
            if given:
                _given(resp_in, L, s, m, K, weights, has_weights, row0, p)
            else:
                _logits(Wp, biasp, phi, L, mx, m)
                if hard:
                    _hard(L, mx, s, m, K)
                else:
                    _normalise(L, mx, s, m, K, weights, has_weights, row0, p)
                    if want_out:
                        _write_out(L, mx, s, m, K, row0, resp_out, lse_out)
            _weigh(L, phi, s, m, K, F, weights, has_weights, row0)
            _statistics(L, phi, s, m, K, F, p)
        if not (given or hard):
            # the block's entropy of q(z), -sum r log r = sum_n lse_n - sum_nk r_nk logit_nk: the second sum is
            # the coefficients' dot product with the block's own statistics (the logits are linear in the
            # features), O(K F) per block instead of work per row and component, and a cancellation only
            # within one block
            dot = 0.0
            for k in range(K):
                dot += bias[k] * p[3 + k]
                for f in range(F):
                    dot += W[k, f] * p[3 + K + k * F + f]
            p[2] = p[1] - dot


@njit(**_HELPER)
def _write_out(L, mx, s, m, K, row0, resp_out, lse_out):
    """Each row's log-sum-exp and responsibilities ``L * s``, to the caller's output arrays."""
    for i in range(m):
        lse_out[row0 + i] = mx[i]
        for k in range(K):
            resp_out[row0 + i, k] = L[k, i] * s[i]


def estep(X, shift, bias, W, full_quad, weights, has_weights, given, hard, resp_in, want_out, resp_out, lse_out,
          partials, scratch, block_rows):
    """One pass over a chunk: responsibilities and per-block sufficient statistics.

    Parameters
    ----------
    X : ndarray of shape (n, D), float32 or float64, C-contiguous
        A chunk of rows.
    shift : ndarray of shape (D,), float64
        Subtracted from every row first (the data mean: keeps sums of squares exact).
    bias : ndarray of shape (K,), float64
    W : ndarray of shape (K, F), float64
        Logit weights of the features (see the module docstring): F = D + D, D + D (D + 1) / 2, or D
        (linear features only).
    full_quad : bool
        Quadratic features ``y_a y_b, a <= b`` (True) or ``y_d**2`` (False; none when F = D).
    weights : ndarray of shape (n,), float64
        Row weights (read only when ``has_weights``; any 1-D array otherwise).
    has_weights : bool
    given : bool
        Take the responsibilities from ``resp_in`` instead of computing them (the statistics of
        given responsibilities: an M-step's input); the log-sum-exp terms are then 0.
    hard : bool
        (When not ``given``.) Give each row responsibility 1 for its largest logit ``bias + W phi``
        (the lowest component on ties, as ``np.argmax``) and 0 for the others: with ``bias_k =
        -|m_k|^2 / 2`` and ``W_k = [m_k, 0]`` the hard assignment to the nearest of the means
        ``m_k``, with no (n, K) array. The log-sum-exp and entropy terms are then 0 (as for given
        one-hot responsibilities), and ``want_out`` is ignored.
    resp_in : ndarray of shape (n, K), float64
        The given responsibilities when ``given`` (any 2-D array otherwise).
    want_out : bool
        Whether to write each row's responsibilities and log-sum-exp (read only when neither
        ``given`` nor ``hard``).
    resp_out : ndarray of shape (n, K), float64
        Output responsibilities (unweighted) when ``want_out``.
    lse_out : ndarray of shape (n,), float64
        Output log-sum-exp of the logits when ``want_out``.
    partials : ndarray of shape (>= n_blocks, >= 3 + K + K F), float64
        Output: row b holds block b's sums ``[sum w, sum w lse, sum w entropy, sum w r_k (K),
        sum w r_k phi (K, F)]``, each added up in row order within the block. Columns past those are
        left alone (the passes pad each row to a cache line of its own).
    scratch : ndarray of shape (n_slots, >= scratch_rows(K, F), SUB_ROWS), float64
        Work space: slot g serves the contiguous run of blocks ``g * nblocks // n_slots`` up to
        ``(g + 1) * nblocks // n_slots``. A slot is rewritten for every sub-block, so the number
        of slots (any number >= 1, normally the thread count) cannot change any result. Its size
        is read here at run time. Best 64-byte aligned (:func:`fastcavi._passes.aligned_empty`, as
        the passes allocate it): vector loads along unaligned rows split across cache lines; the
        results do not depend on it.
    block_rows : int
        Rows per block (``BLOCK_ROWS``, a multiple of ``SUB_ROWS``), passed at run time like every
        size that indexes a buffer the caller allocated: nothing frozen into a cached kernel sizes
        or indexes a run-time buffer (a cache built under another ``BLOCK_ROWS`` stays safe).
    """
    n = X.shape[0]
    K, F = W.shape
    K4 = (K + 3) // 4 * 4
    F4 = (F + 3) // 4 * 4
    Wp = np.zeros((K4, F4))  # W padded with zeros
    Wp[:K, :F] = W
    biasp = np.full(K4, -1e300)  # padding components: never the row maximum
    biasp[:K] = bias
    nblocks = (n + block_rows - 1) // block_rows
    block_rows = np.int64(block_rows)
    # One contiguous run of blocks per slot, so that each thread streams one stretch of the chunk
    # (blocks dealt round-robin interleave the threads' reads 4 KB apart at D = 2: 2-7% slower
    # on 2 threads). Which slot computes a block changes none of its bits.
    run_slots(estep_blocks, nblocks, scratch.shape[0],
              lambda g: (X, shift, bias, W, Wp, biasp, full_quad, weights, has_weights, given, hard, resp_in,
                         want_out, resp_out, lse_out, partials, scratch[g], block_rows))
