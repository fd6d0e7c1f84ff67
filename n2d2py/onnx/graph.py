"""Reading an ONNX model safely, and the values that flow through its graph (spec/ini.md §5.1).

* ``load_model(path)``: ``onnx.load`` without external data, then each external-data file is
  checked to lie inside the model's own folder (no ``..``, no absolute path, no symlink out)
  before it is read. No pickle, eval or subprocess is involved anywhere.
* ``attributes(node)``: ``{name: python value}`` of a node's attributes.
* ``fold_node(node, inputs, opset)``: evaluates one node whose inputs are all constants (weights
  made by ``ConstantOfShape``, shapes computed with ``Shape``/``Gather``/``Concat``...) with the
  NumPy kernels of ``onnx.reference``; N2D2 only registers ``Constant`` as an initializer, we
  fold every constant subgraph so such models import.
* ``Value``: what the importer knows of a non-constant tensor: the cell (or graph input) that
  holds its data and its ONNX shape with the import-time batch size.
"""
import math
import os
import re

import numpy
import onnx
from onnx import numpy_helper

from ..errors import OnnxError


def _inside(folder, path):
    folder = os.path.realpath(folder)
    return os.path.commonpath([folder, os.path.realpath(path)]) == folder


def _failure(tensor, path):
    """``fail(message)`` -> an OnnxError naming the initializer ``tensor`` and the model file."""
    return lambda message: OnnxError(f"initializer '{tensor.name}': {message}", file=path)


def check_external_data(model, folder, path=None):
    """Refuse external-data locations that leave ``folder`` (path escapes or symlinks), and
    offsets/lengths that do not fit in the file. ``path``: the model file (named in errors)."""
    for tensor in onnx.external_data_helper._get_all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        fail = _failure(tensor, path)
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        parts = location.replace("\\", "/").split("/")
        if not location or "\x00" in location or os.path.isabs(location) or ".." in parts \
                or ":" in parts[0]:
            raise fail(f"external data location '{location}' must be a relative path inside "
                       f"the model's folder")
        full = os.path.join(folder, location)
        if not _inside(folder, full):
            raise fail(f"external data '{location}' leads outside the model's folder "
                       f"(symbolic link?)")
        if not os.path.isfile(full):
            raise fail(f"external data file '{full}' not found")
        size = os.path.getsize(full)
        numbers = {}
        for key in ("offset", "length"):
            text = info.get(key)
            if text is None:
                continue
            if not re.fullmatch(r"[0-9]{1,20}", text.strip()):
                raise fail(f"external data {key} '{text}' must be a non-negative integer")
            numbers[key] = int(text)
        offset = numbers.get("offset", 0)
        length = numbers.get("length", max(size - offset, 0))
        if offset > size or offset + length > size:
            raise fail(f"external data offset {offset} + length {length} is past the end of "
                       f"'{location}' ({size} bytes)")


def load_model(source):
    """A ``ModelProto`` from a path (external data checked, then loaded) or a ModelProto."""
    if isinstance(source, onnx.ModelProto):
        return source
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise OnnxError(f"ONNX file '{path}' not found", file=path)
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends: not an ONNX file
        raise OnnxError(f"not a readable ONNX model ({exc})", file=path) from None
    folder = os.path.dirname(os.path.abspath(path))
    if any(t.data_location == onnx.TensorProto.EXTERNAL
           for t in onnx.external_data_helper._get_all_tensors(model)):
        check_external_data(model, folder, path)
        try:
            onnx.external_data_helper.load_external_data_for_model(model, folder)
        except (OSError, ValueError) as exc:
            raise OnnxError(f"cannot read the external data ({exc})", file=path) from None
    return model


def opset_of(model):
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return 1


def attributes(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def to_array(tensor, path=None):
    """The array of an initializer; a malformed one (raw data of the wrong size, undefined or
    unsupported type, negative dims) is an OnnxError naming it (and the model ``path``)."""
    fail = _failure(tensor, path)
    dims = list(tensor.dims)
    if any(d < 0 for d in dims):
        raise fail(f"negative dimension in {dims}")
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        raise fail("external data was not loaded")
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
    except Exception:
        raise fail(f"unsupported element type {tensor.data_type}") from None
    packed = {getattr(onnx.TensorProto, n, -1) for n in ("INT4", "UINT4", "FLOAT4E2M1")}
    if tensor.HasField("raw_data") and tensor.data_type not in packed | {onnx.TensorProto.STRING}:
        expected = math.prod(dims) * dtype.itemsize
        if len(tensor.raw_data) != expected:
            raise fail(f"raw_data has {len(tensor.raw_data)} bytes, expected {expected} for "
                       f"shape {dims} of {dtype}")
    try:
        return numpy_helper.to_array(tensor)
    except (ValueError, TypeError, IndexError) as exc:
        raise fail(f"cannot be read ({exc})") from None


def fold_node(node, inputs, opset):
    """Outputs (list of arrays) of ``node`` evaluated on constant ``inputs`` (arrays or None)."""
    from onnx.reference import ReferenceEvaluator
    names = [f"in{i}" if x is not None else "" for i, x in enumerate(inputs)]
    outs = [f"out{i}" for i in range(len(node.output))]
    copy = onnx.helper.make_node(node.op_type, names, outs, domain=node.domain)
    copy.attribute.extend(node.attribute)
    graph = onnx.helper.make_graph(
        [copy], "fold", [onnx.helper.make_tensor_value_info(n, 0, None) for n in names if n],
        [onnx.helper.make_tensor_value_info(n, 0, None) for n in outs])
    # a model, not the bare node: ReferenceEvaluator(node) ignores the opset
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
    try:
        evaluator = ReferenceEvaluator(model)
        result = evaluator.run(None, {n: x for n, x in zip(names, inputs) if n})
    except Exception as exc:
        raise OnnxError(f"node '{node.output[0]}' ({node.op_type}): cannot evaluate its constant "
                        f"inputs ({exc})") from None
    return [numpy.asarray(r) for r in result]


class Value:
    """A non-constant tensor: ``source`` is the cell (or graph input) name holding its data,
    ``shape`` its ONNX shape (import-time batch first). The data of ``source`` has the same
    per-sample element order as the ONNX tensor (views are free), unless ``Transpose=1``."""
    __slots__ = ("source", "shape")

    def __init__(self, source, shape):
        self.source, self.shape = source, tuple(int(d) for d in shape)

    def __repr__(self):
        return f"Value({self.source!r}, {self.shape})"


def cell_shape(shape, transpose=False):
    """The (C, H, W) a cell sees for an ONNX shape (batch first): (N, C) -> (C, 1, 1),
    (N, C, L) -> (C, 1, L), (N, C, H, W) as is; rank > 4 keeps C and D1 and merges the rest
    (the same element order). ``transpose`` swaps H and W (``Transpose=1``, spec §5.1)."""
    rest = tuple(shape[1:])
    if len(rest) == 0:
        c, h, w = 1, 1, 1
    elif len(rest) == 1:
        c, h, w = rest[0], 1, 1
    elif len(rest) == 2:
        c, h, w = rest[0], 1, rest[1]
    else:
        c, h, w = rest[0], rest[1], int(numpy.prod(rest[2:]))
    return (c, w, h) if transpose else (c, h, w)


__all__ = ["load_model", "check_external_data", "opset_of", "attributes", "to_array",
           "fold_node", "Value", "cell_shape"]
