"""Per-operator mapping of ONNX nodes onto N2D2 cells (spec/ini.md §5.3).

Each handler ``(imp, node, a)`` gets the ``Importer`` (``importer.py``), the node and its
attributes; it creates cells with ``imp.add_cell`` or records a view with ``imp.set_value``.
Spatial attributes are given in ONNX (…, H, W) order and turned into the cells' physical (H, W)
(swapped under ``Transpose=1``); N2D2 keys take (X, Y) = (W, H). 1-D graphs (N, C, L) run as
(N, C, 1, L). Where n2d2py gives the ONNX result and N2D2 a different one, the handler says so.
"""
import math

import numpy

from ..errors import OnnxError
from .cells import OnnxPoolCell
from .graph import cell_shape

OPS = {}
BIG = 1e30   # |bound| above which a Clip bound is "no bound" (FLT_MAX defaults of opset 6)


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
    from .graph import attributes
    handler(imp, node, attributes(node))


# ---------------------------------------------------------------- shared helpers
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
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        out = []
        for size, k, s, d in zip(in_hw, kernel, strides, dilations):
            total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
            small = total // 2
            out.append((small, total - small) if auto == "SAME_UPPER" else (total - small, small))
        return (*out[0], *out[1])
    if auto not in ("NOTSET", "VALID"):
        raise imp.error(node, f"auto_pad={auto}: expected NOTSET, SAME_UPPER, SAME_LOWER or VALID")
    pads = [int(p) for p in a.get("pads", [0] * (2 * (rank - 2)))] if auto == "NOTSET" else [0] * (2 * (rank - 2))
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
    group = int(a.get("group", 1))
    W4 = W.reshape(W.shape[0], W.shape[1], *([1] * (4 - W.ndim)), *W.shape[2:]) if rank == 3 \
        else W
    if imp.transpose:
        W4 = W4.transpose(0, 1, 3, 2)
    kernel = W4.shape[2:]
    strides = hw(imp, a.get("strides", [1] * (rank - 2)), rank, 1)
    dilations = hw(imp, a.get("dilations", [1] * (rank - 2)), rank, 1)
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
    if a.get("transA", 0):
        raise imp.error(node, "transA=1 is not supported (the first operand is the data)")
    B = imp.const(node, node.input[1], "B (the weights: N2D2 makes an Fc)")
    W = (B if a.get("transB", 0) else B.T) * float(a.get("alpha", 1.0))
    bias = None
    if len(node.input) > 2 and node.input[2]:
        C = imp.const(node, node.input[2], "the bias C") * float(a.get("beta", 1.0))
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
    if any(int(d) != 1 for d in a.get("dilations", [])):
        raise imp.error(node, f"dilations={list(a['dilations'])}: N2D2 pools have no dilation")
    kernel = hw(imp, a["kernel_shape"], rank, 1)
    strides = hw(imp, a.get("strides", [1] * (rank - 2)), rank, 1)
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
    axes = sorted(int(d) % rank for d in (axes if axes is not None else range(rank)))
    if rank not in (3, 4) or axes != list(range(2, rank)):
        raise imp.error(node, f"axes={axes} on shape {x.shape}: N2D2 maps only a reduction over "
                              f"all spatial axes (a global Pool)")
    global_pool(imp, node, "Max" if node.op_type == "ReduceMax" else "Average",
                bool(a.get("keepdims", 1)))


# ---------------------------------------------------------------- BatchNorm, Dropout, LRN
@op("BatchNormalization")
def batchnorm(imp, node, a):
    if a.get("training_mode", 0) or any(imp.consumers.get(o, 0) for o in node.output[1:] if o):
        raise imp.error(node, "training_mode / running statistics outputs are not supported")
    if not a.get("spatial", 1):
        raise imp.error(node, "spatial=0 (per-activation statistics) is not supported")
    x = imp.value(node.input[0], node)
    params = [imp.const(node, n, what) for n, what in
              zip(node.input[1:5], ("scale", "B", "mean", "var"))]
    src = imp.source(node.input[0], node)
    cell = make_batchnorm(imp, node, src, *params, epsilon=float(a.get("epsilon", 1e-5)),
                          momentum=float(a.get("momentum", 0.9)), load=init(imp))
    imp.set_value(node.output[0], cell.name, x.shape)


