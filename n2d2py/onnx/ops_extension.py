"""ONNX operators outside N2D2's importer: **n2d2py extension, not in N2D2**.
N2D2 answers "Unsupported ONNX operator" for all of these; n2d2py maps the ones it can compute
exactly, each with a backward (the imported graph stays trainable):

* ``ConvTranspose`` (2-D or 1-D, group=1): N2D2's ``Deconv`` cell when the pads are symmetric
  and there is no ``output_padding``, else an ``OnnxDeconvCell`` (asymmetric pads crop,
  ``output_padding`` adds rows/columns at the end); ``output_shape`` and ``auto_pad`` SAME_*
  give the pads as ONNX's reference does.
* ``Elu``, ``Selu``, ``Exp``, ``Log``, ``Neg``, ``Abs``, ``Sqrt``, ``Reciprocal``, ``Softsign``,
  ``Erf``, ``Pow`` by a constant scalar exponent; ``PRelu`` with a constant slope that does not
  vary along the batch axis (learnable); ``LogSoftmax`` over a non-batch axis: an
  ``OnnxTensorCell``.
* ``HardSwish``, ``HardSigmoid``, ``Gelu`` (opset 20, ``approximate`` none or tanh): the
  activation functions ``HardSwish``, ``HardSigmoid``, ``GELU`` (``cells/activation_functions
  .py``), attached to the cell before them as N2D2 attaches a Relu (their handlers live with
  the other activations in ``ops_elementwise.py``).
* ``LayerNormalization`` over trailing axes: an ``OnnxLayerNormCell`` (learnable scale and
  bias); the decomposed form of older opsets (ReduceMean, Sub, Pow, Sqrt, Div...) imports node
  by node.
* Two-tensor ``Add``/``Sub``/``Mul``/``Div``/``Min``/``Max``/``Sum`` with NumPy broadcasting,
  and constant operands that are neither scalar nor per-channel (kept fixed in the cell), as
  long as the batch axis is a computed tensor's and no constant varies along it
  (``elementwise`` in ``ops_elementwise.py`` hands these cases here).
* ``ReduceSum``/``ReduceMean``/``ReduceMax``/``ReduceMin`` over channel and/or spatial axes (not
  the batch axis); N2D2's global-pool mapping is kept where it applies (``ops.reduce_pool``).

Under ``Transpose=1`` only the unary operators are mapped (the others depend on the layout).
"""
import math

import numpy

from .cells import OnnxDeconvCell, OnnxTensorCell
from .functions import UNARY
from .ops import attr_float, attr_int, attr_ints, cells, hw, init, onnx_shape, op, set_data, \
    spatial_rank, view


def tensor_cell(imp, node, kind, options, names, out_shape, constants=None, in_dims=None,
                layout_free=False):
    """An OnnxTensorCell named after the node on the computed inputs ``names``."""
    if imp.transpose and not layout_free:
        raise imp.error(node, f"{node.op_type} (n2d2py extension) is not supported with "
                              f"Transpose=1")
    values = [imp.value(n, node) for n in names]
    srcs = [imp.source(n, node, exact=False) for n in names]
    dims = in_dims if in_dims is not None else [v.shape[1:] for v in values]
    cell = OnnxTensorCell(name=node.output[0], parents=srcs, op=kind,
                          options=dict(options, constants=constants or {}), in_dims=dims,
                          out_dims=tuple(out_shape[1:]))
    imp.add_cell(cell, node)
    imp.set_value(node.output[0], cell.name, tuple(out_shape))
    return cell


# ---------------------------------------------------------------- unary, PRelu, LogSoftmax
@op(*(kind for kind in UNARY if kind not in ("Pow", "HardSigmoid")))
def unary(imp, node, a):
    x = imp.value(node.input[0], node)
    options = {"kind": node.op_type}
    if node.op_type in ("Elu", "Selu", "HardSigmoid"):
        default = {"Elu": 1.0, "Selu": 1.67326319217681884765625, "HardSigmoid": 0.2}
        options["alpha"] = attr_float(imp, node, a, "alpha", default[node.op_type])
    if node.op_type == "Selu":
        options["gamma"] = attr_float(imp, node, a, "gamma", 1.05070102214813232421875)
    if node.op_type == "HardSigmoid":
        options["gamma"] = attr_float(imp, node, a, "beta", 0.5)
    tensor_cell(imp, node, "Unary", options, [node.input[0]], x.shape, layout_free=True)


