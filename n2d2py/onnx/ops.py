"""Per-operator mapping of ONNX nodes onto N2D2 cells (docs/ONNX.md).

Each handler ``(imp, node, a)`` gets the ``Importer`` (``importer.py``), the node and its
attributes; it creates cells with ``imp.add_cell`` or records a view with ``imp.set_value``.
Spatial attributes are given in ONNX (…, H, W) order and turned into the cells' physical (H, W)
(swapped under ``Transpose=1``); N2D2 keys take (X, Y) = (W, H). 1-D graphs (N, C, L) run as
(N, C, 1, L). Where n2d2py gives the ONNX result and N2D2 a different one, the handler says so.

The table ``OPS`` (``@op`` registers a handler) and the shared helpers live here; the handlers
are in ``ops_conv.py`` (Conv, Gemm/MatMul, pools), ``ops_elementwise.py``
(BatchNorm, Dropout, LRN, Add/Sub/Mul/Div/Sum/Max, Concat, activations, Clip) and
``ops_shape.py`` (Softmax, Flatten, Reshape, Squeeze/Unsqueeze, Identity/Cast, Shape, Slice,
Transpose, Pad, Resize/Upsample), ``ops_extension.py`` (operators outside N2D2's set:
ConvTranspose, LogSoftmax, Elu/Selu/Exp/Neg/Abs/Sqrt/Erf/Pow..., PRelu, Min, broadcasting
arithmetic, ReduceSum/ReduceMean over non-batch axes, HardSwish/HardSigmoid/Gelu,
LayerNormalization, MatMul on N-D tensors) and ``ops_layout.py`` (Split, Gather, GatherND,
Expand, Tile..., and whatever moves the batch axis) — **n2d2py extension, not in N2D2**;
``importer.operators()`` imports them all, which fills the table. ``check_arity`` refuses a
node whose input/output count its schema does not allow.
"""
import numpy


OPS = {}


def op(*names):
    def register(fn):
        for name in names:
            OPS[name] = fn
        return fn
    return register


def dispatch(table, imp, node):
    if node.domain not in ("", "ai.onnx"):
        raise imp.error(node, f"operator domain '{node.domain}' is not supported")
    handler = table.get(node.op_type)
    if handler is None:
        raise imp.error(node, f"Unsupported ONNX operator: {node.op_type}; supported: "
                              f"{', '.join(sorted(table))}")
    check_arity(imp, node)
    from .graph import attributes
    handler(imp, node, attributes(node))


def check_arity(imp, node):
    """The node's input and output counts against the operator's schema at the model's opset
    (a Gemm with one input is an OnnxError naming the node, not an IndexError)."""
    import onnx
    try:
        schema = onnx.defs.get_schema(node.op_type, max(imp.opset, 1), node.domain or "")
    except Exception:   # no schema at this opset: the handler checks what it reads
        return
    given = len(node.input)
    while given and not node.input[given - 1]:   # trailing '' = omitted optional inputs
        given -= 1
    if given < schema.min_input or len(node.input) > schema.max_input:
        raise imp.error(node, f"{len(node.input)} input(s): {node.op_type}-{schema.since_version} "
                              f"takes {schema.min_input} to {schema.max_input}")
    if not node.output or not node.output[0] or len(node.output) > schema.max_output:
        raise imp.error(node, f"{len(node.output)} output(s): {node.op_type}-"
                              f"{schema.since_version} has {schema.min_output} to "
                              f"{schema.max_output}, the first one named")


# ---------------------------------------------------------------- shared helpers
REQUIRED = object()


def attr_ints(imp, node, a, name, count, default=REQUIRED, minimum=None):
    """Attribute ``name`` as a list of ``count`` ints (``count`` None: any length), each at
    least ``minimum``; ``default`` when absent (an OnnxError naming the node if required)."""
    if name not in a:
        if default is REQUIRED:
            raise imp.error(node, f"attribute '{name}' is required")
        return list(default)
    values = a[name]
    if isinstance(values, (bytes, str)) or not hasattr(values, "__len__") or \
            not all(isinstance(v, (int, numpy.integer)) for v in values):
        raise imp.error(node, f"attribute {name}={values!r}: expected a list of integers")
    values = [int(v) for v in values]
    if count is not None and len(values) != count:
        raise imp.error(node, f"attribute {name}={values}: expected {count} value(s) for this "
                              f"input")
    if minimum is not None and any(v < minimum for v in values):
        raise imp.error(node, f"attribute {name}={values}: each value must be at least {minimum}")
    return values


