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
import os

import numpy
import onnx
from onnx import numpy_helper

from ..errors import OnnxError


def _inside(folder, path):
    folder = os.path.realpath(folder)
    return os.path.commonpath([folder, os.path.realpath(path)]) == folder


def check_external_data(model, folder):
    """Refuse external-data locations that leave ``folder`` (path escapes or symlinks)."""
    for tensor in onnx.external_data_helper._get_all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        parts = location.replace("\\", "/").split("/")
        if not location or os.path.isabs(location) or ".." in parts or ":" in parts[0]:
            raise OnnxError(f"initializer '{tensor.name}': external data location "
                            f"'{location}' must be a relative path inside the model's folder")
        full = os.path.join(folder, location)
        if not _inside(folder, full):
            raise OnnxError(f"initializer '{tensor.name}': external data '{location}' leads "
                            f"outside the model's folder (symbolic link?)")
        if not os.path.isfile(full):
            raise OnnxError(f"initializer '{tensor.name}': external data file '{full}' not found")


def load_model(source):
    """A ``ModelProto`` from a path (external data checked, then loaded) or a ModelProto."""
    if isinstance(source, onnx.ModelProto):
        return source
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise OnnxError(f"ONNX file '{path}' not found")
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends: not an ONNX file
        raise OnnxError(f"'{path}' is not a readable ONNX model ({exc})") from None
    folder = os.path.dirname(os.path.abspath(path))
    if any(t.data_location == onnx.TensorProto.EXTERNAL
           for t in onnx.external_data_helper._get_all_tensors(model)):
        check_external_data(model, folder)
        onnx.external_data_helper.load_external_data_for_model(model, folder)
    return model


def opset_of(model):
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return 1


def attributes(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def to_array(tensor):
    return numpy_helper.to_array(tensor)


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