def make_batchnorm(imp, node, src, scale, bias, mean, var, epsilon, momentum, load=True):
    """A BatchNorm cell; ``MovingAverageMomentum`` = the ONNX momentum, as N2D2 (spec §5.2)."""
    c = imp.physical(src)[0]
    cell = cells().BatchNormCell(name=node.output[0], parents=[src], nb_outputs=c,
                                 epsilon=epsilon, moving_average_momentum=momentum)
    imp.add_cell(cell, node, "BatchNorm")
    if load:
        set_data(cell.scale, scale)
        set_data(cell.bias, bias)
        cell.mean[...] = numpy.asarray(mean, numpy.float32).reshape(-1)
        cell.variance[...] = numpy.asarray(var, numpy.float32).reshape(-1)
    return cell


@op("Dropout")
def dropout(imp, node, a):
    if any(imp.consumers.get(o, 0) for o in node.output[1:] if o):
        raise imp.error(node, "the mask output of Dropout is not supported")
    ratio = float(a.get("ratio", 0.5))
    if len(node.input) > 1 and node.input[1]:
        ratio = float(imp.const(node, node.input[1], "ratio"))
    if len(node.input) > 2 and node.input[2] and \
            bool(imp.const(node, node.input[2], "training_mode")):
        raise imp.error(node, "training_mode=1: the import gives an inference graph")
    x = imp.value(node.input[0], node)
    src = imp.source(node.input[0], node)
    cell = cells().DropoutCell(name=node.output[0], parents=[src],
                               nb_outputs=imp.physical(src)[0], dropout=ratio)
    imp.add_cell(cell, node, "Dropout")
    imp.set_value(node.output[0], cell.name, x.shape)


@op("LRN")
def lrn(imp, node, a):
    x = imp.value(node.input[0], node)
    src = imp.source(node.input[0], node)
    cell = cells().CELLS.get("LRN")(name=node.output[0], parents=[src],
                                    nb_outputs=imp.physical(src)[0], n=int(a["size"]),
                                    alpha=float(a.get("alpha", 1e-4)),
                                    beta=float(a.get("beta", 0.75)), k=float(a.get("bias", 1.0)))
    imp.add_cell(cell, node, "LRN")
    imp.set_value(node.output[0], cell.name, x.shape)


# ---------------------------------------------------------------- element-wise
def per_channel(c, shape):
    """The (C,) vector of a constant that varies only along axis 1 of ``shape``, else None."""
    if c.ndim > len(shape):
        return None
    full = c.reshape((1,) * (len(shape) - c.ndim) + c.shape)
    if len(shape) < 2 or any(d != 1 for i, d in enumerate(full.shape) if i != 1) \
            or full.shape[1] not in (1, shape[1]):
        return None
    return numpy.broadcast_to(full.reshape(-1), (shape[1],)).astype(numpy.float64)


@op("Add", "Sub", "Mul", "Div", "Sum", "Max")
def elementwise(imp, node, a):
    names = list(node.input)
    constant = [n in imp.consts for n in names]
    if any(constant):
        if len(names) != 2 or node.op_type in ("Sum", "Max"):
            raise imp.error(node, "a constant operand is supported only for Add/Sub/Mul/Div "
                                  "with two inputs")
        return constant_operand(imp, node, names, constant)
    values = [imp.value(n, node) for n in names]
    if len(values) == 1:
        return view(imp, node, values[0].shape)
    if node.op_type == "Div":
        raise imp.error(node, "Div of two tensors is not supported by N2D2")
    if any(v.shape != values[0].shape for v in values):
        raise imp.error(node, f"inputs of shapes {[v.shape for v in values]}: N2D2's ElemWise "
                              f"needs equal shapes (no broadcasting)")
    srcs = [imp.source(n, node) for n in names]
    operation = {"Add": "Sum", "Sum": "Sum", "Sub": "Sum", "Max": "Max", "Mul": "Prod"}[node.op_type]
    weights = (1.0, -1.0) if node.op_type == "Sub" else ()
    cell = cells().ElemWiseCell(name=node.output[0], parents=srcs,
                                nb_outputs=imp.physical(srcs[0])[0], operation=operation,
                                weights=weights)
    imp.add_cell(cell, node)
    imp.set_value(node.output[0], cell.name, values[0].shape)


