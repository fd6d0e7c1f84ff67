"""Pooling: naive-loop oracle (float64), finite differences, torch, N2D2's padding rules."""
import numpy
import pytest

import _reference_conv as ref  # tests/functions is on sys.path (no __init__.py, rootdir mode)
import n2d2py.functions as F
from n2d2py.autograd import Variable, check_backward
from n2d2py.errors import ShapeError

ATOL_F64 = 1e-12
RTOL_F32 = 1e-5

# x shape, kernel, stride, padding (t, b, l, r), ceil_mode
POOL_CASES = [
    ((2, 3, 8, 8), (2, 2), (2, 2), (0, 0, 0, 0), False),
    ((2, 3, 7, 9), (3, 3), (2, 2), (1, 1, 1, 1), False),   # overlapping windows
    ((2, 2, 7, 6), (3, 2), (1, 2), (1, 0, 0, 1), False),   # non-square, asymmetric padding
    ((1, 2, 7, 7), (2, 2), (2, 2), (0, 0, 0, 0), True),    # ceil_mode overhang
    ((1, 2, 8, 7), (3, 3), (2, 2), (1, 1, 1, 1), True),
    ((1, 2, 6, 6), (3, 3), (3, 3), (2, 2, 2, 2), False),   # padding > k/2 (N2D2 allows)
    ((2, 3, 8, 7), (1, 1), (2, 2), (0, 0, 0, 0), False),   # subsampling (ResNet shortcut)
]


def _id(case):
    return "x{}-k{}-s{}-p{}-ceil{}".format(*case).replace(" ", "")


def _np(a):
    return a.get() if hasattr(a, "get") else numpy.asarray(a)


@pytest.mark.parametrize("case", POOL_CASES, ids=_id)
def test_max_pool2d_forward(xp, rng, case):
    x_shape, k, s, p, ceil = case
    x = rng.standard_normal(x_shape)
    y = F.max_pool2d(xp.asarray(x), k, s, p, ceil)
    numpy.testing.assert_allclose(_np(y.data), ref.pool2d(x, "max", k, s, p, ceil), atol=ATOL_F64)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", POOL_CASES, ids=_id)
def test_avg_pool2d_forward(xp, rng, case, count_include_pad):
    x_shape, k, s, p, ceil = case
    x = rng.standard_normal(x_shape)
    y = F.avg_pool2d(xp.asarray(x), k, s, p, ceil, count_include_pad)
    want = ref.pool2d(x, "avg", k, s, p, ceil, count_include_pad)
    numpy.testing.assert_allclose(_np(y.data), want, atol=ATOL_F64)


def test_avg_pool2d_counts_padding_like_n2d2():
    """N2D2 divides by kH*kW even where the window covers padding."""
    y = F.avg_pool2d(numpy.ones((1, 1, 2, 2)), 2, 2, 1)
    numpy.testing.assert_allclose(y.data, numpy.full((1, 1, 2, 2), 0.25))
    y = F.avg_pool2d(numpy.ones((1, 1, 2, 2)), 2, 2, 1, count_include_pad=False)
    numpy.testing.assert_allclose(y.data, numpy.ones((1, 1, 2, 2)))


@pytest.mark.parametrize("case", POOL_CASES, ids=_id)
def test_pool_backward_finite_differences(rng, case):
    x_shape, k, s, p, ceil = case
    x = rng.standard_normal((1,) + x_shape[1:])  # distinct values: no ties under eps
    check_backward(lambda x: F.max_pool2d(x, k, s, p, ceil), (x,), rng=rng)
    for include in (True, False):
        check_backward(lambda x: F.avg_pool2d(x, k, s, p, ceil, include), (x,), rng=rng)


def test_max_pool2d_ties_go_to_first_in_window_order():
    x = numpy.zeros((1, 1, 2, 4))
    x[0, 0, 1, 0] = x[0, 0, 0, 1] = 5.0   # first window: (0, 1) comes before (1, 0)
    xv = Variable(x, True)
    F.max_pool2d(xv, 2, 2).backward(numpy.array([[[[1.0, 2.0]]]]))
    want = numpy.zeros_like(x)
    want[0, 0, 0, 1] = 1.0
    want[0, 0, 0, 2] = 2.0  # second window all zeros: its first cell takes the gradient
    numpy.testing.assert_array_equal(xv.grad, want)


def test_max_pool2d_padding_never_wins():
    x = -numpy.ones((1, 1, 2, 2))
    y = F.max_pool2d(x, 2, 1, 1)
    numpy.testing.assert_array_equal(y.data, -numpy.ones((1, 1, 3, 3)))


def test_global_pools(xp, rng):
    x = rng.standard_normal((2, 3, 4, 5))
    numpy.testing.assert_allclose(_np(F.global_avg_pool2d(xp.asarray(x)).data),
                                  x.mean(axis=(2, 3))[:, :, None, None], atol=ATOL_F64)
    numpy.testing.assert_allclose(_np(F.global_max_pool2d(xp.asarray(x)).data),
                                  x.max(axis=(2, 3))[:, :, None, None], atol=ATOL_F64)
    check_backward(F.global_avg_pool2d, (x,), rng=rng)
    check_backward(F.global_max_pool2d, (x,), rng=rng)


