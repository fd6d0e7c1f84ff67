"""tools/compare_methods.py: the seeds' Table 1 from the real training path (smoke run), its
cost figures against n2d2py.stats.cost_table, the CIFAR-10 data check, and the quantized-weights
file of DFP/Po2 in QR/WQR mode."""
import importlib.util
import pathlib
import tempfile

import numpy
import pytest

from n2d2py.deepnet import DeepNet
from n2d2py.ini import load_ini
from n2d2py.io import syntxt
from n2d2py.quantizers import constraints, quant_weights_file
from n2d2py.quantizers.dfp import dfp_quantize, exponent_n1, po2_quantize
from n2d2py.stats import cost_table

ROOT = pathlib.Path(__file__).resolve().parents[1]
LENET = ROOT / "models" / "LeNet.ini"


def load_tool():
    spec = importlib.util.spec_from_file_location("compare_methods",
                                                  ROOT / "tools" / "compare_methods.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Two methods, 256 learning stimuli each, 200 test digits."""
    tool = load_tool()
    out = tmp_path_factory.mktemp("compare")
    results = tool.main([str(LENET), "--stimuli", "256", "--methods", "SAT,DQ",
                         "--test-limit", "200", "--out", str(out)])
    return tool, out, results


def test_table_columns_and_files(smoke):
    tool, out, results = smoke
    assert [r["method"] for r in results] == ["SAT", "DQ"]
    assert [r["precision"] for r in results] == ["uniform", "mixed"]
    assert results[0]["params"] == (0, 1)          # SAT: α of CG-PACT per ReLU cell
    assert results[1]["params"] == (2, 2)          # DQ: d and q_max, weights and activations
    for r in results:
        assert 0.0 <= r["acc"] <= 100.0
    text = (out / "table.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| Method"))
    assert [c.strip() for c in header.strip("|").split("|")][:6] == list(tool.COLUMNS)
    assert "| SAT | uniform | 1 (0+1) |" in text and "| DQ | mixed | 4 (2+2) |" in text
    assert "first and last weighted layers at 8-bit weights" in text
    assert (out / "pareto.png").stat().st_size > 0
    assert (out / "SAT" / "report.md").exists()
    lines = tool.table_lines(results)
    assert lines[0].split()[:2] == ["Method", "Precision"]


def test_size_and_bitops_equal_cost_table(smoke):
    """Rebuild each method's net from its derived INI and its final weights: cost_table gives
    the row's size and BitOps."""
    _, out, results = smoke
    for r in results:
        net = DeepNet.from_ini(load_ini(r["ini"], env={"N2D2_MODELS": str(LENET.parent)}),
                               load_data=False)
        net.import_weights(str(out / r["method"] / "weights"))
        for q in net.quantizers():
            q.freeze()
        table = cost_table(net)
        assert r["bytes"] == pytest.approx(table.size_bytes)
        assert r["bitops"] == pytest.approx(table.bitops)
        assert r["mb"] == pytest.approx(table.size_mb)
        assert r["gbitops"] == pytest.approx(table.gbitops)
    sat = results[0]["bits"]
    assert [(w, a) for _, w, a in sat] == [(8, 8), (4, 4), (4, 4), (4, 4), (8, 4)]


def test_derive_ini_keeps_template_bases():
    tool = load_tool()
    text = "[conv_def]\nType=Conv\n\n[conv1] conv_def ; comment\nInput=sp\n"
    out = tool.derive_ini(text, {"conv1": {"QWeight": "SAT"}})
    assert "[conv1] conv_def ; comment\nQWeight=SAT\nInput=sp\n" in out
    with pytest.raises(SystemExit, match=r"\[conv9\]"):
        tool.derive_ini(text, {"conv9": {"QWeight": "SAT"}})


def test_cifar_data_absent_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("N2D2_DATA", str(tmp_path))
    tool = load_tool()
    with pytest.raises(SystemExit) as info:
        tool.main([str(ROOT / "models" / "ResNet-20.ini"), "--methods", "Base",
                   "--out", str(tmp_path / "out")])
    message = str(info.value)
    assert message.startswith("compare_methods: error: ")
    assert "cifar-10-batches-bin" in message and "\n" not in message


@pytest.mark.parametrize("scheme", ["DFP", "Po2"])
def test_dfp_po2_regularized_export_quantized_weights(tmp_path, scheme):
    """In QR/WQR mode the forward keeps float weights while learning; the exported
    ``*_quant_weights*`` file holds the direct quantization (export runs under no_grad)."""
    tool = load_tool()
    text = LENET.read_text()
    keys = {s: {"QWeight": scheme, "QWeight.Range": "15", "QWeight.Regularization": "WQR"}
            for s in ("conv1", "conv3", "fc1", "fc2")}
    path = tmp_path / "net.ini"
    path.write_text(tool.derive_ini(text, keys))
    net = DeepNet.from_ini(load_ini(str(path), env={"N2D2_MODELS": str(LENET.parent)}),
                           load_data=False)
    net.weight_histograms = False
    folder = tmp_path / "w"
    net.export_weights(str(folder))
    quantize = dfp_quantize if scheme == "DFP" else po2_quantize
    for name, kind in (("conv3", "Conv"), ("fc1", "Fc")):
        W = net.cells[name].weights[0].data
        expected = quantize(numpy, W, 4, exponent_n1(numpy, W))
        values = syntxt.read_numbers(quant_weights_file(str(folder), name, kind), expected.size,
                                     what="numbers")
        assert len(numpy.unique(values)) <= 15
        assert numpy.allclose(numpy.sort(values), numpy.sort(expected.ravel()), rtol=1e-5)
        assert not numpy.allclose(numpy.sort(values), numpy.sort(W.ravel()))


def test_lenet_size_target_reached_through_constraint_path():
    """FracBits on LeNet with a size target of 5 bits per weight (from 8): the constraint path
    (DeepNet.learn_batch: task loss + constraints.constraint_loss) brings the
    size (fractional bits, end of the search phase) within 2% of it."""
    tool = load_tool()
    net0 = DeepNet.from_ini(str(LENET), load_data=False)
    n = sum(constraints.weight_count(c) for c in constraints.weighted_cells(net0.cells))
    target = n * 5 / 8
    keys = {s: {"QWeight": "FracBits", "QWeight.Bits": "8", "QWeight.ApplyScaling": "1",
                "QWeight.TargetSize": f"{target:g}", "QWeightSolver.LearningRate": "0.02"}
            for s in ("conv1", "conv2", "conv3", "fc1", "fc2")}
    with tempfile.TemporaryDirectory() as folder:
        ini = pathlib.Path(folder) / "fracbits.ini"
        ini.write_text(tool.derive_ini(LENET.read_text(), keys))
        net = DeepNet.from_ini(load_ini(str(ini), env={"N2D2_MODELS": str(LENET.parent)}),
                               load_data=False)
    rng = numpy.random.default_rng(0)
    x = rng.random((8,) + tuple(net.input_shape), dtype=numpy.float32)
    labels = rng.integers(0, 10, 8)
    for _ in range(200):
        net.learn_batch(x, labels)
    size = constraints.cost_summary(net.cells)[1]["bytes"]
    assert abs(size / target - 1) < 0.02, (size, target)
    bits = [c.qweight.bits() for c in constraints.weighted_cells(net.cells)]
    assert bits[2] < 6 < bits[0]   # conv3 (48,000 of 61,000 weights) moved, conv1 hardly
