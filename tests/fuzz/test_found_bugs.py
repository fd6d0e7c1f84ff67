"""Minimal reproductions of the bugs the fuzz tests found. Fixed ones are plain regression tests;
the others are ``xfail(strict=True)`` with the file to fix (remove the mark once fixed)."""
import pathlib
import tempfile

import numpy
import pytest

from n2d2py.errors import N2D2Error
from n2d2py.ini import parse_ini_text
from n2d2py.ini.expression import ExpressionError, evaluate

CONV = """[sp]
SizeX=8
SizeY=8
BatchSize=2
[conv1]
Input=sp
Type=Conv
NbOutputs=2
{keys}
[conv1.Target]
"""


# -- fixed in n2d2py/ini/expression.py ---------------------------------------------------------
def test_long_operator_chain_is_an_expression_error_not_recursion_error():
    with pytest.raises(ExpressionError):
        evaluate("1+" * 2000 + "1")
    assert evaluate("1+" * 500 + "1") == 501


def test_round_with_huge_negative_digits_is_immediate():
    assert evaluate("round(5, -2**31)") == 0          # was a hang (10**(2**31) computed)
    assert evaluate("round(12345, -2)") == 12300


# -- cells (n2d2py/cells/conv.py, cells/mapping.py) --------------------------------------------
def build(keys):
    from n2d2py.deepnet import DeepNet
    return DeepNet.from_ini(parse_ini_text(CONV.format(keys=keys), "/tmp/conv.ini", env={}),
                            load_data=False)


# fixed in cells/conv.py (was: a conv whose output is the bias alone, 9x9 from 8x8)
@pytest.mark.parametrize("keys", ["KernelDims=0 0", "KernelDims=0",
                                  "KernelDims=0 0\nWeightsFiller=HeFiller"])
def test_zero_kernel_is_an_ini_error(keys):
    with pytest.raises(N2D2Error):
        build(keys)


# fixed in cells/conv.py (was: ZeroDivisionError for StrideDims=0, Dilation=0 built silently)
@pytest.mark.parametrize("keys", ["KernelDims=3 3\nStrideDims=0 0", "KernelDims=3 3\nDilation=0"])
def test_zero_stride_or_dilation_is_an_ini_error(keys):
    with pytest.raises(N2D2Error):
        build(keys)


@pytest.mark.xfail(strict=True, reason="params.py:34 raises AttributeError 'ConstantFiller: "
                   "required key Value not set'; a missing required key must be an IniError "
                   "naming the section and WeightsFiller.Value")
def test_filler_missing_required_key_is_an_ini_error():
    with pytest.raises(N2D2Error):
        build("KernelDims=3 3\nWeightsFiller=ConstantFiller")


@pytest.mark.xfail(strict=True, reason="cells/mapping.py: an unknown Mapping sub-key "
                   "(Mapping.Sizes) is neither read nor reported (collect_warnings treats every "
                   "Mapping.* key as known); it must be a warning or an IniError naming it")
def test_misspelt_mapping_key_is_reported():
    net = build("KernelDims=3 3\nMapping.Sizes=1")
    said = [str(w) for w in net.document.warnings] + [str(w) for w in net.warnings()]
    assert any("Mapping.Sizes" in line for line in said)


@pytest.mark.xfail(strict=True, reason="onnx/deepnet.py:57 reads cells[p] for in_shapes before "
                   "checking that the parent is a built cell: KeyError instead of IniError")
def test_onnx_section_with_unknown_parent_is_an_ini_error():
    from n2d2py.deepnet import DeepNet
    text = ("[sp]\nSizeX=8\nSizeY=8\n[hdr]\nType=x\n[onnx]\nInput=hdr\nType=ONNX\n"
            "File=model.onnx\n[onnx.Target]\n")
    with pytest.raises(N2D2Error):
        DeepNet.from_ini(parse_ini_text(text, "/tmp/o.ini", env={}), load_data=False)


# -- data (n2d2py/data/cifar.py) -------------------------------------------------------------
@pytest.mark.xfail(strict=True, reason="data/cifar.py: a label byte >= the class count (10 or "
                   "100) is accepted; read_cifar_records/store must raise DataError naming the file")
@pytest.mark.parametrize("kind, label_bytes, names, label", [
    ("CIFAR10_Database", 1, [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"], 10),
    ("CIFAR100_Database", 2, ["train.bin", "test.bin"], 100)])
def test_cifar_label_out_of_range_is_a_data_error(kind, label_bytes, names, label):
    from n2d2py.data.database import database_from_section
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            record = bytes([label] * label_bytes) + bytes(3072)
            (pathlib.Path(tmp) / name).write_bytes(record)
        document = parse_ini_text(f"[database]\nType={kind}\nDataPath={tmp}\n", "/tmp/c.ini", env={})
        with pytest.raises(N2D2Error):
            database_from_section(document.section("database"), numpy.random.default_rng(1))


# -- ONNX (n2d2py/onnx/ops.py, graph.py) --------------------------------------------------------
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def onnx_model(nodes, inits, folder):
    graph = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                         [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = pathlib.Path(folder) / "m.onnx"
    path.write_bytes(model.SerializeToString())
    return str(path)


def ones(name, shape):
    return numpy_helper.from_array(numpy.ones(shape, numpy.float32), name)


def short_raw(name):
    tensor = ones(name, (1, 1, 3, 3))
    tensor.raw_data = tensor.raw_data[:16]
    return tensor


def external(location, offset=None):
    tensor = ones("W", (1, 1, 3, 3))
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", offset)):
        if value is not None:
            entry = tensor.external_data.add()
            entry.key, entry.value = key, str(value)
    return tensor


ONNX_CASES = {
    "Conv strides=[1] (ops.py:65 IndexError)":
        ([helper.make_node("Conv", ["x", "W"], ["y"], strides=[1])], [ones("W", (1, 1, 3, 3))]),
    "Conv weights of rank 3 (ops.py:146 IndexError)":
        ([helper.make_node("Conv", ["x", "W"], ["y"])], [ones("W", (1, 1, 3))]),
    "Conv weights of rank 1 (ops.py:134 IndexError)":
        ([helper.make_node("Conv", ["x", "W"], ["y"])], [ones("W", (1,))]),
    "MaxPool without kernel_shape (ops.py:245 KeyError)":
        ([helper.make_node("MaxPool", ["x"], ["y"])], []),
    "initializer raw_data too short (graph.to_array ValueError)":
        ([helper.make_node("Conv", ["x", "W"], ["y"])], [short_raw("W")]),
    "external data location with a NUL byte (graph.py:25 ValueError)":
        ([helper.make_node("Conv", ["x", "W"], ["y"])], [external("w.bin\x00.txt")]),
    "external data offset past the end (onnx ValueError)":
        ([helper.make_node("Conv", ["x", "W"], ["y"])], [external("w.bin", 10 ** 12)]),
}


@pytest.mark.xfail(strict=True, reason="n2d2py/onnx: malformed node/initializer raises a non-N2D2 "
                   "exception; validate attribute lengths, weight ranks and required attributes, "
                   "and wrap to_array/load_external_data_for_model/realpath in OnnxError")
@pytest.mark.parametrize("case", sorted(ONNX_CASES))
def test_malformed_onnx_is_an_onnx_error(case):
    from n2d2py.onnx import import_onnx
    nodes, inits = ONNX_CASES[case]
    with tempfile.TemporaryDirectory() as tmp:
        (pathlib.Path(tmp) / "w.bin").write_bytes(bytes(36))
        path = onnx_model(nodes, inits, tmp)
        with pytest.raises(N2D2Error):
            import_onnx(path)
