"""Issue 15's acceptance, narrow: each torchvision classification family (random weights,
seeded, BatchNorm statistics randomised), exported by PyTorch's TorchScript exporter at opsets 13
and 17 and by its dynamo exporter, run by n2d2py (``OnnxModel``, what ``n2d2py model.onnx
--infer`` runs) matches onnxruntime to rtol 1e-3 / atol 1e-4 on a seeded random input.

The models are torchvision's own classes, narrowed through their constructors where they take
widths (``tools/torchvision_onnx.py``, which also runs the full-size models for
docs/ONNX.md's table): torchvision's Python model code is the thing users export, so the tests
use it rather than copies of its blocks. CI installs it (``.ci/run``: ``pip install --no-deps
--target DIR torchvision==0.28.0``, the release made for torch 2.13, with
``N2D2PY_TORCHVISION_PATH=DIR``); without torch, torchvision, onnxruntime (or onnxscript for
the dynamo rows) the tests skip.
"""
import functools
import importlib.util
import os
import pathlib

import numpy
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FAMILIES = ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "squeezenet1_1",
            "shufflenet_v2", "efficientnet_b0", "regnet_x_400mf", "densenet121", "googlenet",
            "mnasnet", "alexnet", "vgg11_bn", "convnext_tiny"]


@functools.lru_cache(maxsize=None)
def tool():
    """tools/torchvision_onnx.py, loaded once (it declares torchvision's operator schemas)."""
    spec = importlib.util.spec_from_file_location("torchvision_onnx",
                                                  ROOT / "tools" / "torchvision_onnx.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tv():
    """(torch, torchvision), or the module's tests skip."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    try:
        return tool().import_torchvision(os.environ.get("N2D2PY_TORCHVISION_PATH"))
    except ImportError as exc:
        pytest.skip(f"torchvision is not installed ({exc})")


def test_families_are_the_issue_list(tv):
    torch, torchvision = tv
    assert list(tool().small_models(torch, torchvision)) == FAMILIES
    assert list(tool().full_models(torch, torchvision)) == FAMILIES


# CI's share of the matrix: every family at opset 17, and the three exporters on the families
# whose operators change with them (HardSwish, Split/Slice, LayerNormalization/GELU/MatMul).
# The other rows run with N2D2PY_TORCHVISION_MATRIX=1 (or ``tools/torchvision_onnx.py --small``).
EXPORTER_FAMILIES = ("mobilenet_v3_small", "shufflenet_v2", "convnext_tiny")
FULL_MATRIX = os.environ.get("N2D2PY_TORCHVISION_MATRIX") == "1"


@pytest.mark.parametrize("exporter", ["13", "17", "dynamo"])
@pytest.mark.parametrize("family", FAMILIES)
def test_family_matches_onnxruntime(tv, family, exporter, tmp_path):
    if exporter != "17" and family not in EXPORTER_FAMILIES and not FULL_MATRIX:
        pytest.skip("the whole matrix: N2D2PY_TORCHVISION_MATRIX=1")
    if exporter == "dynamo":
        pytest.importorskip("onnxscript")
    torch, torchvision = tv
    t = tool()
    name, exported, status, diff, scale, _ = t.row(torch, torchvision, family, exporter, True,
                                                   str(tmp_path))
    assert status == "match", status
    assert scale > 0.1    # outputs of order 1: atol 1e-4 is a real bound


@pytest.mark.parametrize("family, size", [("alexnet", 64), ("vgg11_bn", 32)])
def test_adaptive_pool_below_its_size_dynamo(tv, family, size, tmp_path):
    """Below 224 px, AdaptiveAvgPool2d((6, 6)) / ((7, 7)) grows a 1x1 map: the TorchScript
    exporter refuses it, the dynamo exporter writes Transpose (batch last), GatherND,
    Transpose, ReduceMean — imported as one OnnxGatherCell and a reduction."""
    pytest.importorskip("onnxscript")
    import onnx
    torch, torchvision = tv
    t = tool()
    torch.manual_seed(0)
    builder = t.small_models(torch, torchvision)[family][0]
    model = t.randomise(torch, builder(), 1)
    x = torch.tensor(numpy.random.default_rng(0).standard_normal((2, 3, size, size))
                     .astype(numpy.float32))
    path = t.export(torch, model, x, str(tmp_path / "m.onnx"), "dynamo")
    assert "GatherND" in {n.op_type for n in onnx.load(path).graph.node}
    result = t.compare(path, x.numpy())
    assert result.get("match"), result
    with torch.no_grad():
        numpy.testing.assert_allclose(result["ours"], model(x).numpy(), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("family", ["resnet18", "mobilenet_v3_small", "squeezenet1_1",
                                    "convnext_tiny"])
def test_user_path(tv, family, tmp_path):
    """What a user does after the import (docs/ONNX.md's second table): one training step
    through an INI importing the export (every parameter finite, the weights move), ``--export
    ONNX`` of the trained network equal to n2d2py on onnxruntime, ``--calib`` at 8 bits, one
    step with SAT 4-bit overrides, and ``--qat-sat`` fusing it or refusing in one
    line naming a cell."""
    torch, torchvision = tv
    r = tool().user_row(torch, torchvision, family, True, str(tmp_path))
    assert isinstance(r["train"], float) and isinstance(r["sat"], float), r
    assert r["export_match"], r
    # --calib at 8 bits: ResNet-18 calibrates and keeps the float top-1 on most inputs; the
    # others calibrate or name the cell they cannot quantize (MobileNet-v3's HardSwish...)
    assert r["ptq"] >= 0.75 if family == "resnet18" else \
        isinstance(r["ptq"], float) or r["ptq"].startswith("refused: ["), r
    assert r["qat"] == "fused" or (r["qat"].startswith("refused: [") and "\n" not in r["qat"]), r
