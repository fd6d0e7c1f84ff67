"""Reading an ONNX model safely, and the values that flow through its graph.

* ``load_model(path)``: ``onnx.load`` without external data, then the external data of every
  tensor of the model (initializers, sparse values, attributes, subgraphs: ``all_tensors``) is
  checked to lie inside the model's own folder (no ``..``, no absolute path, no symlink out, a
  regular file) and read by us. No pickle, eval or subprocess is involved anywhere.
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
from google.protobuf.message import Message
from onnx import numpy_helper

from ..errors import OnnxError, printable
from ..io.files import regular_file_problem
from ..io.names import path_inside


def _failure(tensor, path, what="initializer"):
    """``fail(message)`` -> an OnnxError naming the ``tensor`` and the model file."""
    return lambda message: OnnxError(f"{what} '{printable(tensor.name)[:200]}': {message}",
                                     file=path)


def all_tensors(message):
    """Every ``TensorProto`` inside a protobuf ``message`` (a ModelProto): initializers, the
    values and indices of sparse tensors (``sparse_initializer``, a Constant's
    ``sparse_value``), tensors in node attributes, in subgraphs (If, Loop, Scan) and in
    functions, whatever field holds them. Found by walking the message's set fields, so a
    place the ONNX format adds later is walked too."""
    stack = [message]
    while stack:
        current = stack.pop()
        if isinstance(current, onnx.TensorProto):
            yield current
            continue
        for field, value in current.ListFields():
            if field.type != field.TYPE_MESSAGE:
                continue
            if isinstance(value, Message):
                stack.append(value)
            else:                        # a repeated field (or a map: its values)
                items = value.values() if hasattr(value, "values") else value
                stack.extend(v for v in items if isinstance(v, Message))


def external_tensors(model):
    return [t for t in all_tensors(model) if t.data_location == onnx.TensorProto.EXTERNAL]


def check_external_data(model, folder, path=None):
    """Refuse external-data locations that leave ``folder`` (path escapes or symlinks), files
    that are not regular files, and offsets/lengths that do not fit in the file, for every
    tensor of the model (``all_tensors``). ``path``: the model file (named in errors).
    Returns ``[(tensor, file, offset, length)]``."""
    checked = []
    initializers = {t.name for t in model.graph.initializer}
    for tensor in external_tensors(model):
        fail = _failure(tensor, path, "initializer" if tensor.name in initializers else "tensor")
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        full = path_inside(folder, location)
        if full is None:
            raise fail(f"external data location '{printable(location)[:200]}' must be a "
                       f"relative path inside the model's folder (no '..', no symbolic link "
                       f"leading out)")
        problem = regular_file_problem(full)
        if problem:
            raise fail(f"external data file '{full}' {problem}")
        size = os.path.getsize(full)
        numbers = {}
        for key in ("offset", "length"):
            text = info.get(key)
            if text is None:
                continue
            if not re.fullmatch(r"[0-9]{1,20}", text.strip()):
                raise fail(f"external data {key} '{printable(text)[:40]}' must be a "
                           f"non-negative integer")
            numbers[key] = int(text)
        offset = numbers.get("offset", 0)
        length = numbers.get("length", max(size - offset, 0))
        if offset > size or offset + length > size:
            raise fail(f"external data offset {offset} + length {length} is past the end of "
                       f"'{printable(location)[:200]}' ({size} bytes)")
        checked.append((tensor, full, offset, length))
    return checked


def load_model(source):
    """A ``ModelProto`` from a path (external data checked, then loaded) or a ModelProto.

    Every tensor's external data is read here, from inside the model's folder, or the model
    is refused: no later reader (the importer, ``onnx.reference``) ever resolves a location,
    which they would do from the working directory."""
    if isinstance(source, onnx.ModelProto):
        if external_tensors(source):
            raise OnnxError(f"tensor '{external_tensors(source)[0].name}' has external data "
                            f"that was not loaded: load the model from its file")
        return source
    path = os.fspath(source)
    problem = regular_file_problem(path)
    if problem:
        raise OnnxError(f"ONNX file '{path}' {problem}", file=path)
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends: not an ONNX file
        raise OnnxError(f"not a readable ONNX model ({exc})", file=path) from None
    folder = os.path.dirname(os.path.abspath(path))
    for tensor, full, offset, length in check_external_data(model, folder, path):
        try:
            with open(full, "rb") as handle:
                handle.seek(offset)
                data = handle.read(length)
        except OSError as exc:
            raise OnnxError(f"cannot read the external data of '{tensor.name}' "
                            f"({exc.strerror or exc})", file=full) from None
        if len(data) != length:
            raise OnnxError(f"external data of '{tensor.name}' is shorter than its length "
                            f"{length}", file=full)
        tensor.raw_data = data
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]
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
    per-sample element order as the ONNX tensor (views are free), unless ``Transpose=1``.

    ``index`` (None or an ``IndexMap``): a tensor that layout operators (Slice, Split, Gather,
    Transpose across the batch...) made of the elements of ``source`` (``ops_layout.py``)."""
    __slots__ = ("source", "shape", "index")

    def __init__(self, source, shape, index=None):
        self.source, self.shape = source, tuple(int(d) for d in shape)
        self.index = index

    def __repr__(self):
        return f"Value({self.source!r}, {self.shape}{'' if self.index is None else ', index'})"


class IndexMap:
    """Where each element of a tensor comes from: ``positions`` (int64, the tensor's ONNX shape)
    holds positions in the data of a source of ``batch`` samples of ``size`` values each
    (sample n, value k: ``n * size + k``). The batch axis may be moved or merged on the way
    (Transpose, Reshape to [-1]); ``per_sample()`` says whether it is back in front."""
    __slots__ = ("positions", "batch", "size", "_sample")

    def __init__(self, positions, batch, size):
        self.positions, self.batch, self.size = positions, int(batch), int(size)
        self._sample = False      # per_sample() not computed yet

    @classmethod
    def identity(cls, shape):
        """The map of a plain tensor of ONNX ``shape`` (batch first) onto its own data."""
        batch, size = int(shape[0]), int(numpy.prod(shape[1:], dtype=numpy.int64))
        return cls(numpy.arange(batch * size, dtype=numpy.int64).reshape(shape), batch, size)

    def per_sample(self):
        """The (per-sample size,) positions within one sample when every sample n of the
        tensor (its first axis, of ``batch`` samples) reads sample n of the source only, at the
        same positions; else None."""
        if self._sample is False:
            self._sample = self._per_sample()
        return self._sample

    def _per_sample(self):
        p = self.positions
        if p.ndim == 0 or p.shape[0] != self.batch or not p.size:
            return None
        flat = p.reshape(self.batch, -1)
        base = flat[0]
        if base.min() < 0 or base.max() >= self.size:
            return None
        offsets = numpy.arange(self.batch, dtype=numpy.int64)[:, None] * self.size
        return base if numpy.array_equal(flat - offsets, numpy.broadcast_to(base, flat.shape)) \
            else None


def cell_shape(shape, transpose=False):
    """The (C, H, W) a cell sees for an ONNX shape (batch first): (N, C) -> (C, 1, 1),
    (N, C, L) -> (C, 1, L), (N, C, H, W) as is; rank > 4 keeps C and D1 and merges the rest
    (the same element order). ``transpose`` swaps H and W (``Transpose=1``, as in N2D2)."""
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


__all__ = ["load_model", "check_external_data", "all_tensors", "external_tensors", "opset_of",
           "attributes", "to_array", "fold_node", "Value", "IndexMap", "cell_shape"]