def attr_int(imp, node, a, name, default, minimum=None):
    """Attribute ``name`` as one int (at least ``minimum``), ``default`` when absent."""
    if name not in a and default is REQUIRED:
        raise imp.error(node, f"attribute '{name}' is required")
    value = a.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)):
        raise imp.error(node, f"attribute {name}={value!r}: expected an integer")
    if minimum is not None and value < minimum:
        raise imp.error(node, f"attribute {name}={value}: must be at least {minimum}")
    return int(value)


def attr_float(imp, node, a, name, default):
    value = a.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float, numpy.number)):
        raise imp.error(node, f"attribute {name}={value!r}: expected a number")
    return float(value)


def cells():
    from .. import cells as C
    return C


def onnx_shape(imp, rank, batch, phys):
    """ONNX shape of rank ``rank`` for a cell output (C, H, W)."""
    c, h, w = phys
    if imp.transpose:
        h, w = w, h
    return {1: (batch,), 2: (batch, c * h * w), 3: (batch, c, h * w), 4: (batch, c, h, w)}[rank]


def spatial_rank(imp, node, x):
    rank = len(x.shape)
    if rank not in (3, 4):
        raise imp.error(node, f"input of shape {x.shape}: only 1-D and 2-D spatial inputs "
                              f"(rank 3 or 4) map onto N2D2 cells")
    return rank


def hw(imp, values, rank, default):
    """(H, W) physical from an ONNX spatial list (1 value for rank 3, 2 for rank 4)."""
    values = [int(v) for v in values]
    pair = (default, values[0]) if rank == 3 else (values[0], values[1])
    return pair[::-1] if imp.transpose else pair


def pads4(imp, node, a, rank, in_hw, kernel, strides, dilations):
    """(top, bottom, left, right) physical, from ``pads`` or ``auto_pad``."""
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode(errors="replace") if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        out = []
        for size, k, s, d in zip(in_hw, kernel, strides, dilations):
            total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
            small = total // 2
            out.append((small, total - small) if auto == "SAME_UPPER" else (total - small, small))
        return (*out[0], *out[1])
    if auto not in ("NOTSET", "VALID"):
        raise imp.error(node, f"auto_pad={auto}: expected NOTSET, SAME_UPPER, SAME_LOWER or VALID")
    pads = attr_ints(imp, node, a, "pads", 2 * (rank - 2), [0] * (2 * (rank - 2))) \
        if auto == "NOTSET" else [0] * (2 * (rank - 2))
    t, l, b, r = (0, pads[0], 0, pads[1]) if rank == 3 else (pads[0], pads[1], pads[2], pads[3])
    return (l, r, t, b) if imp.transpose else (t, b, l, r)


def unit_map():
    from ..cells.mapping import MappingSpec
    return MappingSpec({"Mapping.ChannelsPerGroup": "1"})


def make_activation(kind, **values):
    return cells().ACTIVATIONS.get(kind)(**values)


def init(imp):
    return imp.options["ONNX_init"]


def set_data(param, array):
    param.data[...] = numpy.asarray(array, dtype=param.data.dtype).reshape(param.data.shape)


def view(imp, node, shape, name=None):
    """Shape-only operators: the output shares the data of the input ``name`` (default the
    first), as N2D2 ignores them. One that moves or merges the batch axis (or reads a tensor
    made by layout operators) goes through ``ops_layout.py``'s positions."""
    x = imp.value(node.input[0] if name is None else name, node, layout=True)
    shape = tuple(int(d) for d in shape)
    if x.index is None and shape and shape[0] == x.shape[0]:
        return imp.set_value(node.output[0], x.source, shape)
    imp.reshape_positions(node, x, shape)


__all__ = ["OPS", "dispatch"]
