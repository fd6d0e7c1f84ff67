"""Rescaling modes and rounding helpers, against N2D2's rules."""
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


# -- the integer modes: IntegerForm / IntegerRescaling ---------------------------------------------
def test_power_of_two_divs_is_n2d2s_approximation():
    from n2d2py.qat.scaling import power_of_two_divs
    # one division: single_shift's rule
    for S in (0.25, 0.3, 0.252, 0.0193184, 1e-4, 1.0):
        assert power_of_two_divs(S, 1)[0] == [single_shift(S)]
    # 0.3: 2^-2 (0.83 of S), then 2^-5 (0.9375 < 0.98): the second exponent drops to 4
    assert power_of_two_divs(0.3, 2) == ([2, 4], pytest.approx(1.0416667))
    assert power_of_two_divs(0.75, 2) == ([1, 2], 1.0)            # exact: 1/2 + 1/4
    assert power_of_two_divs(0.25, 2) == ([3, 3], 1.0)            # a power of two: two halves
    assert power_of_two_divs(1.0, 2) == ([1, 1], 1.0)
    assert power_of_two_divs(0.3125 * 0.99, 2)[0] == [2, 4]       # within 2 %: kept
    with pytest.raises(N2D2Error, match="scale in"):
        power_of_two_divs(1.5, 2)


def test_integer_form_operations_by_hand():
    from n2d2py.qat.scaling import IntegerForm
    acc = numpy.array([-9, -5, 0, 7, 40, 1000], numpy.int64).reshape(1, 1, 6)
    bias, clip = [3], [100]
    # x = acc + 3 = [-6, -2, 3, 10, 43, 1003]; clipped to [0, 100]: [0, 0, 3, 10, 43, 100]
    fixed = IntegerForm(1, bias, clip, "fixed", 0, 255, mult=[5], fractional_bits=4)
    assert fixed.apply(numpy, acc).ravel().tolist() == [0, 0, 1, 3, 13, 31]   # (5z + 8) >> 4
    single = IntegerForm(1, bias, clip, "single", 0, 15, shift=[2])
    assert single.apply(numpy, acc).ravel().tolist() == [0, 0, 1, 3, 11, 15]  # (z + 2) >> 2, sat
    double = IntegerForm(1, bias, clip, "double", 0, 255, shift_a=[2], shift_b=[4])
    assert double.apply(numpy, acc).ravel().tolist() == [0, 0, 1, 3, 13, 31]  # (5z + 8) >> 4
    # no clip: the shift floors negative values (an arithmetic shift), then saturation
    raw = IntegerForm(1, bias, None, "single", -128, 127, shift=[2])
    assert raw.apply(numpy, acc).ravel().tolist() == [-1, 0, 1, 3, 11, 127]   # (-6 + 2) >> 2 = -1
    logits = IntegerForm(1, bias, None, "logits")
    got = logits.apply(numpy, acc.astype(numpy.float32)).ravel().tolist()
    assert got == [-6, -2, 3, 10, 43, 1003]
    assert fixed.z_bound(10 ** 6) == 100 and fixed.operand_bound(10 ** 6) == 508
    assert raw.int32_problem(2 ** 31 - 2) is not None and raw.int32_problem(1000) is None


def test_integer_rescaling_with_integral_constants_is_n2d2s_arithmetic():
    """D = 1 and integer B, C (RINTF): the shift modes give N2D2's numbers (with the clip)."""
    from n2d2py.qat.scaling import IntegerRescaling
    rng = numpy.random.default_rng(0)
    acc = rng.integers(-3000, 30000, size=(8, 3, 5)).astype(numpy.int64)
    B, C, S = [3.0, -40.0, 0.0], [776.0, 20000.0, 0.0], [0.0193184, 0.0007, 0.0]
    ours = IntegerRescaling("c", 1, B, C, S, "Single-shift", 0, 15, 30000)(numpy, acc)
    n2d2 = ActivationRescaling(1, B, C, S, "Single-shift", 0, 15)(numpy, acc)
    assert numpy.array_equal(ours, n2d2)
    assert (ours[:, 2] == 0).all()                 # a dead channel (f = 0: S = B = C = 0)


@pytest.mark.parametrize("mode", ["Fixed-point16", "Fixed-point32"])
def test_fixed_point_multipliers_fill_their_width(mode):
    from n2d2py.qat.scaling import IntegerRescaling
    S, C, D = [0.0207648, 0.011, 0.3], [722.375, 900.0, 50.0], 255.0
    r = IntegerRescaling("conv1", D, [169.448, 0.0, -2.0], C, S, mode, 0, 15, 25 * 255 * 255)
    form = r.form
    M, n = form.mult, form.fractional_bits
    # a 16-bit M whose products z·M fit int32 (z up to 229500): ~13 bits; a 32-bit M: ~31
    rtol = 2e-3 if mode == "Fixed-point16" else 1e-8
    exact = numpy.array(S, numpy.float32).astype(numpy.float64) / D
    numpy.testing.assert_allclose(M / 2.0 ** n, exact, rtol=rtol)
    z = int(numpy.abs(form.clip).max())
    assert form.clip.tolist() == [184206, 229500, 12750] and form.bias.tolist()[0] == 43209
    if mode == "Fixed-point16":
        assert M.max() <= 2 ** 15 - 1 and z * M.max() + 2 ** (n - 1) <= 2 ** 31 - 1
        assert z * round(S[2] / D * 2 ** (n + 1)) + 2 ** n > 2 ** 31 - 1   # n is the largest
        assert not form.wide_product(25 * 255 * 255)
    else:
        assert 2 ** 30 <= M.max() <= 2 ** 31 - 1 and form.wide_product(25 * 255 * 255)


def test_scales_a_mode_cannot_write_are_refused_naming_the_cell():
    from n2d2py.qat.scaling import IntegerRescaling
    for mode in ("Single-shift", "Double-shift"):
        with pytest.raises(N2D2Error, match=r"\[conv9\] rescale factor 1.5 of channel 1 .* above "
                                            rf"1: {mode} only divides"):
            IntegerRescaling("conv9", 2, None, None, [0.5, 3.0], mode, 0, 255, 100)
    with pytest.raises(N2D2Error, match=r"\[conv9\] rescale factor 40000 .* does not fit "
                                        r"Fixed-point16 .* use Fixed-point32"):
        IntegerRescaling("conv9", 1, None, [1.0], [40000.0], "Fixed-point16", 0, 255, 100)
    r = IntegerRescaling("conv9", 1, None, [1.0], [40000.0], "Fixed-point32", 0, 255, 100)
    assert r.form.mult[0] == 40000 * 2 ** r.form.fractional_bits
