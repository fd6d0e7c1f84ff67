"""Layout operators: **n2d2py extension, not in N2D2**, which ignores Slice and Gather ("the
output is redirected to the input": other numbers than ONNX's) and refuses the others.

Slice (beyond whole-tensor views and spatial crops, ``ops_shape.py``), Split, Gather,
GatherElements and GatherND with constant indices, Expand, Tile, DepthToSpace, SpaceToDepth,
Transposes that move the batch axis (or more than 4 axes), and Reshape/Flatten/Squeeze/
Unsqueeze across the batch axis only move elements. Each is run by ``onnx.reference`` on the
*positions* of its input's elements (a ``graph.IndexMap``) rather than on their values, so a
chain of them composes for free, whatever happens to the batch axis on the way (the dynamo
exporter's adaptive pooling moves it last and back). A tensor whose positions are the identity
again is a plain view. When a cell reads such a tensor, its positions must be per sample (every
sample n reads sample n of the source, at the same positions): it becomes one
``OnnxGatherCell`` named after the tensor; otherwise the import stops at that node, naming the
tensor whose batch axis was moved.
"""
import numpy

from .graph import IndexMap, fold_node
from .ops import op
from .tensor_cells import OnnxGatherCell


def check_layout(imp, node):
    """Layout operators read the ONNX element order, which ``Transpose=1`` does not keep."""
    if imp.transpose:
        raise imp.error(node, "moving elements across axes is not supported with Transpose=1")


def positions(imp, x):
    """The IndexMap of Value ``x`` onto the data of ``x.source``."""
    return x.index if x.index is not None else IndexMap.identity(x.shape)


def set_positions(imp, name, x, index, shape):
    """Tensor ``name`` holds the elements ``index`` (an array of ``shape``, positions in the data
    of ``x.source``, of which ``x`` is a tensor): a plain view when they are the identity."""
    base = positions(imp, x)
    result = IndexMap(numpy.asarray(index, numpy.int64).reshape(shape), base.batch, base.size)
    sample = result.per_sample()
    if sample is not None and sample.size == base.size and \
            numpy.array_equal(sample, numpy.arange(base.size)):
        return imp.set_value(name, x.source, shape)
    imp.set_value(name, x.source, shape, result)


def layout(imp, node, what="indices"):
    """Run ``node`` on the positions of its first input (the other inputs constant)."""
    check_layout(imp, node)
    x = imp.value(node.input[0], node, layout=True)
    index = positions(imp, x)
    rest = [imp.const(node, n, what) if n else None for n in node.input[1:]]
    outputs = fold_node(node, [index.positions] + rest, imp.opset)
    for name, result in zip(node.output, outputs):
        if name:
            set_positions(imp, name, x, result, result.shape)


def producer(imp, name):
    return next((n for n in imp.model.graph.node if name in n.output), None)


def batch_moved(imp, node, name, v):
    """The OnnxError for a tensor whose samples are not along its first axis."""
    where = node if node is not None else producer(imp, name)
    message = (f"tensor '{name}' of shape {list(v.shape)} has its batch axis moved or merged "
               f"by the layout operators before it: n2d2py computes sample by sample, so only "
               f"layout operators may read it")
    if where is None:
        from ..errors import OnnxError
        return OnnxError(message, file=imp.path)
    return imp.error(where, message)


def materialize(imp, name, v, node):
    """The cell holding tensor ``name`` (a Value with positions): an OnnxGatherCell named after
    it, or its source when the positions are the identity."""
    where = node if node is not None else producer(imp, name)
    if 0 in v.shape:
        raise imp.error(where, f"tensor '{name}' of shape {list(v.shape)} is empty: a cell "
                               f"needs at least one value per sample")
    sample = v.index.per_sample()
    if sample is None:
        raise batch_moved(imp, node, name, v)
    cell_name = name if name not in imp.shapes else f"{name}_gather"
    cell = OnnxGatherCell(name=cell_name, parents=[v.source], index=sample,
                          out_dims=v.shape[1:])
    imp.add_cell(cell, where)
    imp.set_value(name, cell.name, v.shape)
    return cell.name


@op("Split")
def split(imp, node, a):
    layout(imp, node, "the split sizes")


@op("Gather", "GatherElements", "GatherND")
def gather(imp, node, a):
    layout(imp, node, "the indices")


@op("Expand")
def expand(imp, node, a):
    layout(imp, node, "the shape")


@op("Tile")
def tile(imp, node, a):
    layout(imp, node, "the repeats")


@op("DepthToSpace", "SpaceToDepth")
def depth_space(imp, node, a):
    layout(imp, node)


__all__ = ["layout", "positions", "set_positions", "materialize", "batch_moved"]
