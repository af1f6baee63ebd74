"""The order-independent accumulator against exact rational arithmetic (fractions.Fraction)."""
import math
from fractions import Fraction

import numpy as np
import pytest
from numba import njit

from conftest import readonly
from fastcavi._kernels import exactsum
from fastcavi._models.base import (accumulator_from_floats, accumulator_to_floats, empty_accumulator,
                                   merge_accumulators, round_accumulator)


def _acc_of(values):
    acc = empty_accumulator(1)
    for v in values:
        exactsum.insert_values(np.array([v]), acc)
    return acc


def _value(acc):
    """The exact rational number an accumulator holds (limbs times their bins' weights)."""
    top = int(acc[0, 0])
    return sum(Fraction(int(acc[0, 1 + i])) * Fraction(2) ** (32 * (top - i) - 1074) for i in range(exactsum.WINDOW))


def _values(rng, n, spread):
    return rng.normal(size=n) * 10.0 ** rng.uniform(-spread, spread, size=n)


@pytest.mark.parametrize("spread", [0, 8, 25])
def test_sum_is_exact_within_the_window(spread):
    # every value keeps >= 96 bits below the leading bit of the largest: below 2**-90 of the largest per value
    rng = np.random.default_rng(spread)
    x = _values(rng, 300, spread)
    acc = _acc_of(x)
    exact = sum(Fraction(float(v)) for v in x)
    assert abs(_value(acc) - exact) <= len(x) * Fraction(2) ** -90 * Fraction(float(np.max(np.abs(x))))
    # and the rounded value is the correctly rounded exact sum, or one ulp next to it
    got = float(round_accumulator(acc)[0])
    assert abs(got - math.fsum(x)) <= math.ulp(math.fsum(x))


def test_single_values_round_trip_exactly():
    rng = np.random.default_rng(1)
    specials = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308 / 4, 1.0, -3.5]
    for v in specials + list(_values(rng, 200, 30)):
        out = float(round_accumulator(_acc_of([v]))[0])
        assert out == v, (v, out)


def test_order_and_grouping_do_not_change_bits():
    rng = np.random.default_rng(2)
    x = _values(rng, 512, 12)
    reference = _acc_of(x)
    for trial in range(5):
        perm = rng.permutation(x.size)
        cuts = np.sort(rng.choice(np.arange(1, x.size), size=6, replace=False))
        parts = [_acc_of(x[perm][a:b]) for a, b in zip(np.r_[0, cuts], np.r_[cuts, x.size])]
        total = parts[rng.integers(len(parts))]
        rest = [p for p in parts if p is not total]
        for p in rest:
            total = merge_accumulators(p, total) if rng.random() < 0.5 else merge_accumulators(total, p)
        assert np.array_equal(total, reference)


def test_non_finite_values_poison_the_statistic():
    assert np.isnan(round_accumulator(_acc_of([1.0, np.inf, -2.0]))[0])
    assert np.isnan(round_accumulator(merge_accumulators(_acc_of([np.nan]), _acc_of([1.0])))[0])


def test_serialisation_is_exact():
    rng = np.random.default_rng(3)
    acc = empty_accumulator(4)
    for _ in range(50):
        exactsum.insert_values(_values(rng, 4, 20), acc)
    flat = accumulator_to_floats(acc)
    assert flat.dtype == np.float64
    assert np.array_equal(accumulator_from_floats(flat, 4), acc)


@njit
def _insert_one_at_a_time(values, index, order, acc):
    """The reference: each value into ``acc`` on its own, in the given order."""
    bits = values.view(np.uint64)
    for i in order:
        exactsum._insert_bits(acc, index[i], bits[i])


def test_exact_add_at_is_one_row_at_a_time_for_any_parts_and_threads():
    """k-means||'s per-row exact sums (``seeding.exact_add_at``) hold the same limbs as adding the rows one at
    a time in another order, with 1 and 2 threads, and round to the correctly rounded sum of each statistic's
    values."""
    import numba

    from fastcavi._kernels.seeding import exact_add_at

    rng = np.random.default_rng(11)
    n = 3 * 16384 + 123
    values = _values(rng, n, 8)
    index = rng.integers(0, 5, size=n)
    serial = empty_accumulator(5)
    _insert_one_at_a_time(values, index, rng.permutation(n), serial)
    previous = numba.get_num_threads()
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            acc = empty_accumulator(5)
            exact_add_at(readonly(values), index, acc)
            assert np.array_equal(acc, serial)
    finally:
        numba.set_num_threads(previous)
    total = np.empty(5)
    exactsum.finalize(acc, total)
    assert total.tolist() == [math.fsum(values[index == j]) for j in range(5)]
