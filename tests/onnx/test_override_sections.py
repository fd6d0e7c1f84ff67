"""Which INI section configures which imported cell (n2d2py/onnx/overrides.py, docs/pytorch.md):
a cell's section ([<cell>] or [onnx:<Type>_def]) sets its keys before the build and its
activation afterwards; the section of an activation node, the cell's section and an activation
block ([onnx:Rectifier_def]) decide the activation in that order; keys that cannot apply are
errors naming file:line. The model uses PyTorch's tensor names (``/layer1/.../Conv_output_0``)."""
import numpy
import onnx
import pytest

from n2d2py.errors import N2D2Error
from n2d2py.ini import parse_ini_text
from n2d2py.onnx import import_onnx

from _builders import GraphBuilder

BN1 = "/bn1/BatchNormalization_output_0"
RELU = "/relu/Relu_output_0"
BN2 = "/layer1/layer1.0/bn1/BatchNormalization_output_0"
ADD = "/layer1/layer1.0/Add_output_0"
FC1 = "/fc1/Gemm_output_0"


def pytorch_named(rng, fc_scale=0.3):
    """conv-BN-ReLU, conv-BN + Add + ReLU (a residual), max pool, Flatten, Gemm-ReLU, Gemm:
    PyTorch's names (torch.onnx.export of nn.Modules) on every node output."""
    b = GraphBuilder(rng)
    x = b.conv("x", 3, 8, 3, out="/conv1/Conv_output_0")
    x = b.node("Relu", [b.bn(x, 8, out=BN1)], RELU)
    y = b.bn(b.conv(x, 8, 8, 3, bias=False, out="/layer1/layer1.0/conv1/Conv_output_0"), 8, out=BN2)
    x = b.node("Relu", [b.node("Add", [y, x], ADD)], "/layer1/layer1.0/relu/Relu_output_0")
    x = b.node("MaxPool", [x], "/maxpool/MaxPool_output_0", kernel_shape=[2, 2], strides=[2, 2])
    x = b.node("Flatten", [x], "/flatten/Flatten_output_0", axis=1)
    x = b.node("Gemm", [x, b.const(rng.standard_normal((16, 8 * 8 * 8)) * fc_scale),
                        b.const(numpy.zeros(16))], FC1, transB=1)
    x = b.node("Relu", [x], "/relu_1/Relu_output_0")
    x = b.node("Gemm", [x, b.const(rng.standard_normal((10, 16)) * fc_scale)], "logits", transB=1)
    return b.model([1, 3, 16, 16], x)


ONNX = "[onnx]\nInput=sp\nType=ONNX\nFile=model.onnx\n"

SAT4 = f"""{ONNX}
[onnx:Conv_def]
QWeight=SAT
QWeight.Range=15
QWeight.ApplyScaling=0

[onnx:Fc_def]
QWeight=SAT
QWeight.Range=15
QWeight.ApplyScaling=1

[onnx:BatchNorm_def]
ActivationFunction=Linear
QAct=SAT
QAct.Range=15
QAct.Alpha=4

[onnx:ElemWise_def]
QAct=SAT
QAct.Range=7

[onnx:Rectifier_def]
QAct=SAT
QAct.Range=3
"""


@pytest.fixture
def folder(tmp_path, rng):
    onnx.save(pytorch_named(rng), tmp_path / "model.onnx")
    return tmp_path


def imported(folder, text, monkeypatch=None):
    doc = parse_ini_text(text, str(folder / "net.ini"))
    graph = import_onnx(folder / "model.onnx", doc, doc.section("onnx"),
                        input_shapes=[(3, 16, 16)], input_names=["env"])
    return graph


def kind(obj):
    return None if obj is None else obj.type_name


def sat_codes(x, alpha, R):
    """SAT's activation quantizer as a formula: clip to [0, α], R steps."""
    return numpy.floor(numpy.clip(x, 0, alpha) * R / alpha + 0.5) * alpha / R


