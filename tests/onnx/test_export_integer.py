"""Integer ONNX export of the fused ``--qat-sat`` network (``onnx/export_integer.py``): every
fused node's codes from onnxruntime and from onnx's ReferenceEvaluator equal the integer
engine's exactly on the bundled test digits, and so does the accuracy."""
import pathlib
import sys

import numpy
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

from n2d2py.onnx.export_integer import export_integer_onnx, weight_digits
from n2d2py.qat import fuse_qat

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "qat"))
from qat_helpers import MNIST_MODEL, MULTIBRANCH, load  # noqa: E402

MODELS = [("LeNet-bn-SAT", "weights_test_SAT"), ("LeNet_w1_a2", "weights_LeNet_w1_a2")]
MODES = [("Floating-point", "NONE"), ("Fixed-point32", "RINTF")]


def ort_session(model):
    ort = pytest.importorskip("onnxruntime")
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def run_ort(model, codes):
    return ort_session(model).run(None, {"env": codes.astype(numpy.uint8)})


def run_reference(model, codes):
    return ReferenceEvaluator(model).run(None, {"env": codes.astype(numpy.uint8)})


def check_exact(fused, model, codes, outputs):
    """Graph outputs (every node) vs the engine: integer codes equal, floats within 1e-12."""
    names = [o.name for o in model.graph.output]
    expected = fused.forward(codes, keep=names)
    for name, got in zip(names, outputs):
        want = numpy.asarray(expected[name])
        assert got.shape == want.shape, name
        if got.dtype.kind in "iu":
            assert numpy.array_equal(got.astype(numpy.int64), want.astype(numpy.int64)), name
        else:   # Softmax (float64: the exp implementations may differ by an ulp), exact logits
            numpy.testing.assert_allclose(got, want, rtol=0, atol=1e-12, err_msg=name)
    return expected


def digits_and_labels(net, limit):
    x, labels, _ = next(net.sp.batches("Test", False, None, limit))
    return x, labels


def test_weight_digits_recombine(rng):
    W = rng.integers(-40000, 40000, (7, 3, 5, 5))
    digits = weight_digits(W)
    assert all(d.dtype == numpy.int8 for _, d in digits) and len(digits) == 3
    assert numpy.array_equal(sum(f * d.astype(numpy.int64) for f, d in digits), W)
    small = rng.integers(-128, 128, (4, 9))
    assert len(weight_digits(small)) == 1
    assert len(weight_digits(numpy.array([255, -255]))) == 2


@pytest.mark.parametrize("mode, rnd", MODES, ids=[m[0] for m in MODES])
@pytest.mark.parametrize("ini, weights", MODELS, ids=[m[0] for m in MODELS])
def test_lenet_codes_and_accuracy_equal_engine(ini, weights, mode, rnd):
    net = load(ini, weights, batch_size=1000)
    fused = fuse_qat(net, mode, rnd, rnd, rnd)
    model = export_integer_onnx(fused, None, all_outputs=True)
    graph_ops = {n.op_type for n in model.graph.node}
    assert {"ConvInteger", "MatMulInteger"} <= graph_ops and "Conv" not in graph_ops
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    x, labels = digits_and_labels(net, 1000)
    codes = fused.input_codes(x)
    u8 = codes.astype(numpy.uint8)
    # ReferenceEvaluator (slow-ish): 50 digits; onnxruntime: all 1000
    check_exact(fused, model, codes[:50], ReferenceEvaluator(model).run(None, {"env": u8[:50]}))
    outputs = ort_session(model).run(None, {"env": u8})
    expected = check_exact(fused, model, codes, outputs)
    target = fused.targets[0].cell
    index = [o.name for o in model.graph.output].index(target)
    onnx_accuracy = (outputs[index].reshape(1000, -1).argmax(axis=1) == labels).mean()
    engine_accuracy = (numpy.asarray(expected[target]).reshape(1000, -1).argmax(axis=1)
                       == labels).mean()
    assert onnx_accuracy == engine_accuracy >= 0.98


def test_wide_weights_are_split_into_int8_digits():
    """NONE: conv1 and fc2 of LeNet-bn-SAT have R_w = 255 codes (odd, up to ±255)."""
    fused = fuse_qat(load("LeNet-bn-SAT", "weights_test_SAT"))
    assert numpy.abs(fused.nodes["conv1"].W_int).max() > 127
    model = export_integer_onnx(fused)
    convs = [n for n in model.graph.node if n.op_type == "ConvInteger" and "conv1" in n.name]
    assert len(convs) == 2
    assert [o.name for o in model.graph.output] == ["softmax"]


@pytest.mark.parametrize("mode, rnd, compat", [("Single-shift", "RINTF", True),
                                               ("Fixed-point16", "NONE", True),
                                               ("Double-shift", "NONE", False),
                                               ("Fixed-point16", "NONE", False),
                                               ("Single-shift", "RINTF", False)])
def test_shift_and_compat_modes(mode, rnd, compat):
    net = load("LeNet_wMix_a4", "weights_LeNet_wMix_a4", batch_size=300)
    fused = fuse_qat(net, mode, rnd, rnd, rnd, n2d2_compat=compat)
    model = export_integer_onnx(fused, None, all_outputs=True)
    x, _ = digits_and_labels(net, 300)
    codes = fused.input_codes(x)
    check_exact(fused, model, codes, run_ort(model, codes))
    check_exact(fused, model, codes[:30], run_reference(model, codes[:30]))


@pytest.mark.parametrize("mode, rnd", MODES, ids=[m[0] for m in MODES])
def test_residual_elemwise_and_average_pool(mode, rnd):
    """MobileNet-v2-mini: ElemWise Sum with Q16 multipliers; a global Average pool's window sums
    (wider than 8 bits) feed the Fc as uint8 digits."""
    net = load("MobileNet_v2_mini", "mobilenet-v2-weights-8b", folder=MULTIBRANCH, batch_size=100)
    fused = fuse_qat(net, mode, rnd, rnd, rnd)
    model = export_integer_onnx(fused, None, all_outputs=True)
    x, _ = digits_and_labels(net, 100)
    codes = fused.input_codes(x)
    check_exact(fused, model, codes, run_ort(model, codes))
    if mode == "Floating-point":
        check_exact(fused, model, codes[:10], run_reference(model, codes[:10]))


def test_cli_qat_sat_export_onnx(tmp_path, monkeypatch):
    from n2d2py.cli import main
    ini, weights = MNIST_MODEL / "LeNet_w1_a2.ini", MNIST_MODEL / "weights_LeNet_w1_a2"
    monkeypatch.chdir(tmp_path)
    assert main([str(ini), "--qat-sat", "--act-rescaling-mode", "Fixed-point32",
                 "--wt-round-mode", "RINTF", "--export", "ONNX", "-w", str(weights)]) == 0
    model = onnx.load(tmp_path / "LeNet_w1_a2.int.onnx")
    assert not (tmp_path / "LeNet_w1_a2.onnx").exists()
    net = load("LeNet_w1_a2", "weights_LeNet_w1_a2", batch_size=50)
    fused = fuse_qat(net, "Fixed-point32", "RINTF")
    x, _ = digits_and_labels(net, 50)
    codes = fused.input_codes(x)
    check_exact(fused, model, codes, run_reference(model, codes))
