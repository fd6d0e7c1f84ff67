"""Per-operator mapping of ONNX nodes onto N2D2 cells (spec/ini.md §5.3).

Each handler ``(imp, node, a)`` gets the ``Importer`` (``importer.py``), the node and its
attributes; it creates cells with ``imp.add_cell`` or records a view with ``imp.set_value``.
Spatial attributes are given in ONNX (…, H, W) order and turned into the cells' physical (H, W)
(swapped under ``Transpose=1``); N2D2 keys take (X, Y) = (W, H). 1-D graphs (N, C, L) run as
(N, C, 1, L). Where n2d2py gives the ONNX result and N2D2 a different one, the handler says so.

The table ``OPS`` (``@op`` registers a handler) and the shared helpers live here, with the Conv,
Gemm/MatMul and pooling handlers; the other families are in ``ops_elementwise.py``
(BatchNorm, Dropout, LRN, Add/Sub/Mul/Div/Sum/Max, Concat, activations, Clip) and
``ops_shape.py`` (Softmax, Flatten, Reshape, Squeeze/Unsqueeze, Identity/Cast, Shape, Slice,
Transpose, Pad, Resize/Upsample) and ``ops_extension.py`` (operators outside N2D2's set:
ConvTranspose, LogSoftmax, Elu/Selu/Exp/Neg/Abs/Sqrt..., PRelu, Min, broadcasting arithmetic,
ReduceSum/ReduceMean over non-batch axes — **n2d2py extension, not in N2D2**), imported at the
end of this module so that importing ``ops`` fills the whole table. ``check_arity`` refuses a
node whose input/output count its schema does not allow.
"""
import numpy

from .cells import OnnxPoolCell
from .graph import cell_shape

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


def view(imp, node, shape):
    """Shape-only operators: the output shares the input's data (spec §5.3 "ignored")."""
    x = imp.value(node.input[0], node)
    shape = tuple(int(d) for d in shape)
    if not shape or shape[0] != x.shape[0]:
        raise imp.error(node, f"reshapes {x.shape} to {shape}: the batch dimension must be kept")
    imp.set_value(node.output[0], x.source, shape)


# ---------------------------------------------------------------- Conv, Gemm, MatMul
@op("Conv", "ConvInteger")
def conv(imp, node, a):
    x = imp.value(node.input[0], node)
    rank = spatial_rank(imp, node, x)
    if node.op_type == "ConvInteger" and len(node.input) > 2 and any(node.input[2:]):
        raise imp.error(node, "ConvInteger with zero points is not supported")
    W = imp.const(node, node.input[1], "the weights W").astype(numpy.float32)
    b = None
    if node.op_type == "Conv" and len(node.input) > 2 and node.input[2]:
        b = imp.const(node, node.input[2], "the bias B").astype(numpy.float32)
        if b.size != W.shape[0]:
            raise imp.error(node, f"bias B of shape {b.shape}: expected one value per output "
                                  f"({W.shape[0]})")
    if W.ndim != rank or 0 in W.shape:
        raise imp.error(node, f"weights W of shape {W.shape}: expected rank {rank} (O, C/group, "
                              f"{'L' if rank == 3 else 'kH, kW'}) with no empty dimension for an "
                              f"input of shape {x.shape}")
    group = attr_int(imp, node, a, "group", 1, minimum=1)
    if W.shape[0] % group:
        raise imp.error(node, f"weights W of shape {W.shape}: {W.shape[0]} outputs are not a "
                              f"multiple of group={group}")
    if "kernel_shape" in a and attr_ints(imp, node, a, "kernel_shape", rank - 2) != \
            list(W.shape[2:]):
        raise imp.error(node, f"kernel_shape={list(a['kernel_shape'])} but W has shape {W.shape}")
    W4 = W.reshape(W.shape[0], W.shape[1], *([1] * (4 - W.ndim)), *W.shape[2:]) if rank == 3 \
        else W
    if imp.transpose:
        W4 = W4.transpose(0, 1, 3, 2)
    kernel = W4.shape[2:]
    strides = hw(imp, attr_ints(imp, node, a, "strides", rank - 2, [1] * (rank - 2), 1), rank, 1)
    dilations = hw(imp, attr_ints(imp, node, a, "dilations", rank - 2, [1] * (rank - 2), 1),
                   rank, 1)
    src = imp.source(node.input[0], node)
    c, h, w = imp.physical(src)
    if c != W.shape[1] * group:
        raise imp.error(node, f"input has {c} channels, W {W.shape} with group={group} "
                              f"expects {W.shape[1] * group}")
    t, bt, l, r = pads4(imp, node, a, rank, (h, w), kernel, strides, dilations)
    out = node.output[0]
    if t != bt or l != r:   # asymmetric: a Padding cell first, as N2D2 does
        pad = cells().CELLS.get("Padding")(name=f"{out}_padding", parents=[src], nb_outputs=c,
                                            top=t, bottom=bt, left=l, right=r)
        src = imp.add_cell(pad, node).name
        t = bt = l = r = 0
    mapping = {"Mapping.NbGroups": str(group)} if group > 1 else None
    cell = cells().ConvCell(name=out, parents=[src], mapping=mapping, nb_outputs=W.shape[0],
                            kernel_dims=(kernel[1], kernel[0]), stride_dims=strides[::-1],
                            padding_dims=(l, t), dilation_dims=dilations[::-1],
                            no_bias=b is None)
    imp.add_cell(cell, node, "Conv")
    if init(imp):
        set_data(cell.weights[0], W4)
        if cell.bias is not None and b is not None:
            set_data(cell.bias, b)
    imp.set_value(out, out, onnx_shape(imp, rank, x.shape[0], cell.out_shape))


