"""Minimal reproductions of the bugs the fuzz tests found. Fixed ones are plain regression tests;
the others are ``xfail(strict=True)`` with the file to fix (remove the mark once fixed)."""
import pathlib
import tempfile

import numpy
import pytest

from n2d2py.errors import DataError, IniError, N2D2Error, OnnxError, WeightsError
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


# fixed in cells/base.py check_required_keys (was: AttributeError from params.py)
@pytest.mark.parametrize("keys, key", [("WeightsFiller=ConstantFiller", "WeightsFiller.Value"),
                                       ("BiasFiller=ConstantFiller", "BiasFiller.Value")])
def test_filler_missing_required_key_is_an_ini_error(keys, key):
    with pytest.raises(IniError) as info:
        build("KernelDims=3 3\n" + keys)
    assert info.value.section == "conv1" and info.value.key == key
    build(f"KernelDims=3 3\n{keys}\n{key}=0.5")


# fixed in cells/mapping.py (was: the typo ignored, yet the layer switched to a pattern map)
@pytest.mark.parametrize("line, key, hint", [
    ("Mapping.Sizes=1", "Mapping.Sizes", "Mapping.Size"),
    ("Mapping(env).Ofset=2", "Mapping(env).Ofset", "Mapping(env).Offset"),
    ("Mapping.NbGroup=1", "Mapping.NbGroup", "Mapping.NbGroups"),
    ("Mapping(env).NbGroups=1", "Mapping(env).NbGroups", "Mapping.NbGroups"),
    ("Mapping(sp).Size=1", "Mapping(sp).Size", "'env'"),          # not a parent of the cell
    ("Mapping(env)Size=1", "Mapping(env)Size", "Mapping(<parent>)")])
def test_misspelt_mapping_key_is_an_ini_error(line, key, hint):
    with pytest.raises(IniError) as info:
        build("KernelDims=3 3\n" + line)
    assert info.value.key == key and hint in str(info.value)


@pytest.mark.parametrize("line", ["Mapping.Size=1", "Mapping.NbIterations=1",
                                  "Mapping(env).OffsetX=0", "Mapping.ChannelsPerGroup=1",
                                  "Mapping(env)=1 1"])
def test_correct_mapping_keys_still_build(line):
    build("KernelDims=3 3\n" + line)


# fixed in build.py (was: KeyError, cells[p] read before the parent check)
def test_onnx_section_with_unknown_parent_is_an_ini_error():
    from n2d2py.deepnet import DeepNet
    text = ("[sp]\nSizeX=8\nSizeY=8\n[hdr]\nType=x\n[onnx]\nInput=hdr\nType=ONNX\n"
            "File=model.onnx\n[onnx.Target]\n")
    with pytest.raises(IniError, match="parent 'hdr' is not a cell"):
        DeepNet.from_ini(parse_ini_text(text, "/tmp/o.ini", env={}), load_data=False)


