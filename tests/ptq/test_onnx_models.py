"""Post-training quantization of ONNX-imported ResNet-18 and MobileNet-v2 (torchvision's
topologies as a PyTorch export writes them, ``onnx_models.py``; seeded random weights, channels
narrowed to a quarter, 32x32 inputs, a NumPy_Database of random images):

* calibration runs through BatchNorm folding, residual Adds (ElemWise sums of two scales),
  ReLU6 (Clip 0..6), depthwise convolutions, the max and global average pools and the Fc;
* the fake-quantized network (float twins) and the integer engine agree code for code on
  every node, in every rescaling mode;
* the integer ONNX export gives the engine's codes on every node (onnxruntime);
* the C export compiles (``-std=c99 -Wall -Werror``; without floating-point registers in the
  integer rescaling modes) and gives the engine's codes on every layer.
"""
import os

import numpy
import pytest

from n2d2py.deepnet import DeepNet
from n2d2py.ptq import PTQOptions, calibrate
from n2d2py.qat.export_c import export_c, write_stimuli

from c_helpers import FLAGS, INTEGER_FLAGS, compile_program, read_trace, run_program
from onnx_models import calibration_ini, mobilenet_v2, resnet18
MODELS = {"resnet18": resnet18, "mobilenet_v2": mobilenet_v2}
MODES = ("Floating-point", "Fixed-point16", "Fixed-point32", "Single-shift", "Double-shift")
SIZE, WIDTH = 32, 0.25
CALIBRATED = {}


def calibrated(imported, **options):
    """One calibration per model and options for the whole module."""
    key = (imported[0], tuple(sorted(options.items())))
    if key not in CALIBRATED:
        CALIBRATED[key] = calibrate(imported[1], PTQOptions(8, **options))
    return CALIBRATED[key]


@pytest.fixture(scope="module", params=sorted(MODELS))
def imported(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    ini = calibration_ini(folder, MODELS[request.param](seed=3, size=SIZE, width=WIDTH),
                          size=SIZE)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        net = DeepNet.from_ini(ini)
    finally:
        os.chdir(cwd)
    x = numpy.concatenate([x for x, _, _ in net.sp.batches("Test", False, None, 16)])
    return request.param, net, x, folder


def test_structure_after_calibration(imported):
    name, net, x, _ = imported
    fused = calibrated(imported, act_clipping_mode="MSE")
    kinds = [node.type_name for node in fused.nodes.values()]
    convs = sum(type(c).__name__ == "ConvCell" for c in net.cells.values())
    adds = sum(getattr(c, "operation", None) == "Sum" for c in net.cells.values())
    assert kinds.count("Conv") == convs           # every BatchNorm folded into its Conv
    assert kinds.count("ElemWise") == adds == {"resnet18": 8, "mobilenet_v2": 10}[name]
    assert kinds.count("Fc") == 1 and kinds.count("Softmax") == 1
    assert not [n for n in fused.nodes if "rescale_branch" in n or "concat" in n]
    signs = {fused.rows[n]["sign"] for n in fused.rows if fused.nodes[n].type_name == "Conv"}
    assert signs == {"signed", "unsigned"}        # ReLU/ReLU6 unsigned, linear bottlenecks signed
    assert fused.input.min_code == 0 and fused.input.max_code == 255


@pytest.mark.parametrize("mode", MODES)
def test_fake_quantized_and_integer_agree_code_for_code(imported, mode):
    name, net, x, _ = imported
    fused = calibrated(imported, act_clipping_mode="MSE", act_scaling_mode=mode)
    codes = fused.input_codes(x)
    integer = fused.forward(codes, keep="all")
    fake = fused.fake_quantized().forward(codes, keep="all")
    assert set(integer) == set(fused.nodes)
    for node, values in integer.items():
        assert numpy.array_equal(values, fake[node]), node
    float_classes = net.forward(x)["softmax"].data.reshape(len(x), -1).argmax(axis=1)
    int_classes = numpy.asarray(integer["softmax"]).reshape(len(x), -1).argmax(axis=1)
    print(f"{name} {mode}: integer argmax = float argmax on "
          f"{int((float_classes == int_classes).sum())}/{len(x)} random images")


@pytest.mark.parametrize("mode", ["Fixed-point32", "Single-shift"])
def test_integer_onnx_export_equals_the_engine(imported, mode):
    ort = pytest.importorskip("onnxruntime")
    from n2d2py.onnx.export_integer import export_integer_onnx
    name, net, x, _ = imported
    fused = calibrated(imported, act_clipping_mode="KL-Divergence", act_scaling_mode=mode,
                       per_output=True)
    codes = fused.input_codes(x)
    model = export_integer_onnx(fused, None, all_outputs=True)
    session = ort.InferenceSession(model.SerializeToString())
    outputs = dict(zip([o.name for o in session.get_outputs()],
                       session.run(None, {"env": codes.astype(numpy.uint8)})))
    engine = fused.forward(codes, keep="all")
    for node, values in engine.items():
        if node == "softmax":
            assert numpy.allclose(values, outputs[node], rtol=0, atol=1e-12)
        else:
            assert numpy.array_equal(values, outputs[node]), node


@pytest.mark.parametrize("mode", ["Single-shift", "Double-shift", "Fixed-point32",
                                  "Floating-point"])
def test_c_export_gives_the_engine_codes_layer_by_layer(imported, mode, tmp_path):
    """Integer modes: C without floating point (``-mgeneral-regs-only``); every layer's codes
    (traced) equal the engine's, so the classes do too."""
    name, net, x, _ = imported
    fused = calibrated(imported, act_clipping_mode="MSE", act_scaling_mode=mode)
    program = export_c(fused, tmp_path / "c")
    flags = FLAGS if mode == "Floating-point" else INTEGER_FLAGS
    binary = compile_program(tmp_path / "c", tmp_path / "network", flags, trace=True)
    codes = fused.input_codes(x)
    write_stimuli(tmp_path / "s.bin", codes)
    classes, _, _, _ = run_program(binary, tmp_path / "s.bin", tmp_path / "trace")
    engine = fused.forward(codes, keep="all")
    for node, got in read_trace(program, tmp_path / "trace", len(x)).items():
        assert numpy.array_equal(got, numpy.asarray(engine[node]).reshape(len(x), -1)), node
    assert classes.tolist() == numpy.asarray(engine["softmax"]).reshape(
        len(x), -1).argmax(axis=1).tolist()
