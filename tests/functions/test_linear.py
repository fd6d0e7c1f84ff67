"""linear (N2D2 Fc): naive reference in N2D2's x-fastest order, finite differences, torch."""
import numpy
import pytest

import n2d2py.functions as F
from n2d2py.autograd import Variable, check_backward
from n2d2py.errors import ShapeError

ATOL_F64 = 1e-12
RTOL_F32 = 1e-5


def _naive_fc(x, W, b):
    """y[n, o] = b[o] + sum_{c, y, x} W[o, c*H*W + y*W + x] * in[n, c, y, x] (N2D2's order)."""
    N, C, H, Wd = x.shape
    out = numpy.tile(b, (N, 1)).astype(numpy.float64)
    for c in range(C):
        for i in range(H):
            for j in range(Wd):
                out += x[:, c, i, j][:, None] * W[None, :, c * H * Wd + i * Wd + j]
    return out


def test_linear_forward_flattens_x_fastest(xp, rng):
    x, W, b = rng.standard_normal((3, 2, 4, 5)), rng.standard_normal((7, 40)), rng.standard_normal(7)
    y = F.linear(xp.asarray(x), xp.asarray(W), xp.asarray(b))
    data = y.data.get() if hasattr(y.data, "get") else y.data
    numpy.testing.assert_allclose(data, _naive_fc(x, W, b), atol=ATOL_F64)


@pytest.mark.parametrize("x_shape", [(2, 6), (2, 2, 3, 1)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_backward_finite_differences(rng, x_shape, with_bias):
    x, W, b = rng.standard_normal(x_shape), rng.standard_normal((4, 6)), rng.standard_normal(4)
    if with_bias:
        check_backward(F.linear, (x, W, b), rng=rng)
    else:
        check_backward(F.linear, (x, W), rng=rng)


def test_linear_matches_torch_float32(torch, rng):
    x = rng.standard_normal((16, 3, 5, 5)).astype(numpy.float32)
    W = rng.standard_normal((10, 75)).astype(numpy.float32)
    b = rng.standard_normal(10).astype(numpy.float32)
    gy = rng.standard_normal((16, 10)).astype(numpy.float32)
    xv, Wv, bv = Variable(x, True), Variable(W, True), Variable(b, True)
    y = F.linear(xv, Wv, bv)
    y.backward(gy)
    xt, Wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, W, b))
    yt = torch.nn.functional.linear(xt.flatten(1), Wt, bt)
    yt.backward(torch.tensor(gy))
    for a, t in ((y.data, yt), (xv.grad, xt.grad), (Wv.grad, Wt.grad), (bv.grad, bt.grad)):
        t = t.detach().numpy()
        assert a.dtype == numpy.float32 and a.shape == t.shape
        numpy.testing.assert_allclose(a, t, rtol=0, atol=RTOL_F32 * max(numpy.abs(t).max(), 1.0))


def test_linear_wrong_input_size_names_shapes():
    with pytest.raises(ShapeError, match=r"\(2, 3, 4, 4\) flattens to 48.*\(5, 50\) expects 50"):
        F.linear(numpy.zeros((2, 3, 4, 4)), numpy.zeros((5, 50)))
    with pytest.raises(ShapeError, match="bias"):
        F.linear(numpy.zeros((2, 3)), numpy.zeros((5, 3)), numpy.zeros(4))
