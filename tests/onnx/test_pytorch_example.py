"""ini_examples/PyTorch_SAT4.ini and the file it imports (tools/pytorch_like_onnx.py), without
PyTorch: the shipped ONNX file is the generator's, the import computes what ONNX's reference
evaluator computes, and the INI's overrides give every cell the quantizers the example says."""
import pathlib
import subprocess
import sys

import numpy
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

from n2d2py.deepnet import DeepNet

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "ini_examples" / "pytorch_cnn.onnx"


def test_shipped_onnx_is_the_generators(tmp_path):
    written = tmp_path / "model.onnx"
    subprocess.run([sys.executable, str(ROOT / "tools" / "pytorch_like_onnx.py"), str(written)],
                   check=True, capture_output=True)
    assert written.read_bytes() == SHIPPED.read_bytes()
    names = [n.output[0] for n in onnx.load(SHIPPED).graph.node]
    assert "/layer1/layer1.0/conv1/Conv_output_0" in names and names[-1] == "logits"


def test_import_computes_what_the_reference_evaluator_computes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.ini").write_text(f"[sp]\nSizeX=28\nSizeY=28\nBatchSize=4\n\n"
                                      f"[onnx]\nInput=sp\nType=ONNX\nFile={SHIPPED}\n")
    net = DeepNet.from_ini("net.ini", device="cpu", seed=1, load_data=False,
                           require_target=False)
    x = numpy.random.default_rng(0).random((4, 1, 28, 28), numpy.float32)
    ours = numpy.asarray(net.forward(x, keep=["logits"])["logits"].data).reshape(4, 10)
    model = onnx.load(SHIPPED)          # onnx's reference BatchNormalization of opsets 9-13
    model.opset_import[0].version = 14  # normalises with the batch's statistics (momentum has
    session = ReferenceEvaluator(model)  # a default); opset 14's, in inference, is the ONNX one
    theirs = numpy.concatenate([session.run(None, {"input": x[i:i + 1]})[0] for i in range(4)])
    numpy.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)
    assert numpy.ptp(theirs) > 1e-2          # not a constant output
    onnxruntime = pytest.importorskip("onnxruntime")
    session = onnxruntime.InferenceSession(str(SHIPPED), providers=["CPUExecutionProvider"])
    theirs = numpy.concatenate([session.run(None, {"input": x[i:i + 1]})[0] for i in range(4)])
    numpy.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)


def test_example_overrides_reach_every_cell(monkeypatch):
    monkeypatch.chdir(ROOT)              # File= is relative to the current directory
    net = DeepNet.from_ini("ini_examples/PyTorch_SAT4.ini", device="cpu", seed=1, load_data=False)
    kinds = {}
    for name, cell in net.cells.items():
        kinds.setdefault(cell.type_name, []).append(cell)
    assert len(kinds["Conv"]) == 4 and len(kinds["BatchNorm"]) == 4 and len(kinds["Fc"]) == 1
    for cell in kinds["Conv"] + kinds["Fc"]:
        assert type(cell.qweight).__name__ == "SATWeightQuantizer" and cell.qweight.range == 15
        assert cell.qweight.apply_scaling == (cell.type_name == "Fc")
    for cell in kinds["BatchNorm"] + kinds["ElemWise"]:     # the merged ReLUs replaced by SAT
        assert cell.activation.type_name == "Linear", cell.name
        assert type(cell.qact).__name__ == "SATActQuantizer" and cell.qact.range == 15
