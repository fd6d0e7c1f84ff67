"""DQ (Uhlich et al.): forward and derived bits against the formulas, STE gradients against
the stated rules, finite differences where the maths is smooth (log2 of the bit-width, q_max
outside the range), box projection and state files."""
import math

import numpy
import pytest

from n2d2py.autograd import Parameter, Variable, check_backward
from n2d2py.quantizers import make_act_quantizer, make_weight_quantizer
from n2d2py.quantizers.dq import DQQuantize, Log2, derived_bits

ATOL = 1e-6


def reference(x, d, qmax):
    return numpy.sign(x) * numpy.minimum(d * numpy.rint(numpy.abs(x) / d), qmax)


def test_forward_matches_formula(rng):
    x = rng.uniform(-2, 2, (5, 7)).astype(numpy.float32)
    d, qmax = numpy.float32(0.25), numpy.float32(1.3)
    y = DQQuantize(pow2=False).apply(x, numpy.array([d]), numpy.array([qmax])).data
    numpy.testing.assert_allclose(y, reference(x, d, qmax), atol=ATOL)
    assert numpy.abs(y).max() == pytest.approx(1.3)


def test_power_of_two_projection(rng):
    x = rng.uniform(-1, 1, 100).astype(numpy.float32)
    y = DQQuantize(pow2=True).apply(x, numpy.array([0.2], numpy.float32),
                                    numpy.array([0.9], numpy.float32)).data
    numpy.testing.assert_allclose(y, reference(x, 0.25, 0.9), atol=ATOL)  # 2^rint(log2 .2) = .25


def test_ste_gradients_follow_the_rules(rng):
    x = rng.uniform(-2, 2, 200).astype(numpy.float32)
    d, q = numpy.float32(0.125), numpy.float32(0.875)
    g = rng.standard_normal(200).astype(numpy.float32)
    X = Variable(x, requires_grad=True)
    D, Q = Parameter(numpy.array([d])), Parameter(numpy.array([q]))
    DQQuantize(pow2=False, clip_grads=False).apply(X, D, Q).backward(g)
    inside = numpy.abs(x) <= q
    y = reference(x, d, q)
    numpy.testing.assert_allclose(X.grad, g * inside, atol=ATOL)
    assert D.grad[0] == pytest.approx((g * numpy.where(inside, (y - x) / d, 0)).sum(), rel=1e-5)
    assert Q.grad[0] == pytest.approx((g * numpy.where(inside, 0, numpy.sign(x))).sum(), rel=1e-5)
    # clipping: both gradients to ±d
    D.grad = Q.grad = None
    DQQuantize(pow2=False, clip_grads=True).apply(X, D, Q).backward(g)
    assert abs(D.grad[0]) <= d and abs(Q.grad[0]) <= d


def test_qmax_gradient_by_finite_differences(rng):
    # q_max a multiple of d and |x|/d away from half-integers: Q is smooth in q_max there
    x = (numpy.floor(rng.uniform(-20, 20, 64)) + 0.25) * 0.125
    x = x[numpy.abs(numpy.abs(x) - 1.0) > 0.125]  # no rounding up to q_max at the boundary
    check_backward(lambda q: DQQuantize(pow2=False, clip_grads=False).apply(
        Variable(x), Variable(numpy.array([0.125])), q), [numpy.array([1.0])], eps=1e-4)


def test_log2_by_finite_differences():
    check_backward(lambda v: Log2().apply(v), [numpy.array([0.7, 3.0, 12.5])])


@pytest.mark.parametrize("d, qmax, signed, bits", [(0.125, 0.875, True, 4), (0.125, 0.9, True, 5),
                                                   (0.125, 1.875, False, 4), (1.0, 127, True, 8),
                                                   (2 ** -3, 2 ** -3, True, 2)])
def test_derived_bits(d, qmax, signed, bits):
    assert derived_bits(d, qmax, signed) == bits
    assert bits == math.ceil(math.log2(qmax / d + 1) + signed - 1e-9)


def test_ini_defaults_boxes_and_bits(rng):
    q = make_weight_quantizer("DQ", {})
    assert (q.step_size, q.q_max, q.bits(), q.range) == (0.125, 0.875, 4, 15)
    act = make_act_quantizer("DQ", {"Bits": "3"})
    assert act.q_max == pytest.approx(0.875) and act.bits() == 3
    q.qmax_param.data[...] = 1000.0   # above the box: 8 bits -> 127·d
    q.d_param.data[...] = 5.0         # above d_max = 1
    W = Parameter(rng.standard_normal((4, 3)).astype(numpy.float32))
    q([W])
    assert q.step_size == 1.0 and q.q_max == 127.0 and q.bits() == 8


def test_bits_variable_gradient():
    q = make_weight_quantizer("DQ", {})
    b = q.bits_variable()
    assert float(b.data[0]) == 4.0
    b.backward(numpy.ones(1, numpy.float32))
    # d b / d q_max = 1/((q_max/d + 1)·ln 2·d) through the ceil's straight-through gradient
    assert q.qmax_param.grad[0] == pytest.approx(1 / ((7 + 1) * math.log(2) * 0.125), rel=1e-5)


def test_state_round_trip(tmp_path):
    q = make_weight_quantizer("DQ", {})
    q.d_param.data[...] = 0.0625
    q.qmax_param.data[...] = 0.5
    q.export_state(str(tmp_path), "conv1")
    r = make_weight_quantizer("DQ", {})
    r.import_state(str(tmp_path), "conv1")
    assert (r.step_size, r.q_max, r.bits()) == (0.0625, 0.5, 5)
