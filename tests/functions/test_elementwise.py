"""elemwise (N2D2 ElemWise operations), concat and scaling: forward against per-element loops in
float64, gradients against finite differences."""
import numpy
import pytest

import n2d2py.functions as F
from n2d2py.autograd import Variable, check_backward
from n2d2py.backend import asnumpy
from n2d2py.errors import N2D2Error, ShapeError

RTOL_F32 = 1e-5
ATOL_F32 = 1e-5
SHAPE = (2, 3, 3, 2)


def _naive_elemwise(xs, op, weights, shifts):
    """One output element at a time, exactly as the N2D2 formulas read (float64)."""
    n = len(xs)
    w = weights or [1.0] * n
    s = shifts or [0.0] * n
    out = numpy.zeros(xs[0].shape)
    for idx in numpy.ndindex(*xs[0].shape):
        c = idx[1]
        wk = [float(numpy.asarray(v).reshape(-1)[c] if numpy.ndim(v) else v) for v in w]
        sk = [float(numpy.asarray(v).reshape(-1)[c] if numpy.ndim(v) else v) for v in s]
        vals = [float(x[idx]) for x in xs]
        if op == "Sum":
            out[idx] = sum(a * v + b for a, v, b in zip(wk, vals, sk))
        elif op == "AbsSum":
            out[idx] = sum(a * abs(v) for a, v in zip(wk, vals))
        elif op == "EuclideanSum":
            out[idx] = numpy.sqrt(sum(a * a * v * v + b * b for a, v, b in zip(wk, vals, sk)))
        elif op == "Prod":
            out[idx] = numpy.prod(vals)
        elif op == "Max":
            out[idx] = max(vals)
    return out


CASES = [
    ("Sum", None, None),
    ("Sum", [0.5, -2.0, 1.5], [0.1, 0.0, -0.3]),
    ("Sum", [numpy.array([1.0, 2.0, -1.0])] * 3, [numpy.array([0.0, 0.5, 1.0])] * 3),  # PerChannel
    ("AbsSum", [1.0, 0.5, 2.0], None),
    ("EuclideanSum", None, None),
    ("EuclideanSum", [2.0, 1.0, 0.5], [0.3, 0.0, 0.2]),
    ("Prod", None, None),
    ("Max", None, None),
]
IDS = ["Sum", "Sum-coeffs", "Sum-perchannel", "AbsSum", "Euclid", "Euclid-coeffs", "Prod", "Max"]


def _inputs(rng, k=3, shape=SHAPE):
    return [rng.standard_normal(shape) for _ in range(k)]


@pytest.mark.parametrize("op, weights, shifts", CASES, ids=IDS)
def test_forward_matches_naive(xp, rng, op, weights, shifts):
    xs = [x.astype(numpy.float32) for x in _inputs(rng)]
    y = F.elemwise([xp.asarray(x) for x in xs], op, weights, shifts)
    assert y.dtype == numpy.float32
    numpy.testing.assert_allclose(asnumpy(y.data), _naive_elemwise(xs, op, weights, shifts),
                                  rtol=RTOL_F32, atol=ATOL_F32)


@pytest.mark.parametrize("op, weights, shifts", CASES, ids=IDS)
def test_backward_finite_differences(rng, op, weights, shifts):
    xs = _inputs(rng)
    if op == "AbsSum":   # keep away from |x|'s kink
        xs = [numpy.where(numpy.abs(x) < 0.05, 0.3, x) for x in xs]
    if op == "Max":      # keep the inputs apart so that the argmax is stable under ±eps
        xs = [x + 0.5 * k for k, x in enumerate(xs)]
        xs[0][0, 0, 0, 0] = xs[2][0, 0, 0, 0] + 1.0
    check_backward(lambda *v: F.elemwise(list(v), op, weights, shifts), xs, rng=rng)


def test_max_gradient_goes_to_first_argmax():
    a = numpy.array([1.0, 5.0, 2.0, 2.0], dtype=numpy.float32).reshape(1, 4)
    b = numpy.array([3.0, 1.0, 2.0, 0.0], dtype=numpy.float32).reshape(1, 4)
    va, vb = Variable(a, requires_grad=True), Variable(b, requires_grad=True)
    F.elemwise([va, vb], "Max").backward(numpy.full((1, 4), 2.0, numpy.float32))
    numpy.testing.assert_array_equal(va.grad, [[0.0, 2.0, 2.0, 2.0]])   # tie at index 2: first
    numpy.testing.assert_array_equal(vb.grad, [[2.0, 0.0, 0.0, 0.0]])


def test_prod_gradient_with_a_zero_input():
    a = numpy.array([[0.0, 2.0]], numpy.float32)
    b = numpy.array([[3.0, 4.0]], numpy.float32)
    va, vb = Variable(a, requires_grad=True), Variable(b, requires_grad=True)
    F.elemwise([va, vb], "Prod").backward(numpy.ones((1, 2), numpy.float32))
    numpy.testing.assert_array_equal(va.grad, [[3.0, 4.0]])
    numpy.testing.assert_array_equal(vb.grad, [[0.0, 2.0]])


def test_euclidean_sum_gradient_is_zero_at_zero():
    z = Variable(numpy.zeros((1, 2), numpy.float32), requires_grad=True)
    y = F.elemwise([z, numpy.zeros((1, 2), numpy.float32)], "EuclideanSum")
    y.backward(numpy.ones((1, 2), numpy.float32))
    numpy.testing.assert_array_equal(y.data, [[0.0, 0.0]])
    numpy.testing.assert_array_equal(z.grad, [[0.0, 0.0]])


