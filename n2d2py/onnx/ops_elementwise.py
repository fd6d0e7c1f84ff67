"""ONNX handlers: BatchNormalization, Dropout, LRN, the element-wise
arithmetic (Add, Sub, Mul, Div, Sum, Max; constant operands fold into BatchNorm/bias cells;
what N2D2 refuses goes to ``ops_extension.broadcast_binary``, an n2d2py extension),
Concat, and the activations (Relu, LeakyRelu, Sigmoid, Tanh, Softplus, Clip). Registered in
``ops.OPS`` (see ``ops.py``)."""
import numpy

from ..errors import OnnxError
from .ops import REQUIRED, attr_float, attr_int, cells, init, make_activation, op, set_data, view
from .ops_shape import identity

BIG = 1e30   # |bound| above which a Clip bound is "no bound" (FLT_MAX defaults of opset 6)


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
    """A BatchNorm cell; ``MovingAverageMomentum`` = the ONNX momentum, as N2D2 copies it."""
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
                                    nb_outputs=imp.physical(src)[0],
                                    n=attr_int(imp, node, a, "size", REQUIRED, minimum=1),
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


@op("Add", "Sub", "Mul", "Div", "Sum", "Max", "Min")
def elementwise(imp, node, a):
    """N2D2's ElemWise / BatchNorm / bias folding where they apply; otherwise (Div or Min of
    tensors, broadcasting, other constants) the n2d2py extension ``broadcast_binary``."""
    from .ops_extension import broadcast_binary
    names = list(node.input)
    if not names or not all(names):
        raise imp.error(node, "an empty input name")
    constant = [n in imp.consts for n in names]
    if any(constant):
        if len(names) != 2 or node.op_type in ("Sum", "Max", "Min"):
            return broadcast_binary(imp, node, names, " (with a constant)")
        return constant_operand(imp, node, names, constant)
    values = [imp.value(n, node) for n in names]
    if len(values) == 1:
        return view(imp, node, values[0].shape)
    if node.op_type in ("Div", "Min"):
        return broadcast_binary(imp, node, names)
    if any(v.shape != values[0].shape for v in values):
        return broadcast_binary(imp, node, names)
    srcs = [imp.source(n, node) for n in names]
    operation = {"Add": "Sum", "Sum": "Sum", "Sub": "Sum", "Max": "Max", "Mul": "Prod"}[node.op_type]
    weights = (1.0, -1.0) if node.op_type == "Sub" else ()
    cell = cells().ElemWiseCell(name=node.output[0], parents=srcs,
                                nb_outputs=imp.physical(srcs[0])[0], operation=operation,
                                weights=weights)
    imp.add_cell(cell, node)
    imp.set_value(node.output[0], cell.name, values[0].shape)


def constant_operand(imp, node, names, constant):
    from .ops_extension import broadcast_binary
    if constant[0] and node.op_type in ("Sub", "Div"):
        return broadcast_binary(imp, node, names, " (a constant first operand of Sub/Div)")
    x_name = names[1] if constant[0] else names[0]
    c = numpy.asarray(imp.consts[names[0] if constant[0] else names[1]], numpy.float64)
    x = imp.value(x_name, node)
    try:
        stretches = numpy.broadcast_shapes(c.shape, x.shape) != x.shape
    except ValueError:
        raise imp.error(node, f"constant of shape {c.shape} and input {x.shape} do not "
                              f"broadcast") from None
    if stretches:
        return broadcast_binary(imp, node, names, " (the constant stretches the input)")
    kind = node.op_type
    if kind in ("Sub", "Div"):
        c = -c if kind == "Sub" else 1.0 / c
        kind = "Add" if kind == "Sub" else "Mul"
    identity = 0.0 if kind == "Add" else 1.0
    if numpy.all(c == identity):   # all-zero Add (as N2D2) or all-one Mul: removed
        return view(imp, node, x.shape, x_name)
    if kind == "Add" and fold_row_bias(imp, node, x, c):
        return imp.set_value(node.output[0], x.source, x.shape)
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
        return broadcast_binary(imp, node, names, " (neither scalar nor per-channel)")
    src = imp.source(x_name, node)
    if kind == "Add" and fold_bias(imp, node, src, vector):
        return imp.set_value(node.output[0], src, x.shape)
    ones, zeros = numpy.ones_like(vector), numpy.zeros_like(vector)
    scale, bias = (ones, vector) if kind == "Add" else (vector, zeros)
    # a per-channel affine map is a BatchNorm with mean 0, variance 1, epsilon 0 (N2D2 too
    # makes Mul then Add one BatchNorm); the following Add folds into its bias
    cell = make_batchnorm(imp, node, src, scale, bias, zeros, ones, 0.0, 0.9)
    imp.set_value(node.output[0], cell.name, x.shape)