def constant_operand(imp, node, names, constant):
    if constant[0] and node.op_type in ("Sub", "Div"):
        raise imp.error(node, "a constant first operand of Sub/Div is not supported by N2D2")
    x_name = names[1] if constant[0] else names[0]
    c = numpy.asarray(imp.consts[names[0] if constant[0] else names[1]], numpy.float64)
    x = imp.value(x_name, node)
    if numpy.broadcast_shapes(c.shape, x.shape) != x.shape:
        raise imp.error(node, f"constant of shape {c.shape} would broadcast the input {x.shape}")
    kind = node.op_type
    if kind in ("Sub", "Div"):
        c = -c if kind == "Sub" else 1.0 / c
        kind = "Add" if kind == "Sub" else "Mul"
    identity = 0.0 if kind == "Add" else 1.0
    if numpy.all(c == identity):   # all-zero Add (spec §5.3) or all-one Mul: removed
        return view(imp, node, x.shape)
    if c.size == 1:
        value = float(c.ravel()[0])
        weights, shifts = ((1.0,), (value,)) if kind == "Add" else ((value,), (0.0,))
        src = imp.source(x_name, node, exact=False)
        cell = cells().ElemWiseCell(name=node.output[0], parents=[src],
                                    nb_outputs=imp.physical(src)[0], operation="Sum",
                                    weights=weights, shifts=shifts)
        imp.add_cell(cell, node)
        return imp.set_value(node.output[0], cell.name, x.shape)
    vector = per_channel(c, x.shape)
    if vector is None:
        raise imp.error(node, f"constant of shape {c.shape} on input {x.shape} is neither a "
                              f"scalar nor per-channel")
    src = imp.source(x_name, node)
    if kind == "Add" and fold_bias(imp, node, src, vector):
        return imp.set_value(node.output[0], src, x.shape)
    ones, zeros = numpy.ones_like(vector), numpy.zeros_like(vector)
    scale, bias = (ones, vector) if kind == "Add" else (vector, zeros)
    # a per-channel affine map is a BatchNorm with mean 0, variance 1, epsilon 0 (spec §5.3:
    # Mul then Add becomes one BatchNorm); the following Add folds into its bias
    cell = make_batchnorm(imp, node, src, scale, bias, zeros, ones, 0.0, 0.9)
    imp.set_value(node.output[0], cell.name, x.shape)


def fold_bias(imp, node, src, vector):
    """Add a per-channel constant into the bias of the cell producing ``src`` when that is
    exact: a BatchNorm, or (``CNTK=1``, spec §5.1) a Conv/Fc; no activation, no other reader."""
    cell = imp.graph.cells.get(src)
    if cell is None or src != imp.last_cell or imp.uses(src) != 1 or cell.qact is not None \
            or cell.activation is not None:
        return False
    C = cells()
    if isinstance(cell, C.BatchNormCell):
        set_data(cell.bias, cell.bias.data + vector)
        return True
    if isinstance(cell, (C.ConvCell, C.FcCell)) and imp.options["CNTK"]:
        if cell.bias is None:
            cell.no_bias = False
            cell.bias = cell.new_parameter(numpy.zeros(cell.out_shape[0], numpy.float32),
                                           "Bias", "biases")
        set_data(cell.bias, cell.bias.data + vector)
        return True
    return False


@op("Concat")
def concat(imp, node, a):
    values = [imp.value(n, node) for n in node.input]
    rank = len(values[0].shape)
    axis = int(a.get("axis", 1)) % rank
    if axis != 1:
        raise imp.error(node, f"axis={a.get('axis')}: N2D2 concatenates along the channels only")
    srcs = [imp.source(n, node) for n in node.input]
    C = cells()
    cell = C.ActivationCell(name=node.output[0], parents=srcs,
                            nb_outputs=sum(imp.physical(s)[0] for s in srcs))
    cell.activation = make_activation("Linear")
    try:
        imp.add_cell(cell, node)
    except OnnxError as exc:
        raise imp.error(node, f"inputs {[v.shape for v in values]} cannot be concatenated "
                              f"({exc})") from None
    shape = list(values[0].shape)
    shape[1] = sum(v.shape[1] for v in values)
    imp.set_value(node.output[0], cell.name, shape)


