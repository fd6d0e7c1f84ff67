"""Acceptance 3: random-weight ResNet-18-like and MobileNet-v2-like ONNX graphs (asymmetric
pads, ceil-mode pools, Clip-ReLU6, Concat, Transpose, MatMul+Add) give the numbers of
``onnx.reference.ReferenceEvaluator``."""
import numpy
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

from n2d2py.onnx import OnnxModel, import_onnx

from _builders import mobilenet_v2_like, resnet18_like

RTOL, ATOL = 1e-4, 1e-6


@pytest.mark.parametrize("build, shape", [(resnet18_like, (1, 3, 32, 32)),
                                          (mobilenet_v2_like, (2, 3, 33, 33))])
def test_matches_reference_evaluator(build, shape, rng):
    model = build(rng)
    x = rng.standard_normal(shape).astype(numpy.float32)
    ref = ReferenceEvaluator(model).run(None, {"x": x})[0]
    got = next(iter(OnnxModel(model).run({"x": x}).values()))
    assert got.shape == ref.shape
    numpy.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL)


def test_pre_softmax_logits_match(rng):
    """The softmax hides errors in the logits: compare the Gemm output too."""
    model = resnet18_like(rng)
    model.graph.output[0].name = "resnetv15_dense0_fwd"
    model.graph.node.pop()
    x = rng.standard_normal((1, 3, 32, 32)).astype(numpy.float32)
    ref = ReferenceEvaluator(model).run(None, {"x": x})[0]
    got = OnnxModel(model).run({"x": x})["resnetv15_dense0_fwd"]
    numpy.testing.assert_allclose(got, ref, rtol=RTOL, atol=1e-5)


def test_resnet_cells_and_names(rng):
    graph = import_onnx(resnet18_like(rng), input_names=["env"], input_shapes=[(3, 32, 32)])
    cells = graph.cells
    assert cells["resnetv15_conv0_fwd"].parents == ["env"]
    # ReLU attached to the BatchNorm (the last created cell), as N2D2 does
    assert type(cells["resnetv15_batchnorm0_fwd"].activation).__name__ == "Rectifier"
    # ceil-mode pool with asymmetric pads: an ONNX-exact Pool cell
    assert type(cells["resnetv15_pool0_fwd"]).__name__ == "OnnxPoolCell"
    assert graph.auto_targets == [("softmax0.Target", "softmax0")]
    assert cells["resnetv15_dense0_fwd"].out_shape == (10, 1, 1)


def test_mobilenet_cntk_folds_matmul_add(rng):
    model = mobilenet_v2_like(rng)
    from n2d2py.ini import parse_ini_text
    doc = parse_ini_text("[onnx]\nInput=sp\nType=ONNX\nFile=x.onnx\nCNTK=1\n", "t.ini")
    graph = import_onnx(model, doc, doc.section("onnx"))
    fcs = [c for c in graph.cells.values() if type(c).__name__ == "FcCell"]
    assert len(fcs) == 1 and fcs[0].bias is not None
    assert not [c for c in graph.cells.values() if type(c).__name__ == "BatchNormCell"
                and c.epsilon == 0.0]
