"""Rescaling modes and rounding helpers (spec/qat.md §5.4, pitfalls 1, 10, 11)."""
import numpy
import pytest

from n2d2py.errors import N2D2Error
from n2d2py.qat.scaling import (ActivationRescaling, fixed_point_multiplier, parse_act_scaling_mode,
                                parse_round_mode, rintf, round_half_away, single_shift)


def test_mode_spellings():
    assert parse_act_scaling_mode("Floating-point") == "Floating-point"
    assert parse_act_scaling_mode("FIXED_MULT32") == "Fixed-point32"
    assert parse_act_scaling_mode("fixed-point16") == "Fixed-point16"
    assert parse_act_scaling_mode("single_shift") == "Single-shift"
    assert parse_round_mode("rintf") == "RINTF" and parse_round_mode("NONE") == "NONE"
    with pytest.raises(N2D2Error, match="Fixed-point32"):
        parse_act_scaling_mode("Fixed-point8")


def test_roundings_at_ties():
    x = numpy.array([0.5, 1.5, 2.5, -0.5, -2.5])
    assert round_half_away(numpy, x).tolist() == [1, 2, 3, -1, -3]
    assert rintf(x).tolist() == [0, 2, 2, -0.0, -2]


def test_single_shift_and_fixed_point():
    # 2^-e0/S >= 0.98 keeps e0 = ceil(log2(1/S)); otherwise e0 - 1
    assert single_shift(0.25) == 2
    assert single_shift(0.3) == 1          # e0 = 2, 0.25/0.3 = 0.83 < 0.98
    assert single_shift(0.2520) == 2       # 0.25/0.252 = 0.992
    assert single_shift(0.0) == 0
    assert fixed_point_multiplier(0.289775) == 18991   # round(0.289775 * 65536)


def test_rescaling_paths_agree_on_integers():
    """With D = 1 and integral B, C the int64 path equals the float path; values by hand."""
    acc = numpy.array([[-5, 0, 7, 100, 1000]], numpy.int64).reshape(1, 1, 5)
    B, C, S = [3.0], [776.0], [0.0193184]
    fp = ActivationRescaling(1, B, C, S, "Floating-point", 0, 15)(numpy, acc)
    fx = ActivationRescaling(1, B, C, S, "Fixed-point32", 0, 15)(numpy, acc)
    sh = ActivationRescaling(1, B, C, S, "Single-shift", 0, 15)(numpy, acc)
    # t = acc + 3 = [-2, 3, 10, 103, 776 (clipped)]; ×S = [0, .058, .19, 1.99, 14.99]
    assert fp.ravel().tolist() == [0, 0, 0, 2, 15]
    # S_fix = 1266: (z*1266 + 32768) >> 16
    assert fx.ravel().tolist() == [0, 0, 0, 2, 15]
    # e0 = 6 but 2^-6/S = 0.81 < 0.98, so e = 5: (z + 16) >> 5 -> 119 >> 5 = 3, 792 >> 5 = 24
    assert sh.ravel().tolist() == [0, 0, 0, 3, 15]
    # N2D2's CPU single shift ignores the clip (pitfall 10): (1003 + 16) >> 5 = 31
    raw = ActivationRescaling(1, B, C, S, "Single-shift", 0, 255, clip_in_shift=False)(numpy, acc)
    assert raw.ravel().tolist() == [0, 0, 0, 3, 31]


def test_denominator_gives_same_real_numbers():
    """acc/D + B: weights ×7 with D = 7 give the same codes as the real-valued computation."""
    rng = numpy.random.default_rng(0)
    acc = rng.integers(-3000, 3000, size=(4, 3, 5)).astype(numpy.int64)
    S, B, C = [0.05, 0.2, 0.01], [1.5, -2.25, 0.0], [60.0, 70.0, 800.0]
    r = ActivationRescaling(7, B, C, S, "Floating-point", 0, 15)
    t = acc / 7.0 + numpy.array(B)[None, :, None]
    z = numpy.clip(t, 0, numpy.array(C)[None, :, None]) * numpy.array(S, numpy.float32)[None, :, None]
    expected = numpy.clip(numpy.floor(z + 0.5), 0, 15)
    assert numpy.array_equal(r(numpy, acc), expected)
