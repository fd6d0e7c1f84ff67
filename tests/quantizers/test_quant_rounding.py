"""Rounding rules (N2D2 mixes C's rintf and round), the generic STE helpers of functions/ste.py."""
import numpy
import pytest

import n2d2py.functions as F
from n2d2py.autograd import Variable, check_backward
from n2d2py.quantizers.rounding import rint, round_half_away, rounding_function


def test_round_half_away_ties_and_float32_edges(xp):
    x = xp.asarray([0.5, 1.5, 2.5, -0.5, -2.5, 0.49999997, -0.49999997, 2.4999998,
                    8388607.5, 1e30, -3.7, 0.0], dtype=numpy.float32)
    y = round_half_away(xp, x)
    expected = [1, 2, 3, -1, -3, 0, 0, 2, 8388608, 1e30, -4, 0]
    assert y.dtype == numpy.float32
    assert numpy.array_equal(numpy.asarray(y.tolist()), numpy.asarray(expected, dtype=numpy.float32))
    # C round(-0.3) is -0.0: the sign of zero survives
    assert numpy.signbit(float(round_half_away(xp, xp.asarray([-0.3], dtype=numpy.float32))[0]))


def test_rint_is_half_even(xp):
    x = xp.asarray([0.5, 1.5, 2.5, -0.5, -2.5], dtype=numpy.float32)
    assert rint(xp, x).tolist() == [0.0, 2.0, 2.0, -0.0, -2.0]


def test_round_half_away_matches_python_decimal_rule(rng):
    # Random float32 values, many exact halves: compare with math-based reference.
    x = (rng.integers(-2000, 2000, 4000) / 2).astype(numpy.float32)
    x += rng.standard_normal(4000).astype(numpy.float32) * (rng.random(4000) < 0.5)
    ref = numpy.array([numpy.sign(v) * numpy.floor(abs(float(v)) + 0.5) for v in x.astype(numpy.float64)])
    assert numpy.array_equal(round_half_away(numpy, x), ref.astype(numpy.float32))


def test_rounding_function_names():
    assert rounding_function("half_away") is round_half_away
    assert rounding_function("half_even") is rint
    with pytest.raises(ValueError, match="half_away"):
        rounding_function("nearest")


def test_round_ste_forward_and_identity_gradient():
    x = Variable(numpy.asarray([0.5, 1.5, -2.5], dtype=numpy.float32), requires_grad=True)
    y = F.round_ste(x, "half_away")
    assert y.data.tolist() == [1.0, 2.0, -3.0]
    y.backward(numpy.asarray([1.0, 2.0, 3.0], dtype=numpy.float32))
    assert x.grad.tolist() == [1.0, 2.0, 3.0]


def test_clamp_ste_gradient_matches_finite_differences(rng):
    x = rng.uniform(-2, 2, (3, 5))
    x[numpy.abs(numpy.abs(x) - 1) < 1e-3] = 0.0  # keep away from the kinks
    check_backward(lambda v: F.clamp_ste(v, -1.0, 1.0), [x])