# ---------------------------------------------------------------- activations (spec §5.2)
def attach(imp, node, activation):
    """Make ``activation`` the activation of the cell producing the input when N2D2 would (it is
    the last created cell) and that is exact (nothing else reads it, no activation yet);
    otherwise an Activation cell named after the node. A section named after the node replaces
    the activation by its ``ActivationFunction`` (+ ``QAct``); without that key N2D2 drops it."""
    x = imp.value(node.input[0], node)
    out = node.output[0]
    override = imp.activation_override(out)
    qact = qact_solver = None
    if override is not None:
        if "ActivationFunction" not in override:
            imp.graph.warnings.append(f"Warning: section [{out}] has no ActivationFunction: the "
                                      f"{node.op_type} is dropped, as N2D2 does")
            return view(imp, node, x.shape)
        probe = cells().ActivationCell(name=out)
        probe.read_activation(override)
        probe.read_quantizers(override)
        override.mark_all_read()
        activation, qact, qact_solver = probe.activation, probe.qact, probe.qact_solver
    cell = imp.graph.cells.get(x.source)
    linear = cell is not None and (cell.activation is None or (
        type(cell.activation).__name__ == "Linear" and not cell.activation.clipping))
    if cell is not None and x.source == imp.last_cell and linear and cell.qact is None \
            and imp.uses(x.source) == 1 and not isinstance(cell, cells().SoftmaxCell):
        cell.activation, cell.qact, cell.qact_solver = activation, qact, qact_solver
        return imp.set_value(out, x.source, x.shape)
    src = imp.source(node.input[0], node, exact=False)
    act = cells().ActivationCell(name=out, parents=[src], nb_outputs=imp.physical(src)[0])
    act.activation, act.qact, act.qact_solver = activation, qact, qact_solver
    imp.add_cell(act, node)
    imp.set_value(out, act.name, x.shape)


@op("Relu")
def relu(imp, node, a):
    attach(imp, node, make_activation("Rectifier"))


@op("LeakyRelu")
def leaky_relu(imp, node, a):
    attach(imp, node, make_activation("Rectifier", leak_slope=float(a.get("alpha", 0.01))))


@op("Sigmoid")
def sigmoid(imp, node, a):
    attach(imp, node, make_activation("Logistic"))


@op("Tanh")
def tanh(imp, node, a):
    attach(imp, node, make_activation("Tanh"))


@op("Softplus")
def softplus(imp, node, a):
    attach(imp, node, make_activation("Softplus"))


@op("Clip")
def clip(imp, node, a):
    """[0, max] -> ReLU with Clipping (ReLU6); [-c, c] -> Linear with Clipping; no bounds ->
    removed. Other bounds are errors. (N2D2 turns [-inf, max] into a clipped ReLU and drops
    [min<0<max]: both give other numbers than ONNX, so n2d2py refuses the first and maps only
    the symmetric case of the second.)"""
    lo, hi = float(a.get("min", -numpy.inf)), float(a.get("max", numpy.inf))
    if len(node.input) > 1 and node.input[1]:
        lo = float(imp.const(node, node.input[1], "min"))
    if len(node.input) > 2 and node.input[2]:
        hi = float(imp.const(node, node.input[2], "max"))
    lo = -numpy.inf if lo <= -BIG else lo
    hi = numpy.inf if hi >= BIG else hi
    if lo == -numpy.inf and hi == numpy.inf:
        return view(imp, node, imp.value(node.input[0], node).shape)
    if lo == 0.0 and hi > 0:
        return attach(imp, node, make_activation("Rectifier",
                                                 clipping=0.0 if hi == numpy.inf else hi))
    if hi > 0 and lo == -hi:
        return attach(imp, node, make_activation("Linear", clipping=hi))
    raise imp.error(node, f"Clip to [{lo}, {hi}]: only [0, max] (clipped ReLU) and [-c, c] "
                          f"(clipped Linear) map onto N2D2 activations")


