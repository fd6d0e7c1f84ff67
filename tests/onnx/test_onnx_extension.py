"""The n2d2py extensions of the ONNX import (not in N2D2; ``n2d2py/onnx/ops_extension.py``):
every Function's backward against finite differences (``check_backward``), the cells trained
through (gradients reach the PRelu slope and the Deconv weights), and the arity check."""
import numpy
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from n2d2py import functions as F
from n2d2py.autograd import Variable, check_backward
from n2d2py.errors import OnnxError
from n2d2py.onnx import import_onnx
from n2d2py.onnx import functions as OF
from n2d2py.onnx.cells import OnnxDeconvCell

RNG = numpy.random.default_rng(3)


def away_from_kinks(shape, low=0.2):
    x = RNG.uniform(low, 2.0, shape)
    return x * RNG.choice([-1.0, 1.0], shape)


@pytest.mark.parametrize("kind", OF.UNARY)
def test_unary_backward(kind):
    x = away_from_kinks((2, 3, 2))
    if kind in ("Log", "Sqrt"):
        x = numpy.abs(x)
    if kind == "HardSigmoid":
        x = RNG.uniform(-2.0, 2.0, (2, 3, 2))   # slope 0.2: kinks at -2.5 and 2.5
    check_backward(lambda v: OF.unary(v, kind), [x])


def test_unary_values():
    x = numpy.array([-2.0, -0.5, 0.5, 3.0])
    y = OF.unary(x, "Elu", alpha=0.7).data
    numpy.testing.assert_allclose(y, numpy.where(x > 0, x, 0.7 * numpy.expm1(x)))
    numpy.testing.assert_allclose(OF.unary(x, "Softsign").data, x / (1 + numpy.abs(x)))
    numpy.testing.assert_allclose(OF.unary(x, "HardSigmoid").data, numpy.clip(0.2 * x + 0.5, 0, 1))


@pytest.mark.parametrize("slope_shape", [(1, 3, 1, 1), (1, 1, 1, 4), (1,)])
def test_prelu_backward(slope_shape):
    x, slope = away_from_kinks((2, 3, 2, 4)), RNG.uniform(0.1, 0.5, slope_shape)
    check_backward(OF.prelu, [x, slope])


@pytest.mark.parametrize("kind", ["Min", "Max"])
def test_extremum_backward(kind):
    a, b = RNG.standard_normal((2, 3, 4)), RNG.standard_normal((1, 3, 1))
    check_backward(OF.minimum if kind == "Min" else OF.maximum, [a, b])


@pytest.mark.parametrize("kind", ["Sum", "Mean", "Max", "Min"])
@pytest.mark.parametrize("axes, keepdims", [((1,), True), ((2, 3), False), ((1, 3), True)])
def test_reduce_backward(kind, axes, keepdims):
    x = RNG.permutation(48).reshape(2, 3, 2, 4) * 0.1    # distinct values: one extremum
    check_backward(lambda v: OF.reduce(v, kind, axes, keepdims), [x])


def test_onnx_deconv_cell_backward():
    """Asymmetric pads and output_padding; gradients of input, weights and bias."""
    cell = OnnxDeconvCell(name="d", parents=["x"], nb_outputs=2, kernel_dims=(3, 2),
                          stride_dims=(2, 2), pads=(1, 0, 0, 2), output_padding=(1, 1))
    cell.build([(3, 3, 4)], numpy.random.default_rng(0))
    x = RNG.standard_normal((2, 3, 3, 4))
    W, b = cell.weights[0].data.astype(numpy.float64), cell.bias.data.astype(numpy.float64)

    def run(xv, Wv, bv):
        cell.weights[0], cell.bias = Wv, bv
        return cell.forward([xv])
    keep = cell.weights[0], cell.bias
    try:
        check_backward(run, [x, W, b])
    finally:
        cell.weights[0], cell.bias = keep
    y = cell.forward([Variable(x.astype(numpy.float32))])
    assert y.shape == (2, 2) + cell.out_shape[1:] and cell.out_shape == (2, 6, 8)


def model(nodes, inputs, inits=(), opset=13):
    graph = helper.make_graph(nodes, "m", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
                                           for n, s in inputs],
                              [helper.make_tensor_value_info(nodes[-1].output[0],
                                                             TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(numpy.asarray(v, numpy.float32), n)
                               for n, v in inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_imported_prelu_and_deconv_are_trainable():
    m = model([helper.make_node("ConvTranspose", ["x", "W"], ["d"], strides=[2, 2],
                                pads=[0, 1, 1, 0]),
               helper.make_node("PRelu", ["d", "s"], ["y"])],
              [("x", [1, 2, 3, 3])], [("W", RNG.standard_normal((2, 3, 2, 2))),
                                      ("s", numpy.full((3, 1, 1), 0.25))])
    graph = import_onnx(m)
    d, y = graph.cells["d"], graph.cells["y"]
    x = Variable(RNG.standard_normal((1, 2, 3, 3)).astype(numpy.float32))
    out = y.forward([d.forward([x])])
    F.sum_all(out * out).backward()
    assert d.weights[0].grad is not None and numpy.abs(d.weights[0].grad).sum() > 0
    assert y.slope.grad is not None and y.slope.grad.shape == (1, 3, 1, 1)


def test_too_few_inputs_is_an_onnx_error_naming_the_node():
    m = model([helper.make_node("Gemm", ["x"], ["y"])], [("x", [1, 4])])
    with pytest.raises(OnnxError, match=r"node 'y' \(Gemm\): 1 input\(s\)"):
        import_onnx(m)


def test_unknown_input_element_type_is_an_onnx_error():
    m = model([helper.make_node("Relu", ["x"], ["y"])], [("x", [1, 4])])
    m.graph.input[0].type.tensor_type.elem_type = 33   # a damaged file
    with pytest.raises(OnnxError, match="unknown element type 33"):
        import_onnx(m)


def test_batch_varying_constant_is_refused():
    m = model([helper.make_node("Add", ["x", "c"], ["y"])], [("x", [2, 3])],
              [("c", numpy.ones((2, 3)))])
    with pytest.raises(OnnxError, match="varies along the batch axis"):
        import_onnx(m)


# fixed in onnx/runner.py (were TypeError / ValueError / IndexError from the feeds)
@pytest.mark.parametrize("feed", [[[1.0, 2.0], [3.0]], "abc", None, numpy.float32(2.0),
                                  [object()], numpy.array(["a"])])
def test_bad_feed_is_an_onnx_error(feed):
    from n2d2py.onnx import OnnxModel
    m = model([helper.make_node("Relu", ["x"], ["y"])], [("x", [1, 3])])
    with pytest.raises(OnnxError, match="input 'x'"):
        OnnxModel(m).run([feed])
    with pytest.raises(OnnxError, match="expected a dict"):
        OnnxModel(m).run(5)
