"""batch_norm: N2D2 BatchNorm semantics against a naive float64
reference, finite differences and torch.nn.functional.batch_norm."""
import numpy
import pytest

import n2d2py.functions as F
from n2d2py.autograd import Variable, check_backward
from n2d2py.backend import asnumpy
from n2d2py.errors import ShapeError

RTOL_F32 = 1e-5
ATOL_F32 = 1e-5
RTOL_TORCH = 1e-5
ATOL_TORCH = 1e-5
EPS = 1e-5


def _naive_batch_stats(x):
    """Per channel, by explicit loops over channels: (mean, biased var, unbiased var)."""
    stats = []
    for c in range(x.shape[1]):
        v = x[:, c].astype(numpy.float64).ravel()
        m = sum(v) / len(v)
        ss = sum((a - m) ** 2 for a in v)
        stats.append((m, ss / len(v), ss / (len(v) - 1)))
    return [numpy.array(s) for s in zip(*stats)]


def _inputs(rng, shape=(4, 3, 5, 2)):
    x = (rng.standard_normal(shape) * 2 + 0.7).astype(numpy.float32)
    c = shape[1]
    scale = rng.uniform(0.5, 1.5, c).astype(numpy.float32)
    bias = rng.standard_normal(c).astype(numpy.float32)
    mean = rng.standard_normal(c).astype(numpy.float32)
    var = rng.uniform(0.5, 2.0, c).astype(numpy.float32)
    return x, scale, bias, mean, var


def _view(a):
    return a.reshape(1, -1, 1, 1)


def test_training_forward_and_running_update(xp, rng):
    x, scale, bias, mean, var = _inputs(rng)
    m = 0.1
    mu, var_b, var_u = _naive_batch_stats(x)
    expected_y = _view(scale) * (x - _view(mu)) / numpy.sqrt(_view(var_b) + EPS) + _view(bias)
    expected_mean = m * mu + (1 - m) * mean
    expected_var = m * var_u + (1 - m) * var       # unbiased batch variance in the update
    d_mean, d_var = xp.asarray(mean), xp.asarray(var)
    y = F.batch_norm(xp.asarray(x), xp.asarray(scale), xp.asarray(bias), d_mean, d_var,
                     eps=EPS, training=True, momentum=m)
    numpy.testing.assert_allclose(asnumpy(y.data), expected_y, rtol=RTOL_F32, atol=ATOL_F32)
    numpy.testing.assert_allclose(asnumpy(d_mean), expected_mean, rtol=RTOL_F32, atol=ATOL_F32)
    numpy.testing.assert_allclose(asnumpy(d_var), expected_var, rtol=RTOL_F32, atol=ATOL_F32)


def test_running_variance_from_zero_after_two_batches(rng):
    """N2D2 starts the running variance at 0; two updates with m = 0.5 give a known mix."""
    c = 2
    mean, var = numpy.zeros(c, numpy.float32), numpy.zeros(c, numpy.float32)
    batches = [rng.standard_normal((3, c, 2, 2)).astype(numpy.float32) for _ in range(2)]
    for b in batches:
        F.batch_norm(b, numpy.ones(c, numpy.float32), numpy.zeros(c, numpy.float32), mean, var,
                     training=True, momentum=0.5)
    (mu1, _, vu1), (mu2, _, vu2) = (_naive_batch_stats(b) for b in batches)
    numpy.testing.assert_allclose(mean, 0.5 * mu2 + 0.25 * mu1, rtol=RTOL_F32, atol=ATOL_F32)
    numpy.testing.assert_allclose(var, 0.5 * vu2 + 0.25 * vu1, rtol=RTOL_F32, atol=ATOL_F32)


@pytest.mark.parametrize("training, momentum", [(False, 0.1), (True, 0.0)],
                         ids=["inference", "freezing-trick"])
def test_running_statistics_path(xp, rng, training, momentum):
    """Inference, and training with MovingAverageMomentum=0, use the running stats unchanged."""
    x, scale, bias, mean, var = _inputs(rng)
    expected = (_view(scale).astype(numpy.float64) * (x - _view(mean)) / numpy.sqrt(_view(var) + EPS)
                + _view(bias))
    d_mean, d_var = xp.asarray(mean.copy()), xp.asarray(var.copy())
    y = F.batch_norm(xp.asarray(x), xp.asarray(scale), xp.asarray(bias), d_mean, d_var,
                     eps=EPS, training=training, momentum=momentum)
    numpy.testing.assert_allclose(asnumpy(y.data), expected, rtol=RTOL_F32, atol=ATOL_F32)
    numpy.testing.assert_array_equal(asnumpy(d_mean), mean)
    numpy.testing.assert_array_equal(asnumpy(d_var), var)


@pytest.mark.parametrize("shape", [(4, 3, 3, 2), (5, 4)], ids=["NCHW", "NC"])
@pytest.mark.parametrize("training, momentum", [(True, 0.1), (True, 0.0), (False, 0.1)],
                         ids=["batch-stats", "freezing-trick", "inference"])
def test_backward_finite_differences(rng, shape, training, momentum):
    x, scale, bias, mean, var = _inputs(rng, shape)
    mean, var = mean.astype(numpy.float64), var.astype(numpy.float64)

    def f(x, s, b):
        # fresh running arrays each call: finite differences must not see earlier updates
        return F.batch_norm(x, s, b, mean.copy(), var.copy(), EPS, training, momentum)

    check_backward(f, (x, scale, bias), rng=rng)


