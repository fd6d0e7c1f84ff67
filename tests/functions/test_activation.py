"""N2D2 activation functions: forward against float64 formulas written
independently here, gradients against finite differences and N2D2's kink rules, torch where it has
the same function."""
import numpy
import pytest

import n2d2py.functions as F
from n2d2py.autograd import Variable, check_backward, no_grad
from n2d2py.backend import asnumpy

RTOL_F32 = 1e-5       # float32 forward vs float64 formula
ATOL_F32 = 1e-6
RTOL_TORCH = 1e-5
KINK_MARGIN = 0.05    # finite differences need inputs away from 0 and ±clipping


def _away_from(x, points, margin=KINK_MARGIN):
    """Push values within ``margin`` of a kink out of it (finite differences are meaningless there)."""
    for p in points:
        near = numpy.abs(x - p) < margin
        x = numpy.where(near, p + 2 * margin * numpy.sign(x - p + 1e-12), x)
    return x


def _reference(name, x, **kw):
    x = x.astype(numpy.float64)
    if name == "relu":
        leak, c = kw.get("leak_slope", 0.0), kw.get("clipping", 0.0)
        y = numpy.array([v if v > 0 else leak * v for v in x.ravel()]).reshape(x.shape)
        return numpy.minimum(y, c) if c > 0 else y
    if name == "linear_clip":
        c = kw["clipping"]
        return numpy.clip(x, -c, c) if c else x
    if name == "tanh":
        return numpy.tanh(kw.get("alpha", 1.0) * x)
    if name == "sigmoid":
        return 1 / (1 + numpy.exp(-x))
    if name == "saturation":
        t = kw.get("threshold", 1.0)
        return numpy.clip(x, -t, t)
    if name == "softplus":
        return numpy.log(1 + numpy.exp(x))
    if name == "swish":
        return x / (1 + numpy.exp(-x))
    raise KeyError(name)


CASES = [
    ("relu", {}),
    ("relu", {"leak_slope": 0.1}),
    ("relu", {"clipping": 0.8}),
    ("relu", {"leak_slope": 0.2, "clipping": 1.5}),
    ("linear_clip", {"clipping": 0.0}),
    ("linear_clip", {"clipping": 0.7}),
    ("tanh", {}),
    ("tanh", {"alpha": F.TANH_LECUN_ALPHA}),
    ("sigmoid", {}),
    ("saturation", {}),
    ("saturation", {"threshold": 0.5}),
    ("softplus", {}),
    ("swish", {}),
]
IDS = [f"{n}-{kw}" for n, kw in CASES]


def _kinks(name, kw):
    c = kw.get("clipping", 0.0) or kw.get("threshold", 1.0 if name == "saturation" else 0.0)
    return [0.0, c, -c] if c else [0.0]


@pytest.mark.parametrize("name, kw", CASES, ids=IDS)
def test_forward_matches_formula(xp, rng, name, kw):
    x = rng.standard_normal((2, 3, 4, 5)).astype(numpy.float32) * 2
    y = getattr(F, name)(xp.asarray(x), **kw)
    assert y.dtype == numpy.float32 and y.shape == x.shape
    numpy.testing.assert_allclose(asnumpy(y.data), _reference(name, x, **kw),
                                  rtol=RTOL_F32, atol=ATOL_F32)


@pytest.mark.parametrize("name, kw", CASES, ids=IDS)
def test_backward_finite_differences(rng, name, kw):
    x = _away_from(rng.standard_normal((2, 3, 3, 2)) * 1.5, _kinks(name, kw))
    check_backward(lambda v: getattr(F, name)(v, **kw), (x,), rng=rng)


