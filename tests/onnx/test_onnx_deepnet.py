"""``Type=ONNX`` sections inside a DeepNet: N2D2's ResNet-18 QAT
recipes (LSQ 8-bit from models/quantizer/, SAT 4-bit from the documentation) built against a
generated resnet18v1.onnx (random weights, the real node names), overrides inspected, one
training step through the DeepNet; ``Input=onnx,<cell>`` and a missing model file."""
import pathlib

import numpy
import onnx
import pytest

from n2d2py.deepnet import DeepNet
from n2d2py.errors import N2D2Error
from n2d2py.ini import parse_ini_text

from _builders import GraphBuilder, resnet18v1

HERE = pathlib.Path(__file__).resolve().parent
LSQ_RECIPE = pathlib.Path("models") / "quantizer" / "resnet-18v1-LSQ-8b.ini"   # under n2d2_ini
SAT_RECIPE = HERE / "data" / "resnet18v1_sat.ini"
RELU_SECTIONS = 17      # [resnetv15_*relu*/activation*]ReluQ_def lines of both recipes


@pytest.fixture(scope="module")
def resnet_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resnet")
    onnx.save(resnet18v1(numpy.random.default_rng(7)), folder / "resnet18v1.onnx")
    return folder


def build(folder, recipe, monkeypatch):
    text = pathlib.Path(recipe).read_text()
    (folder / "net.ini").write_text(text)
    monkeypatch.chdir(folder)                     # File=resnet18v1.onnx is relative to the CWD
    return DeepNet.from_ini(folder / "net.ini", device="cpu", seed=3, load_data=False)


def kinds(net, name):
    return [c for n, c in net.cells.items() if type(c).type_name == name]


def one_step(net):
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((2, 3, 224, 224)).astype(numpy.float32)
    before = {id(p): p.data.copy() for p in net.parameters()}
    loss, outputs = net.learn_batch(x, numpy.array([3, 998]))
    changed = [p for p in net.parameters() if not numpy.array_equal(p.data, before[id(p)])]
    return loss, outputs, changed


def test_lsq_recipe_builds_with_overrides_and_trains(resnet_dir, monkeypatch, n2d2_ini):
    net = build(resnet_dir, n2d2_ini / LSQ_RECIPE, monkeypatch)
    convs, fcs, bns = kinds(net, "Conv"), kinds(net, "Fc"), kinds(net, "BatchNorm")
    assert (len(convs), len(fcs), len(bns)) == (20, 1, 20)   # 17 + 3 shortcut convs
    assert list(net.cells)[-1] == "soft1" and net.targets[0].cell == "soft1"
    for cell in convs + fcs:                   # [onnx:Conv_def] / [onnx:Fc_def]: LSQ, Range 255
        assert type(cell.qweight).__name__ == "LSQWeightQuantizer" and cell.qweight.range == 255
        assert cell.solvers["Weights"].learning_rate == pytest.approx(0.001)
        assert cell.solvers["Weights"].learning_rate_policy == "CosineDecay"
    assert all(c.bias is None for c in convs) and fcs[0].bias is not None
    assert all(b.solvers["Scale"].learning_rate == pytest.approx(0.001) for b in bns)
    quantized = [c for c in net.cells.values() if c.qact is not None]
    assert len(quantized) == RELU_SECTIONS     # every ReLU replaced by Linear + LSQ, Range 255
    assert all(type(c.qact).__name__ == "LSQActQuantizer" and c.qact.range == 255 and
               type(c.activation).__name__ == "Linear" for c in quantized)
    assert net.cells["resnetv15_batchnorm0_fwd"].qact is not None
    assert net.cells["resnetv15_stage2__plus1"].qact is not None   # the Add before activation1
    loss, outputs, changed = one_step(net)
    assert numpy.isfinite(loss) and loss > 0
    assert outputs["soft1"].data.shape == (2, 1000, 1, 1)
    names = {p.name for p in changed}
    assert "step_size" in names                # LSQ steps learn (weights and activations)
    # every conv/fc weight, BN scale/bias, both LSQ step kinds and the Fc bias moved
    assert len(changed) >= 2 * 20 + 21 + 1 + RELU_SECTIONS + 21


def test_sat_recipe_builds_with_fillers_and_trains(resnet_dir, monkeypatch):
    net = build(resnet_dir, SAT_RECIPE, monkeypatch)
    conv = net.cells["resnetv15_stage3_conv1_fwd"]
    fc = net.cells["resnetv15_dense0_fwd"]
    for cell, scaling in ((conv, False), (fc, True)):
        q = cell.qweight
        assert type(q).__name__ == "SATWeightQuantizer"
        assert (q.range, q.apply_quantization, q.apply_scaling) == (15, True, scaling)
        assert cell.solvers["Weights"].iteration_size == 2
    # ONNX_init=0: the XavierFiller (FanOut) drew the weights, not the ONNX initializers
    model = onnx.load(resnet_dir / "resnet18v1.onnx")
    init = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    w_onnx = init[next(n.input[1] for n in model.graph.node if n.output[0] == conv.name)]
    w = conv.weights[0].data
    assert w.shape == w_onnx.shape and not numpy.allclose(w, w_onnx)
    fan_out = w.shape[0] * w.shape[2] * w.shape[3]
    assert numpy.abs(w).max() <= numpy.sqrt(3.0 / fan_out) + 1e-6     # Xavier uniform bound
    assert numpy.abs(w).max() > 0.8 * numpy.sqrt(3.0 / fan_out)
    relu = net.cells["resnetv15_stage4_batchnorm2_fwd"]                # stage4_relu1_fwd's producer
    assert type(relu.qact).__name__ == "SATActQuantizer" and relu.qact.range == 15
    assert type(relu.activation).__name__ == "Linear"
    # the quantized weights take the 16 levels (2k - 15)/15 of SAT Default mode
    wq = conv.quantized_weights()[0].data
    codes = (wq + 1) * 15 / 2
    assert numpy.allclose(codes, numpy.round(codes), atol=1e-4) and len(numpy.unique(wq)) <= 16
    loss, outputs, changed = one_step(net)
    assert numpy.isfinite(loss)
    assert not any(p is conv.weights[0] for p in changed)  # IterationSize=2: gradients accumulate
    loss, outputs, changed = one_step(net)                  # ... and the 2nd batch updates
    assert any(p.name == "alpha" for p in changed)
    assert any(p is conv.weights[0] for p in changed)
    y = outputs["soft1"].data
    assert numpy.allclose(y.sum(axis=1), 1.0, atol=1e-5)


