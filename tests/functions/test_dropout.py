"""dropout: N2D2 CPU semantics (no rescale), inverted dropout on request,
identity at inference, reproducible from the cell's Generator."""
import numpy
import pytest

import n2d2py.functions as F
from n2d2py.autograd import Variable, check_backward
from n2d2py.backend import asnumpy
from n2d2py.errors import N2D2Error

SHAPE = (8, 16, 16, 16)      # 32768 values: the kept fraction is within ±1% of 1-p
FRACTION_TOL = 0.01


@pytest.mark.parametrize("ratio", [0.2, 0.5])
def test_training_zeroes_without_rescale(xp, ratio):
    x = numpy.random.default_rng(0).uniform(1.0, 2.0, SHAPE).astype(numpy.float32)  # no zeros
    y = asnumpy(F.dropout(xp.asarray(x), ratio, True, numpy.random.default_rng(1)).data)
    kept = y != 0
    assert abs(kept.mean() - (1 - ratio)) < FRACTION_TOL
    numpy.testing.assert_array_equal(y[kept], x[kept])   # N2D2 Frame: kept values unchanged


def test_rescale_is_inverted_dropout(xp):
    ratio = 0.25
    x = numpy.full(SHAPE, 3.0, dtype=numpy.float32)
    y = asnumpy(F.dropout(xp.asarray(x), ratio, True, numpy.random.default_rng(2), rescale=True).data)
    assert set(numpy.unique(y).tolist()) == {0.0, 4.0}       # 3 / (1 - 0.25)
    assert abs(y.mean() - 3.0) < 3.0 * 2 * FRACTION_TOL


def test_inference_and_zero_ratio_are_identity(xp, rng):
    x = rng.standard_normal((2, 3, 4, 4)).astype(numpy.float32)
    for ratio, training in ((0.5, False), (0.0, True)):
        v = Variable(xp.asarray(x), requires_grad=True)
        y = F.dropout(v, ratio, training, numpy.random.default_rng(3))
        numpy.testing.assert_array_equal(asnumpy(y.data), x)
        y.backward(xp.ones_like(y.data))
        numpy.testing.assert_array_equal(asnumpy(v.grad), numpy.ones_like(x))


def test_same_seed_same_mask_and_gradient_uses_it(rng):
    x = rng.standard_normal((3, 4, 5, 5)).astype(numpy.float32)
    a = F.dropout(x, 0.5, True, numpy.random.default_rng(7)).data
    v = Variable(x, requires_grad=True)
    b = F.dropout(v, 0.5, True, numpy.random.default_rng(7))
    numpy.testing.assert_array_equal(a, b.data)
    b.backward(numpy.ones_like(x))
    numpy.testing.assert_array_equal(v.grad, (b.data != 0).astype(numpy.float32))


def test_fresh_mask_each_call(rng):
    g = numpy.random.default_rng(9)
    x = numpy.ones((4, 4, 8, 8), numpy.float32)
    assert not numpy.array_equal(F.dropout(x, 0.5, True, g).data, F.dropout(x, 0.5, True, g).data)


@pytest.mark.parametrize("rescale", [False, True])
def test_backward_finite_differences(rng, rescale):
    x = rng.standard_normal((2, 3, 3, 3))
    check_backward(lambda v: F.dropout(v, 0.4, True, numpy.random.default_rng(5), rescale),
                   (x,), rng=rng)


@pytest.mark.parametrize("ratio", [-0.1, 1.0])
def test_bad_ratio(ratio):
    with pytest.raises(N2D2Error, match="ratio must be in"):
        F.dropout(numpy.ones((1, 1, 2, 2), numpy.float32), ratio, True, numpy.random.default_rng())
