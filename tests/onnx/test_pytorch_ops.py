"""The ONNX operators PyTorch's exporters write for torchvision's classifiers (issue 15), each
with the attribute variants they use: the Functions' backward against finite differences and
PyTorch, the import of one-node and few-node graphs against ``onnx.reference`` and
onnxruntime, the ``--export ONNX`` round trip of the cells they become, gradients through the
imported cells against PyTorch, and the one-line refusals of what is not supported."""
import numpy
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from n2d2py import functions as F
from n2d2py.autograd import Variable, check_backward
from n2d2py.deepnet import DeepNet
from n2d2py.errors import OnnxError
from n2d2py.onnx import OnnxModel, import_onnx
from n2d2py.onnx import functions as OF
from n2d2py.onnx.export import export_onnx
from n2d2py.onnx.section import onnx_document
from n2d2py.onnx.tensor_cells import OnnxGatherCell, OnnxLayerNormCell, OnnxMatMulCell

RNG = numpy.random.default_rng(15)
RTOL, ATOL = 1e-5, 1e-5


def away_from(points, shape, margin=0.05, scale=4.0):
    """Random values at least ``margin`` away from the kinks ``points``."""
    x = RNG.uniform(-scale, scale, shape)
    for p in points:
        near = numpy.abs(x - p) < margin
        x[near] += 2 * margin
    return x


# ---------------------------------------------------------------- Functions: backward
@pytest.mark.parametrize("name, fn, kinks", [
    ("hard_swish", F.hard_swish, (-3.0, 3.0)),
    ("hard_sigmoid", lambda v: F.hard_sigmoid(v, 0.2, 0.5), (-2.5, 2.5)),
    ("gelu", F.gelu, ()),
    ("gelu_tanh", lambda v: F.gelu(v, "tanh"), ()),
    ("erf", lambda v: OF.unary(v, "Erf"), ()),
    ("pow2", lambda v: OF.unary(v, "Pow", alpha=2.0), ()),
    ("pow3", lambda v: OF.unary(v, "Pow", alpha=3.0), ()),
])
def test_activation_backward_against_finite_differences(name, fn, kinks):
    check_backward(fn, [away_from(kinks, (2, 3, 4))])


def test_pow_fractional_exponent_backward():
    check_backward(lambda v: OF.unary(v, "Pow", alpha=0.5), [RNG.uniform(0.5, 3.0, (2, 5))])


@pytest.mark.parametrize("count, affine", [(1, "both"), (2, "both"), (1, "scale"), (3, "none")])
def test_layer_norm_backward(count, affine):
    x = RNG.standard_normal((2, 3, 4, 5))
    shape = x.shape[4 - count:]
    params = {"both": [RNG.standard_normal(shape), RNG.standard_normal(shape)],
              "scale": [RNG.standard_normal(shape)], "none": []}[affine]
    check_backward(lambda v, *p: F.layer_norm(v, count, *p, epsilon=1e-5), [x, *params])


@pytest.mark.parametrize("index", [[5, 0, 7, 2], [1, 1, 3, 1, 0]])   # a permutation, repeats
def test_gather_samples_backward(index):
    index = numpy.asarray(index)
    check_backward(lambda v: F.gather_samples(v, index, (len(index),)),
                   [RNG.standard_normal((3, 2, 2, 2))])


@pytest.mark.parametrize("kind", ["Max", "Average"])
@pytest.mark.parametrize("ceil_mode, pads, include", [(False, (0, 0, 0, 0), False),
                                                      (True, (1, 0, 1, 1), False),
                                                      (False, (1, 1, 1, 1), True)])
def test_dilated_pool_backward(kind, ceil_mode, pads, include):
    x = RNG.permutation(2 * 2 * 7 * 8).reshape(2, 2, 7, 8) * 0.1   # distinct: one maximum
    check_backward(lambda v: F.dilated_pool2d(v, kind, (2, 3), (2, 1), (2, 2), pads, ceil_mode,
                                              include), [x])