# ---------------------------------------------------------------- Softmax
def transpose_cell(imp, node, name, src, axes):
    """A Transpose cell for NumPy ``axes`` of (N, C, H, W) (batch fixed)."""
    perm = [3 - axes[3 - d] for d in range(4)]
    c = (1,) + tuple(imp.physical(src))
    cell = cells().CELLS.get("Transpose")(name=name, parents=[src], nb_outputs=c[axes[1]],
                                          perm=perm)
    return imp.add_cell(cell, node)


def physical_axes(imp, rank):
    """Physical (N, C, H, W) axis of each ONNX axis, ranks 2 to 4."""
    axes = {2: [0, 1], 3: [0, 1, 2 if imp.transpose else 3], 4: [0, 1, 2, 3]}[rank]
    if rank == 4 and imp.transpose:
        axes = [0, 1, 3, 2]
    return axes


@op("Softmax")
def softmax(imp, node, a):
    """Softmax (with loss) over the channels; another axis is moved there by Transpose cells
    ``<name>_before``/``_after`` (spec §5.3). Before opset 13 the axis flattens what follows."""
    x = imp.value(node.input[0], node)
    rank, out = len(x.shape), node.output[0]
    axis = int(a.get("axis", 1 if imp.opset < 13 else -1)) % rank
    if rank < 2 or rank > 4 or axis == 0:
        raise imp.error(node, f"axis={a.get('axis')} on shape {x.shape}: a softmax over a "
                              f"non-batch axis of a rank 2 to 4 tensor is supported")
    if imp.opset < 13 and axis < rank - 1 and math.prod(x.shape[axis + 1:]) > 1:
        if axis != 1:
            raise imp.error(node, f"axis={axis} over the flattened {x.shape[axis:]} is not "
                                  f"supported")
        flat = (x.shape[0], math.prod(x.shape[1:]))
        key = f"{node.input[0]}_flat"
        imp.set_value(key, x.source, flat)
        imp.consumers[key] = 1
        src = imp.source(key, node)
        x_shape, axis = flat, 1
    else:
        src, x_shape = imp.source(node.input[0], node), x.shape
    p = physical_axes(imp, len(x_shape))[axis]
    name, after = out, None
    if p != 1:
        axes = [0, 1, 2, 3]
        axes[1], axes[p] = p, 1
        src = transpose_cell(imp, node, f"{out}_before", src, axes).name
        after = axes
    cell = cells().SoftmaxCell(name=name, parents=[src], nb_outputs=imp.physical(src)[0],
                               with_loss=True)
    imp.add_cell(cell, node)
    imp.graph.auto_targets.append((f"{cell.name}.Target", cell.name))
    result = cell.name
    if after is not None:
        result = transpose_cell(imp, node, f"{out}_after", cell.name, after).name
    imp.set_value(out, result, x.shape)


# ---------------------------------------------------------------- shape operators
@op("Flatten")
def flatten(imp, node, a):
    x = imp.value(node.input[0], node)
    axis = int(a.get("axis", 1))
    axis = axis + len(x.shape) if axis < 0 else axis
    view(imp, node, (math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))


@op("Reshape")
def reshape(imp, node, a):
    x = imp.value(node.input[0], node)
    if len(node.input) > 1:
        target = [int(d) for d in imp.const(node, node.input[1], "the shape")]
    else:
        target = [int(d) for d in a["shape"]]
    shape = [x.shape[i] if d == 0 and not a.get("allowzero", 0) else d
             for i, d in enumerate(target)]
    if -1 in shape:
        known = math.prod(d for d in shape if d != -1)
        shape[shape.index(-1)] = math.prod(x.shape) // max(known, 1)
    if math.prod(shape) != math.prod(x.shape):
        raise imp.error(node, f"cannot reshape {x.shape} to {target}")
    view(imp, node, shape)


def axes_of(imp, node, a):
    if "axes" in a:
        return [int(d) for d in a["axes"]]
    if len(node.input) > 1 and node.input[1]:
        return [int(d) for d in imp.const(node, node.input[1], "axes")]
    return None