def test_global_max_pool2d_ties_first():
    xv = Variable(numpy.ones((1, 1, 2, 2)), True)
    F.global_max_pool2d(xv).backward(numpy.full((1, 1, 1, 1), 3.0))
    numpy.testing.assert_array_equal(xv.grad, [[[[3.0, 0.0], [0.0, 0.0]]]])


# -- channel_pool2d (N2D2 Pool with a non one-to-one Mapping) ------------------------------

MASK = numpy.array([[1, 1, 0, 0],
                    [0, 1, 1, 1],
                    [1, 1, 1, 1],
                    [0, 0, 0, 1],
                    [0, 0, 0, 0]], dtype=bool)  # the last output is connected to nothing


@pytest.mark.parametrize("kind", ["Max", "Average"])
@pytest.mark.parametrize("kernel, stride, pads", [((2, 2), (2, 2), (0, 0, 0, 0)),
                                                  ((3, 2), (1, 2), (1, 1, 0, 1))])
def test_channel_pool2d(xp, rng, kind, kernel, stride, pads):
    x = rng.standard_normal((2, 4, 6, 5))
    y = F.channel_pool2d(xp.asarray(x), xp.asarray(MASK), kind, kernel, stride, pads)
    want = ref.channel_pool2d(x, MASK, kind.lower(), kernel, stride, pads)
    numpy.testing.assert_allclose(_np(y.data), want, atol=ATOL_F64)
    check_backward(lambda x: F.channel_pool2d(x, MASK, kind, kernel, stride, pads),
                   (x[:1],), rng=rng)


def test_channel_pool2d_full_mask_pools_across_all_channels(rng):
    """N2D2 Pool without a Mapping: every output sees every channel."""
    x = rng.standard_normal((2, 3, 4, 4))
    y = F.channel_pool2d(x, numpy.ones((2, 3), bool), "Max", 2, 2)
    want = F.max_pool2d(x, 2, 2).data.max(axis=1, keepdims=True)
    numpy.testing.assert_allclose(y.data, numpy.concatenate([want, want], axis=1))


def test_channel_pool2d_identity_mask_equals_plain_pool(rng):
    x = rng.standard_normal((2, 3, 6, 6))
    eye = numpy.eye(3, dtype=bool)
    numpy.testing.assert_allclose(F.channel_pool2d(x, eye, "Average", 3, 2, 1).data,
                                  F.avg_pool2d(x, 3, 2, 1).data, atol=ATOL_F64)


# -- torch ---------------------------------------------------------------------------------

TORCH_CASES = [((4, 3, 9, 9), 3, 2, 1, False), ((4, 3, 9, 8), 2, 2, 0, True),
               ((4, 3, 8, 8), 3, 2, 1, True), ((4, 3, 7, 7), (3, 2), (2, 1), (1, 0), True)]


@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: str(c).replace(" ", ""))
@pytest.mark.parametrize("op", ["max", "avg_incl", "avg_excl"])
def test_pool_matches_torch_float32(torch, rng, case, op):
    x_shape, k, s, p, ceil = case
    x = rng.standard_normal(x_shape).astype(numpy.float32)
    xv, xt = Variable(x, True), torch.tensor(x, requires_grad=True)
    if op == "max":
        y, yt = F.max_pool2d(xv, k, s, p, ceil), torch.nn.functional.max_pool2d(xt, k, s, p, 1, ceil)
    else:
        incl = op == "avg_incl"
        y = F.avg_pool2d(xv, k, s, p, ceil, incl)
        yt = torch.nn.functional.avg_pool2d(xt, k, s, p, ceil, incl)
    gy = rng.standard_normal(y.shape).astype(numpy.float32)
    y.backward(gy)
    yt.backward(torch.tensor(gy))
    for a, t in ((y.data, yt.detach().numpy()), (xv.grad, xt.grad.numpy())):
        assert a.dtype == numpy.float32 and a.shape == t.shape
        numpy.testing.assert_allclose(a, t, rtol=0, atol=RTOL_F32 * max(numpy.abs(t).max(), 1.0))


# -- errors --------------------------------------------------------------------------------

def test_pool_errors_name_shapes():
    with pytest.raises(ShapeError, match=r"\(3, 4, 4\)"):
        F.max_pool2d(numpy.zeros((3, 4, 4)), 2)
    with pytest.raises(ShapeError, match="too small"):
        F.avg_pool2d(numpy.zeros((1, 1, 2, 2)), 3)
    with pytest.raises(ShapeError, match=r"mask must be \(O, C=3\).*\(2, 4\)"):
        F.channel_pool2d(numpy.zeros((1, 3, 4, 4)), numpy.ones((2, 4), bool), "Max", 2)
    with pytest.raises(ShapeError, match="kind"):
        F.channel_pool2d(numpy.zeros((1, 3, 4, 4)), numpy.ones((2, 3), bool), "Median", 2)
    with pytest.raises(ShapeError, match=">= 0"):
        F.max_pool2d(numpy.zeros((1, 1, 4, 4)), 2, padding=-1)
