"""FracBits: interpolation between floor/ceil DoReFa quantizers, dQ/db by
finite differences, the STE on w, freezing, state files, and a size target reached within 2% by
training a few linear layers with n2d2py functions and SGD (constraints.py)."""
import math

import numpy
import pytest

import n2d2py.functions as F
from n2d2py.autograd import Parameter, Variable, check_backward
from n2d2py.quantizers import make_weight_quantizer
from n2d2py.cells import FcCell
from n2d2py.quantizers.constraints import constraint_loss, cost_summary
from n2d2py.quantizers.fracbits import FracBitsQuantize

ATOL = 1e-6


def dorefa(w, k):
    t = numpy.tanh(w)
    u = t / (2 * numpy.abs(t).max()) + 0.5
    return 2 * numpy.rint((2 ** k - 1) * u) / (2 ** k - 1) - 1


@pytest.mark.parametrize("b", [2.0, 3.3, 4.75, 7.0])
def test_forward_interpolates(rng, b):
    w = rng.standard_normal((6, 5)).astype(numpy.float32)
    y = FracBitsQuantize().apply(w, numpy.array([b], numpy.float32)).data
    f = math.floor(b)
    numpy.testing.assert_allclose(y, (f + 1 - b) * dorefa(w, f) + (b - f) * dorefa(w, f + 1),
                                  atol=1e-5)
    if b == int(b):
        numpy.testing.assert_allclose(y, dorefa(w, int(b)), atol=1e-6)  # exact at integer b


def test_bits_gradient_by_finite_differences(rng):
    w = rng.standard_normal((4, 6))
    check_backward(lambda b: FracBitsQuantize().apply(Variable(w), b), [numpy.array([3.4])])
    # with ApplyScaling the scale s is a constant in the backward (as SAT's in N2D2):
    # g_b = Σ g·(Q_{f+1} − Q_f)/s, not the finite difference of the rescaled output
    g = rng.standard_normal((4, 6))
    B = Variable(numpy.array([5.6]), requires_grad=True)
    fn = FracBitsQuantize(True, 4)
    fn.apply(Variable(w), B).backward(g)
    diff = dorefa(w, 6) - dorefa(w, 5)
    assert B.grad[0] == pytest.approx((g * diff).sum() / fn.scaling, rel=1e-6)


def test_weight_gradient_is_the_dorefa_ste(rng):
    w = rng.standard_normal((3, 7)).astype(numpy.float32)
    g = rng.standard_normal((3, 7)).astype(numpy.float32)
    W = Variable(w, requires_grad=True)
    FracBitsQuantize().apply(W, numpy.array([3.5], numpy.float32)).backward(g)
    m = numpy.abs(numpy.tanh(w)).max()
    numpy.testing.assert_allclose(W.grad, g / numpy.cosh(w) ** 2 / m, rtol=1e-5)


def test_scaling_gives_unit_variance_times_n(rng):
    w = rng.standard_normal((8, 4, 3, 3)).astype(numpy.float32)
    q = make_weight_quantizer("FracBits", {"Bits": "4.5", "ApplyScaling": "1"})
    y = q([Variable(w)])[0].data
    assert numpy.var(y, ddof=1) * 8 * 9 == pytest.approx(1.0, rel=1e-4)


def test_clamp_freeze_and_state(tmp_path, rng):
    q = make_weight_quantizer("FracBits", {"Bits": "9.5"})
    W = Parameter(rng.standard_normal((3, 3)).astype(numpy.float32))
    q([W])
    assert q.bits() == 8.0  # clamped into [BitsMin, BitsMax]
    q.bits_param.data[...] = 4.6
    q.export_state(str(tmp_path), "fc1")
    r = make_weight_quantizer("FracBits", {"Frozen": "1"})
    r.import_state(str(tmp_path), "fc1")
    assert r.parameters() == []
    r([W])
    assert r.bits() == 5.0 and r.range == 31


def _layer(name, parent, n_in, n_out, q, rng):
    cell = FcCell(name, [parent], nb_outputs=n_out, no_bias=True).build([(n_in, 1, 1)])
    cell.weights[0].data[...] = rng.standard_normal((n_out, n_in)) * math.sqrt(2 / n_in)
    cell.qweight = q
    return cell


def train_with_target(kind, keys, target, steps, lr_bits, rng):
    """Three Fc layers 16-32-32-4 on a random teacher; returns (cells, final size in bytes)."""
    dims = [16, 32, 32, 4]
    cells = [_layer(f"fc{i}", "env" if i == 0 else f"fc{i - 1}", dims[i], dims[i + 1],
                    make_weight_quantizer(kind, dict(keys, TargetSize=str(target))), rng)
             for i in range(3)]
    X = rng.standard_normal((128, 16)).astype(numpy.float32)
    teacher = rng.standard_normal((16, 4)).astype(numpy.float32)
    T = (X @ teacher).astype(numpy.float32)
    for _ in range(steps):
        h = Variable(X)
        for i, c in enumerate(cells):
            h = F.linear(h, c.qweight(c.weights)[0])
            h = F.relu(h) if i < 2 else h
        loss = F.mse(h, T) + constraint_loss(cells)
        loss.backward()
        for c in cells:
            for p in c.weights:
                p.data -= numpy.float32(0.01) * p.grad
                p.grad = None
            for p in c.qweight.parameters():
                p.data -= numpy.float32(lr_bits) * p.grad
                p.grad = None
    return cells, cost_summary(cells)[1]["bytes"]


def test_size_target_reached_within_2_percent(rng):
    # 1664 weights: 1664 bytes at 8 bits; the target asks for ~4.8 bits on average
    cells, size = train_with_target("FracBits", {"Bits": "8", "ApplyScaling": "1"}, 1000.0, 400,
                                    0.01, rng)
    assert abs(size / 1000.0 - 1) < 0.02, size
    bits = [c.qweight.bits() for c in cells]
    assert max(bits) - min(bits) > 0.5  # mixed precision: the layers did not move together
    for c in cells:
        c.qweight.freeze()
    assert all(c.qweight.bits() == round(c.qweight.bits()) for c in cells)