@op("Squeeze")
def squeeze(imp, node, a):
    x = imp.value(node.input[0], node)
    axes = axes_of(imp, node, a)
    rank = len(x.shape)
    axes = [i for i, d in enumerate(x.shape) if d == 1] if axes is None else [d % rank for d in axes]
    view(imp, node, [d for i, d in enumerate(x.shape) if i not in axes])


@op("Unsqueeze")
def unsqueeze(imp, node, a):
    x = imp.value(node.input[0], node)
    axes = axes_of(imp, node, a)
    rank = len(x.shape) + len(axes)
    shape = list(x.shape)
    for d in sorted(d % rank for d in axes):
        shape.insert(d, 1)
    view(imp, node, shape)


@op("Identity", "Cast")
def identity(imp, node, a):
    if node.op_type == "Cast" and int(a.get("to", 1)) not in (1, 10, 11, 16):
        raise imp.error(node, "Cast of a computed tensor to a non-float type is not supported")
    view(imp, node, imp.value(node.input[0], node).shape)


@op("Shape")
def shape_op(imp, node, a):
    """Of a computed tensor: its static shape (import-time batch) as a constant."""
    shape = numpy.array(imp.value(node.input[0], node).shape, numpy.int64)
    start, end = int(a.get("start", 0)), a.get("end")
    imp.consts[node.output[0]] = shape[start:None if end is None else int(end)]


@op("Slice")
def slice_op(imp, node, a):
    """N2D2 ignores Slice; n2d2py keeps whole-tensor Slices as views and turns a crop of the
    spatial axes (step 1) into a Padding cell with negative amounts (what ``export_onnx``
    writes for N2D2's negative padding)."""
    x = imp.value(node.input[0], node)
    from .graph import fold_node
    rank = len(x.shape)
    index = numpy.arange(int(numpy.prod(x.shape)), dtype=numpy.float64).reshape(x.shape)
    inputs = [index] + [imp.const(node, n, "Slice parameters") if n else None
                        for n in node.input[1:]]
    result = fold_node(node, inputs, imp.opset)[0]
    if result.shape == x.shape and numpy.array_equal(result, index):
        return view(imp, node, x.shape)
    crop = _spatial_crop(x.shape, index, result) if rank in (3, 4) and not imp.transpose else None
    if crop is None:
        raise imp.error(node, f"slices {x.shape} to {result.shape}: only whole-tensor Slices "
                              f"(which N2D2 ignores) and crops of the spatial axes are supported")
    src = imp.source(node.input[0], node)
    t, b, l, r = crop
    cell = cells().CELLS.get("Padding")(name=node.output[0], parents=[src],
                                        nb_outputs=imp.physical(src)[0], top=-t, bottom=-b,
                                        left=-l, right=-r)
    imp.add_cell(cell, node)
    imp.set_value(node.output[0], cell.name, result.shape)


def _spatial_crop(shape, index, result):
    """(top, bottom, left, right) >= 0 when ``result`` is a contiguous spatial window of
    ``index``; else None."""
    if result.ndim != len(shape) or result.shape[:2] != tuple(shape[:2]) or not result.size:
        return None
    if len(shape) == 3:
        index, result = index[:, :, None, :], result[:, :, None, :]
    H, W = index.shape[2:]
    h, w = result.shape[2:]
    first = numpy.argwhere(index[0, 0] == result[0, 0, 0, 0])
    if len(first) != 1:
        return None
    t, l = (int(v) for v in first[0])
    if t + h > H or l + w > W or not numpy.array_equal(index[:, :, t:t + h, l:l + w], result):
        return None
    return t, H - h - t, l, W - w - l


