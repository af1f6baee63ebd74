"""Compile policy and tunables, in one place (the numbagg pattern).

Every compiled kernel of fastcavi takes its flags from here, so that the reasons
for them live next to them.
"""
import os

#: LLVM fast-math flags for the kernels: FMA contraction (and no signed zeros), nothing else.
#: Not ``reassoc``: with it LLVM regroups every sum to fit the CPU's vector width, so the bits
#: of a result would differ between AVX2, AVX-512 and 128-bit code. The kernels instead sum in
#: explicit lanes (four accumulators over consecutive rows, added as ``(l0 + l1) + (l2 + l3)``:
#: :mod:`fastcavi._kernels._lanes`), which LLVM maps onto any register width without changing the order. Not ``arcp`` or ``afn``
#: (reciprocal and function approximations, which may follow the target too), and not
#: ``fastmath=True``: that adds ``nnan`` and ``ninf``, which let LLVM fold away
#: ``isnan``/``isfinite`` and mishandle ``-inf`` log-weights (numba #6217, #2923). Contraction
#: is the same rule on every CPU with FMA; CPUs without FMA round differently (see the
#: documentation's determinism section).
FASTMATH = {"contract", "nsz"}  # a set: numba rejects a frozenset

#: Cache compiled kernels on disk (in ``__pycache__`` beside the modules): a
#: kernel takes tenths of a second to seconds to compile, hundredths to load. Set
#: ``FASTCAVI_NO_CACHE=1`` to compile in memory only (read-only installs).
CACHE = os.environ.get("FASTCAVI_NO_CACHE", "0") in ("", "0")

#: Rows per block. Parallel work is split into blocks of this many rows, and each
#: block writes its own float64 partial sums (added up per segment, below), so no
#: result depends on the thread count. Passed to the kernels at run time.
BLOCK_ROWS = 256

#: Rows per segment: the granularity of split invariance. Blocks are added up per
#: segment (left to right, from zero), and segment sums go into an order-independent
#: exact accumulator (:mod:`fastcavi._kernels.exactsum`). Any split of the rows into
#: parts of whole segments (chunks, processes, Dask tasks) therefore gives the same
#: bits. 4096 rows keep the accumulator's cost per row small (it works per segment
#: and statistic, not per row) and divide 65,536.
SEGMENT_ROWS = 4096

#: Default size, in bytes, of the per-chunk working memory (responsibilities,
#: block partial sums, the converted chunk). The default chunk size in rows is
#: derived from it, so memory stays bounded whatever N is.
CHUNK_BYTES = 32 * 2**20