def test_blocks_set_each_cells_activation_and_quantizers(folder):
    cells = imported(folder, SAT4).cells
    # BatchNorm_def: its merged ReLU replaced by Linear + SAT (the clip at 0 is the ReLU) ...
    bn1 = cells[BN1]
    assert kind(bn1.activation) == "Linear" and kind(bn1.qact) == "SAT"
    assert (bn1.qact.range, bn1.qact.alpha_init) == (15, 4.0)
    # ... and the BatchNorm without ReLU (before the residual Add) quantized the same way
    assert kind(cells[BN2].activation) == "Linear" and cells[BN2].qact.range == 15
    # the Add keeps its ReLU (ElemWise_def has no ActivationFunction) and takes ElemWise_def's
    # quantizer, not Rectifier_def's: the cell's own section comes first
    add = cells[ADD]
    assert kind(add.activation) == "Rectifier" and add.qact.range == 7
    # the Fc with a ReLU: Fc_def sets no activation key, so Rectifier_def does
    fc1 = cells[FC1]
    assert kind(fc1.activation) == "Rectifier" and fc1.qact.range == 3
    assert kind(fc1.qweight) == "SAT" and fc1.qweight.apply_scaling
    last = cells["logits"]
    assert last.activation is None and last.qact is None and last.qweight.range == 15
    assert RELU not in cells                                  # merged, as N2D2 does


def test_quantized_outputs_are_the_sat_formula(folder, rng):
    from n2d2py.autograd import Variable, no_grad
    graph = imported(folder, SAT4)
    values = {"env": Variable(rng.random((4, 3, 16, 16)).astype(numpy.float32))}
    with no_grad():
        for name, cell in graph.cells.items():
            values[name] = cell.forward([values[p] for p in cell.parents])
            if name == BN1:
                expected = sat_codes(cell.last_logits.data, 4.0, 15)
            elif name == ADD:     # ReLU, then SAT with α = 1 (N2D2's default), 7 steps
                expected = sat_codes(numpy.maximum(cell.last_logits.data, 0), 1.0, 7)
            else:
                continue
            numpy.testing.assert_allclose(values[name].data, expected, atol=1e-6)
            assert len(numpy.unique(values[name].data)) > 2


def test_activation_node_section_comes_first_and_shadowed_blocks_are_noted(folder):
    text = SAT4 + f"""
[{RELU}]
ActivationFunction=Rectifier
QAct=SAT
QAct.Range=255

[/relu_1/Relu_output_0]
ActivationFunction=Rectifier
"""
    graph = imported(folder, text)
    bn1 = graph.cells[BN1]
    assert kind(bn1.activation) == "Rectifier" and bn1.qact.range == 255     # not BatchNorm_def's
    fc1 = graph.cells[FC1]
    assert kind(fc1.activation) == "Rectifier" and fc1.qact is None          # not Rectifier_def's
    notes = "\n".join(graph.warnings)
    assert "[onnx:Rectifier_def] set no cell: each of the 3 it would apply to" in notes
    assert f"(cell '{BN1}': [{RELU}])" in notes


def test_empty_activation_node_section_drops_it_as_n2d2_does(folder):
    graph = imported(folder, f"{ONNX}\n[{RELU}]\n")
    assert graph.cells[BN1].activation is None
    assert any("no ActivationFunction: the Relu is dropped" in w for w in graph.warnings)


def test_per_node_section_replaces_the_block(folder):
    graph = imported(folder, SAT4 + f"\n[{BN2}]\nConfigSection=bn.config\n\n[bn.config]\n"
                                     f"Epsilon=0.01\n")
    bn2 = graph.cells[BN2]
    assert bn2.epsilon == pytest.approx(0.01) and bn2.qact is None    # BatchNorm_def not read
    assert graph.cells[BN1].epsilon == pytest.approx(1e-5) and graph.cells[BN1].qact is not None