@op("Transpose")
def transpose(imp, node, a):
    x = imp.value(node.input[0], node)
    rank = len(x.shape)
    perm = [int(p) for p in a.get("perm", range(rank - 1, -1, -1))]
    out_shape = tuple(x.shape[p] for p in perm)
    moved = [p for p in perm if x.shape[p] != 1]
    if moved == sorted(moved):   # only size-1 axes move: a reshape (spec §5.3)
        return view(imp, node, out_shape)
    if perm[0] != 0:
        raise imp.error(node, f"perm={perm} moves the batch axis")
    shape = list(x.shape)
    while len(perm) > 4 and perm[-1] == len(perm) - 1 and perm[-2] == len(perm) - 2:
        shape[-2:] = [shape[-2] * shape[-1]]     # merge trailing axes kept in place
        perm = perm[:-1]
    if len(perm) > 4 or len(perm) < 2:
        raise imp.error(node, f"perm={list(a.get('perm', []))} on {x.shape}: at most 4 axes "
                              f"can be permuted")
    key = f"{node.input[0]}_as{len(shape)}d"
    if tuple(shape) != x.shape:
        imp.set_value(key, x.source, shape)
        imp.consumers[key] = 1
    else:
        key = node.input[0]
    src = imp.source(key, node)
    phys = physical_axes(imp, len(shape))
    axes = [0, 1, 2, 3]
    for i, p in enumerate(perm):
        axes[phys[i]] = phys[p]
    cell = transpose_cell(imp, node, node.output[0], src, axes)
    imp.set_value(node.output[0], cell.name, out_shape)


@op("Pad")
def pad(imp, node, a):
    mode = a.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode != "constant":
        raise imp.error(node, f"mode={mode}: N2D2's Padding cell pads with zeros only")
    x = imp.value(node.input[0], node)
    rank = len(x.shape)
    if "pads" in a or "paddings" in a:
        pads = [int(p) for p in a.get("pads", a.get("paddings"))]
        value = float(a.get("value", 0.0))
    else:
        pads = [int(p) for p in imp.const(node, node.input[1], "pads")]
        value = float(imp.const(node, node.input[2], "constant_value")) \
            if len(node.input) > 2 and node.input[2] else 0.0
        if len(node.input) > 3 and node.input[3]:
            axes = [int(d) % rank for d in imp.const(node, node.input[3], "axes")]
            full = [0] * (2 * rank)
            for k, d in enumerate(axes):
                full[d], full[d + rank] = pads[k], pads[k + len(axes)]
            pads = full
    if value != 0.0:
        raise imp.error(node, f"constant value {value}: N2D2's Padding cell pads with zeros")
    begin, end = pads[:rank], pads[rank:]
    if rank not in (3, 4) or any(begin[:2]) or any(end[:2]):
        raise imp.error(node, f"pads={pads} on {x.shape}: only the spatial axes of a rank 3 or "
                              f"4 tensor can be padded")
    if not any(pads):
        return view(imp, node, x.shape)
    t, b, l, r = (0, 0, begin[2], end[2]) if rank == 3 else (begin[2], end[2], begin[3], end[3])
    if imp.transpose:
        t, b, l, r = l, r, t, b
    src = imp.source(node.input[0], node)
    cell = cells().CELLS.get("Padding")(name=node.output[0], parents=[src],
                                        nb_outputs=imp.physical(src)[0], top=t, bottom=b,
                                        left=l, right=r)
    imp.add_cell(cell, node)
    imp.set_value(node.output[0], cell.name,
                  tuple(s + p + q for s, p, q in zip(x.shape, begin, end)))


# ---------------------------------------------------------------- Resize / Upsample
def _decode(value, default):
    value = value if value is not None else default
    return value.decode() if isinstance(value, bytes) else value


