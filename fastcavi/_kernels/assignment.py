"""The seed's random initialisation in one compiled pass: per-block sums of the rows of each random cluster.

Each row's cluster is ``splitmix64(row ^ splitmix64(seed)) % K`` (a hash of the global row index,
so the same for any chunking). Each block of ``block_rows`` rows adds its rows into its own (K, D)
partial sums, in row order and from 0.0, and counts them; the caller adds the blocks up in block
order. That is, bit for bit, what ``np.bincount(block * K + label, weights=x[:, d])`` per block
followed by a left-to-right sum of the blocks gives, which this kernel replaced.

Compiled without fast-math flags: ``reassoc`` could regroup the sequential sums.
"""
import numpy as np
from numba import njit

from .._config import CACHE
from .seeding import splitmix64

_JIT = dict(cache=CACHE, nogil=True, error_model="numpy")


@njit(**_JIT)
def assignment_sums(X, row0, seed_hash, K, block_rows, sums, counts):
    """Per-block sums and counts of the rows of each cluster of the seed's random assignment.

    Parameters
    ----------
    X : ndarray of shape (n, D), float32 or float64, C-contiguous
        A chunk of rows, whose first row is global row ``row0``.
    row0 : int
        Global index of the chunk's first row.
    seed_hash : uint64
        ``splitmix64(seed)``: row ``i`` joins cluster ``splitmix64(i ^ seed_hash) % K``.
    K : int
    block_rows : int
        Rows per block.
    sums : ndarray of shape (>= n_blocks, K, D), float64
        Output: block b's sums of its rows of each cluster (rows added in order, from 0.0).
    counts : ndarray of shape (>= n_blocks, K), float64
        Output: block b's number of rows in each cluster.
    """
    n, D = X.shape
    nblocks = (n + block_rows - 1) // block_rows
    k_u = np.uint64(K)
    for b in range(nblocks):  # serial: a start-up pass of integer hashes and row sums, at memory speed
        s = sums[b]
        c = counts[b]
        for k in range(K):
            c[k] = 0.0
            for d in range(D):
                s[k, d] = 0.0
        for i in range(b * block_rows, min(n, (b + 1) * block_rows)):
            k = np.int64(splitmix64(np.uint64(row0 + i) ^ seed_hash) % k_u)
            c[k] += 1.0
            for d in range(D):
                s[k, d] += np.float64(X[i, d])


@njit(cache=CACHE, nogil=True, error_model="numpy")
def add_blocks(sums, counts, nblocks, total_sums, total_counts):
    """``total += block b`` for b = 0 .. nblocks - 1 in order (as NumPy's ``total += part[b]`` in a loop)."""
    K, D = total_sums.shape
    for b in range(nblocks):
        for k in range(K):
            total_counts[k] += counts[b, k]
            for d in range(D):
                total_sums[k, d] += sums[b, k, d]