# -- data (n2d2py/data/cifar.py, idx.py) --------------------------------------------------------
# fixed in data/cifar.py (was: labels >= the class count loaded silently)
@pytest.mark.parametrize("kind, label_bytes, names, labels", [
    ("CIFAR10_Database", 1, [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"],
     [10]),
    ("CIFAR100_Database", 2, ["train.bin", "test.bin"], [100, 100]),
    ("CIFAR100_Database", 2, ["train.bin", "test.bin"], [20, 5]),     # coarse byte out of range
    ("CIFAR100_Database", 2, ["train.bin", "test.bin"], [3, 100])])   # fine byte out of range
def test_cifar_label_out_of_range_is_a_data_error(kind, label_bytes, names, labels):
    from n2d2py.data.database import database_from_section
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            good = bytes([1] * label_bytes) + bytes(3072)
            (pathlib.Path(tmp) / name).write_bytes(good + bytes(labels) + bytes(3072))
        document = parse_ini_text(f"[database]\nType={kind}\nDataPath={tmp}\n", "/tmp/c.ini", env={})
        with pytest.raises(DataError) as info:
            database_from_section(document.section("database"), numpy.random.default_rng(1))
        assert info.value.file == str(pathlib.Path(tmp) / names[0])
        assert "record 1 " in str(info.value)


def test_cifar_labels_in_range_load():
    from n2d2py.data.database import database_from_section
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("train.bin", "test.bin"):
            (pathlib.Path(tmp) / name).write_bytes(bytes([19, 99]) + bytes(3072))
        document = parse_ini_text(f"[database]\nType=CIFAR100_Database\nDataPath={tmp}\n",
                                  "/tmp/c.ini", env={})
        database = database_from_section(document.section("database"),
                                         numpy.random.default_rng(1))
        assert list(database.labels) == [99, 99]


# fixed in data/idx.py (was: a gzip IDX decompressed whole, however large)
def test_gzip_idx_bomb_is_not_expanded():
    import gzip
    from n2d2py.data import idx
    with tempfile.TemporaryDirectory() as tmp:
        path = str(pathlib.Path(tmp) / "labels.gz")
        header = bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big")
        with gzip.open(path, "wb") as handle:          # 10 labels declared, 200 MiB written
            handle.write(header + bytes(10))
            for _ in range(200):
                handle.write(bytes(1 << 20))
        read = []
        original = idx._read_upto
        idx._read_upto = lambda h, n: read.append(n) or original(h, n)
        try:
            with pytest.raises(DataError, match="oversized IDX file.*more than 18"):
                idx.read_idx(path)
        finally:
            idx._read_upto = original
        assert sum(max(n, 0) for n in read) <= idx.CHUNK + 19
        small = str(pathlib.Path(tmp) / "ok.gz")
        with gzip.open(small, "wb") as handle:
            handle.write(header + bytes(range(10)))
        assert list(idx.read_idx(small)) == list(range(10))
        with gzip.open(small, "wb") as handle:
            handle.write(header + bytes(9))
        with pytest.raises(DataError, match="truncated IDX file.*got 17"):
            idx.read_idx(small)


# -- weights (n2d2py/io/syntxt.py) ---------------------------------------------------------------
# fixed in io/syntxt.py (was: 1e39 read as inf)
@pytest.mark.parametrize("text, bad", [("1 2 1e39", "1e39"), ("-3.5e38 0", "-3.5e38"),
                                       ("1e400", "1e400")])
def test_syntxt_value_outside_float32_is_a_weights_error(text, bad):
    from n2d2py.io.syntxt import read_numbers
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "w.syntxt"
        path.write_text(text)
        with pytest.raises(WeightsError) as info:
            read_numbers(str(path))
        assert info.value.file == str(path) and repr(bad) in str(info.value)


def test_syntxt_literal_inf_and_nan_are_kept():
    from n2d2py.io.syntxt import read_numbers
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "w.syntxt"
        path.write_text("inf -inf nan 3.4028235e38 -Infinity 1e-50")
        values = read_numbers(str(path))
        assert numpy.isposinf(values[0]) and numpy.isneginf(values[1]) and numpy.isnan(values[2])
        assert values[3] == numpy.finfo(numpy.float32).max and numpy.isneginf(values[4])
        assert values[5] == 0


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
    "Conv strides=[0, 1] (ZeroDivisionError)":
        ([helper.make_node("Conv", ["x", "W"], ["y"], strides=[0, 1])], [ones("W", (1, 1, 3, 3))]),
    "Conv group=0 (ZeroDivisionError)":
        ([helper.make_node("Conv", ["x", "W"], ["y"], group=0)], [ones("W", (1, 1, 3, 3))]),
    "Conv pads=[1] (IndexError)":
        ([helper.make_node("Conv", ["x", "W"], ["y"], pads=[1])], [ones("W", (1, 1, 3, 3))]),
    "Conv bias of the wrong size (ValueError)":
        ([helper.make_node("Conv", ["x", "W", "B"], ["y"])], [ones("W", (1, 1, 3, 3)),
                                                              ones("B", (3,))]),
    "MaxPool strides=[0, 0] (ZeroDivisionError)":
        ([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[0, 0])], []),
    "MaxPool kernel_shape=[2] (IndexError)":
        ([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2])], []),
    "LRN without size (KeyError)":
        ([helper.make_node("LRN", ["x"], ["y"])], []),
    "Transpose perm=[0, 1, 2, 7] (IndexError)":
        ([helper.make_node("Transpose", ["x"], ["y"], perm=[0, 1, 2, 7])], []),
    "Reshape without shape (KeyError)":
        ([helper.make_node("Reshape", ["x"], ["y"])], []),
    "Unsqueeze without axes (TypeError)":
        ([helper.make_node("Unsqueeze", ["x"], ["y"])], []),
    "Pad pads=[1] (IndexError)":
        ([helper.make_node("Pad", ["x"], ["y"], pads=[1])], []),
    "Gemm weights of rank 1 (IndexError)":
        ([helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("Gemm", ["f", "W"], ["y"])],
         [ones("W", (16,))]),
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


# fixed in onnx/ops*.py (attributes and weight shapes validated) and onnx/graph.py (initializers)
@pytest.mark.parametrize("case", sorted(ONNX_CASES))
def test_malformed_onnx_is_an_onnx_error(case):
    from n2d2py.onnx import import_onnx
    nodes, inits = ONNX_CASES[case]
    with tempfile.TemporaryDirectory() as tmp:
        (pathlib.Path(tmp) / "w.bin").write_bytes(bytes(36))
        path = onnx_model(nodes, inits, tmp)
        with pytest.raises(OnnxError) as info:
            import_onnx(path)
        assert info.value.file == path, "the model file is named"
        assert info.value.message.startswith(("node ", "initializer ")), info.value.message
        if "initializer" in case or "external" in case:
            assert info.value.message.startswith("initializer 'W'")


def test_well_formed_onnx_still_imports():
    from n2d2py.onnx import import_onnx
    with tempfile.TemporaryDirectory() as tmp:
        (pathlib.Path(tmp) / "w.bin").write_bytes(numpy.ones(9, numpy.float32).tobytes())
        for nodes, inits in [
                ([helper.make_node("Conv", ["x", "W"], ["y"], strides=[1, 1], group=1,
                                   kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
                 [ones("W", (1, 1, 3, 3))]),
                ([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])],
                 []),
                ([helper.make_node("Conv", ["x", "W"], ["y"])], [external("w.bin", 0)])]:
            graph = import_onnx(onnx_model(nodes, inits, tmp))
            assert list(graph.cells) == ["y"]