def fc_weights(imp, node, W, src):
    """Fc weights (O, K) in the physical flatten order of ``src``."""
    phys = imp.physical(src)
    size = int(numpy.prod(phys))
    if W.shape[1] != size:
        raise imp.error(node, f"weights of shape {W.shape} but the input has {size} values "
                              f"({phys} C, H, W)")
    if imp.transpose:   # ONNX flattens (C, H, W); the cell holds (C, W, H)
        c, hh, ww = phys
        W = W.reshape(W.shape[0], c, ww, hh).transpose(0, 1, 3, 2).reshape(W.shape[0], -1)
    return W


def make_fc(imp, node, x_name, W, bias):
    x = imp.value(x_name, node)
    if len(x.shape) != 2:
        raise imp.error(node, f"input of shape {x.shape}: an Fc cell needs a 2-D (N, K) input "
                              f"(add a Flatten)")
    src = imp.source(x_name, node, exact=False)
    W = fc_weights(imp, node, W.astype(numpy.float32), src)
    out = node.output[0]
    cell = cells().FcCell(name=out, parents=[src], nb_outputs=W.shape[0], no_bias=bias is None)
    imp.add_cell(cell, node, "Fc")
    if init(imp):
        set_data(cell.weights[0], W)
        if cell.bias is not None and bias is not None:
            set_data(cell.bias, bias)
    imp.set_value(out, out, (x.shape[0], W.shape[0]))


@op("Gemm")
def gemm(imp, node, a):
    if attr_int(imp, node, a, "transA", 0):
        raise imp.error(node, "transA=1 is not supported (the first operand is the data)")
    B = imp.const(node, node.input[1], "B (the weights: N2D2 makes an Fc)")
    if B.ndim != 2:
        raise imp.error(node, f"weights B of shape {B.shape}: expected 2-D")
    W = (B if attr_int(imp, node, a, "transB", 0) else B.T) * attr_float(imp, node, a, "alpha", 1.0)
    bias = None
    if len(node.input) > 2 and node.input[2]:
        C = imp.const(node, node.input[2], "the bias C") * attr_float(imp, node, a, "beta", 1.0)
        if C.size == 1:
            bias = numpy.full(W.shape[0], float(C.ravel()[0]))
        elif C.size == W.shape[0] and C.shape[-1] == W.shape[0]:
            bias = C.reshape(-1)
        else:
            raise imp.error(node, f"bias C of shape {C.shape}: expected one value per output "
                                  f"({W.shape[0]})")
    make_fc(imp, node, node.input[0], W, bias)


@op("MatMul", "MatMulInteger")
def matmul(imp, node, a):
    if node.op_type == "MatMulInteger" and len(node.input) > 2 and any(node.input[2:]):
        raise imp.error(node, "MatMulInteger with zero points is not supported")
    B = imp.const(node, node.input[1], "the second operand (the weights: N2D2 makes an Fc)")
    if B.ndim != 2:
        raise imp.error(node, f"weights of shape {B.shape}: expected 2-D (K, O)")
    make_fc(imp, node, node.input[0], B.T, None)


