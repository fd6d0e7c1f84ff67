"""``export_onnx`` (n2d2py/onnx/export.py): float networks and SAT/LSQ QDQ graphs, checked by
onnx's ReferenceEvaluator, onnxruntime, and export -> re-import -> run."""
import pathlib

import numpy
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

from n2d2py.autograd import no_grad
from n2d2py.deepnet import DeepNet
from n2d2py.errors import OnnxError
from n2d2py.ini import parse_ini_text
from n2d2py.onnx import OnnxModel
from n2d2py.onnx.export import export_onnx

DATA = pathlib.Path(__file__).resolve().parent / "data"
FLOAT_ATOL = 1e-5     # float32 sums in another order
# QDQ: ONNX rounds x/scale, n2d2py R·(x/α): quotients an ulp apart can round to neighbouring
# levels at a tie; the nets below see none, so the exact-path comparison keeps FLOAT_ATOL.


def network(name, text=None, seed=0):
    net = DeepNet.from_ini(DATA / name if text is None else
                           parse_ini_text(text, str(DATA / "net.ini")), device="cpu",
                           load_data=False)
    rng = numpy.random.default_rng(seed)
    for cell in net.cells.values():          # non-trivial BatchNorm statistics
        if cell.type_name == "BatchNorm":
            cell.mean[:] = rng.standard_normal(len(cell.mean)) * 0.1
            cell.variance[:] = rng.random(len(cell.mean)) + 0.5
    x = rng.standard_normal((3,) + tuple(net.input_shape)).astype(numpy.float32)
    with no_grad():
        net.forward(x)                       # LSQ initialises its steps on the first batch
        ref = {k: v.data for k, v in net.forward(x, keep="all").items()}
    return net, x, ref


def with_outputs(model, names):
    model = onnx.ModelProto.FromString(model.SerializeToString())
    have = {o.name for o in model.graph.output}
    for name in names:
        if name not in have:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, 1, None))
    return model, [o.name for o in model.graph.output]


def run_ort(model, x, optimize=False):
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    if not optimize:   # ORT's QDQ fusion (QLinearConv) requantizes in integers: see below
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options).run(None, {"env": x})


def exported_float(tmp_path):
    """(net, x, ref, model with every kept cell as an output, output names, kept cells)."""
    net, x, ref = network("export_float.ini")
    model = export_onnx(net, tmp_path / "net.onnx")
    kept = [n for n, c in net.cells.items() if c.type_name != "Dropout"]   # omitted: identity
    return (net, x, ref, *with_outputs(model, kept), kept)


def assert_outputs(outputs, names, cells, ref):
    for name in cells:
        got = outputs[names.index(name)].reshape(ref[name].shape)
        numpy.testing.assert_allclose(got, ref[name], atol=FLOAT_ATOL, err_msg=name)


def test_float_network_matches_reference_and_reimport(tmp_path):
    net, x, ref, model, names, kept = exported_float(tmp_path)
    ops = {n.op_type for n in model.graph.node}
    assert {"Conv", "BatchNormalization", "Clip", "Tanh", "Pad", "Slice", "Sum", "Concat",
            "AveragePool", "Gemm", "Softmax"} <= ops and "Dropout" not in ops
    assert [n.attribute for n in model.graph.node if n.op_type == "Conv" and
            any(a.name == "group" and a.i == 6 for a in n.attribute)]       # depthwise conv
    assert_outputs(ReferenceEvaluator(model).run(None, {"env": x}), names, kept, ref)
    back = OnnxModel(tmp_path / "net.onnx").run({"env": x})["soft"]
    numpy.testing.assert_allclose(back, ref["soft"], atol=FLOAT_ATOL)


def test_float_network_matches_onnxruntime(tmp_path):
    net, x, ref, model, names, kept = exported_float(tmp_path)
    assert_outputs(run_ort(model, x, True), names, kept, ref)


MAXPOOL = """
[sp]
SizeX=9
SizeY=9
NbChannels=4
BatchSize=1

[pool]
Input=sp
Type=Pool
PoolDims=3 3
StrideDims=2 2
NbOutputs=2
Pooling=Max

[pool2]
Input=pool
Type=Pool
PoolDims=2 2
StrideDims=1 1
NbOutputs=2
Pooling=Max
Mapping.ChannelsPerGroup=1

[pool2.Target]
"""


def test_channel_wise_max_pool(tmp_path):
    net, x, ref = network(None, MAXPOOL)
    model = export_onnx(net, tmp_path / "pool.onnx")
    assert "ReduceMax" in {n.op_type for n in model.graph.node}
    y = ReferenceEvaluator(model).run(None, {"env": x})[0]
    numpy.testing.assert_allclose(y, ref["pool2"], atol=FLOAT_ATOL)
    expected = x.max(axis=1, keepdims=True)          # all-to-all: max over channels too
    assert ref["pool"].shape == (3, 2, 4, 4) and numpy.isclose(ref["pool"][0, 0, 0, 0],
                                                               expected[0, 0, :3, :3].max())


def exported_qdq(tmp_path):
    net, x, ref = network("export_qdq.ini")
    return net, x, ref, export_onnx(net, tmp_path / "qdq.onnx")


def test_qdq_network_reproduces_fake_quantization(tmp_path):
    net, x, ref, model = exported_qdq(tmp_path)
    dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    q = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert len(q) == 2 and len(dq) == 2 + 3          # 2 activations, 3 weight tensors
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    w1 = inits["conv1/W_int"]                        # SAT Default R=15: odd codes 2k-15, int8
    assert w1.dtype == numpy.int8 and set(numpy.unique(w1) % 2) == {1}
    assert numpy.abs(w1).max() <= 15 and inits["conv1/W_scale"] == numpy.float32(1 / 15)
    assert inits["fc/W_int"].dtype == numpy.int32    # R=255: codes up to 255 need int32
    assert numpy.isclose(inits["conv2/W_scale"], net.cells["conv2"].qweight.step_size)
    assert numpy.isclose(inits["conv1/qscale"], 2.0 / 15)             # SAT act: alpha/R
    model, names = with_outputs(model, list(net.cells))
    assert_outputs(ReferenceEvaluator(model).run(None, {"env": x}), names, net.cells, ref)


def test_qdq_network_in_onnxruntime(tmp_path):
    net, x, ref, model = exported_qdq(tmp_path)
    model, names = with_outputs(model, list(net.cells))
    assert_outputs(run_ort(model, x), names, net.cells, ref)
    # ORT's default optimisations fuse DQ-Conv-Q into integer kernels that requantize the int32
    # accumulator their own way: activations may move by one step on a few elements, never more.
    fused = run_ort(model, x, optimize=True)
    step = net.cells["conv2"].qact.step_size
    diff = numpy.abs(fused[names.index("conv2")].reshape(ref["conv2"].shape) - ref["conv2"])
    assert diff.max() <= step * 1.001 and (diff > 1e-5).mean() < 0.05


def test_unsupported_cell_is_a_clear_error():
    text = MAXPOOL.replace("[pool2.Target]", "[th]\nInput=pool2\nType=Threshold\nNbOutputs=2\n"
                           "Threshold=0.5\n\n[th.Target]")
    net = DeepNet.from_ini(parse_ini_text(text, str(DATA / "n.ini")), device="cpu",
                           load_data=False)
    with pytest.raises(OnnxError, match=r"cannot export cell \[th\] \(Type=Threshold\): "
                                        r"Threshold has no ONNX export yet"):
        export_onnx(net)