@op("Pow")
def power(imp, node, a):
    """A computed base to a constant scalar exponent (LayerNorm's and tanh-GELU's decomposed
    forms write ``Pow(x, 2)`` and ``Pow(x, 3)``)."""
    x = imp.value(node.input[0], node)
    exponent = numpy.asarray(imp.const(node, node.input[1], "the exponent"))
    if exponent.size != 1 or exponent.dtype.kind not in "fiu":
        raise imp.error(node, f"exponent of shape {exponent.shape} and type {exponent.dtype}: "
                              f"one number is supported")
    tensor_cell(imp, node, "Unary", {"kind": "Pow", "alpha": float(exponent.ravel()[0])},
                [node.input[0]], x.shape, layout_free=True)


# ---------------------------------------------------------------- LayerNormalization
@op("LayerNormalization")
def layer_normalization(imp, node, a):
    """An ``OnnxLayerNormCell`` over the axes from ``axis`` on (not the batch axis)."""
    from .tensor_cells import OnnxLayerNormCell
    if any(imp.consumers.get(o, 0) for o in node.output[1:] if o):
        raise imp.error(node, "the Mean and InvStdDev outputs are not supported")
    x = imp.value(node.input[0], node)
    rank = len(x.shape)
    axis = attr_int(imp, node, a, "axis", -1)
    if not -rank <= axis < rank or axis % rank == 0:
        raise imp.error(node, f"axis={axis} on shape {x.shape}: the normalised axes must leave "
                              f"the batch axis out")
    count = rank - axis % rank
    norm = tuple(x.shape[rank - count:])
    params = []
    for k, what in ((1, "the scale"), (2, "the bias B")):
        value = None
        if len(node.input) > k and node.input[k]:
            value = numpy.asarray(imp.const(node, node.input[k], what), numpy.float32)
            try:
                fits = numpy.broadcast_shapes(value.shape, norm) == norm
            except ValueError:
                fits = False
            if not fits:
                raise imp.error(node, f"{what} of shape {value.shape} does not broadcast to the "
                                      f"normalised shape {norm}")
        params.append(value)
    if imp.transpose and rank > 2:
        raise imp.error(node, "LayerNormalization (n2d2py extension) is not supported with "
                              "Transpose=1")
    scale, bias = params
    if not init(imp):   # ONNX_init=0: scales 1, biases 0 (a bias only where the node has one)
        scale, bias = None, None if bias is None else numpy.zeros(norm, numpy.float32)
    src = imp.source(node.input[0], node, exact=False)
    cell = OnnxLayerNormCell(name=node.output[0], parents=[src], in_dims=x.shape[1:],
                             count=count, scale=scale, bias=bias,
                             epsilon=attr_float(imp, node, a, "epsilon", 1e-5))
    imp.add_cell(cell, node)
    imp.set_value(node.output[0], cell.name, x.shape)


@op("PRelu")
def prelu(imp, node, a):
    x = imp.value(node.input[0], node)
    slope = numpy.asarray(imp.const(node, node.input[1], "the slope"), numpy.float32)
    rank = len(x.shape)
    if imp.opset < 7 and slope.ndim == 1 and rank >= 2 and slope.size == x.shape[1] > 1:
        slope = slope.reshape((slope.size,) + (1,) * (rank - 2))   # PRelu-1/6: per channel
    if slope.ndim > rank:
        raise imp.error(node, f"slope of shape {slope.shape} has more axes than the input "
                              f"{x.shape}")
    full = slope.reshape((1,) * (rank - slope.ndim) + slope.shape)
    try:
        fits = numpy.broadcast_shapes(full.shape, x.shape) == tuple(x.shape)
    except ValueError:
        fits = False
    if not fits or (rank and full.shape[0] != 1):
        raise imp.error(node, f"slope of shape {slope.shape} on input {x.shape}: it must "
                              f"broadcast to the input without varying along the batch axis")
    per_channel = all(d == 1 for i, d in enumerate(full.shape) if i != 1)
    tensor_cell(imp, node, "PRelu", {"slope": full}, [node.input[0]], x.shape,
                layout_free=per_channel or rank < 3)


@op("LogSoftmax")
def log_softmax(imp, node, a):
    """Over ``axis`` (opset >= 13), or over the axes from ``axis`` on, flattened (before 13)."""
    x = imp.value(node.input[0], node)
    rank = len(x.shape)
    axis = attr_int(imp, node, a, "axis", 1 if imp.opset < 13 else -1)
    if not -rank <= axis < rank or axis % rank == 0:
        raise imp.error(node, f"axis={axis} on shape {x.shape}: only a log-softmax over a "
                              f"non-batch axis is supported")
    axis %= rank
    dims = tuple(x.shape[1:])
    if imp.opset < 13:
        dims = tuple(x.shape[1:axis]) + (math.prod(x.shape[axis:]),)
    tensor_cell(imp, node, "LogSoftmax", {"axis": axis}, [node.input[0]], x.shape,
                in_dims=[dims], layout_free=rank == 2)