SP_8X8 = """
[sp]
SizeX=8
SizeY=8
NbChannels=3
BatchSize=2
"""

INPUT_ONNX = SP_8X8 + """
[onnx]
Input=sp
Type=ONNX
File=small.onnx
Ignore=head

[fc]
Input=onnx,feat:0
Type=Fc
NbOutputs=5

[fc.Target]
"""


def small_model(rng):
    b = GraphBuilder(rng)
    x = b.node("Relu", [b.conv("x", 3, 4, 3, out="feat:0")], "relu:0")
    x = b.node("GlobalAveragePool", [x], "head")
    return b.model([1, 3, 8, 8], x)


def test_input_names_the_onnx_section_then_an_imported_cell(tmp_path, monkeypatch, rng):
    onnx.save(small_model(rng), tmp_path / "small.onnx")
    monkeypatch.chdir(tmp_path)
    doc = parse_ini_text(INPUT_ONNX, str(tmp_path / "net.ini"))
    net = DeepNet.from_ini(doc, device="cpu", load_data=False)
    assert list(net.cells) == ["feat:0", "fc"]          # Ignore=head: no pool cell
    assert net.cells["fc"].parents == ["feat:0"]
    assert net.cells["fc"].in_shapes == [(4, 8, 8)]
    assert net.levels["fc"] == 2 and net.levels["onnx"] == 1
    x = rng.standard_normal((2, 3, 8, 8)).astype(numpy.float32)
    out = net.forward(x, keep="all")
    feat = net.cells["feat:0"]
    assert type(feat.activation).__name__ == "Rectifier"
    assert out["fc"].data.shape == (2, 5, 1, 1)
    W = net.cells["fc"].weights[0].data.reshape(5, -1)
    b = net.cells["fc"].bias.data.reshape(-1)
    expected = out["feat:0"].data.reshape(2, -1) @ W.T + b
    assert numpy.allclose(out["fc"].data.reshape(2, 5), expected, atol=1e-5)


def test_missing_onnx_file_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    doc = parse_ini_text(INPUT_ONNX, str(tmp_path / "net.ini"))
    with pytest.raises(N2D2Error) as info:
        DeepNet.from_ini(doc, device="cpu", load_data=False)
    message = str(info.value)
    assert "small.onnx" in message and "not found" in message and "\n" not in message


FLATTENED_OUTPUT = SP_8X8 + """
[onnx]
Input=sp
Type=ONNX
File=flat.onnx

[fc]
Input=onnx,{parent}
Type=Fc
NbOutputs=5

[fc.Target]
"""


def flattened_model(rng, pool):
    """Conv -> Relu (-> GlobalAveragePool) -> Flatten as the graph output ``output``, as PyTorch
    exports SqueezeNet's head: the output is a view of the last cell, not a cell."""
    b = GraphBuilder(rng)
    x = b.node("Relu", [b.conv("x", 3, 4, 3, out="conv")], "relu")
    if pool:
        x = b.node("GlobalAveragePool", [x], "pool")
    return b.model([1, 3, 8, 8], b.node("Flatten", [x], "output", axis=1))


def test_a_graph_output_that_flattens_a_pool_is_a_parent(tmp_path, monkeypatch, rng):
    onnx.save(flattened_model(rng, pool=True), tmp_path / "flat.onnx")
    monkeypatch.chdir(tmp_path)
    doc = parse_ini_text(FLATTENED_OUTPUT.format(parent="output"), str(tmp_path / "net.ini"))
    net = DeepNet.from_ini(doc, device="cpu", load_data=False)
    assert net.cells["fc"].parents == ["pool"] and net.cells["fc"].in_shapes == [(4, 1, 1)]
    x = rng.standard_normal((2, 3, 8, 8)).astype(numpy.float32)
    out = net.forward(x, keep="all")
    W = net.cells["fc"].weights[0].data.reshape(5, -1)
    expected = out["pool"].data.reshape(2, 4) @ W.T + net.cells["fc"].bias.data.reshape(-1)
    assert numpy.allclose(out["fc"].data.reshape(2, 5), expected, atol=1e-5)


def test_a_graph_output_that_changes_the_layout_stays_unknown(tmp_path, monkeypatch, rng):
    # Flatten of (4, 8, 8) is (256, 1, 1) for a cell: not the same data layout as [relu]'s output
    onnx.save(flattened_model(rng, pool=False), tmp_path / "flat.onnx")
    monkeypatch.chdir(tmp_path)
    doc = parse_ini_text(FLATTENED_OUTPUT.format(parent="output"), str(tmp_path / "net.ini"))
    with pytest.raises(N2D2Error) as info:
        DeepNet.from_ini(doc, device="cpu", load_data=False)
    assert "parent 'output' is not a cell built so far" in str(info.value)
