"""conv2d / deconv2d: naive-loop oracle (float64), finite differences, torch (float32/float64)."""
import numpy
import pytest

import n2d2py.functions as F
from n2d2py.autograd import Variable, check_backward
from n2d2py.errors import ShapeError
from n2d2py.functions import _im2col

import _reference_conv as ref  # tests/functions is on sys.path (no __init__.py, rootdir mode)

ATOL_F64 = 1e-10        # float64 forward against the naive loops: only summation-order error
RTOL_F32 = 1e-5         # float32 against torch, relative to the largest magnitude
RTOL_F64_TORCH = 1e-10

# x shape, W shape, stride, padding (t, b, l, r), dilation, groups
CONV_CASES = [
    ((2, 3, 7, 6), (4, 3, 3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    ((2, 3, 7, 6), (4, 3, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    ((2, 3, 8, 9), (5, 3, 3, 2), (2, 1), (1, 1, 2, 2), (1, 2), 1),   # non-square kernel
    ((2, 3, 9, 8), (4, 3, 2, 3), (2, 3), (0, 1, 2, 0), (1, 1), 1),   # asymmetric padding
    ((1, 4, 9, 8), (6, 2, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 2),   # groups
    ((2, 4, 9, 8), (4, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 4),   # depthwise
    ((2, 4, 9, 8), (8, 1, 3, 3), (3, 2), (2, 0, 1, 2), (2, 2), 4),   # depthwise x2, dilated
    ((2, 3, 7, 7), (4, 3, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),   # 1x1
    ((2, 3, 7, 7), (4, 3, 1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1),   # 1x1 stride 2
    ((2, 3, 8, 8), (4, 3, 3, 3), (1, 1), (-1, 0, 1, -2), (1, 1), 1),  # negative = crop
    ((2, 2, 5, 5), (6, 2, 5, 5), (1, 1), (0, 0, 0, 0), (1, 1), 1),   # LeNet C5: 1x1 output
]


def _case_id(case):
    return "x{}-W{}-s{}-p{}-d{}-g{}".format(*case).replace(" ", "")


def _arrays(rng, x_shape, w_shape, n_out):
    return (rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(n_out))


@pytest.mark.parametrize("case", CONV_CASES, ids=_case_id)
def test_conv2d_forward_matches_naive_loops(xp, rng, case):
    x_shape, w_shape, stride, pads, dilation, groups = case
    x, W, b = _arrays(rng, x_shape, w_shape, w_shape[0])
    y = F.conv2d(xp.asarray(x), xp.asarray(W), xp.asarray(b), stride, pads, dilation, groups)
    want = ref.conv2d(x, W, b, stride, pads, dilation, groups)
    assert y.shape == want.shape
    numpy.testing.assert_allclose(_np(y.data), want, atol=ATOL_F64, rtol=0)


@pytest.mark.parametrize("case", CONV_CASES, ids=_case_id)
def test_conv2d_backward_finite_differences(rng, case):
    x_shape, w_shape, stride, pads, dilation, groups = case
    x, W, b = _arrays(rng, (1,) + x_shape[1:], w_shape, w_shape[0])
    check_backward(lambda x, W, b: F.conv2d(x, W, b, stride, pads, dilation, groups), (x, W, b),
                   rng=rng)


def test_conv2d_chunked_batch_equals_whole_batch(rng, monkeypatch):
    """A tiny chunk budget forces one item per chunk (and a short last chunk)."""
    x, W, b = _arrays(rng, (5, 3, 6, 7), (4, 3, 3, 3), 4)
    gy = rng.standard_normal((5, 4, 6, 7))
    outs = []
    for budget in (1, 1 << 30):
        monkeypatch.setattr(_im2col, "CHUNK_BYTES", budget)
        xv, Wv = Variable(x, True), Variable(W, True)
        y = F.conv2d(xv, Wv, b, 1, 1)
        y.backward(gy)
        outs.append((y.data, xv.grad, Wv.grad))
    for a, c in zip(*outs):
        numpy.testing.assert_allclose(a, c, atol=ATOL_F64)
    numpy.testing.assert_allclose(outs[0][0], ref.conv2d(x, W, b, (1, 1), (1,) * 4, (1, 1), 1),
                                  atol=ATOL_F64)


def test_conv2d_keeps_float32(rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(numpy.float32)
    W = rng.standard_normal((4, 3, 3, 3)).astype(numpy.float32)
    xv, Wv = Variable(x, True), Variable(W, True)
    y = F.conv2d(xv, Wv, padding=1)
    y.backward(numpy.ones(y.shape, numpy.float32))
    assert y.dtype == xv.grad.dtype == Wv.grad.dtype == numpy.float32


# -- deconv2d ------------------------------------------------------------------------------

# x shape, W shape (C_in, O/groups, kH, kW), stride, padding (t, b, l, r), dilation, groups
DECONV_CASES = [
    ((2, 3, 4, 5), (3, 4, 3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    ((2, 3, 4, 5), (3, 4, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1),
    ((2, 4, 4, 3), (4, 2, 3, 2), (2, 3), (0, 1, 1, 0), (2, 1), 2),
    ((1, 4, 5, 5), (4, 1, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 4),   # depthwise
    ((2, 2, 3, 3), (2, 3, 5, 5), (1, 1), (3, 3, 3, 3), (1, 1), 1),   # padding > k/2
]


@pytest.mark.parametrize("case", DECONV_CASES, ids=_case_id)
def test_deconv2d_forward_matches_naive_scatter(xp, rng, case):
    x_shape, w_shape, stride, pads, dilation, groups = case
    x, W, b = _arrays(rng, x_shape, w_shape, w_shape[1] * groups)
    y = F.deconv2d(xp.asarray(x), xp.asarray(W), xp.asarray(b), stride, pads, dilation, groups)
    want = ref.deconv2d(x, W, b, stride, pads, dilation, groups)
    assert y.shape == want.shape
    numpy.testing.assert_allclose(_np(y.data), want, atol=ATOL_F64, rtol=0)


@pytest.mark.parametrize("case", DECONV_CASES, ids=_case_id)
def test_deconv2d_backward_finite_differences(rng, case):
    x_shape, w_shape, stride, pads, dilation, groups = case
    x, W, b = _arrays(rng, (1,) + x_shape[1:], w_shape, w_shape[1] * groups)
    check_backward(lambda x, W, b: F.deconv2d(x, W, b, stride, pads, dilation, groups),
                   (x, W, b), rng=rng)


def test_deconv2d_size_is_n2d2s():
    """N2D2 Deconv: out = in*s + (d(k-1)+1) - 2p - s."""
    x, W = numpy.zeros((1, 2, 7, 5)), numpy.zeros((2, 3, 4, 3))
    y = F.deconv2d(x, W, stride=(3, 2), padding=(1, 2), dilation=(1, 2))
    assert y.shape == (1, 3, 7 * 3 + 4 - 2 - 3, 5 * 2 + 5 - 4 - 2)


# -- torch ---------------------------------------------------------------------------------

def _symmetric(pads):
    return pads[0] == pads[1] and pads[2] == pads[3] and min(pads) >= 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", [c for c in CONV_CASES if _symmetric(c[3])], ids=_case_id)
def test_conv2d_matches_torch(torch, rng, case, dtype):
    x_shape, w_shape, stride, pads, dilation, groups = case
    arrays = [a.astype(dtype) for a in _arrays(rng, x_shape, w_shape, w_shape[0])]
    padding = (pads[0], pads[2])
    ours = _run(F.conv2d, arrays, stride, padding, dilation, groups)
    theirs = _run_torch(torch, lambda x, W, b: torch.nn.functional.conv2d(
        x, W, b, stride, padding, dilation, groups), arrays)
    _assert_close_all(ours, theirs, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", [c for c in DECONV_CASES if _symmetric(c[3])], ids=_case_id)
def test_deconv2d_matches_torch(torch, rng, case, dtype):
    x_shape, w_shape, stride, pads, dilation, groups = case
    arrays = [a.astype(dtype) for a in _arrays(rng, x_shape, w_shape, w_shape[1] * groups)]
    padding = (pads[0], pads[2])
    ours = _run(F.deconv2d, arrays, stride, padding, dilation, groups)
    theirs = _run_torch(torch, lambda x, W, b: torch.nn.functional.conv_transpose2d(
        x, W, b, stride, padding, 0, groups, dilation), arrays)
    _assert_close_all(ours, theirs, dtype)


def test_resnet_like_layer_matches_torch_float32(torch, rng):
    """A realistic float32 layer (batch 16, 16->32 3x3 stride 2) through every GEMM route."""
    arrays = [a.astype(numpy.float32) for a in _arrays(rng, (16, 16, 16, 16), (32, 16, 3, 3), 32)]
    ours = _run(F.conv2d, arrays, 2, 1, 1, 1)
    theirs = _run_torch(torch, lambda x, W, b: torch.nn.functional.conv2d(x, W, b, 2, 1), arrays)
    _assert_close_all(ours, theirs, "float32")


def _run(fn, arrays, *opts):
    xv, Wv, bv = (Variable(a, True) for a in arrays)
    y = fn(xv, Wv, bv, *opts)
    gy = numpy.cos(numpy.arange(y.size)).reshape(y.shape).astype(y.dtype)
    y.backward(gy)
    return y.data, xv.grad, Wv.grad, bv.grad


def _run_torch(torch, fn, arrays):
    xt, Wt, bt = (torch.tensor(a, requires_grad=True) for a in arrays)
    y = fn(xt, Wt, bt)
    gy = numpy.cos(numpy.arange(y.numel())).reshape(tuple(y.shape)).astype(arrays[0].dtype)
    y.backward(torch.tensor(gy))
    return y.detach().numpy(), xt.grad.numpy(), Wt.grad.numpy(), bt.grad.numpy()


def _assert_close_all(ours, theirs, dtype):
    rtol = RTOL_F32 if dtype == "float32" else RTOL_F64_TORCH
    for name, a, t in zip(("y", "gx", "gW", "gb"), ours, theirs):
        assert a.dtype == t.dtype, name
        # relative to the largest value, or to 1 (the scale of the summed terms) when a
        # gradient is small through cancellation (gb of a zero-mean gy)
        numpy.testing.assert_allclose(a, t, rtol=0, atol=rtol * max(numpy.abs(t).max(), 1.0),
                                      err_msg=name)


# -- errors --------------------------------------------------------------------------------

def test_conv2d_wrong_channel_count_names_shapes():
    with pytest.raises(ShapeError, match=r"\(2, 5, 8, 8\).*5 channels.*\(4, 3, 3, 3\)"):
        F.conv2d(numpy.zeros((2, 5, 8, 8)), numpy.zeros((4, 3, 3, 3)))


def test_conv2d_groups_must_divide_outputs():
    with pytest.raises(ShapeError, match="groups=2"):
        F.conv2d(numpy.zeros((1, 4, 5, 5)), numpy.zeros((3, 2, 3, 3)), groups=2)


def test_conv2d_input_too_small():
    with pytest.raises(ShapeError, match="too small"):
        F.conv2d(numpy.zeros((1, 1, 2, 2)), numpy.zeros((1, 1, 3, 3)))


def test_conv2d_bad_bias_and_rank():
    with pytest.raises(ShapeError, match="bias"):
        F.conv2d(numpy.zeros((1, 1, 5, 5)), numpy.zeros((2, 1, 3, 3)), numpy.zeros(3))
    with pytest.raises(ShapeError, match=r"\(N, C, H, W\)"):
        F.conv2d(numpy.zeros((1, 5, 5)), numpy.zeros((2, 1, 3, 3)))
    with pytest.raises(ShapeError, match="padding"):
        F.conv2d(numpy.zeros((1, 1, 5, 5)), numpy.zeros((2, 1, 3, 3)), padding=(1, 2, 3))


def test_deconv2d_wrong_channel_count_names_shapes():
    with pytest.raises(ShapeError, match=r"\(1, 3, 4, 4\).*3 channels.*\(2, 5, 3, 3\)"):
        F.deconv2d(numpy.zeros((1, 3, 4, 4)), numpy.zeros((2, 5, 3, 3)))


def _np(a):
    return a.get() if hasattr(a, "get") else numpy.asarray(a)


@pytest.mark.parametrize("case", CONV_CASES, ids=_case_id)
def test_both_input_gradient_routes_agree(rng, case):
    """_grad_input picks col2im or correlation by cost; each must be the true adjoint:
    <conv(x), gy> == <x, gx> for random x, gy."""
    from n2d2py.functions import conv
    x_shape, w_shape, stride, pads, dilation, groups = case
    x, W = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    y = ref.conv2d(x, W, None, stride, pads, dilation, groups)
    gy = rng.standard_normal(y.shape)
    for route in (conv._grad_input_col2im, conv._grad_input_correlate):
        gx = route(numpy, gy, W, x_shape[2:], stride, pads, dilation, groups)
        assert gx.shape == x.shape
        numpy.testing.assert_allclose(numpy.sum(x * gx), numpy.sum(y * gy), rtol=1e-10)
