"""Sums of products over rows in four explicit lanes, emitted as LLVM vector code.

A sum's bits depend on its order. Under LLVM's ``reassoc`` flag the loop vectoriser would pick
that order from the CPU's vector width (4 lanes on AVX2, 8 on AVX-512, 2 for 128-bit code), so
the bits would follow the CPU. Without ``reassoc`` it does not vectorise a sum at all, and numba
does not run LLVM's SLP vectoriser, which could pack scalar lanes written out in Python: such
sums run scalar, 1.4-2x slower per sweep.

So the row sums of the E-step and of the validating pass are numba intrinsics that emit the loop
in LLVM IR with ``<4 x double>`` accumulators: lane ``j`` adds the products of rows ``j, j + 4,
j + 8, ...`` in order, each as ``acc + a * b`` (one FMA, by the ``contract`` flag, on every CPU
with FMA), and the lanes end as ``(lane0 + lane1) + (lane2 + lane3)``. LLVM maps a ``<4 x
double>`` onto any register width (two 128-bit registers, one 256-bit register, or half of a
512-bit one) without changing what each lane computes, so every CPU with FMA gives the same
bits. Scalar code ``acc_j + a * b`` with the same flags computes exactly the same
(tests/test_fixed_order.py checks the intrinsics against it).

The intrinsics read float64 rows with unit inner stride (the kernels' scratch slots) and take
``m4``, a multiple of 4; they check nothing (the callers zero the rows up to ``m4``).

Which sums share a loop (a tile of 4 x 4 or 4 x 2 of them) changes no sum's arithmetic, only how many
accumulators are live: 16 ``<4 x double>`` of a 4 x 4 tile, with the loads, fit in the 32 vector
registers of AVX-512 but spill from the 16 of AVX2. The E-step picks the tile by the CPU it is compiled
for (:func:`wide_vector_registers`), so its bits are the same either way.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_DOUBLE = ir.DoubleType()
_VECTOR = ir.VectorType(_DOUBLE, 4)
_INT = ir.IntType(64)
_CONTRACT = ("contract",)


def _row_pointer(builder, array, row):
    """A ``double*`` to the first element of row ``row`` of a 2-D array (its byte stride is read at run time)."""
    stride0 = cgutils.unpack_tuple(builder, array.strides, 2)[0]
    byte = builder.gep(builder.bitcast(array.data, ir.IntType(8).as_pointer()), [builder.mul(row, stride0)])
    return builder.bitcast(byte, _DOUBLE.as_pointer())


def _lane_loop(builder, a_rows, b_rows, pairs, m4):
    """``<4 x double>`` accumulators ``acc[j] += a_rows[r][i:i+4] * b_rows[c][i:i+4]`` for ``(r, c) = pairs[j]`` and
    i = 0, 4, .. < m4; returns each accumulator's ``(lane0 + lane1) + (lane2 + lane3)``."""
    zero = ir.Constant(_VECTOR, [0.0] * 4)
    entry = builder.block
    loop = builder.append_basic_block("lanes.loop")
    done = builder.append_basic_block("lanes.done")
    builder.cbranch(builder.icmp_signed(">", m4, ir.Constant(_INT, 0)), loop, done)
    builder.position_at_end(loop)
    i = builder.phi(_INT)
    i.add_incoming(ir.Constant(_INT, 0), entry)
    acc = [builder.phi(_VECTOR) for _ in pairs]
    for a in acc:
        a.add_incoming(zero, entry)

    def load(row):
        return builder.load(builder.bitcast(builder.gep(row, [i]), _VECTOR.as_pointer()), align=8)

    a_vals = [load(row) for row in a_rows]
    b_vals = [load(row) for row in b_rows]
    new = [builder.fadd(acc[j], builder.fmul(a_vals[r], b_vals[c], flags=_CONTRACT), flags=_CONTRACT)
           for j, (r, c) in enumerate(pairs)]
    i_next = builder.add(i, ir.Constant(_INT, 4))
    i.add_incoming(i_next, loop)
    for a, v in zip(acc, new):
        a.add_incoming(v, loop)
    builder.cbranch(builder.icmp_signed("<", i_next, m4), loop, done)
    builder.position_at_end(done)
    finals = [builder.phi(_VECTOR) for _ in new]  # a block's phi nodes come first
    for final, v in zip(finals, new):
        final.add_incoming(zero, entry)
        final.add_incoming(v, loop)
    out = []
    for final in finals:
        lanes = [builder.extract_element(final, ir.Constant(ir.IntType(32), j)) for j in range(4)]
        out.append(builder.fadd(builder.fadd(lanes[0], lanes[1]), builder.fadd(lanes[2], lanes[3])))
    return out