def test_elemwise_errors(rng):
    xs = [x.astype(numpy.float32) for x in _inputs(rng, 2)]
    with pytest.raises(N2D2Error, match="unknown Operation 'Abs'"):
        F.elemwise(xs, "Abs")
    with pytest.raises(ShapeError, match="input 1 has shape"):
        F.elemwise([xs[0], xs[1][:, :2]], "Sum")
    with pytest.raises(ShapeError, match="2 inputs but 3 weights"):
        F.elemwise(xs, "Sum", weights=[1.0, 1.0, 1.0])


@pytest.mark.parametrize("axis", [1, 0, -1])
def test_concat_forward_backward(xp, rng, axis):
    shapes = [(2, 3, 4, 4), (2, 1, 4, 4), (2, 2, 4, 4)]
    if axis != 1:
        shapes = [tuple(s[1] if d == axis % 4 else v for d, v in enumerate((2, 3, 4, 4)))
                  for s in shapes]
    xs = [rng.standard_normal(s).astype(numpy.float32) for s in shapes]
    y = F.concat([xp.asarray(x) for x in xs], axis=axis)
    numpy.testing.assert_array_equal(asnumpy(y.data), numpy.concatenate(xs, axis=axis))
    check_backward(lambda *v: F.concat(list(v), axis=axis), xs, rng=rng)


def test_concat_shape_error(rng):
    with pytest.raises(ShapeError, match="incompatible"):
        F.concat([numpy.zeros((2, 3, 4, 4), numpy.float32), numpy.zeros((2, 3, 5, 4), numpy.float32)])


@pytest.mark.parametrize("factor", [0.25, [1.0, -2.0, 0.5]], ids=["scalar", "per-channel"])
def test_scaling(xp, rng, factor):
    x = rng.standard_normal((2, 3, 2, 2)).astype(numpy.float32)
    expected = x * numpy.asarray(factor, dtype=numpy.float64).reshape((1, -1, 1, 1)
                                                                     if numpy.ndim(factor) else ())
    y = F.scaling(xp.asarray(x), factor)
    numpy.testing.assert_allclose(asnumpy(y.data), expected, rtol=RTOL_F32)
    check_backward(lambda v: F.scaling(v, factor), (x,), rng=rng)


def test_against_torch(torch, rng):
    xs = [x.astype(numpy.float32) for x in _inputs(rng, 2)]
    ts = [torch.tensor(x) for x in xs]
    numpy.testing.assert_allclose(F.elemwise(xs, "Sum", [0.5, 2.0]).data,
                                  (0.5 * ts[0] + 2.0 * ts[1]).numpy(), rtol=RTOL_F32)
    numpy.testing.assert_array_equal(F.elemwise(xs, "Max").data, torch.maximum(*ts).numpy())
    numpy.testing.assert_array_equal(F.concat(xs).data, torch.cat(ts, dim=1).numpy())


@pytest.mark.parametrize("clipping", [0.0, 6.0], ids=["relu", "relu6"])
@pytest.mark.parametrize("op, weights, shifts", CASES, ids=IDS)
def test_fused_relu_is_relu_after_elemwise(xp, rng, op, weights, shifts, clipping):
    """``relu_clipping`` gives the numbers of ``relu(elemwise(...))``, forward and backward,
    without altering the caller's inputs or output gradient."""
    xs = [(x * 4).astype(numpy.float32) for x in _inputs(rng)]
    gy = rng.standard_normal(SHAPE).astype(numpy.float32)
    results = []
    for fused in (False, True):
        vs = [Variable(xp.asarray(x.copy()), requires_grad=True) for x in xs]
        if fused:
            y = F.elemwise(vs, op, weights, shifts, relu_clipping=clipping)
        else:
            y = F.relu(F.elemwise(vs, op, weights, shifts), clipping=clipping)
        g = xp.asarray(gy.copy())
        y.backward(g)
        numpy.testing.assert_array_equal(asnumpy(g), gy)
        for v, x in zip(vs, xs):
            numpy.testing.assert_array_equal(asnumpy(v.data), x)
        results.append([asnumpy(a) for a in (y.data, *(v.grad for v in vs))])
    assert (results[1][0] > 0).any() and (op in ("AbsSum", "EuclideanSum") or
                                          (results[1][0] == 0).any())
    for unfused, fused in zip(*results):
        numpy.testing.assert_array_equal(fused, unfused)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_residual_sum_is_one_pass_with_gy_passed_through(xp, rng, k):
    """A Sum with unit weights and no shifts: the inputs' sum in order, a fresh output (also
    for one input), and every input's gradient the output gradient itself (as ``add``)."""
    xs = [xp.asarray(x.astype(numpy.float32)) for x in _inputs(rng, k, (5, 3, 4, 4))]
    vs = [Variable(x, requires_grad=True) for x in xs]
    y = F.elemwise(vs, "Sum")
    expected = xs[0].copy()
    for x in xs[1:]:
        expected += x
    numpy.testing.assert_array_equal(asnumpy(y.data), asnumpy(expected))
    assert y.data is not xs[0]
    gy = xp.asarray(rng.standard_normal(y.shape).astype(numpy.float32))
    grads = y.creator.backward(xp, gy, (True,) * k)
    assert all(g is gy for g in grads)
