"""Element-wise chains on oneDNN (``functions/_onednn_chain.py``) against the NumPy passes they
replace: the same bits (signs of zeros included), on one and two threads, and never where
oneDNN would change a number (NaN through the fused ReLU) or cannot run."""
import numpy
import pytest

import n2d2py.functions as F
from n2d2py import parallel
from n2d2py.autograd import Variable
from n2d2py.functions import _onednn, _onednn_chain

pytestmark = pytest.mark.skipif(not _onednn.available(),
                                reason="oneDNN (onednn-cpu-gomp, x86-64 Linux) not loaded")

INF = float("inf")
SHAPES = [(128, 16, 1024), (7, 5, 9), (3, 4, 17), (1, 64, 64), (128, 120, 1), (6, 1, 8),
          (4, 1, 1)]   # (N, C, 1): a BatchNorm after a fully connected layer


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    before = parallel.threads()
    parallel.set_threads(request.param)
    yield request.param
    parallel.set_threads(before)


def same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _inputs(rng, shape):
    x = (rng.standard_normal(shape) * 4).astype(numpy.float32)
    special = numpy.float32([-0.0, 0.0, -1.0, 1.0, 7.5, -7.5])
    x.reshape(-1)[:len(special)] = special[:x.size]
    per_channel = [rng.standard_normal(shape[1]).astype(numpy.float32) for _ in range(3)]
    return x, per_channel


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("top", [None, INF, 6.0])
def test_affine_and_relu_equal_numpy_passes(rng, threads, shape, top):
    x, (A, B, _) = _inputs(rng, shape)
    A[0], B[0] = 1.0, 0.0   # channel 0 passes -0.0 through to the ReLU
    expected = x * A[:, None]
    expected += B[:, None]
    if top is not None:
        numpy.clip(expected, 0, top, out=expected)
        expected += 0   # rectify's +0.0 for -0.0
    y = numpy.empty_like(x)
    posts = () if top is None else (("relu", top),)
    assert _onednn_chain.chain(y, x, "mul", A, ("add", B), *posts)
    assert same_bits(y, expected)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("in_place", [False, True])
def test_gradient_chain_equals_numpy_passes(rng, threads, shape, in_place):
    """(x·Q + g + R)·K, written over g itself as BatchNorm's backward does."""
    x, (Q, R, K) = _inputs(rng, shape)
    g = rng.standard_normal(shape).astype(numpy.float32)
    expected = x * Q[:, None]
    expected += g
    expected += R[:, None]
    expected *= K[:, None]
    out = g if in_place else numpy.empty_like(g)
    assert _onednn_chain.chain(out, x, "mul", Q, ("add", g), ("add", R), ("mul", K))
    assert same_bits(out, expected)


def test_what_never_reaches_onednn(rng):
    x = rng.standard_normal((4, 3, 5)).astype(numpy.float32)
    A = numpy.ones(3, numpy.float32)
    y = numpy.full_like(x, 7)
    assert not _onednn_chain.chain(y.astype(numpy.float64), x.astype(numpy.float64), "mul",
                                   A.astype(numpy.float64))
    assert not _onednn_chain.chain(y, x.transpose(1, 0, 2).copy().transpose(1, 0, 2), "mul", A)
    assert not _onednn_chain.chain(y, x, "mul", numpy.ones(4, numpy.float32))   # wrong length
    assert not _onednn_chain.chain(y.reshape(4, 15), x.reshape(4, 15), "mul",
                                   numpy.ones(15, numpy.float32))            # not (N, C, S)
    assert (y == 7).all()


def _batch_norm_run(x, scale, bias, gy, clip):
    vx, vs, vb = (Variable(a.copy(), requires_grad=True) for a in (x, scale, bias))
    C = x.shape[1]
    y = F.batch_norm(vx, vs, vb, numpy.zeros(C, numpy.float32), numpy.ones(C, numpy.float32),
                     relu_clipping=clip)
    y.backward(gy)
    return [y.data, vx.grad, vs.grad, vb.grad]


@pytest.mark.parametrize("shape", [(32, 16, 8, 8), (5, 3, 4, 4), (6, 7, 11), (64, 120)])
@pytest.mark.parametrize("clip", [None, 0, 6])
def test_batch_norm_on_chains_equals_numpy_route(rng, threads, monkeypatch, shape, clip):
    x = (rng.standard_normal(shape) * 3 + 0.5).astype(numpy.float32)
    scale, bias = (rng.standard_normal(shape[1]).astype(numpy.float32) for _ in range(2))
    gy = rng.standard_normal(shape).astype(numpy.float32)
    calls = []
    real = _onednn_chain.chain
    monkeypatch.setattr(_onednn_chain, "chain", lambda *a: calls.append(1) or real(*a))
    fast = _batch_norm_run(x, scale, bias, gy, clip)
    assert len(calls) == 2          # the normalisation and its input gradient
    monkeypatch.setattr(_onednn_chain, "chain", lambda *a: False)
    slow = _batch_norm_run(x, scale, bias, gy, clip)
    for a, b in zip(fast, slow):
        assert same_bits(a, b)


def test_batch_norm_relu_keeps_nan_as_numpy(rng, monkeypatch):
    """oneDNN's ReLU would turn NaN into 0: a NaN input (non-finite statistics) or a NaN
    scale keeps the NumPy passes, and the NaN reaches the output as without fusion."""
    x = rng.standard_normal((8, 3, 4, 4)).astype(numpy.float32)
    scale, bias = numpy.ones(3, numpy.float32), numpy.zeros(3, numpy.float32)
    ran = []
    real = _onednn_chain.chain
    monkeypatch.setattr(_onednn_chain, "chain", lambda *a: ran.append(1) or real(*a))
    for xs, s in ((x.copy(), numpy.float32([numpy.nan, 1, 1])), (x.copy(), scale)):
        xs[0, 1, 0, 0] = numpy.nan
        y = F.batch_norm(Variable(xs), s, bias, numpy.zeros(3, numpy.float32),
                         numpy.ones(3, numpy.float32), relu_clipping=0).data
        unfused = F.relu(F.batch_norm(Variable(xs), s, bias, numpy.zeros(3, numpy.float32),
                                      numpy.ones(3, numpy.float32))).data
        assert numpy.isnan(y).any()
        assert numpy.array_equal(y, unfused, equal_nan=True)
    assert not ran