def _lanes_intrinsic(name, n_a, n_b, pairs):
    def lanes(typingctx, a, a0, b, b0, m4):
        sig = types.UniTuple(types.float64, len(pairs))(a, a0, b, b0, m4)

        def codegen(context, builder, signature, args):
            arrays = [context.make_array(signature.args[j])(context, builder, args[j]) for j in (0, 2)]
            firsts = [context.cast(builder, args[j], signature.args[j], types.int64) for j in (1, 3)]
            m = context.cast(builder, args[4], signature.args[4], types.int64)
            a_rows = [_row_pointer(builder, arrays[0], builder.add(firsts[0], ir.Constant(_INT, r)))
                      for r in range(n_a)]
            b_rows = [_row_pointer(builder, arrays[1], builder.add(firsts[1], ir.Constant(_INT, c)))
                      for c in range(n_b)]
            return context.make_tuple(builder, signature.return_type, _lane_loop(builder, a_rows, b_rows, pairs, m))

        return sig, codegen

    lanes.__name__ = name
    return intrinsic(lanes)


#: ``tile4x4(a, a0, b, b0, m4)[4 r + c]`` = the lane sum of ``a[a0 + r, i] * b[b0 + c, i]`` over ``i < m4``.
tile4x4 = _lanes_intrinsic("tile4x4", 4, 4, [(r, c) for r in range(4) for c in range(4)])
#: ``tile4x2(a, a0, b, b0, m4)[2 r + c]`` = the lane sum of ``a[a0 + r, i] * b[b0 + c, i]`` over ``i < m4``.
tile4x2 = _lanes_intrinsic("tile4x2", 4, 2, [(r, c) for r in range(4) for c in range(2)])
#: ``tile4x2(a, a0, b, b0, m4)[2 r + c]`` = the lane sum of ``a[a0 + r, i] * b[b0 + c, i]`` over ``i < m4``.
tile4x2 = _lanes_intrinsic("tile4x2", 4, 2, [(r, c) for r in range(4) for c in range(2)])
#: ``tile4x1(a, a0, b, b0, m4)[r]`` = the lane sum of ``a[a0 + r, i] * b[b0, i]`` over ``i < m4``.
tile4x1 = _lanes_intrinsic("tile4x1", 4, 1, [(r, 0) for r in range(4)])
#: ``diagonal4(a, a0, b, b0, m4)[r]`` = the lane sum of ``a[a0 + r, i] * b[b0 + r, i]`` over ``i < m4``.
diagonal4 = _lanes_intrinsic("diagonal4", 4, 4, [(r, r) for r in range(4)])


def wide_vector_registers():
    """Whether numba compiles for a CPU with 32 vector registers: ``+avx512f`` among the features it targets
    (``NUMBA_CPU_FEATURES`` when set, else the host's, as numba's code generator takes them). It chooses a
    tiling, never a result (module docstring); numba keys its cache on the same CPU name and features."""
    from numba.core import codegen, config

    features = config.CPU_FEATURES if config.CPU_FEATURES is not None else codegen.get_host_cpu_features()
    return "+avx512f" in str(features).split(",")
