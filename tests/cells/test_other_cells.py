"""Fc, Pool, BatchNorm, Dropout, ElemWise, Softmax, activations and the shape cells from INI."""
import numpy
import pytest
from numpy.testing import assert_allclose

from cell_helpers import build_cells, run
from n2d2py.errors import IniError

ATOL = 1e-5


def cell_of(text, env):
    cells = build_cells(text, env=env)
    return cells, cells[list(cells)[-1]]


def test_fc_flatten_order_and_multi_parent(rng):
    text = ("[a]\nInput=env\nType=Conv\nKernelDims=1 1\nNbOutputs=2\n"
            "[f]\nInput=env,a\nType=Fc\nNbOutputs=3\nActivationFunction=Tanh\n")
    cells, f = cell_of(text, (1, 2, 3))
    assert [w.shape for w in f.weights] == [(3, 6), (3, 12)] and f.out_shape == (3, 1, 1)
    x = rng.standard_normal((2, 1, 2, 3)).astype(numpy.float32)
    out = run(cells, x)
    flat = numpy.concatenate([x.reshape(2, -1), out["a"].reshape(2, -1)], axis=1)  # x fastest
    W = numpy.concatenate([w.data for w in f.weights], axis=1)
    assert_allclose(out["f"].reshape(2, 3), numpy.tanh(flat @ W.T + f.bias.data), atol=ATOL)