def fold_bias(imp, node, src, vector):
    """Add a per-channel constant into the bias of the cell producing ``src`` when that is
    exact: a BatchNorm, or (``CNTK=1``, N2D2's key) a Conv/Fc; no activation, no other reader."""
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


def fold_row_bias(imp, node, x, c):
    """Add a constant that varies along the last axis only into the bias of the N-D MatMul
    cell producing ``x`` (PyTorch's Linear on an N-D tensor exports MatMul then Add): exact
    when nothing else reads the MatMul and it has no activation yet. n2d2py extension."""
    from .tensor_cells import OnnxMatMulCell
    cell = imp.graph.cells.get(x.source)
    if not isinstance(cell, OnnxMatMulCell) or x.index is not None or x.source != imp.last_cell \
            or imp.uses(x.source) != 1 or cell.qact is not None or cell.activation is not None \
            or c.size != cell.nb_outputs or c.ndim == 0 or c.shape[-1] != c.size:
        return False
    if cell.bias is None:
        cell.no_bias = False
        cell.bias = cell.new_parameter(numpy.zeros(cell.nb_outputs, numpy.float32), "Bias",
                                       "biases")
    set_data(cell.bias, cell.bias.data + c.reshape(-1))
    return True


@op("Concat")
def concat(imp, node, a):
    values = [imp.value(n, node) for n in node.input if n]
    if not values:
        raise imp.error(node, "no input to concatenate")
    rank = len(values[0].shape)
    axis = attr_int(imp, node, a, "axis", 1)
    if not -rank <= axis < rank or axis % rank != 1:
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


# ---------------------------------------------------------------- activations
def attach(imp, node, activation):
    """Make ``activation`` the activation of the cell producing the input when N2D2 would (it is
    the last created cell) and that is exact (nothing else reads it, no activation yet);
    otherwise an Activation cell named after the node. The sections that replace or quantize
    it are applied once the graph is imported (``overrides.py``); a section named after the
    node without ``ActivationFunction`` drops it, as N2D2 does."""
    x = imp.value(node.input[0], node)
    out = node.output[0]
    if imp.overrides.drops(node):
        return view(imp, node, x.shape)
    cell = imp.graph.cells.get(x.source)
    linear = cell is not None and (cell.activation is None or (
        type(cell.activation).__name__ == "Linear" and not cell.activation.clipping))
    if cell is not None and x.source == imp.last_cell and linear and cell.qact is None \
            and imp.uses(x.source) == 1 and not isinstance(cell, cells().SoftmaxCell):
        cell.activation = activation
        imp.overrides.merged(cell, node, activation)
        return imp.set_value(out, x.source, x.shape)
    src = imp.source(node.input[0], node, exact=False)
    act = cells().ActivationCell(name=out, parents=[src], nb_outputs=imp.physical(src)[0])
    act.activation = activation
    imp.add_cell(act, node)
    imp.overrides.merged(act, node, activation)
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


# ---------------------------------------------------------------- PyTorch's activations
# n2d2py extension, not in N2D2 (ops_extension.py's docstring)
@op("HardSwish")
def hard_swish(imp, node, a):
    attach(imp, node, make_activation("HardSwish"))


@op("HardSigmoid")
def hard_sigmoid(imp, node, a):
    attach(imp, node, make_activation("HardSigmoid", alpha=attr_float(imp, node, a, "alpha", 0.2),
                                      beta=attr_float(imp, node, a, "beta", 0.5)))


@op("Gelu")
def gelu(imp, node, a):
    """Gelu (opset 20; the dynamo exporter writes it); older opsets spell it with Erf or Tanh
    and arithmetic, which import node by node."""
    kind = a.get("approximate", b"none")
    kind = kind.decode(errors="replace") if isinstance(kind, bytes) else kind
    if kind not in ("none", "tanh"):
        raise imp.error(node, f"approximate={kind!r}: expected 'none' or 'tanh'")
    attach(imp, node, make_activation("GELU", approximate=kind.capitalize()))