# ---------------------------------------------------------------- pools
def pool_cell(imp, node, src, pooling, kernel, strides, pads, ceil_mode, count_include_pad):
    from .. import functions as F
    c, h, w = imp.physical(src)
    t, b, l, r = pads
    if ceil_mode and F.pool_output_size((h, w), kernel, strides, pads, True) == \
            F.pool_output_size((h, w), kernel, strides, pads, False):
        ceil_mode = False
    plain = t == b and l == r and not ceil_mode and \
        (pooling == "Max" or count_include_pad or not any(pads))
    keys = dict(name=node.output[0], parents=[src], mapping=unit_map(), nb_outputs=c,
                pooling=pooling, pool_dims=(kernel[1], kernel[0]), stride_dims=strides[::-1],
                padding_dims=(l, t))
    if plain:
        cell = cells().PoolCell(**keys)
    else:
        cell = OnnxPoolCell(pads=pads, ceil_mode=ceil_mode,
                            count_include_pad=count_include_pad, **keys)
    return imp.add_cell(cell, node, "Pool")


@op("MaxPool", "AveragePool")
def pool(imp, node, a):
    x = imp.value(node.input[0], node)
    rank = spatial_rank(imp, node, x)
    if any(imp.consumers.get(o, 0) for o in node.output[1:] if o):
        raise imp.error(node, "the Indices output of MaxPool is not supported")
    if any(d != 1 for d in attr_ints(imp, node, a, "dilations", rank - 2, [1] * (rank - 2))):
        raise imp.error(node, f"dilations={list(a['dilations'])}: N2D2 pools have no dilation")
    kernel = hw(imp, attr_ints(imp, node, a, "kernel_shape", rank - 2, minimum=1), rank, 1)
    strides = hw(imp, attr_ints(imp, node, a, "strides", rank - 2, [1] * (rank - 2), 1), rank, 1)
    src = imp.source(node.input[0], node)
    pads = pads4(imp, node, a, rank, imp.physical(src)[1:], kernel, strides, (1, 1))
    pooling = "Max" if node.op_type == "MaxPool" else "Average"
    cell = pool_cell(imp, node, src, pooling, kernel, strides, pads, bool(a.get("ceil_mode", 0)),
                     bool(a.get("count_include_pad", 0)))
    imp.set_value(node.output[0], cell.name, onnx_shape(imp, rank, x.shape[0], cell.out_shape))


def global_pool(imp, node, pooling, keep_rank):
    x = imp.value(node.input[0], node)
    rank = spatial_rank(imp, node, x)
    src = imp.source(node.input[0], node)
    c, h, w = imp.physical(src)
    out_shape = (x.shape[0], c) + ((1,) * (rank - 2) if keep_rank else ())
    if h == 1 and w == 1:   # nothing to pool
        imp.set_value(node.output[0], src, out_shape)
        return
    cell = pool_cell(imp, node, src, pooling, (h, w), (1, 1), (0, 0, 0, 0), False, True)
    imp.set_value(node.output[0], cell.name, out_shape)


@op("GlobalAveragePool", "GlobalMaxPool")
def global_pools(imp, node, a):
    global_pool(imp, node, "Max" if node.op_type == "GlobalMaxPool" else "Average", True)


@op("ReduceMean", "ReduceMax")
def reduce_pool(imp, node, a):
    x = imp.value(node.input[0], node)
    rank = len(x.shape)
    axes = a.get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = imp.const(node, node.input[1], "axes")
    if axes is not None and any(not isinstance(d, (int, numpy.integer)) or not -rank <= d < rank
                                for d in numpy.ravel(axes)):
        raise imp.error(node, f"axes={list(numpy.ravel(axes))}: expected axes in "
                              f"{-rank}..{rank - 1}")
    axes = sorted(int(d) % rank for d in (numpy.ravel(axes) if axes is not None else range(rank)))
    if rank not in (3, 4) or axes != list(range(2, rank)):
        # n2d2py extension, not in N2D2 (which maps only a global Pool): ops_extension.py
        from .ops_extension import reduction
        return reduction(imp, node, a, "Max" if node.op_type == "ReduceMax" else "Mean")
    global_pool(imp, node, "Max" if node.op_type == "ReduceMax" else "Average",
                bool(a.get("keepdims", 1)))


from . import ops_elementwise, ops_shape, ops_extension  # noqa: E402,F401  (their handlers)

SUPPORTED = sorted(OPS)
__all__ = ["OPS", "SUPPORTED", "dispatch"]