def test_fillers_apply_with_onnx_init_0(folder):
    text = SAT4.replace("[onnx:Fc_def]\n", "[onnx:Fc_def]\nWeightsFiller=HeFiller\n")
    graph = imported(folder, text.replace("File=model.onnx\n", "File=model.onnx\nONNX_init=0\n"))
    W = graph.cells[FC1].weights[0].data
    fan_in = W.shape[1]
    assert abs(W.std() - (2.0 / fan_in) ** 0.5) < 0.1 * (2.0 / fan_in) ** 0.5
    onnx_w = onnx.numpy_helper.to_array(
        next(t for t in onnx.load(folder / "model.onnx").graph.initializer if t.dims == [16, 512]))
    assert not numpy.allclose(W, onnx_w)


@pytest.mark.parametrize("section, key, fragment", [
    ("[onnx:Pool_def]\nQWeight=SAT\n", "QWeight", "Pool cells have no weights to quantize"),
    ("[onnx:Conv_def]\nKernelDims=3 3\n", "KernelDims", "cannot be overridden: the import takes"),
    ("[onnx:Conv_def]\nNoBias=1\n", "NoBias", "is a cell parameter: N2D2 reads those from a"),
    ("[onnx:Conv_def]\nWeightsFiller=HeFiller\n", "WeightsFiller", "set ONNX_init=0 in [onnx]"),
    ("[onnx:BatchNorm_def]\nQAct.Range=15\n", "QAct.Range", "QAct.Range without QAct= in this"),
    ("[onnx:BatchNorm_def]\nActivationFuntion=Linear\n", "ActivationFuntion",
     "unknown key 'ActivationFuntion'"),
    ("[onnx:BatchNorm_def]\nScaleSolver=Adam\nWeightsSolver=SGD\n", "WeightsSolver",
     "have no WeightsSolver"),
    (f"[{RELU}]\nQAct=SAT\n", "QAct", "without ActivationFunction: N2D2 then drops"),
    (f"[{RELU}]\nActivationFunction=Linear\nQWeight=SAT\n", "QWeight", "QWeight cannot apply here"),
    ("[onnx:Rectifier_def]\nQWeight=SAT\n", "QWeight", "QWeight cannot apply here"),
    ("[/flatten/Flatten_output_0]\nConfigSection=x\n", None, "turns into no cell"),
    ("[onnx:Rectifer_def]\nQAct=SAT\n", None, "overrides nothing"),
])
def test_keys_that_cannot_apply_are_errors_at_their_line(folder, section, key, fragment):
    text = f"{ONNX}\n{section}"
    at = text.index(section) + (section.index(f"\n{key}=") + 1 if key else 0)
    line = text.count("\n", 0, at) + 1
    with pytest.raises(N2D2Error) as caught:
        imported(folder, text)
    message = str(caught.value)
    assert fragment in message, message
    assert f"net.ini:{line} " in message, message
    assert "did you mean 'onnx:Rectifier_def'" in message if "Rectifer" in section else True


def test_onnx_colon_names_are_node_sections(tmp_path, rng):
    """PyTorch names some tensors 'onnx::Relu_5': with an [onnx] section that is no block."""
    b = GraphBuilder(rng)
    x = b.node("Relu", [b.bn(b.conv("x", 3, 4, 3), 4)], "onnx::Relu_5")
    onnx.save(b.model([1, 3, 8, 8], x), tmp_path / "model.onnx")
    doc = parse_ini_text(f"{ONNX}\n[onnx::Relu_5]\nActivationFunction=Linear\nQAct=SAT\n",
                         str(tmp_path / "net.ini"))
    cells = import_onnx(tmp_path / "model.onnx", doc, doc.section("onnx"),
                        input_names=["env"]).cells
    bn = next(c for c in cells.values() if c.type_name == "BatchNorm")
    assert kind(bn.activation) == "Linear" and kind(bn.qact) == "SAT"