def test_relu_gradient_rule_at_kinks():
    """N2D2's rule: 1 on (0, c), 0 on [c, ∞), leak on (-∞, 0] — including exactly at 0 and c."""
    x = Variable(numpy.array([-2.0, 0.0, 0.5, 1.0, 3.0], dtype=numpy.float32), requires_grad=True)
    y = F.relu(x, leak_slope=0.25, clipping=1.0)
    numpy.testing.assert_array_equal(y.data, [-0.5, 0.0, 0.5, 1.0, 1.0])
    y.backward(numpy.ones(5, dtype=numpy.float32))
    numpy.testing.assert_array_equal(x.grad, [0.25, 0.25, 1.0, 0.0, 0.0])


def test_clamp_gradient_zero_outside():
    x = Variable(numpy.array([-3.0, -0.2, 0.4, 2.0], dtype=numpy.float32), requires_grad=True)
    F.saturation(x, threshold=1.0).backward(numpy.ones(4, dtype=numpy.float32))
    numpy.testing.assert_array_equal(x.grad, [0.0, 1.0, 1.0, 0.0])


def test_tanh_lecun_has_no_output_gain():
    # N2D2's TanhLeCun saturates at ±1, not ±1.7159
    y = F.tanh(numpy.array([50.0], dtype=numpy.float32), F.TANH_LECUN_ALPHA)
    assert float(y.data[0]) == pytest.approx(1.0)
    assert F.TANH_LECUN_ALPHA == pytest.approx(1.14393, abs=1e-5)


def test_sigmoid_softplus_swish_do_not_overflow():
    x = numpy.array([-1000.0, -80.0, 0.0, 80.0, 1000.0], dtype=numpy.float32)
    with numpy.errstate(over="raise", invalid="raise"):
        s = F.sigmoid(x).data
        sp = F.softplus(x).data
        sw = F.swish(x).data
    numpy.testing.assert_allclose(s, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-30)
    numpy.testing.assert_allclose(sp, [0.0, numpy.exp(-80.0), numpy.log(2.0), 80.0, 1000.0],
                               rtol=1e-6, atol=1e-40)
    numpy.testing.assert_allclose(sw, [0.0, 0.0, 0.0, 80.0, 1000.0], atol=1e-30)


def test_no_grad_saves_nothing(rng):
    x = Variable(rng.standard_normal((2, 3)).astype(numpy.float32), requires_grad=True)
    with no_grad():
        y = F.swish(x)
    assert y.creator is None and not y.requires_grad


TORCH_CASES = [
    ("relu", {}, lambda t, x: t.relu(x)),
    ("relu", {"leak_slope": 0.1}, lambda t, x: t.nn.functional.leaky_relu(x, 0.1)),
    ("relu", {"clipping": 6.0}, lambda t, x: t.nn.functional.relu6(x)),
    ("tanh", {}, lambda t, x: t.tanh(x)),
    ("sigmoid", {}, lambda t, x: t.sigmoid(x)),
    ("softplus", {}, lambda t, x: t.nn.functional.softplus(x)),
    ("swish", {}, lambda t, x: t.nn.functional.silu(x)),
    ("saturation", {"threshold": 1.0}, lambda t, x: t.nn.functional.hardtanh(x)),
]


@pytest.mark.parametrize("name, kw, reference", TORCH_CASES, ids=[c[0] + str(c[1]) for c in TORCH_CASES])
def test_against_torch(torch, rng, name, kw, reference):
    x = (rng.standard_normal((3, 4, 5)) * 4).astype(numpy.float32)
    x = _away_from(x, [0.0, 6.0, 1.0, -1.0]).astype(numpy.float32)
    g = rng.standard_normal(x.shape).astype(numpy.float32)
    v = Variable(x, requires_grad=True)
    y = getattr(F, name)(v, **kw)
    y.backward(g)
    tx = torch.tensor(x, requires_grad=True)
    ty = reference(torch, tx)
    ty.backward(torch.tensor(g))
    numpy.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=RTOL_TORCH, atol=1e-6)
    numpy.testing.assert_allclose(v.grad, tx.grad.numpy(), rtol=RTOL_TORCH, atol=1e-6)
