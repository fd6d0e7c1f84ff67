"""softmax / log_softmax (GroupSize) and the losses: forward against float64
formulas, gradients against finite differences and N2D2's pass-through rules, torch as oracle."""
import numpy
import pytest

import n2d2py.functions as F
from n2d2py.autograd import Variable, check_backward
from n2d2py.backend import asnumpy
from n2d2py.errors import ShapeError

RTOL_F32 = 1e-5
ATOL_F32 = 1e-6
RTOL_TORCH = 1e-5


def _naive_softmax(x, axis, group_size=0):
    """Channel by channel loops over groups, float64."""
    x = numpy.moveaxis(x.astype(numpy.float64), axis, 0)
    C = x.shape[0]
    g = group_size or C
    out = numpy.empty_like(x)
    for start in range(0, C, g):
        block = x[start:start + g]
        e = numpy.exp(block - block.max(axis=0))
        out[start:start + g] = e / e.sum(axis=0)
    return numpy.moveaxis(out, 0, axis)


SOFTMAX_CASES = [((2, 5, 3, 2), 1, 0), ((2, 6, 3, 2), 1, 3), ((2, 6, 3, 2), 1, 2),
                 ((4, 7), 1, 0), ((3, 4, 5), -1, 0), ((2, 6, 2, 2), 1, 6)]


@pytest.mark.parametrize("shape, axis, group", SOFTMAX_CASES, ids=str)
def test_softmax_forward_backward(xp, rng, shape, axis, group):
    x = (rng.standard_normal(shape) * 3).astype(numpy.float32)
    y = F.softmax(xp.asarray(x), axis=axis, group_size=group)
    expected = _naive_softmax(x, axis, group)
    numpy.testing.assert_allclose(asnumpy(y.data), expected, rtol=RTOL_F32, atol=ATOL_F32)
    log_y = F.log_softmax(xp.asarray(x), axis=axis, group_size=group)
    numpy.testing.assert_allclose(asnumpy(log_y.data), numpy.log(expected), rtol=RTOL_F32, atol=1e-5)
    x64 = x.astype(numpy.float64)
    check_backward(lambda v: F.softmax(v, axis, group), (x64,), rng=rng)
    check_backward(lambda v: F.log_softmax(v, axis, group), (x64,), rng=rng)


def test_softmax_is_stable_for_huge_logits():
    x = numpy.array([[1000.0, 0.0, -1000.0], [88.0, 89.0, 90.0]], dtype=numpy.float32)
    with numpy.errstate(over="raise", invalid="raise"):
        y = F.softmax(x).data
        ly = F.log_softmax(x).data
    numpy.testing.assert_allclose(y[0], [1.0, 0.0, 0.0], atol=1e-30)
    numpy.testing.assert_allclose(ly[0], [0.0, -1000.0, -2000.0], rtol=1e-6)
    numpy.testing.assert_allclose(y[1], _naive_softmax(x[1:], 1)[0], rtol=RTOL_F32)


def test_softmax_group_must_divide_channels():
    with pytest.raises(ShapeError, match="GroupSize 4 must divide the 6 channels"):
        F.softmax(numpy.zeros((1, 6, 2, 2), numpy.float32), group_size=4)


def test_softmax_against_torch(torch, rng):
    x = rng.standard_normal((3, 10, 4, 4)).astype(numpy.float32) * 4
    gy = rng.standard_normal(x.shape).astype(numpy.float32)
    v = Variable(x, requires_grad=True)
    F.softmax(v).backward(gy)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.softmax(tx, dim=1)
    ty.backward(torch.tensor(gy))
    numpy.testing.assert_allclose(F.softmax(x).data, ty.detach().numpy(), rtol=RTOL_TORCH, atol=ATOL_F32)
    numpy.testing.assert_allclose(v.grad, tx.grad.numpy(), rtol=RTOL_TORCH, atol=ATOL_F32)


# -- losses -----------------------------------------------------------------------------------
def _one_hot(labels, C, spatial=(), target=1.0, default=0.0):
    t = numpy.full((len(labels), C) + spatial, default, dtype=numpy.float32)
    for i, label in enumerate(labels):
        t[i, label] = target
    return t


@pytest.mark.parametrize("spatial", [(), (2, 3)], ids=["NC", "NCHW"])
def test_softmax_cross_entropy(xp, rng, spatial):
    N, C = 4, 5
    x = (rng.standard_normal((N, C) + spatial) * 2).astype(numpy.float32)
    t = _one_hot(rng.integers(0, C, N), C, spatial)
    expected = -(t * numpy.log(_naive_softmax(x, 1))).sum() / N
    loss = F.softmax_cross_entropy(xp.asarray(x), xp.asarray(t))
    assert loss.shape == ()
    assert float(loss.data) == pytest.approx(expected, rel=RTOL_F32)
    check_backward(F.softmax_cross_entropy, (x.astype(numpy.float64), t.astype(numpy.float64)),
                   rng=rng)