def test_freezing_gradient_is_per_channel_affine(rng):
    x, scale, bias, mean, var = _inputs(rng)
    v = Variable(x, requires_grad=True)
    gy = rng.standard_normal(x.shape).astype(numpy.float32)
    F.batch_norm(v, scale, bias, mean, var, EPS, training=True, momentum=0.0).backward(gy)
    numpy.testing.assert_allclose(v.grad, gy * _view(scale) / numpy.sqrt(_view(var) + EPS),
                                  rtol=RTOL_F32, atol=ATOL_F32)


@pytest.mark.parametrize("training", [True, False])
def test_against_torch(torch, rng, training):
    x, scale, bias, mean, var = _inputs(rng, (6, 4, 5, 3))
    gy = rng.standard_normal(x.shape).astype(numpy.float32)
    vs = [Variable(a, requires_grad=True) for a in (x, scale, bias)]
    our_mean, our_var = mean.copy(), var.copy()
    y = F.batch_norm(*vs, our_mean, our_var, eps=EPS, training=training, momentum=0.1)
    y.backward(gy)

    tx, ts, tb = (torch.tensor(a, requires_grad=True) for a in (x, scale, bias))
    t_mean, t_var = torch.tensor(mean), torch.tensor(var)
    ty = torch.nn.functional.batch_norm(tx, t_mean, t_var, ts, tb, training=training,
                                        momentum=0.1, eps=EPS)
    ty.backward(torch.tensor(gy))
    check = dict(rtol=RTOL_TORCH, atol=ATOL_TORCH)
    numpy.testing.assert_allclose(y.data, ty.detach().numpy(), **check)
    for ours, theirs in zip(vs, (tx, ts, tb)):
        numpy.testing.assert_allclose(ours.grad, theirs.grad.numpy(), **check)
    numpy.testing.assert_allclose(our_mean, t_mean.numpy(), **check)
    numpy.testing.assert_allclose(our_var, t_var.numpy(), **check)


def test_shape_errors_name_the_input(rng):
    x, scale, bias, mean, var = _inputs(rng)
    with pytest.raises(ShapeError, match="scale must have shape"):
        F.batch_norm(x, scale[:2], bias, mean, var)
    with pytest.raises(ShapeError, match="var must have shape"):
        F.batch_norm(x, scale, bias, mean, var[:1])


@pytest.mark.parametrize("clipping", [0.0, 6.0], ids=["relu", "relu6"])
@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (7, 5)], ids=["NCHW", "NC"])
@pytest.mark.parametrize("training, momentum, offset", [
    (True, 0.1, 0.7), (True, 0.1, 100.0), (True, 0.0, 0.7), (False, 0.1, 0.7)],
    ids=["batch-stats", "two-pass-stats", "freezing-trick", "inference"])
def test_fused_relu_is_relu_after_batch_norm(xp, rng, clipping, shape, training, momentum,
                                             offset):
    """``relu_clipping`` gives the bits of ``relu(batch_norm(...))``: output, every gradient
    and the running statistics (offset 100: means large against the spread take the two-pass
    statistics); the caller's output gradient is left as it was."""
    x, scale, bias, mean, var = _inputs(rng, shape)
    x = (x * 3 + offset - 0.7).astype(numpy.float32)
    x.flat[:3] = (-0.0, 0.0, 6.0)
    gy = rng.standard_normal(shape).astype(numpy.float32)
    results = []
    for fused in (False, True):
        vs = [Variable(xp.asarray(a), requires_grad=True) for a in (x, scale, bias)]
        stats = (xp.asarray(mean.copy()), xp.asarray(var.copy()))
        if fused:
            y = F.batch_norm(*vs, *stats, EPS, training, momentum, relu_clipping=clipping)
            assert y.creator.fast == (training and momentum > 0 and offset < 1)
        else:
            y = F.relu(F.batch_norm(*vs, *stats, EPS, training, momentum), clipping=clipping)
        g = xp.asarray(gy.copy())
        y.backward(g)
        numpy.testing.assert_array_equal(asnumpy(g), gy)
        results.append([asnumpy(a) for a in (y.data, *(v.grad for v in vs), *stats)])
    assert (results[1][0] == 0).any() and (results[1][0] > 0).any()
    if clipping:
        assert results[1][0].max() <= clipping
    for unfused, fused in zip(*results):
        numpy.testing.assert_array_equal(fused.view(numpy.int32), unfused.view(numpy.int32))


@pytest.mark.parametrize("clipping", [None, 6.0], ids=["plain", "relu6"])
def test_inference_pass_has_the_bits_of_the_recorded_one(xp, rng, clipping):
    """Running statistics with nothing recorded (one chunked pass, no x̂) give the same bits
    as with the graph recorded (x̂ saved for backward)."""
    x, scale, bias, mean, var = _inputs(rng, (6, 4, 7, 5))
    args = [xp.asarray(a) for a in (scale, bias, mean, var)]
    free = F.batch_norm(xp.asarray(x), *args, EPS, False, relu_clipping=clipping)
    recorded = F.batch_norm(Variable(xp.asarray(x), requires_grad=True), *args, EPS, False,
                            relu_clipping=clipping)
    assert free.creator is None and recorded.creator is not None
    numpy.testing.assert_array_equal(asnumpy(free.data).view(numpy.int32),
                                     asnumpy(recorded.data).view(numpy.int32))