# ---------------------------------------------------------------- broadcasting arithmetic
def broadcast_binary(imp, node, names, reason=""):
    """``Add``/``Sub``/``Mul``/``Div``/``Min``/``Max``/``Sum`` of ``names`` (computed tensors and
    constants) with NumPy broadcasting; ``reason``: why N2D2's own mapping did not apply."""
    kind = node.op_type
    shapes, constants, computed = [], {}, []
    for k, name in enumerate(names):
        if name in imp.consts:
            c = numpy.asarray(imp.consts[name])
            if c.dtype.kind not in "fiub":
                raise imp.error(node, f"constant '{name}' of type {c.dtype} is not numeric")
            constants[k] = c.astype(numpy.float32)
            shapes.append(c.shape)
        else:
            computed.append(name)
            shapes.append(imp.value(name, node).shape)
    try:
        out = numpy.broadcast_shapes(*shapes)
    except ValueError:
        raise imp.error(node, f"inputs of shapes {shapes} do not broadcast") from None
    rank = len(out)
    batch = [imp.value(n, node).shape for n in computed]
    if rank == 0 or not any(len(s) == rank and s[0] == out[0] for s in batch):
        raise imp.error(node, f"inputs of shapes {shapes}{reason}: the broadcast shape {out} "
                              f"must take its batch axis from a computed tensor")
    for k, c in constants.items():
        if c.ndim == rank and c.shape[0] != 1:
            raise imp.error(node, f"constant of shape {c.shape}{reason}: it varies along the "
                                  f"batch axis")
        # store the constant with its batch axis (1) so that it broadcasts like the tensors
        constants[k] = c.reshape((1,) * (rank - c.ndim) + c.shape)
    plain = all(len(s) == rank for s in shapes) and rank < 3
    return tensor_cell(imp, node, "Binary", {"kind": kind}, computed, out, constants,
                       layout_free=plain)


# ---------------------------------------------------------------- reductions
def reduction(imp, node, a, kind):
    """Reduce over channel/spatial ``axes`` (attribute, or input from opset 13/18)."""
    x = imp.value(node.input[0], node)
    rank = len(x.shape)
    axes = a.get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = numpy.ravel(imp.const(node, node.input[1], "axes"))
    axes = [int(d) for d in axes] if axes is not None else []
    if any(not -rank <= d < rank for d in axes) or len({d % rank for d in axes}) != len(axes):
        raise imp.error(node, f"axes={axes}: expected distinct axes in {-rank}..{rank - 1}")
    if not axes:
        if attr_int(imp, node, a, "noop_with_empty_axes", 0):
            return view(imp, node, x.shape)
        axes = list(range(rank))
    axes = sorted(d % rank for d in axes)
    if 0 in axes:
        raise imp.error(node, f"axes={axes} on shape {x.shape}: a reduction over the batch axis "
                              f"is not supported")
    if any(x.shape[d] == 0 for d in axes):
        raise imp.error(node, f"axes={axes} of shape {x.shape}: reduction of an empty set")
    keep = bool(attr_int(imp, node, a, "keepdims", 1))
    out = tuple(1 if i in axes else d for i, d in enumerate(x.shape)) if keep else \
        tuple(d for i, d in enumerate(x.shape) if i not in axes)
    tensor_cell(imp, node, "Reduce", {"kind": kind, "axes": axes, "keepdims": keep},
                [node.input[0]], out, layout_free=rank == 2)


@op("ReduceSum", "ReduceMin")
def reduce_other(imp, node, a):
    reduction(imp, node, a, node.op_type[len("Reduce"):])