@pytest.mark.parametrize("pooling", ["Max", "Average"])
def test_pool_one_to_one(rng, pooling):
    cells, p = cell_of(f"[p]\nInput=env\nType=Pool\nPoolDims=2 2\nStride=2\nNbOutputs=3\n"
                       f"Pooling={pooling}\nMapping.Size=1\n", (3, 5, 4))
    assert p.out_shape == (3, (5 - 2 + 2) // 2, (4 - 2 + 2) // 2) and p.mask is None
    x = rng.standard_normal((1, 3, 5, 4)).astype(numpy.float32)
    blocks = x[:, :, :4, :4].reshape(1, 3, 2, 2, 2, 2)
    ref = blocks.max(axis=(3, 5)) if pooling == "Max" else blocks.mean(axis=(3, 5))
    assert_allclose(run(cells, x)["p"], ref, atol=ATOL)


def test_pool_without_mapping_is_full(rng):
    cells, p = cell_of("[p]\nInput=env\nType=Pool\nPoolDims=2 2\nStride=2\nNbOutputs=2\n"
                       "Pooling=Max\n", (3, 4, 4))
    assert p.mask.all()   # every output pools over every channel (N2D2)
    x = rng.standard_normal((1, 3, 4, 4)).astype(numpy.float32)
    ref = x.reshape(1, 3, 2, 2, 2, 2).max(axis=(1, 3, 5))
    y = run(cells, x)["p"]
    assert_allclose(y[:, 0], ref, atol=ATOL) and assert_allclose(y[:, 1], ref, atol=ATOL)


def test_batchnorm_defaults_and_forward(rng):
    cells, bn = cell_of("[bn]\nInput=env\nType=BatchNorm\nNbOutputs=2\nConfigSection=k\n"
                        "[k]\nEpsilon=1e-3\nMovingAverageMomentum=0.5\n", (2, 3, 3))
    assert (bn.scale.data == 1).all() and (bn.bias.data == 0).all()
    assert (bn.mean == 0).all() and (bn.variance == 0).all()   # variance starts at 0 (N2D2)
    assert bn.epsilon == 1e-3 and set(bn.solvers) == {"Scale", "Bias"}
    x = rng.standard_normal((4, 2, 3, 3)).astype(numpy.float32)
    y = run(cells, x, training=True)["bn"]
    m, v = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    assert_allclose(y, (x - m[:, None, None]) / numpy.sqrt(v[:, None, None] + 1e-3), atol=1e-4)
    assert_allclose(bn.mean, 0.5 * m, atol=1e-6)
    with pytest.raises(IniError, match=r"NbOutputs=3 but the inputs have 2 channels"):
        build_cells("[bn]\nInput=env\nType=BatchNorm\nNbOutputs=3\n", env=(2, 3, 3))


def test_dropout_no_rescale_on_frame(rng):
    cells, d = cell_of("[d]\nInput=env\nType=Dropout\nNbOutputs=1\n", (1, 20, 20))
    x = numpy.ones((1, 1, 20, 20), numpy.float32)
    y = run(cells, x, training=True)["d"]
    assert set(numpy.unique(y)) <= {0.0, 1.0} and 0.3 < (y == 0).mean() < 0.7
    assert (run(cells, x)["d"] == 1).all()
    assert not d.rescale
    cells, d = cell_of("DefaultModel=Frame_CUDA\n[d]\nInput=env\nType=Dropout\nNbOutputs=1\n",
                       (1, 2, 2))
    assert d.rescale   # cuDNN dropout is inverted


def test_elemwise_and_softmax(rng):
    text = ("[a]\nInput=env\nType=Conv\nKernelDims=1 1\nNbOutputs=2\n"
            "[e]\nInput=a,a\nType=ElemWise\nNbOutputs=2\nOperation=Sum\nWeights=0.5 2\n"
            "[s]\nInput=e\nType=Softmax\nNbOutputs=2\nWithLoss=1\n")
    cells = build_cells(text, env=(1, 2, 2))
    x = rng.standard_normal((1, 1, 2, 2)).astype(numpy.float32)
    out = run(cells, x)
    assert_allclose(out["e"], 2.5 * out["a"], atol=ATOL)
    e = numpy.exp(out["e"])
    assert_allclose(out["s"], e / e.sum(axis=1, keepdims=True), atol=ATOL)
    assert cells["s"].loss_kind == "softmax" and cells["s"].last_logits is not None
    with pytest.raises(IniError, match="Operation"):
        build_cells("[e]\nInput=env\nType=ElemWise\nNbOutputs=1\n", env=(1, 2, 2))


ACTS = {"Linear": lambda x: x, "Rectifier": lambda x: numpy.maximum(x, 0),
        "Tanh": numpy.tanh, "TanhLeCun": lambda x: numpy.tanh(1.7159 * 2 / 3 * x),
        "Logistic": lambda x: 1 / (1 + numpy.exp(-x)), "Saturation": lambda x: numpy.clip(x, -1, 1),
        "Softplus": lambda x: numpy.log1p(numpy.exp(x)), "Swish": lambda x: x / (1 + numpy.exp(-x))}


@pytest.mark.parametrize("name", sorted(ACTS))
def test_activation_cell(name):
    cells, a = cell_of(f"[a]\nInput=env\nType=Activation\nNbOutputs=1\nActivationFunction={name}\n",
                       (1, 1, 7))
    x = numpy.linspace(-3, 3, 7, dtype=numpy.float32).reshape(1, 1, 1, 7)
    assert_allclose(run(cells, x)["a"], ACTS[name](x.astype(numpy.float64)), atol=1e-5)


def test_activation_cell_defaults_to_tanh_and_clipping():
    cells, a = cell_of("[a]\nInput=env\nType=Activation\nNbOutputs=1\n", (1, 1, 3))
    assert type(a.activation).__name__ == "Tanh"
    cells, a = cell_of("[a]\nInput=env\nType=Activation\nNbOutputs=1\nActivationFunction=Rectifier"
                       "\nActivationFunction.Clipping=6\n", (1, 1, 3))
    x = numpy.array([[[[-1, 3, 9]]]], numpy.float32)
    assert_allclose(run(cells, x)["a"], [[[[0, 3, 6]]]])


def test_shape_cells(rng):
    x = rng.standard_normal((1, 2, 3, 4)).astype(numpy.float32)
    cells, p = cell_of("[p]\nInput=env\nType=Padding\nNbOutputs=2\nTopPadding=1\nBottomPadding=0\n"
                       "LeftPadding=2\nRightPadding=-1\n", (2, 3, 4))
    assert p.out_shape == (2, 4, 5)
    assert_allclose(run(cells, x)["p"], numpy.pad(x, ((0, 0), (0, 0), (1, 0), (2, 0)))[..., :5])
    cells, t = cell_of("[t]\nInput=env\nType=Transpose\nNbOutputs=2\nPerm=1 0 2 3\n", (2, 3, 4))
    assert t.out_shape == (2, 4, 3)
    assert_allclose(run(cells, x)["t"], x.transpose(0, 1, 3, 2))
    cells, r = cell_of("[r]\nInput=env\nType=Reshape\nNbOutputs=6\nDims=4 1 -1\n", (2, 3, 4))
    assert r.out_shape == (6, 1, 4)
    assert_allclose(run(cells, x)["r"], x.reshape(1, 6, 1, 4))
    cells, s = cell_of("[s]\nInput=env\nType=Scaling\nNbOutputs=2\nFactor=0.5\n", (2, 3, 4))
    assert_allclose(run(cells, x)["s"], 0.5 * x)
    cells, th = cell_of("[t]\nInput=env\nType=Threshold\nNbOutputs=2\nThreshold=0.2\n", (2, 3, 4))
    assert_allclose(run(cells, x)["t"], (x > 0.2).astype(numpy.float32))


@pytest.mark.parametrize("keys, fused", [("", True), ("ActivationFunction.Clipping=6\n", True),
                                         ("ActivationFunction.LeakSlope=0.1\n", False)],
                         ids=["relu", "relu6", "leaky"])
def test_batchnorm_fuses_a_plain_rectifier(rng, keys, fused):
    """A BatchNorm cell ending in a plain ReLU runs it inside its BatchNorm function while
    training (one pass fewer), with the numbers of the activation applied after it; a leaky
    one stays apart."""
    import n2d2py.functions as F
    from n2d2py.autograd import Variable
    cells, bn = cell_of("[bn]\nInput=env\nType=BatchNorm\nNbOutputs=3\n"
                        "ActivationFunction=Rectifier\n" + keys, (3, 4, 4))
    bn.scale.data[:] = [0.5, 1.0, 2.0]
    x = rng.standard_normal((4, 3, 4, 4)).astype(numpy.float32)
    gy = rng.standard_normal(x.shape).astype(numpy.float32)
    mean, var = bn.mean.copy(), bn.variance.copy()
    xv = Variable(x, requires_grad=True)
    y = bn.forward([xv], training=True)
    assert (type(y.creator).__name__ == "BatchNorm") == fused
    y.backward(gy)
    ref_x = Variable(x, requires_grad=True)
    ref = bn.activation(F.batch_norm(ref_x, bn.scale.data, bn.bias.data, mean, var, bn.epsilon,
                                     True, bn.moving_average_momentum))
    ref.backward(gy)
    numpy.testing.assert_array_equal(y.data, ref.data)
    numpy.testing.assert_array_equal(xv.grad, ref_x.grad)
    numpy.testing.assert_array_equal(bn.mean, mean)
    assert (y.data <= 0).any() and (y.data > 0).any()
    assert (bn.last_logits is None) == fused
    bn.forward([xv], training=False)   # inference keeps the pre-activation
    assert bn.last_logits is not None


def test_elemwise_sum_fuses_a_plain_rectifier(rng):
    """A residual ElemWise Sum ending in a ReLU runs it inside its ElemWise function."""
    import n2d2py.functions as F
    from n2d2py.autograd import Variable
    cells, add = cell_of("[a]\nInput=env\nType=Conv\nKernelDims=1 1\nNbOutputs=2\n"
                         "[s]\nInput=env,a\nType=ElemWise\nOperation=Sum\nNbOutputs=2\n"
                         "ActivationFunction=Rectifier\n", (2, 3, 3))
    xs = [Variable(rng.standard_normal((3, 2, 3, 3)).astype(numpy.float32), requires_grad=True)
          for _ in range(2)]
    y = add.forward(xs, training=True)
    assert type(y.creator).__name__ == "ElemWise"
    numpy.testing.assert_array_equal(y.data, F.relu(xs[0] + xs[1]).data)
    assert (y.data == 0).any() and (y.data > 0).any()
