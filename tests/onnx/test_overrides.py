"""Acceptance 4: INI overrides of imported cells (docs/INI.md §9).

``[onnx:Conv_def]`` configures every Conv; a section named like a node **replaces** it (it
inherits the defaults explicitly); a section named like a Relu output replaces the ReLU by its
``ActivationFunction`` and ``QAct``. A misspelt override section is an error in n2d2py (N2D2
only prints "Unused section")."""
import numpy
import onnx
import pytest

from n2d2py.errors import N2D2Error
from n2d2py.ini import parse_ini_text
from n2d2py.onnx import import_onnx

from _builders import resnet18_like

INI = """
[onnx:Conv_def]
QWeight=SAT
QWeight.Range=15
ConfigSection=conv.config

[conv.config]
NoBias=1
Solvers.LearningRate=0.05

[resnetv15_conv0_fwd]onnx:Conv_def
QWeight.Range=255

[ReluQ_def]
ActivationFunction=Linear
QAct=SAT
QAct.Range=15

[resnetv15_relu0_fwd]ReluQ_def
[resnetv15_stage1_activation0]ReluQ_def

[onnx]
Input=sp
Type=ONNX
File=resnet.onnx
"""


@pytest.fixture
def model_file(tmp_path, rng):
    path = tmp_path / "resnet.onnx"
    onnx.save(resnet18_like(rng), path)
    return path


def imported(model_file, text):
    doc = parse_ini_text(text, str(model_file.parent / "net.ini"))
    return import_onnx(model_file, doc, doc.section("onnx"), input_shapes=[(3, 32, 32)],
                       input_names=["env"])


def test_conv_def_and_per_node_override(model_file):
    cells = imported(model_file, INI).cells
    first = cells["resnetv15_conv0_fwd"]
    other = cells["resnetv15_stage1_conv0_fwd"]
    assert type(first.qweight).__name__ == "SATWeightQuantizer"
    assert first.qweight.range == 255          # per-node section replaces Conv_def's 15
    assert other.qweight.range == 15
    assert other.bias is None and other.solvers["Weights"].learning_rate == 0.05
    assert cells["resnetv15_dense0_fwd"].qweight is None     # no Fc_def


def test_relu_sections_replace_the_activation(model_file):
    cells = imported(model_file, INI).cells
    bn = cells["resnetv15_batchnorm0_fwd"]          # the ReLU's producer
    assert type(bn.activation).__name__ == "Linear"
    assert type(bn.qact).__name__ == "SATActQuantizer" and bn.qact.range == 15
    add = cells[[n for n in cells if n.startswith("add_")][0]]   # stage1_activation0's Add
    assert type(add.activation).__name__ == "Linear" and add.qact is not None
    relu = cells["resnetv15_stage1_conv0_fwd"]
    assert relu.qact is None                     # untouched ReLUs stay ReLUs
    assert any(type(c.activation).__name__ == "Rectifier" for c in cells.values())


def test_forward_runs_with_quantizers(model_file, rng):
    from n2d2py.autograd import Variable, no_grad
    graph = imported(model_file, INI)
    values = {"env": Variable(rng.standard_normal((2, 3, 32, 32)).astype(numpy.float32))}
    with no_grad():
        for name, cell in graph.cells.items():
            values[name] = cell.forward([values[p] for p in cell.parents])
    out = values[graph.output_values["softmax0"].source].data
    numpy.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_onnx_init_0_keeps_fillers(model_file):
    graph = imported(model_file, INI + "ONNX_init=0\n")
    W = graph.cells["resnetv15_dense0_fwd"].weights[0].data
    ref = imported(model_file, INI).cells["resnetv15_dense0_fwd"].weights[0].data
    assert not numpy.allclose(W, ref)


@pytest.mark.parametrize("section", ["[onnx:Conv__250]\nConfigSection=conv.config\n",
                                     "[resnetv15_conv9_fwd]onnx:Conv_def\n"])
def test_misspelt_override_section_is_an_error(model_file, section):
    """DIFFERENCE FROM N2D2: N2D2 only prints 'Unused section'."""
    with pytest.raises(N2D2Error, match="onnx:Conv__250|resnetv15_conv9_fwd"):
        imported(model_file, INI + section)


def test_ignore_and_wrong_parent_count(model_file):
    graph = imported(model_file, INI + "Ignore=softmax0\n")
    assert "softmax0" not in graph.cells and graph.auto_targets == []
    doc = parse_ini_text(INI, str(model_file.parent / "net.ini"))
    with pytest.raises(N2D2Error, match="1 input"):
        import_onnx(model_file, doc, doc.section("onnx"), input_names=["env", "env"])


def test_build_onnx_section_targets_and_infer_file(model_file, tmp_path, rng, monkeypatch):
    from n2d2py.onnx import infer_file
    from n2d2py.onnx.section import build_onnx_section
    monkeypatch.chdir(model_file.parent)
    doc = parse_ini_text(INI + "\n[softmax0.Target]\nTopN=5\n", str(model_file.parent / "n.ini"))
    cells, targets, aliases = build_onnx_section(doc.section("onnx"), ["env"], [(3, 32, 32)], rng)
    assert [t.name for t in targets] == ["softmax0.Target"] and targets[0].top_n == 5
    x = rng.standard_normal((2, 3, 32, 32)).astype(numpy.float32)
    numpy.save(tmp_path / "in.npy", x)
    written = infer_file(model_file, tmp_path / "in.npy", tmp_path / "out.npy")
    y = numpy.load(written)
    assert y.shape == (2, 10)
    numpy.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