def test_block_that_applies_to_nothing_is_a_notice(folder):
    graph = imported(folder, f"{ONNX}\n[onnx:LRN_def]\nConfigSection=x\n\n[onnx:Tanh_def]\n"
                             f"QAct=SAT\n")
    notes = "\n".join(graph.warnings)
    assert "[onnx:LRN_def] applies to no cell" in notes
    assert "[onnx:Tanh_def] applies to no cell" in notes


# -- what the user sees: --build-only, the picture ------------------------------------------------
NET = """DefaultModel=Frame
[sp]
SizeX=16
SizeY=16
NbChannels=3
BatchSize=4

[softmax]
Input=onnx,logits
Type=Softmax
NbOutputs=10
WithLoss=1

[softmax.Target]
"""


def test_summary_lists_each_cells_quantizers_and_activation(folder, monkeypatch):
    from n2d2py.deepnet import DeepNet
    monkeypatch.chdir(folder)
    (folder / "net.ini").write_text(NET + SAT4)
    net = DeepNet.from_ini(folder / "net.ini", load_data=False)
    lines = net.summary().splitlines()
    at = lines.index(f"Layer: {BN1} [BatchNorm(Frame)]")
    assert lines[at + 3] == "  # Activation: Linear; QAct: SAT, 4 bits (Range=15, Alpha=4)"
    at = lines.index(f"Layer: {FC1} [Fc(Frame)]")
    assert lines[at + 4:at + 6] == ["  # Activation: Rectifier; QAct: SAT, 2 bits (Range=3)",
                                    "  # QWeight: SAT, 4 bits (Range=15, ApplyScaling=1)"]
    assert "  # Activation: none" in lines[lines.index("Layer: logits [Fc(Frame)]"):][:6]


def test_network_picture_of_an_import(folder, monkeypatch):
    from n2d2py.deepnet import DeepNet
    monkeypatch.chdir(folder)
    from n2d2py.report.plots import graph_levels, network_graph_png
    (folder / "net.ini").write_text(NET + SAT4)
    net = DeepNet.from_ini(folder / "net.ini", load_data=False)
    levels = graph_levels({name: cell.parents for name, cell in net.cells.items()})
    assert levels["/conv1/Conv_output_0"] == 1 and levels[BN1] == 2
    assert levels[ADD] == 5 and levels["softmax"] == levels["logits"] + 1
    network_graph_png(net, folder / "net.png")
    assert (folder / "net.png").read_bytes()[:4] == b"\x89PNG"


# -- SAT from small weights: the notice ----------------------------------------------------------
@pytest.mark.parametrize("scale, noticed", [(None, True), (0.3, False)])
def test_sat_step_gain_notice(tmp_path, rng, scale, noticed):
    """PyTorch's initialisation (|w| < 1/sqrt(fan-in)) makes SAT's steps 10-20x those of the
    float weights here; weights of trained size (std 0.3) do not."""
    from n2d2py.quantizers.sat import step_gain_notice, step_gains
    model = pytorch_named(rng, fc_scale=1.0)
    for init in model.graph.initializer:
        if len(init.dims) == 2:
            fan_in = init.dims[1]
            w = rng.uniform(-1, 1, tuple(init.dims)) / fan_in ** 0.5 if scale is None else \
                rng.standard_normal(tuple(init.dims)) * scale
            init.CopyFrom(onnx.numpy_helper.from_array(w.astype(numpy.float32), init.name))
    onnx.save(model, tmp_path / "model.onnx")
    graph = imported(tmp_path, SAT4)
    gains = step_gains(graph.cells.values())
    notice = step_gain_notice(graph.cells.values())
    if noticed:
        assert FC1 in gains and gains[FC1][0] > 50      # 512 inputs: max|w| 1/sqrt(512)
        assert "ONNX_init=0 and WeightsFiller=HeFiller" in notice
    else:
        assert gains == {} and notice is None