def test_softmax_cross_entropy_uses_n2d2_gradient_rule(rng):
    """With TargetValue/DefaultValue not summing to 1, N2D2 still feeds back softmax - t."""
    x = rng.standard_normal((3, 4)).astype(numpy.float32)
    t = _one_hot([0, 3, 1], 4, target=0.9, default=0.2)
    v = Variable(x, requires_grad=True)
    F.softmax_cross_entropy(v, t).backward()
    numpy.testing.assert_allclose(v.grad, (_naive_softmax(x, 1) - t) / 3, rtol=RTOL_F32, atol=ATOL_F32)


def test_mse(xp, rng):
    y = rng.standard_normal((4, 3, 2, 2)).astype(numpy.float32)
    t = rng.standard_normal(y.shape).astype(numpy.float32)
    loss = F.mse(xp.asarray(y), xp.asarray(t))
    expected = 0.5 * ((y.astype(numpy.float64) - t) ** 2).sum() / 4
    assert float(loss.data) == pytest.approx(expected, rel=RTOL_F32)
    v = Variable(y, requires_grad=True)
    F.mse(v, t).backward()
    numpy.testing.assert_allclose(v.grad, (y - t) / 4, rtol=RTOL_F32, atol=ATOL_F32)  # N2D2: -(t-y)/N
    check_backward(F.mse, (y.astype(numpy.float64), t.astype(numpy.float64)), rng=rng)


def test_sigmoid_cross_entropy(xp, rng):
    x = (rng.standard_normal((4, 3, 2)) * 3).astype(numpy.float32)
    t = rng.uniform(0, 1, x.shape).astype(numpy.float32)
    s = 1 / (1 + numpy.exp(-x.astype(numpy.float64)))
    expected = -(t * numpy.log(s) + (1 - t) * numpy.log(1 - s)).sum() / 4
    loss = F.sigmoid_cross_entropy(xp.asarray(x), xp.asarray(t))
    assert float(loss.data) == pytest.approx(expected, rel=RTOL_F32)
    v = Variable(x, requires_grad=True)
    F.sigmoid_cross_entropy(v, t).backward()
    numpy.testing.assert_allclose(v.grad, (s - t) / 4, rtol=RTOL_F32, atol=ATOL_F32)
    check_backward(F.sigmoid_cross_entropy, (x.astype(numpy.float64), t.astype(numpy.float64)),
                   rng=rng)


def test_losses_are_stable_for_huge_logits():
    x = numpy.array([[1000.0, -1000.0]], dtype=numpy.float32)
    t = numpy.array([[0.0, 1.0]], dtype=numpy.float32)
    with numpy.errstate(over="raise", invalid="raise", divide="raise"):
        assert float(F.softmax_cross_entropy(x, t).data) == pytest.approx(2000.0)
        assert float(F.sigmoid_cross_entropy(x, t).data) == pytest.approx(2000.0)


def test_loss_shape_error():
    with pytest.raises(ShapeError, match="target shape"):
        F.mse(numpy.zeros((2, 3), numpy.float32), numpy.zeros((2, 4), numpy.float32))


def test_losses_against_torch(torch, rng):
    N, C = 5, 6
    x = (rng.standard_normal((N, C, 3, 2)) * 2).astype(numpy.float32)
    labels = rng.integers(0, C, (N, 3, 2))
    t = numpy.moveaxis(numpy.eye(C, dtype=numpy.float32)[labels], -1, 1)
    tf = torch.nn.functional
    cases = [
        (F.softmax_cross_entropy, x, t,
         lambda tx: tf.cross_entropy(tx, torch.tensor(labels), reduction="sum") / N),
        (F.mse, x, t, lambda tx: 0.5 * tf.mse_loss(tx, torch.tensor(t), reduction="sum") / N),
        (F.sigmoid_cross_entropy, x, t,
         lambda tx: tf.binary_cross_entropy_with_logits(tx, torch.tensor(t), reduction="sum") / N),
    ]
    for ours, a, target, theirs in cases:
        v = Variable(a, requires_grad=True)
        loss = ours(v, target)
        loss.backward()
        tx = torch.tensor(a, requires_grad=True)
        tloss = theirs(tx)
        tloss.backward()
        assert float(loss.data) == pytest.approx(float(tloss.detach()), rel=RTOL_TORCH)
        numpy.testing.assert_allclose(v.grad, tx.grad.numpy(), rtol=RTOL_TORCH, atol=ATOL_F32)