# ---------------------------------------------------------------- Functions: PyTorch
def test_functions_match_pytorch(torch):
    tf = torch.nn.functional
    x = away_from((-3.0, 3.0), (2, 3, 5, 4)).astype(numpy.float32)
    cases = [(F.hard_swish, tf.hardswish), (F.hard_sigmoid, tf.hardsigmoid),
             (F.gelu, tf.gelu), (lambda v: F.gelu(v, "tanh"), lambda t: tf.gelu(t, approximate="tanh")),
             (lambda v: OF.unary(v, "Erf"), torch.erf),
             (lambda v: F.layer_norm(v, 2, epsilon=1e-6),
              lambda t: tf.layer_norm(t, t.shape[-2:], eps=1e-6)),
             (lambda v: F.dilated_pool2d(v, "Max", 2, 1, 2, (1, 1, 1, 1), True),
              lambda t: tf.max_pool2d(t, 2, 1, 1, dilation=2, ceil_mode=True))]
    gy = RNG.standard_normal((2, 3, 5, 4)).astype(numpy.float32)
    for ours, theirs in cases:
        v = Variable(x.copy(), requires_grad=True)
        y = ours(v)
        t = torch.tensor(x, requires_grad=True)
        ty = theirs(t)
        numpy.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-5, atol=1e-6)
        y.backward(gy[tuple(slice(0, s) for s in y.shape)])
        ty.backward(torch.tensor(gy[tuple(slice(0, s) for s in ty.shape)]))
        numpy.testing.assert_allclose(v.grad, t.grad.numpy(), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- import: one node at a time
def model_of(nodes, x_shape, inits=(), opset=17, outputs=None):
    """A model of ``nodes`` on the graph input ``x``; the last node's first output is the graph
    output unless ``outputs`` names them."""
    outputs = outputs or [nodes[-1].output[0]]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(numpy.asarray(v), k) for k, v in dict(inits).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10 if opset >= 21 else 9
    return model


def check_import(model, x, rtol=RTOL, atol=ATOL):
    """n2d2py against onnx.reference and onnxruntime (when installed); returns n2d2py's
    outputs."""
    ours = OnnxModel(model).run({"x": x})
    names = [o.name for o in model.graph.output]
    reference = ReferenceEvaluator(model).run(None, {"x": x})
    for name, ref in zip(names, reference):
        assert ours[name].shape == ref.shape, name
        numpy.testing.assert_allclose(ours[name], ref, rtol=rtol, atol=atol, err_msg=name)
    try:
        import onnxruntime
    except ImportError:
        return ours
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    for name, ref in zip(names, session.run(names, {"x": x})):
        numpy.testing.assert_allclose(ours[name], ref, rtol=rtol, atol=atol, err_msg=name)
    return ours


def conv(x, c_in, c_out, name, inits, k=3):
    inits[f"{name}_w"] = (RNG.standard_normal((c_out, c_in, k, k)) / (c_in * k * k) ** 0.5) \
        .astype(numpy.float32)
    return helper.make_node("Conv", [x, f"{name}_w"], [name], pads=[k // 2] * 4)


X4 = RNG.standard_normal((2, 4, 6, 5)).astype(numpy.float32) * 3


@pytest.mark.parametrize("op, attrs, opset", [
    ("HardSwish", {}, 14), ("HardSigmoid", {}, 13), ("HardSigmoid", {"alpha": 1 / 6}, 13),
    ("Gelu", {}, 20), ("Gelu", {"approximate": "tanh"}, 20), ("Erf", {}, 13)])
def test_activation_after_conv(op, attrs, opset):
    """Activations attach to the Conv before them (as N2D2 attaches a Relu); alone they are an
    Activation cell."""
    inits = {}
    nodes = [conv("x", 4, 3, "c", inits), helper.make_node(op, ["c"], ["act"], **attrs)]
    model = model_of(nodes, [2, 4, 6, 5], inits, opset)
    check_import(model, X4)
    graph = import_onnx(model)
    if op == "Erf":
        assert type(graph.cells["act"]).__name__ == "OnnxTensorCell"
    else:
        assert list(graph.cells) == ["c"]
        assert type(graph.cells["c"].activation).__name__ == {"Gelu": "GELU"}.get(op, op)
    alone = model_of([helper.make_node(op, ["x"], ["act"], **attrs)], [2, 4, 6, 5], {}, opset)
    check_import(alone, X4)


@pytest.mark.parametrize("exponent", [2.0, 3.0, 0.5])
def test_pow_by_a_constant(exponent):
    model = model_of([helper.make_node("Abs", ["x"], ["a"]),
                      helper.make_node("Pow", ["a", "e"], ["p"])], [2, 4, 6, 5],
                     {"e": numpy.float32(exponent)}, 13)
    check_import(model, X4, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("axis, shape, bias", [(-1, [2, 5, 3, 8], True), (-2, [2, 5, 3, 8], False),
                                               (1, [2, 6, 7], True), (-1, [3, 10], True)])
def test_layer_normalization(axis, shape, bias):
    norm = shape[axis:] if axis < 0 else shape[axis:]
    inits = {"s": RNG.standard_normal(norm).astype(numpy.float32)}
    if bias:
        inits["b"] = RNG.standard_normal(norm).astype(numpy.float32)
    node = helper.make_node("LayerNormalization", ["x", "s"] + (["b"] if bias else []), ["y"],
                            axis=axis, epsilon=1e-6)
    model = model_of([node], shape, inits, 17)
    x = (RNG.standard_normal(shape) * 2 + 1).astype(numpy.float32)
    check_import(model, x, atol=1e-4)
    cell = import_onnx(model).cells["y"]
    assert isinstance(cell, OnnxLayerNormCell) and cell.count == len(norm)


def convnext_block(opset, decomposed):
    """ConvNeXt's block as the exporters write it: depthwise Conv, Transpose to NHWC,
    LayerNorm (opset 17) or its ReduceMean/Sub/Pow/Sqrt/Div decomposition (opset 13),
    MatMul + Add (Linear on NHWC), exact GELU as Erf arithmetic, MatMul + Add, Transpose back,
    the layer scale (a per-channel Mul), the residual Add."""
    c = 8
    r = RNG.standard_normal
    inits = {"dw": (r((c, 1, 7, 7)) / 7).astype(numpy.float32), "dwb": r(c).astype(numpy.float32),
             "g": (1 + 0.1 * r(c)).astype(numpy.float32), "be": (0.1 * r(c)).astype(numpy.float32),
             "w1": (r((c, 4 * c)) / c ** 0.5).astype(numpy.float32),
             "b1": (0.1 * r(4 * c)).astype(numpy.float32),
             "w2": (r((4 * c, c)) / (2 * c)).astype(numpy.float32),
             "b2": (0.1 * r(c)).astype(numpy.float32),
             "ls": (0.5 + r((c, 1, 1)) ** 2).astype(numpy.float32),
             "two": numpy.float32(2), "eps": numpy.float32(1e-6),
             "sqrt2": numpy.float32(2 ** 0.5), "one": numpy.float32(1), "half": numpy.float32(0.5)}
    n = helper.make_node
    nodes = [n("Conv", ["x", "dw", "dwb"], ["dwc"], group=c, pads=[3] * 4, kernel_shape=[7, 7]),
             n("Transpose", ["dwc"], ["nhwc"], perm=[0, 2, 3, 1])]
    if decomposed:
        nodes += [n("ReduceMean", ["nhwc"], ["mu"], axes=[-1]), n("Sub", ["nhwc", "mu"], ["d"]),
                  n("Pow", ["d", "two"], ["d2"]), n("ReduceMean", ["d2"], ["var"], axes=[-1]),
                  n("Add", ["var", "eps"], ["ve"]), n("Sqrt", ["ve"], ["sd"]),
                  n("Div", ["d", "sd"], ["xn"]), n("Mul", ["xn", "g"], ["xs"]),
                  n("Add", ["xs", "be"], ["ln"])]
    else:
        nodes += [n("LayerNormalization", ["nhwc", "g", "be"], ["ln"], axis=-1, epsilon=1e-6)]
    nodes += [n("MatMul", ["ln", "w1"], ["m1"]), n("Add", ["b1", "m1"], ["l1"]),
              n("Div", ["l1", "sqrt2"], ["q"]), n("Erf", ["q"], ["e"]),
              n("Add", ["e", "one"], ["e1"]), n("Mul", ["l1", "e1"], ["ge"]),
              n("Mul", ["ge", "half"], ["gelu"]),
              n("MatMul", ["gelu", "w2"], ["m2"]), n("Add", ["m2", "b2"], ["l2"]),
              n("Transpose", ["l2"], ["nchw"], perm=[0, 3, 1, 2]),
              n("Mul", ["ls", "nchw"], ["scaled"]), n("Add", ["scaled", "x"], ["out"])]
    return model_of(nodes, [2, c, 6, 5], inits, opset)


@pytest.mark.parametrize("opset, decomposed", [(13, True), (17, False)])
def test_convnext_block(opset, decomposed):
    model = convnext_block(opset, decomposed)
    x = RNG.standard_normal((2, 8, 6, 5)).astype(numpy.float32)
    check_import(model, x, atol=1e-4)
    cells = import_onnx(model).cells
    matmuls = [c for c in cells.values() if isinstance(c, OnnxMatMulCell)]
    assert [c.bias is not None for c in matmuls] == [True, True]   # the Adds folded in
    assert any(isinstance(c, OnnxLayerNormCell) for c in cells.values()) != decomposed


def test_tanh_gelu_decomposed():
    """``gelu(approximate='tanh')`` at opset < 20: Pow 3, Mul, Add, Tanh, Mul."""
    n = helper.make_node
    inits = {"three": numpy.float32(3), "k": numpy.float32(0.044715),
             "s": numpy.float32((2 / numpy.pi) ** 0.5), "one": numpy.float32(1),
             "half": numpy.float32(0.5)}
    nodes = [n("Pow", ["x", "three"], ["x3"]), n("Mul", ["x3", "k"], ["kx3"]),
             n("Add", ["x", "kx3"], ["inner"]), n("Mul", ["inner", "s"], ["scaled"]),
             n("Tanh", ["scaled"], ["t"]), n("Add", ["t", "one"], ["t1"]),
             n("Mul", ["x", "t1"], ["xt"]), n("Mul", ["xt", "half"], ["y"])]
    check_import(model_of(nodes, [2, 4, 6, 5], inits, 13), X4, atol=1e-4)


@pytest.mark.parametrize("shape, K", [([2, 3, 4, 6], 6), ([2, 5, 6], 6)])
def test_matmul_on_nd_inputs(shape, K):
    model = model_of([helper.make_node("MatMul", ["x", "w"], ["y"])], shape,
                     {"w": RNG.standard_normal((K, 7)).astype(numpy.float32)}, 13)
    check_import(model, RNG.standard_normal(shape).astype(numpy.float32))
    cell = import_onnx(model).cells["y"]
    assert isinstance(cell, OnnxMatMulCell) and cell.weights[0].shape == (7, K)
    assert cell.cost().macs == 7 * K * numpy.prod(shape[1:-1])


# ---------------------------------------------------------------- layout operators
def const_i64(values):
    return numpy.asarray(values, numpy.int64)


LAYOUT = {   # name: (nodes, inits, opset): each on x of shape (2, 6, 4, 5)
    "slice_channels": ([helper.make_node("Slice", ["x", "st", "en", "ax"], ["y"])],
                       {"st": const_i64([3]), "en": const_i64([6]), "ax": const_i64([1])}, 13),
    "slice_steps": ([helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])],
                    {"st": const_i64([-1, 0]), "en": const_i64([-100, 5]),
                     "ax": const_i64([1, 3]), "sp": const_i64([-2, 2])}, 13),
    "split_attr": ([helper.make_node("Split", ["x"], ["y", "z"], axis=1, split=[2, 4])], {}, 11),
    "split_input": ([helper.make_node("Split", ["x", "s"], ["y", "z"], axis=1)],
                    {"s": const_i64([3, 3])}, 13),
    "split_num_outputs": ([helper.make_node("Split", ["x"], ["y", "z", "w"], axis=3,
                                            num_outputs=3)], {}, 18),
    "gather_channels": ([helper.make_node("Gather", ["x", "i"], ["y"], axis=1)],
                        {"i": const_i64([5, 0, -1, 2])}, 13),
    "gather_scalar": ([helper.make_node("Gather", ["x", "i"], ["y"], axis=3)],
                      {"i": const_i64(2)}, 13),
    "gather_2d": ([helper.make_node("Gather", ["x", "i"], ["y"], axis=2)],
                  {"i": const_i64([[0, 3], [1, 1]])}, 13),
    "gather_elements": ([helper.make_node("GatherElements", ["x", "i"], ["y"], axis=1)],
                        {"i": numpy.broadcast_to(const_i64([[[[5]], [[0]]]]), (2, 2, 4, 5))}, 13),
    "expand": ([helper.make_node("ReduceMean", ["x"], ["m"], axes=[2, 3]),
                helper.make_node("Expand", ["m", "s"], ["y"])], {"s": const_i64([2, 6, 3, 3])}, 13),
    "tile": ([helper.make_node("Tile", ["x", "r"], ["y"])], {"r": const_i64([1, 2, 1, 3])}, 13),
    "depth_to_space": ([helper.make_node("Slice", ["x", "st", "en", "ax"], ["s"]),
                        helper.make_node("DepthToSpace", ["s"], ["y"], blocksize=2)],
                       {"st": const_i64([0]), "en": const_i64([4]), "ax": const_i64([1])}, 13),
    "space_to_depth": ([helper.make_node("Slice", ["x", "st", "en", "ax"], ["s"]),
                        helper.make_node("SpaceToDepth", ["s"], ["y"], blocksize=2)],
                       {"st": const_i64([0]), "en": const_i64([4]), "ax": const_i64([3])}, 13),
    "transpose_batch_and_back": ([helper.make_node("Transpose", ["x"], ["t"], perm=[2, 3, 0, 1]),
                                  helper.make_node("Transpose", ["t"], ["y"], perm=[2, 0, 3, 1])],
                                 {}, 13),
    "six_axes": ([helper.make_node("Reshape", ["x", "s"], ["r"]),
                  helper.make_node("Transpose", ["r"], ["t"], perm=[0, 1, 4, 2, 5, 3]),
                  helper.make_node("Reshape", ["t", "s2"], ["y"])],
                 {"s": const_i64([2, 3, 2, 2, 2, 5]), "s2": const_i64([2, 3, 4, 10])}, 13),
    "flatten_batch_then_gather": (   # the dynamo exporter's as_strided after a global pool
        [helper.make_node("ReduceMean", ["x"], ["m"], axes=[2, 3], keepdims=1),
         helper.make_node("Reshape", ["m", "s"], ["f"]),
         helper.make_node("Gather", ["f", "i"], ["y"], axis=0)],
        {"s": const_i64([-1]), "i": const_i64(numpy.arange(12).reshape(2, 6, 1, 1))}, 13),
}


def adaptive_pool_by_gathernd():
    """AdaptiveAvgPool2d((3, 3)) of a 2x2 map as the dynamo exporter writes it: Transpose the
    batch and channels last, GatherND the overlapping windows, Transpose back, ReduceMean."""
    starts = [0, 0, 1]                     # windows [0, 1), [0, 2), [1, 2) on each axis
    index = numpy.zeros((3, 3, 2, 2, 2), numpy.int64)
    for i in range(3):
        for j in range(3):
            for a in range(2):
                for b in range(2):
                    index[i, j, a, b] = (min(starts[i] + a, 1), min(starts[j] + b, 1))
    n = helper.make_node
    nodes = [n("MaxPool", ["x"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             n("Slice", ["p", "st", "en", "ax"], ["q"]),
             n("Transpose", ["q"], ["t"], perm=[2, 3, 0, 1]),
             n("GatherND", ["t", "i"], ["g"]),
             n("Transpose", ["g"], ["u"], perm=[4, 5, 0, 1, 2, 3]),
             n("ReduceMean", ["u"], ["y"], axes=[4, 5], keepdims=0)]
    return nodes, {"st": const_i64([0, 0]), "en": const_i64([2, 2]), "ax": const_i64([2, 3]),
                   "i": index}, 13


LAYOUT["gathernd_adaptive_pool"] = adaptive_pool_by_gathernd()
X_LAYOUT = RNG.standard_normal((2, 6, 4, 5)).astype(numpy.float32)


@pytest.mark.parametrize("case", sorted(LAYOUT))
def test_layout_operator(case):
    nodes, inits, opset = LAYOUT[case]
    outputs = [o for o in nodes[-1].output]
    model = model_of(nodes, [2, 6, 4, 5], inits, opset, outputs)
    check_import(model, X_LAYOUT)
    cells = import_onnx(model).cells
    assert all(isinstance(c, (OnnxGatherCell, OnnxMatMulCell)) or type(c).__name__ in (
        "OnnxTensorCell", "PoolCell", "OnnxPoolCell", "PaddingCell") for c in cells.values()), cells


def test_layout_chain_is_one_gather_cell():
    """Split, Transpose across the batch and back, Gather: one cell, named after the tensor its
    reader reads; a whole-tensor chain is no cell at all."""
    n = helper.make_node
    nodes = [n("Split", ["x", "s"], ["a", "b"], axis=1),
             n("Transpose", ["b"], ["t"], perm=[1, 0, 2, 3]),
             n("Transpose", ["t"], ["u"], perm=[1, 0, 3, 2]),
             n("Gather", ["u", "i"], ["g"], axis=1), n("Relu", ["g"], ["y"])]
    model = model_of(nodes, [2, 6, 4, 5], {"i": const_i64([3, 0]), "s": const_i64([2, 4])}, 13)
    check_import(model, X_LAYOUT)
    cells = import_onnx(model).cells
    assert [type(c).__name__ for c in cells.values()] == ["OnnxGatherCell", "ActivationCell"]
    assert list(cells) == ["g", "y"]
    whole = model_of([n("Transpose", ["x"], ["t"], perm=[1, 0, 2, 3]),
                      n("Transpose", ["t"], ["y"], perm=[1, 0, 2, 3])], [2, 6, 4, 5])
    assert not import_onnx(whole).cells


def test_shufflenet_channel_split_cell():
    nodes, inits, opset = LAYOUT["slice_channels"]
    cell = import_onnx(model_of(nodes, [2, 6, 4, 5], inits, opset)).cells["y"]
    assert cell.channel_range() == (3, 6) and cell.keeps_precision


@pytest.mark.parametrize("kind, attrs, opset", [
    ("MaxPool", dict(kernel_shape=[3, 3], dilations=[2, 2]), 12),
    ("MaxPool", dict(kernel_shape=[2, 3], dilations=[2, 1], strides=[2, 1], pads=[1, 0, 0, 1],
                     ceil_mode=1), 12),
    ("AveragePool", dict(kernel_shape=[2, 2], dilations=[2, 2], pads=[1, 1, 1, 1]), 19),
    ("AveragePool", dict(kernel_shape=[2, 2], dilations=[2, 2], pads=[1, 1, 1, 1],
                         count_include_pad=1), 19),
    ("MaxPool", dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1]), 13)])    # 1x1 input below
def test_pools(kind, attrs, opset):
    x = X4 if "dilations" in attrs else X4[:, :, :1, :1].copy()
    model = model_of([helper.make_node(kind, ["x"], ["y"], **attrs)], list(x.shape), {}, opset)
    try:
        check_import(model, x)
    except Exception as exc:   # onnxruntime may lack a kernel (AveragePool-19 dilations)
        if "NOT_IMPLEMENTED" not in str(exc):
            raise
        ours = OnnxModel(model).run({"x": x})["y"]
        numpy.testing.assert_allclose(ours, ReferenceEvaluator(model).run(None, {"x": x})[0],
                                      rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------- refusals: one line each
@pytest.mark.parametrize("nodes, inits, opset, pattern", [
    ([helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0, 2, 3]),
      helper.make_node("Relu", ["t"], ["y"])], {}, 13,
     r"node 'y' \(Relu\): tensor 't' of shape \[6, 2, 4, 5\] has its batch axis moved"),
    ([helper.make_node("Gather", ["x", "i"], ["y"], axis=0)], {"i": const_i64([1, 0, 1])}, 13,
     r"node 'y' \(Gather\): tensor 'y' of shape \[3, 6, 4, 5\] has its batch axis moved"),
    ([helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Cast", ["x"], ["c"], to=7),
      helper.make_node("Gather", ["x", "c"], ["y"], axis=1)], {}, 13,
     r"node 'c' \(Cast\)"),
    ([helper.make_node("Pow", ["x", "x"], ["y"])], {}, 13,
     r"node 'y' \(Pow\): the exponent \('x'\) must be a constant"),
    ([helper.make_node("Pow", ["x", "e"], ["y"])], {"e": numpy.ones(5, numpy.float32)}, 13,
     r"node 'y' \(Pow\): exponent of shape \(5,\)"),
    ([helper.make_node("LayerNormalization", ["x", "s"], ["y"], axis=0)],
     {"s": numpy.ones((2, 6, 4, 5), numpy.float32)}, 17, r"node 'y' \(LayerNormalization\): axis=0"),
    ([helper.make_node("LayerNormalization", ["x", "s"], ["y", "m"], axis=-1)],
     {"s": numpy.ones(5, numpy.float32)}, 17, r"node 'y' \(LayerNormalization\): the Mean"),
    ([helper.make_node("Gelu", ["x"], ["y"], approximate="erf")], {}, 20,
     r"node 'y' \(Gelu\): approximate='erf'"),
    ([helper.make_node("MatMul", ["x", "w"], ["y"])], {"w": numpy.ones((4, 3), numpy.float32)},
     13, r"node 'y' \(MatMul\): input of shape \(2, 6, 4, 5\) by weights of shape \(4, 3\)"),
])
def test_refusals_name_node_and_what_is_missing(nodes, inits, opset, pattern):
    outputs = [nodes[-1].output[0]] + (["m"] if "m" in nodes[-1].output else [])
    model = model_of(nodes, [2, 6, 4, 5], inits, opset, outputs)
    with pytest.raises(OnnxError, match=pattern) as info:
        OnnxModel(model).run({"x": X_LAYOUT})
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- --export ONNX round trips
def round_trip_activations():
    inits = {}
    n = helper.make_node
    nodes = [conv("x", 6, 4, "c1", inits), n("HardSwish", ["c1"], ["h"]),
             conv("h", 4, 4, "c2", inits), n("HardSigmoid", ["c2"], ["s"], alpha=1 / 6),
             conv("s", 4, 4, "c3", inits), n("Gelu", ["c3"], ["g"]),
             conv("g", 4, 4, "c4", inits), n("Gelu", ["c4"], ["y"], approximate="tanh")]
    return nodes, inits, 20


ROUND_TRIPS = {   # name: () -> (nodes, inits, opset) on x of shape (2, 6, 4, 5)
    "activations": round_trip_activations,
    "erf_pow": lambda: ([helper.make_node("Erf", ["x"], ["e"]),
                         helper.make_node("Pow", ["e", "three"], ["y"])],
                        {"three": numpy.float32(3)}, 13),
    "slice_steps": lambda: LAYOUT["slice_steps"],
    "gathernd_adaptive_pool": lambda: LAYOUT["gathernd_adaptive_pool"],
    "dilated_pool": lambda: ([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2],
                                               dilations=[2, 2], ceil_mode=1, strides=[2, 2])],
                             {}, 13),
    "convnext_block": None,
}