# ---------------------------------------------------------------- ConvTranspose
@op("ConvTranspose")
def conv_transpose(imp, node, a):
    x = imp.value(node.input[0], node)
    rank = spatial_rank(imp, node, x)
    W = imp.const(node, node.input[1], "the weights W").astype(numpy.float32)
    b = None
    if len(node.input) > 2 and node.input[2]:
        b = imp.const(node, node.input[2], "the bias B").astype(numpy.float32)
    if W.ndim != rank or 0 in W.shape:
        raise imp.error(node, f"weights W of shape {W.shape}: expected rank {rank} (C, O, "
                              f"{'L' if rank == 3 else 'kH, kW'}) with no empty dimension")
    group = attr_int(imp, node, a, "group", 1, minimum=1)
    if group != 1:
        raise imp.error(node, f"group={group}: n2d2py's Deconv cell has full maps only")
    if b is not None and b.size != W.shape[1]:
        raise imp.error(node, f"bias B of shape {b.shape}: expected one value per output "
                              f"({W.shape[1]})")
    if "kernel_shape" in a and attr_ints(imp, node, a, "kernel_shape", rank - 2) != \
            list(W.shape[2:]):
        raise imp.error(node, f"kernel_shape={list(a['kernel_shape'])} but W has shape {W.shape}")
    W4 = W.reshape(W.shape[0], W.shape[1], 1, W.shape[2]) if rank == 3 else W
    n = rank - 2
    strides = attr_ints(imp, node, a, "strides", n, [1] * n, 1)
    dilations = attr_ints(imp, node, a, "dilations", n, [1] * n, 1)
    out_pad = attr_ints(imp, node, a, "output_padding", n, [0] * n, 0)
    if any(p >= max(s, d) for p, s, d in zip(out_pad, strides, dilations)):
        raise imp.error(node, f"output_padding={out_pad}: each must be smaller than its stride "
                              f"or dilation")
    kernel = list(W.shape[2:])
    src = imp.source(node.input[0], node)
    c = imp.physical(src)[0]
    if c != W.shape[0]:
        raise imp.error(node, f"input has {c} channels, W {W.shape} expects {W.shape[0]}")
    in_sizes = list(x.shape[2:])
    full = [s * (i - 1) + p + (k - 1) * d + 1 for s, i, p, k, d in
            zip(strides, in_sizes, out_pad, kernel, dilations)]
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode(errors="replace") if isinstance(auto, bytes) else auto
    if "output_shape" in a or auto in ("SAME_UPPER", "SAME_LOWER"):
        if "output_shape" in a and "pads" in a:
            raise imp.error(node, "both output_shape and pads are given")
        if "output_shape" in a:
            target = attr_ints(imp, node, a, "output_shape", None, minimum=1)[-n:]
            if len(target) != n:
                raise imp.error(node, f"output_shape={list(a['output_shape'])}: expected "
                                      f"{n} spatial sizes")
        else:
            target = [i * s for i, s in zip(in_sizes, strides)]
        total = [f - t for f, t in zip(full, target)]
        small = [t // 2 for t in total]
        rest = [t - s for t, s in zip(total, small)]
        pads = small + rest if auto == "SAME_UPPER" else rest + small   # as ONNX's reference
    elif auto in ("NOTSET", "VALID"):
        pads = attr_ints(imp, node, a, "pads", 2 * n, [0] * (2 * n)) if auto == "NOTSET" \
            else [0] * (2 * n)
    else:
        raise imp.error(node, f"auto_pad={auto}: expected NOTSET, SAME_UPPER, SAME_LOWER or VALID")
    if any(p < 0 for p in pads) or any(f - p - q < 1 for f, p, q in zip(full, pads[:n], pads[n:])):
        raise imp.error(node, f"pads={pads}: must be non-negative and leave an output")
    t, l, bt, r = (0, pads[0], 0, pads[1]) if rank == 3 else tuple(pads)
    oph, opw = (0, out_pad[0]) if rank == 3 else tuple(out_pad)
    sh, sw = hw(imp, strides, rank, 1)
    dh, dw = hw(imp, dilations, rank, 1)
    if imp.transpose:
        W4 = W4.transpose(0, 1, 3, 2)
        t, l, bt, r, oph, opw = l, t, r, bt, opw, oph
    keys = dict(name=node.output[0], parents=[src], nb_outputs=W.shape[1],
                kernel_dims=(W4.shape[3], W4.shape[2]), stride_dims=(sw, sh),
                dilation_dims=(dw, dh), no_bias=b is None)
    if t == bt and l == r and not oph and not opw:
        cell = cells().DeconvCell(padding_dims=(l, t), **keys)
    else:
        cell = OnnxDeconvCell(pads=(t, bt, l, r), output_padding=(oph, opw), **keys)
    imp.add_cell(cell, node)
    if init(imp):
        set_data(cell.weights[0], W4)
        if cell.bias is not None and b is not None:
            set_data(cell.bias, b)
    imp.set_value(node.output[0], cell.name, onnx_shape(imp, rank, x.shape[0], cell.out_shape))


__all__ = ["broadcast_binary", "reduction", "tensor_cell"]
