"""Fuzzing ONNX import (``n2d2py.onnx``): truncated and bit-flipped files, wrong shapes, unknown
operators, hostile attributes, dangling or cyclic edges, and external-data locations that point
outside the model's folder.

The property: ``import_onnx(path)`` followed by a forward pass (``OnnxModel.run``) ends in
outputs or an ``N2D2Error``; an external-data location outside the model's folder is always an
``OnnxError`` (the file outside is never read).
"""
import functools
import os
import pathlib
import tempfile
import warnings

import numpy
import pytest
from hypothesis import given, strategies as st

from fuzzing import budget, count_case, outcome
from n2d2py.errors import N2D2Error, OnnxError

onnx = pytest.importorskip("onnx")
n2d2_onnx = pytest.importorskip("n2d2py.onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

OPS = ["Relu", "Sigmoid", "Tanh", "Softmax", "Flatten", "Identity", "FooBar", "Loop", "If",
       "Scan", "Einsum", "Conv", "MaxPool", "Gemm", "Add", "Concat", "Reshape", "Resize"]


def tensor(name, shape, seed=0):
    rng = numpy.random.default_rng(seed)
    return numpy_helper.from_array(rng.standard_normal(shape).astype(numpy.float32), name)


@st.composite
def small_model(draw):
    """Conv -> Relu -> MaxPool -> Flatten -> Gemm -> Softmax, with drawn damage."""
    c, h = draw(st.integers(1, 3)), draw(st.integers(1, 9))
    k, o = draw(st.sampled_from([1, 2, 3, 0, 10])), draw(st.sampled_from([1, 2, 4, 0]))
    w_shape = draw(st.sampled_from([(o, c, k, k), (o, c + 1, k, k), (o, c, k), (o,)]))
    conv_attrs = draw(st.fixed_dictionaries({}, optional={
        "strides": st.sampled_from([[1, 1], [0, 0], [2, 2], [1], [-1, 1], [10 ** 9, 1]]),
        "pads": st.sampled_from([[0, 0, 0, 0], [1, 1, 1, 1], [-1, 0, 0, 0], [1, 1], [50] * 4]),
        "dilations": st.sampled_from([[1, 1], [0, 1], [2, 2]]),
        "group": st.sampled_from([1, 0, 2, 7]),
        "kernel_shape": st.sampled_from([[k, k], [k + 1, k], [0, 0]]),
        "auto_pad": st.sampled_from(["NOTSET", "SAME_UPPER", "VALID", "BOGUS"])}))
    pool_attrs = {"kernel_shape": draw(st.sampled_from([[2, 2], [1, 1], [0, 0], [100, 100], [2]]))}
    if draw(st.booleans()):
        pool_attrs["strides"] = draw(st.sampled_from([[2, 2], [0, 0], [1, 1]]))
    fc_in = draw(st.sampled_from([4, 1, 0, 1000]))
    nodes = [helper.make_node("Conv", ["x", "W", "b"], ["c"], **conv_attrs),
             helper.make_node(draw(st.sampled_from(OPS)) if draw(st.booleans()) else "Relu",
                              ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], **pool_attrs),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "Wf", "bf"], ["g"], transB=draw(st.sampled_from([1, 0]))),
             helper.make_node("Softmax", ["g"], ["y"])]
    edit = draw(st.sampled_from(["none", "dangling", "cycle", "duplicate", "reorder", "domain"]))
    if edit == "dangling":
        nodes[2].input[0] = "nowhere"
    elif edit == "cycle":
        nodes[1].input[0] = "p"
    elif edit == "duplicate":
        nodes[3].output[0] = "r"
    elif edit == "reorder":
        nodes.reverse()
    elif edit == "domain":
        nodes[1].domain = "com.example"
    in_dims = draw(st.sampled_from([[1, c, h, h], [1, c, h], [0, c, h, h], [1, c, -1, h],
                                    ["N", c, h, h], [1, c, 2 ** 20, 2 ** 20]]))
    graph = helper.make_graph(
        nodes, "fuzz", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [tensor("W", w_shape), tensor("b", (max(o, 1),)), tensor("Wf", (3, fc_in)),
         tensor("bf", (3,))])
    opset = draw(st.sampled_from([13, 11, 7, 1, 99]))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), (c, h)