@pytest.mark.parametrize("case", sorted(ROUND_TRIPS))
def test_export_onnx_round_trip(case, tmp_path):
    """``--export ONNX`` of the imported network: the exported graph, run by onnx.reference and
    onnxruntime, gives n2d2py's outputs; imported again, it gives them too."""
    if case == "convnext_block":
        model, shape = convnext_block(17, False), [2, 8, 6, 5]
    else:
        nodes, inits, opset = ROUND_TRIPS[case]()
        model, shape = model_of(nodes, [2, 6, 4, 5], inits, opset), [2, 6, 4, 5]
    x = RNG.standard_normal(shape).astype(numpy.float32)
    expected = next(iter(check_import(model, x, atol=1e-4).values()))
    onnx.save(model, tmp_path / "m.onnx")
    net = DeepNet.from_ini(onnx_document(tmp_path / "m.onnx"), load_data=False,
                           require_target=False)
    exported = export_onnx(net, tmp_path / "m.export.onnx")
    last = exported.graph.output[0].name
    feeds = {"env": x}
    got = ReferenceEvaluator(exported).run([last], feeds)[0]
    numpy.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-4, atol=1e-4)
    try:
        import onnxruntime
    except ImportError:
        return
    session = onnxruntime.InferenceSession(str(tmp_path / "m.export.onnx"),
                                           providers=["CPUExecutionProvider"])
    got = session.run([last], feeds)[0]
    numpy.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-4, atol=1e-4)
    again = OnnxModel(tmp_path / "m.export.onnx").run(feeds)[last]
    numpy.testing.assert_allclose(again.reshape(expected.shape), expected, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- training through the cells
def test_gradients_through_imported_cells_match_pytorch(torch, tmp_path):
    """A ConvNeXt-like PyTorch block (LayerNorm on NHWC, Linear on NHWC, GELU, a channel
    split, h-swish), exported by the TorchScript exporter: the gradients n2d2py computes for
    every imported parameter equal PyTorch's."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 8, 3, padding=1)
            self.norm = nn.LayerNorm(8)
            self.fc = nn.Linear(8, 6)
            self.out = nn.Conv2d(3, 5, 1)

        def forward(self, x):
            y = self.conv(x).permute(0, 2, 3, 1)
            y = nn.functional.gelu(self.fc(self.norm(y))).permute(0, 3, 1, 2)
            a, b = y.chunk(2, dim=1)
            return self.out(nn.functional.hardswish(a) * b)

    torch.manual_seed(0)
    block = Block().eval()
    with torch.no_grad():
        block.norm.weight.uniform_(0.5, 1.5)
        block.norm.bias.uniform_(-0.5, 0.5)
    x = torch.tensor(RNG.standard_normal((2, 4, 5, 6)).astype(numpy.float32))
    path = tmp_path / "block.onnx"
    torch.onnx.export(block, (x,), str(path), opset_version=17, dynamo=False,
                      input_names=["x"], output_names=["y"])
    gy = RNG.standard_normal((2, 5, 5, 6)).astype(numpy.float32)
    block(x).backward(torch.tensor(gy))

    graph = import_onnx(str(path))
    values = {"x": Variable(x.numpy())}
    for name, cell in graph.cells.items():
        values[name] = cell.forward([values[p] for p in cell.parents], training=True)
    y = values[graph.output_values["y"].source]
    numpy.testing.assert_allclose(y.data.reshape(gy.shape), block(x).detach().numpy(), atol=1e-5)
    y.backward(gy.reshape(y.shape))
    norm = next(c for c in graph.cells.values() if isinstance(c, OnnxLayerNormCell))
    fc = next(c for c in graph.cells.values() if isinstance(c, OnnxMatMulCell))
    pairs = [(norm.scale, block.norm.weight), (norm.bias, block.norm.bias),
             (fc.weights[0], block.fc.weight), (fc.bias, block.fc.bias)]
    for ours, theirs in pairs:
        numpy.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-4, atol=1e-5)
    conv = graph.cells[next(n for n, c in graph.cells.items() if type(c).__name__ == "ConvCell")]
    numpy.testing.assert_allclose(conv.weights[0].grad, block.conv.weight.grad.numpy(),
                                  rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- the cells in a network
def ini_net(tmp_path, model, extra=""):
    """A DeepNet of an INI importing ``model`` (saved as m.onnx), with ``extra`` sections."""
    from n2d2py.ini import parse_ini_text
    onnx.save(model, tmp_path / "m.onnx")
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    out = model.graph.output[0].name
    text = (f"DefaultModel=Frame\n[sp]\nSizeX={dims[3]}\nSizeY={dims[2]}\nNbChannels={dims[1]}\n"
            f"BatchSize={dims[0]}\n[onnx]\nInput=sp\nType=ONNX\nFile={tmp_path / 'm.onnx'}\n"
            f"{extra}\n[{out}.Target]\n")
    return DeepNet.from_ini(parse_ini_text(text, str(tmp_path / "net.ini")), load_data=False)


def test_activation_functions_in_an_ini(tmp_path):
    from n2d2py.build import build_cells_from
    from n2d2py.errors import N2D2Error
    from n2d2py.ini import parse_ini_text
    text = ("[c]\nInput=sp\nType=Conv\nKernelDims=1 1\nNbOutputs=3\nActivationFunction=GELU\n"
            "ActivationFunction.Approximate=Tanh\n[h]\nInput=c\nType=Activation\nNbOutputs=3\n"
            "ActivationFunction=HardSigmoid\nActivationFunction.Alpha=0.25\n")
    cells = build_cells_from(parse_ini_text(text, "net.ini"), (2, 3, 3)).cells
    x = Variable(RNG.standard_normal((2, 2, 3, 3)).astype(numpy.float32))
    pre = F.conv2d(x, cells["c"].weights[0], cells["c"].bias)
    y = cells["h"].forward([cells["c"].forward([x])]).data
    u = pre.data
    gelu = 0.5 * u * (1 + numpy.tanh((2 / numpy.pi) ** 0.5 * (u + 0.044715 * u ** 3)))
    numpy.testing.assert_allclose(y, numpy.clip(0.25 * gelu + 0.5, 0, 1), rtol=1e-5, atol=1e-6)
    with pytest.raises(N2D2Error, match=r"net.ini:7.*Approximate"):
        build_cells_from(parse_ini_text(text.replace("=Tanh", "=Fast"), "net.ini"), (2, 3, 3))


def test_weights_folder_round_trip(tmp_path):
    """``-w``: LayerNorm scales/biases and the N-D MatMul's weights are written and read
    back."""
    net = ini_net(tmp_path, convnext_block(17, False))
    x = RNG.standard_normal((2, 8, 6, 5)).astype(numpy.float32)
    before = next(iter(net.forward(x).values())).data.copy()
    net.export_weights(str(tmp_path / "w"), precision=9)    # float32 exactly
    for p in net.parameters():
        p.data[...] = 0
    net.import_weights(str(tmp_path / "w"))
    numpy.testing.assert_allclose(next(iter(net.forward(x).values())).data, before, rtol=1e-6,
                                  atol=1e-7)
    norm = next(c for c in net.cells.values() if isinstance(c, OnnxLayerNormCell))
    assert (tmp_path / "w" / "ln_scales.syntxt").exists() and norm.name == "ln"


def test_fc_def_quantizes_the_nd_matmul(tmp_path):
    """``[onnx:Fc_def] QWeight=SAT`` reaches ConvNeXt's Linear layers (N-D MatMul cells); the QDQ
    export carries their integer weights and computes what n2d2py computes; ``--qat-sat``
    refuses the network naming the cell it has no rule for."""
    from n2d2py.errors import N2D2Error
    from n2d2py.qat import fuse_qat
    net = ini_net(tmp_path, convnext_block(17, False),
                  "[onnx:Fc_def]\nQWeight=SAT\nQWeight.Range=15\n"
                  "[onnx:Conv_def]\nQWeight=SAT\nQWeight.Range=15\n")
    matmuls = [c for c in net.cells.values() if isinstance(c, OnnxMatMulCell)]
    assert len(matmuls) == 2 and all(c.qweight is not None for c in matmuls)
    x = RNG.standard_normal((2, 8, 6, 5)).astype(numpy.float32)
    ours = next(iter(net.forward(x).values())).data
    exported = export_onnx(net, tmp_path / "q.onnx")
    assert sum(n.op_type == "DequantizeLinear" for n in exported.graph.node) == 3
    got = ReferenceEvaluator(exported).run(None, {"env": x})[0]
    numpy.testing.assert_allclose(got.reshape(ours.shape), ours, rtol=1e-4, atol=1e-4)
    with pytest.raises(N2D2Error, match=r"\[dwc\] has no BatchNorm child"):
        fuse_qat(net)     # --qat-sat needs Conv -> BatchNorm -> SAT activation first

    class Fuser:          # what --qat-sat's fuser answers a cell that declares a refusal
        @staticmethod
        def error(cell, message):
            return N2D2Error(f"[{cell.name}] {message}")
    for name, words in (("ln", "LayerNorm"), ("m1", "MatMul on an N-D tensor")):
        with pytest.raises(N2D2Error, match=rf"\[{name}\] .*{words}"):
            net.cells[name].fuse(Fuser())


# ---------------------------------------------------------------- --qat-sat through ONNX pools
@pytest.mark.parametrize("pooling", ["Max", "Average"])
def test_qat_sat_fuses_onnx_max_pools(tmp_path, pooling):
    """A max pool with ONNX geometry (dilated, asymmetric pads) in a 4-bit SAT LeNet
    (ini_examples/LeNet_SAT4.ini's pool1 replaced): ``--qat-sat`` moves bn1's integer codes
    through it, equal to ONNX's MaxPool run on them by onnx.reference, and the integer ONNX
    export computes the same codes; an average pool of that geometry (counts vary by window)
    is refused naming the cell."""
    import pathlib
    from n2d2py.errors import N2D2Error
    from n2d2py.ini import parse_ini_text
    from n2d2py.onnx.cells import OnnxPoolCell
    from n2d2py.onnx.export_integer import export_integer_onnx
    from n2d2py.onnx.ops import unit_map
    from n2d2py.qat import fuse_qat
    ini = pathlib.Path(__file__).resolve().parents[2] / "ini_examples" / "LeNet_SAT4.ini"
    net = DeepNet.from_ini(parse_ini_text(ini.read_text(), str(tmp_path / "net.ini")),
                           load_data=False)
    old = net.cells["pool1"]
    pool = OnnxPoolCell(name="pool1", parents=list(old.parents), mapping=unit_map(),
                        nb_outputs=old.nb_outputs, pooling=pooling, pool_dims=(2, 2),
                        stride_dims=(2, 2), padding_dims=(0, 0), pads=(0, 1, 0, 1),
                        dilations=(2, 2))
    pool.build([net.cells[p].out_shape for p in pool.parents], None)
    assert tuple(pool.out_shape) == tuple(old.out_shape)
    net.cells["pool1"] = pool
    norm = net.cells["bn1"]        # statistics that spread bn1's codes over SAT's 16 levels
    norm.mean[...], norm.variance[...] = 0, 0.05
    norm.bias.data[...] = RNG.uniform(0, 4, norm.bias.data.shape)
    if pooling == "Average":
        with pytest.raises(N2D2Error, match=r"\[pool1\].*average pool with ONNX geometry"):
            fuse_qat(net)
        return
    fused = fuse_qat(net)
    x = RNG.integers(0, 256, (3, 1, 32, 32)).astype(numpy.float32) / 255
    codes = fused.forward(fused.input_codes(x), keep="all")
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2],
                            pads=[0, 0, 1, 1], dilations=[2, 2])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, None)],
                              [helper.make_tensor_value_info("y", 1, None)])
    bn1 = codes[fused.alias["bn1"]]
    expected = ReferenceEvaluator(helper.make_model(graph)).run(
        None, {"x": bn1.astype(numpy.float32)})[0]
    assert numpy.array_equal(codes["pool1"], expected)
    assert len(numpy.unique(codes["pool1"])) > 8            # the codes are not all equal
    assert not numpy.array_equal(codes["pool1"], bn1[:, :, ::2, ::2])     # max, not a pick
    model = export_integer_onnx(fused, None, all_outputs=True)
    names = [o.name for o in model.graph.output]
    got = dict(zip(names, ReferenceEvaluator(model).run(
        None, {"env": fused.input_codes(x).astype(numpy.uint8)})))
    assert numpy.array_equal(got["pool1"].astype(numpy.int64), codes["pool1"].astype(numpy.int64))
