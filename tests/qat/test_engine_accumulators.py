"""The integer engine's accumulators (``qat/engine.py``) run on the float BLAS kernels: they must
equal the exact int64 sums bit for bit, in the float32 regime (every partial sum < 2^24), the
float64 one, and at the 2^24 boundary where the engine has to switch."""
import numpy
import pytest

from n2d2py.qat import engine

# x shape, W shape, stride, padding (h, w), dilation, groups
CASES = [
    ((3, 4, 9, 8), (6, 4, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((2, 4, 11, 10), (6, 2, 3, 3), (2, 2), (1, 0), (1, 1), 2),     # groups, stride
    ((2, 8, 10, 9), (8, 1, 3, 3), (1, 1), (1, 1), (1, 1), 8),      # depthwise
    ((2, 8, 10, 9), (8, 1, 3, 3), (2, 2), (1, 1), (1, 1), 8),      # depthwise, stride 2
    ((2, 4, 12, 12), (8, 1, 3, 3), (1, 2), (2, 1), (2, 2), 4),     # channel multiplier 2
    ((2, 3, 13, 13), (5, 3, 5, 5), (1, 1), (0, 0), (1, 1), 1),     # LeNet-like 5x5
    ((60, 16, 5, 5), (7, 16, 5, 5), (1, 1), (0, 0), (1, 1), 1),    # 1x1 output, > CHUNK items
]


def exact_conv(x, W, stride, padding, dilation, groups):
    """int64 reference: one einsum per kernel offset, integer arithmetic only."""
    x, W = x.astype(numpy.int64), W.astype(numpy.int64)
    N, C, H, Wd = x.shape
    O, Cg, kh, kw = W.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    xpad = numpy.zeros((N, C, H + 2 * ph, Wd + 2 * pw), numpy.int64)
    xpad[:, :, ph:ph + H, pw:pw + Wd] = x
    OH = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    OW = (Wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = numpy.zeros((N, groups, O // groups, OH, OW), numpy.int64)
    Wg = W.reshape(groups, O // groups, Cg, kh, kw)
    for i in range(kh):
        for j in range(kw):
            win = xpad[:, :, i * dh:i * dh + sh * (OH - 1) + 1:sh,
                       j * dw:j * dw + sw * (OW - 1) + 1:sw]
            out += numpy.einsum("goc,ngchw->ngohw", Wg[:, :, :, i, j],
                                win.reshape(N, groups, Cg, OH, OW))
    return out.reshape(N, O, OH, OW)


def node(W, stride, padding, dilation, groups):
    return engine.IntegerConv("conv", ["env"], (W.shape[0], 1, 1), 255, 1.0, W, stride, padding,
                              dilation, groups, rescaling=None)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("w_max", [127, 2 ** 15], ids=["float32", "float64"])
def test_accumulators_equal_int64_sums(rng, case, w_max):
    x_shape, w_shape, stride, padding, dilation, groups = case
    x = rng.integers(0, 256, x_shape).astype(numpy.int32)
    W = rng.integers(-w_max, w_max + 1, w_shape)
    n = node(W, stride, padding, dilation, groups)
    want = exact_conv(x, W, stride, padding, dilation, groups)
    acc = n.accumulate_exact(x)
    expected_dtype = numpy.float32 if 255 * n.fan < 2 ** 24 else numpy.float64
    assert acc.dtype == expected_dtype
    assert numpy.array_equal(n.accumulate(x), want)


def test_float32_regime_edge_is_exact(monkeypatch):
    """At the top of float32's exact range the sums stay float32 and exact; one step beyond,
    the engine switches to float64, where float32 would have rounded the sum."""
    C, k = 16, 3
    x = numpy.full((2, C, 5, 5), 255, numpy.int32)
    w = (2 ** 24 - 1) // (255 * C * k * k)      # largest uniform weight keeping 255·Σ|W| < 2^24
    W = numpy.full((4, C, k, k), w)
    n = node(W, (1, 1), (1, 1), (1, 1), 1)
    assert n.accumulate_exact(x).dtype == numpy.float32
    assert numpy.array_equal(n.accumulate(x), exact_conv(x, W, (1, 1), (1, 1), (1, 1), 1))
    # 255·65794 + 1·1 = 2^24 + 255: odd, above 2^24, not a float32
    x = numpy.stack([numpy.full((3, 3), 255), numpy.ones((3, 3))])[None].astype(numpy.int32)
    n = node(numpy.array([[65794, 1]]).reshape(1, 2, 1, 1), (1, 1), (0, 0), (1, 1), 1)
    assert n.accumulate_exact(x).dtype == numpy.float64
    assert (n.accumulate(x) == 2 ** 24 + 255).all()
    monkeypatch.setattr(engine, "exact_dtype", lambda xp, x, fan: numpy.float32)
    assert not (n.accumulate(x) == 2 ** 24 + 255).any()


def test_fc_accumulators_equal_int64_sums(rng):
    x = rng.integers(0, 256, (70, 16, 5, 5)).astype(numpy.int32)
    for w_max in (100, 2 ** 14):
        W = rng.integers(-w_max, w_max + 1, (10, 16 * 25))
        fc = engine.IntegerFc("fc", ["env"], (10, 1, 1), 255, 1.0, W, rescaling=None)
        want = x.reshape(70, -1).astype(numpy.int64) @ W.T.astype(numpy.int64)
        assert numpy.array_equal(fc.accumulate(x).reshape(70, 10), want)