@op("Resize", "Upsample")
def resize(imp, node, a):
    x = imp.value(node.input[0], node)
    rank = spatial_rank(imp, node, x)
    sizes = scales = None
    if node.op_type == "Upsample":
        scales = a.get("scales")
        if scales is None:
            scales = imp.const(node, node.input[1], "scales")
        ctm = "asymmetric"
    else:
        if imp.opset < 11:
            scales = imp.const(node, node.input[1], "scales")
        else:
            if len(node.input) > 3 and node.input[3]:
                sizes = imp.const(node, node.input[3], "sizes")
            if sizes is None and len(node.input) > 2 and node.input[2]:
                scales = imp.const(node, node.input[2], "scales")
        ctm = _decode(a.get("coordinate_transformation_mode"),
                      "asymmetric" if imp.opset < 11 else "half_pixel")
    axes = [int(d) % len(x.shape) for d in a.get("axes", range(len(x.shape)))]
    if sizes is None or not len(sizes):
        full = [1.0] * len(x.shape)
        for d, s in zip(axes, scales):
            full[d] = float(s)
        sizes = [int(math.floor(d * s)) for d, s in zip(x.shape, full)]
    else:
        full = list(x.shape)
        for d, s in zip(axes, sizes):
            full[d] = int(s)
        sizes = full
    sizes = [int(s) for s in sizes]
    if scales is not None and any(abs(d * float(f) - s) > 1e-6 for d, f, s in
                                  zip(x.shape[2:], full[2:], sizes[2:])):
        raise imp.error(node, f"scales {list(full)} do not give whole sizes from {x.shape}: "
                              f"N2D2's Resize maps output sizes, not fractional scales")
    if sizes[:2] != list(x.shape[:2]):
        raise imp.error(node, f"resizes {x.shape} to {sizes}: only the spatial axes may change")
    mode = _decode(a.get("mode"), "nearest")
    if a.get("antialias", 0) or _decode(a.get("keep_aspect_ratio_policy"), "stretch") != "stretch":
        raise imp.error(node, "antialias / keep_aspect_ratio_policy are not supported")
    if ctm == "pytorch_half_pixel" and min(sizes[2:]) == 1:
        raise imp.error(node, "pytorch_half_pixel with an output size of 1 is not supported")
    src = imp.source(node.input[0], node)
    in_hw = imp.physical(src)[1:]
    out_hw = hw(imp, sizes[2:], rank, 1)
    if mode == "nearest":
        nearest = _decode(a.get("nearest_mode"), "round_prefer_floor")
        if node.op_type == "Upsample" or imp.opset < 11:
            nearest = "floor"
        if not _floor_equivalent(in_hw, out_hw, nearest, ctm):
            raise imp.error(node, f"nearest resize with coordinate_transformation_mode={ctm}, "
                                  f"nearest_mode={nearest}: only N2D2's floor(o*in/out) "
                                  f"(asymmetric) mapping is supported")
        n2d2_mode, align = "NearestNeighbor", False
    elif mode == "linear":
        table = {"half_pixel": ("Bilinear", False), "pytorch_half_pixel": ("Bilinear", False),
                 "align_corners": ("BilinearTF", True), "asymmetric": ("BilinearTF", False)}
        if ctm not in table:
            raise imp.error(node, f"linear resize with coordinate_transformation_mode={ctm} is "
                                  f"not supported; supported: {', '.join(table)}")
        n2d2_mode, align = table[ctm]
    else:
        raise imp.error(node, f"mode={mode}: N2D2 resizes with nearest or linear")
    cell = cells().CELLS.get("Resize")(name=node.output[0], parents=[src],
                                       nb_outputs=imp.physical(src)[0], output_width=out_hw[1],
                                       output_height=out_hw[0], mode=n2d2_mode,
                                       align_corners=align)
    imp.add_cell(cell, node)
    imp.set_value(node.output[0], cell.name, tuple(sizes))


def _floor_equivalent(in_hw, out_hw, nearest, ctm):
    """Whether ONNX's nearest index (coordinate mode ``ctm``, rounding ``nearest``) equals
    N2D2's floor(o*n/m) on both axes."""
    for n, m in zip(in_hw, out_hw):
        o = numpy.arange(m)
        ref = numpy.floor(o * n / m)
        if ctm == "asymmetric":
            exact = o * n / m
        elif ctm in ("half_pixel", "pytorch_half_pixel"):
            exact = (o + 0.5) * n / m - 0.5
        elif ctm == "align_corners":
            exact = o * (n - 1) / (m - 1) if m > 1 else o * 0.0
        else:
            return False
        got = {"floor": numpy.floor(exact), "ceil": numpy.ceil(exact),
               "round_prefer_floor": numpy.ceil(exact - 0.5),
               "round_prefer_ceil": numpy.floor(exact + 0.5)}.get(nearest)
        if got is None or not numpy.array_equal(numpy.clip(got, 0, n - 1), ref):
            return False
    return True


SUPPORTED = sorted(OPS)
__all__ = ["OPS", "SUPPORTED", "dispatch"]