def import_and_run(path, c, h):
    model = n2d2_onnx.OnnxModel(str(path))
    x = numpy.random.default_rng(0).standard_normal((1, c, h, h)).astype(numpy.float32)
    return model.run([x])


def damage_bytes(data, draw):
    kind = draw(st.sampled_from(["none", "truncate", "flip", "junk"]))
    if kind == "truncate":
        return data[:draw(st.integers(0, len(data)))]
    if kind == "flip" and data:
        data = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
        return bytes(data)
    if kind == "junk":
        return data + draw(st.binary(min_size=1, max_size=64))
    return data


@budget(0.1)
@given(small_model(), st.data())
def test_damaged_small_model(case, data):
    count_case("onnx small models")
    model, (c, h) = case
    raw = damage_bytes(model.SerializeToString(), data.draw)
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "model.onnx"
        path.write_bytes(raw)
        outcome("onnx: import and run", import_and_run, path, c, h)


@functools.lru_cache(maxsize=None)
def node_models():
    """The onnx package's node test models (one or more per operator), built in memory by its
    case generators (the wheel ships those, not the model files); about 6 s, once."""
    from onnx.backend.test.case.node import collect_testcases
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")    # the generators overflow casts on purpose
        return tuple(case.model.SerializeToString() for case in collect_testcases(None))


@budget(0.1)
@given(st.data())
def test_onnx_backend_models_damaged(data):
    """The onnx package's node test models (every operator, most unsupported here), damaged."""
    count_case("onnx backend node models")
    models = node_models()
    assert len(models) > 1000
    raw = damage_bytes(data.draw(st.sampled_from(models)), data.draw)
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "model.onnx"
        path.write_bytes(raw)
        outcome("onnx: import node model", n2d2_onnx.import_onnx, str(path))


LOCATIONS = ["../outside.bin", "/etc/passwd", "sub/../../outside.bin", "..", "", "link.bin",
             "C:/x.bin", "weights.bin", "nothere.bin", "./weights.bin", "sub/../weights.bin",
             "\\..\\outside.bin", "weights.bin\x00.txt"]


@budget(0.1)
@given(st.sampled_from(LOCATIONS), st.sampled_from([None, 0, 4, 10 ** 12]),
       st.sampled_from([None, 16, 36, 1, 10 ** 12]))
def test_external_data_stays_inside_the_model_folder(location, offset, length):
    count_case("onnx external data")
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        folder = root / "model"
        folder.mkdir()
        weights = numpy.arange(9, dtype=numpy.float32)
        (root / "outside.bin").write_bytes(weights.tobytes())
        (folder / "weights.bin").write_bytes(weights.tobytes())
        (folder / "link.bin").symlink_to(root / "outside.bin")
        W = numpy_helper.from_array(weights.reshape(1, 1, 3, 3), "W")
        W.ClearField("raw_data")
        W.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", offset), ("length", length)):
            if value is not None:
                entry = W.external_data.add()
                entry.key, entry.value = key, str(value)
        node = helper.make_node("Conv", ["x", "W"], ["y"])
        graph = helper.make_graph(
            [node], "ext", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 3, 3])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [W])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        path = folder / "model.onnx"
        path.write_bytes(model.SerializeToString())
        result = outcome("onnx: external data", n2d2_onnx.import_onnx, str(path))
        normalized = os.path.normpath(location.replace("\\", "/")) if location else ""
        outside = (not location or normalized.startswith("..") or os.path.isabs(location)
                   or location == "link.bin" or ":" in location or "\x00" in location)
        known_bug = isinstance(result, Exception) and not isinstance(result, N2D2Error)
        if outside and not known_bug:
            assert isinstance(result, OnnxError), \
                f"external data location {location!r} outside the model folder was accepted"
        if not isinstance(result, Exception):
            assert location in ("weights.bin", "./weights.bin", "sub/../weights.bin")
