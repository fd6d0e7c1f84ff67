"""DeepNet -> ONNX: ``export_onnx(net, path)`` (N2D2's ``-export ONNX`` is absent; this is ours).

Every cell's output is the tensor named after the cell, NCHW, batch dim symbolic ``N``; ``env``
is the graph input ``env``; the graph outputs are the cells nothing reads. Per cell (inputs of
multi-parent Conv/Pool/BatchNorm/... concatenated on channels first, spec/ini.md §2.3):

* Conv: ``Conv`` (group, dilations, symmetric pads); several parents or a connection map: one
  Conv over the concatenated inputs with the full (O, ΣC, kH, kW) kernels, unconnected kernels 0.
* Fc: ``Flatten`` + ``Gemm`` (transB) + ``Reshape`` to (N, O, 1, 1).
* BatchNorm: ``BatchNormalization`` (inference statistics). Pool: ``MaxPool``/``AveragePool``
  (``count_include_pad=1``: N2D2 counts the padding); N2D2's channel-wise pools (a Mapping that
  is not one-to-one, e.g. the default all-to-all): average → a 1x1 Conv of weights mask/count
  after the pool, max → Gather + ReduceMax per output, then Concat.
* ElemWise (Sum with weights/shifts, Prod, Max), Concat (an Activation cell with several
  inputs), Softmax (axis 1), Padding (``Pad``; negative amounts crop with ``Slice``), Reshape, LRN; Dropout is the
  identity and is omitted.
* Activations: Linear (Clipping → Clip), Rectifier (LeakyRelu, Clipping → Clip), Tanh (Alpha),
  Logistic, Saturation, Softplus, Swish.

Quantizers (``qdq=True``, default when any cell has one) give a QDQ graph (spec/qat.md):

* Weights: the fake-quantized weights ``w_q`` are written as integer codes × one scale in a
  ``DequantizeLinear`` (int8 when every code fits, else int32): SAT Default/FullRange
  ``w_q = (2k − R)/R`` (codes 2k − R, scale 1/R, odd codes), Symmetric/Asymmetric ``k/r``
  (scale 1/r, r = floor(R/2)); ApplyScaling divides the scale by s; LSQ ``k·step`` (scale step).
  The codes are checked: max|code·scale − w_q| ≤ 1e-6·max|w_q| (float32 products differ from
  N2D2's ``2·(1/R)·k − 1`` by an ulp), else the export fails naming the cell.
* Activations: SAT ``Clip(0, |α|)`` then ``QuantizeLinear``/``DequantizeLinear`` (uint8, scale
  |α|/R); LSQ ``Clip(0, R·step)`` then Q/DQ (scale step). R ≤ 255.
  ONNX rounds x/scale half to even; n2d2py rounds R·(x/α) (half away from zero for SAT on the
  CPU): the two quotients differ by an ulp, so an element within an ulp of a rounding tie may
  land one step (scale) apart. Tests allow that on a tiny fraction of elements only.
"""
import numpy
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..autograd import no_grad
from ..backend import asnumpy
from ..errors import OnnxError

OPSET = 19
WEIGHT_TOLERANCE = 1e-6


class Exporter:
    def __init__(self, net, qdq):
        self.net, self.qdq = net, qdq
        self.nodes, self.inits, self.names = [], [], set()

    # ------------------------------------------------------------ helpers
    def fresh(self, base):
        name, k = base, 1
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name

    def const(self, base, array, dtype=numpy.float32):
        name = self.fresh(base)
        self.inits.append(numpy_helper.from_array(numpy.asarray(array, dtype=dtype), name))
        return name

    def node(self, op, inputs, base, **attrs):
        out = self.fresh(base)
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out

    def error(self, cell, message):
        return OnnxError(f"cannot export cell [{cell.name}] (Type={cell.type_name}): {message}")

    # ------------------------------------------------------------ walk
    def run(self, path):
        net = self.net
        self.names.add("env")
        tensors = {"env": "env"}
        with no_grad():
            for name, cell in net.cells.items():
                xs = [tensors[p] for p in cell.parents]
                handler = HANDLERS.get(cell.type_name)
                if handler is None:
                    raise self.error(cell, f"no ONNX export for Type={cell.type_name}; "
                                           f"supported: {', '.join(sorted(HANDLERS))}")
                y = handler(self, cell, xs)
                tensors[name] = self.finish(cell, y)
        c, h, w = net.input_shape
        inputs = [helper.make_tensor_value_info("env", TensorProto.FLOAT, ["N", c, h, w])]
        read = {p for cell in net.cells.values() for p in cell.parents}
        outputs = []
        for name, cell in net.cells.items():
            if name not in read:
                if tensors[name] != name:     # an omitted cell (Dropout) as graph output
                    tensors[name] = self.node("Identity", [tensors[name]], name)
                outputs.append(helper.make_tensor_value_info(
                    name, TensorProto.FLOAT, ["N", *[int(d) for d in cell.out_shape]]))
        return self.save("n2d2py", inputs, outputs, path)

    def save(self, graph_name, inputs, outputs, path):
        """The checked ModelProto of the nodes and initializers built so far; written to ``path``
        unless it is None."""
        graph = helper.make_graph(self.nodes, graph_name, inputs, outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="n2d2py")
        model.ir_version = 9
        onnx.checker.check_model(model)
        if path is not None:
            onnx.save(model, str(path))
        return model

    def finish(self, cell, y):
        """Activation, then activation quantizer; the last node is renamed after the cell."""
        y = activation(self, cell, y)
        if getattr(cell, "qact", None) is not None:
            y = act_qdq(self, cell, y)
        if y == cell.name or y in self.net.cells or not self.nodes or self.nodes[-1].output[0] != y:
            return y
        last = self.nodes[-1]
        self.names.discard(y)
        last.output[0] = cell.name
        last.name = cell.name
        self.names.add(cell.name)
        return cell.name

    def concat(self, cell, xs):
        return xs[0] if len(xs) == 1 else self.node("Concat", xs, f"{cell.name}/concat", axis=1)


# ---------------------------------------------------------------- activations
def activation(ex, cell, y):
    act = getattr(cell, "activation", None)
    if act is None:
        return y
    kind, n = act.type_name, cell.name
    if kind == "Linear":
        c = act.clipping
        return clip(ex, n, y, -c, c) if c else y
    if kind == "Rectifier":
        if act.leak_slope:
            y = ex.node("LeakyRelu", [y], f"{n}/leaky", alpha=float(act.leak_slope))
            return ex.node("Min", [y, ex.const(f"{n}/clip_max", act.clipping)], f"{n}/clip") \
                if act.clipping else y
        return clip(ex, n, y, 0.0, act.clipping) if act.clipping else ex.node("Relu", [y], f"{n}/relu")
    if kind in ("Tanh", "TanhLeCun"):
        alpha = float(act.alpha)
        if alpha != 1.0:
            y = ex.node("Mul", [y, ex.const(f"{n}/alpha", alpha)], f"{n}/scaled")
        y = ex.node("Tanh", [y], f"{n}/tanh")
        if kind == "TanhLeCun":
            raise ex.error(cell, "TanhLeCun has no ONNX export")
        return y
    if kind in ("Logistic", "LogisticWithLoss"):
        return ex.node("Sigmoid", [y], f"{n}/sigmoid")
    if kind == "Saturation":
        t = float(act.threshold)
        return clip(ex, n, y, -t, t)
    if kind == "Softplus":
        return ex.node("Softplus", [y], f"{n}/softplus")
    if kind == "Swish":
        return ex.node("Mul", [y, ex.node("Sigmoid", [y], f"{n}/sigmoid")], f"{n}/swish")
    raise ex.error(cell, f"activation {kind} has no ONNX export")


def clip(ex, n, y, lo, hi):
    return ex.node("Clip", [y, ex.const(f"{n}/clip_min", lo), ex.const(f"{n}/clip_max", hi)],
                   f"{n}/clip")


# ---------------------------------------------------------------- quantizers (QDQ)
def weight_codes(ex, cell, wq):
    """(integer codes, scale) with codes·scale = the fake-quantized weights ``wq``."""
    q = cell.qweight
    kind = type(q).__name__
    if kind == "SATWeightQuantizer":
        if not q.apply_quantization:
            return None
        R = int(q.range)
        scale = 1.0 / R if q.quant_mode in ("Default", "FullRange") else 1.0 / (R // 2)
        scale /= float(q.scaling[0]) if q.apply_scaling else 1.0
    elif kind == "LSQWeightQuantizer":
        scale = float(q.step_size)
    else:
        raise ex.error(cell, f"weight quantizer {kind} has no QDQ export")
    codes = numpy.rint(wq.astype(numpy.float64) / scale)
    err = numpy.abs(codes * scale - wq).max() if wq.size else 0.0
    if err > WEIGHT_TOLERANCE * max(float(numpy.abs(wq).max()), 1e-30):
        raise ex.error(cell, f"its quantized weights are not integer multiples of {scale:g} "
                             f"(error {err:g})")
    return codes, scale


def weight_input(ex, cell, W, wq, base):
    """A float initializer, or (QDQ) DequantizeLinear(int codes, scale) for ``wq``."""
    if not ex.qdq or cell.qweight is None:
        return ex.const(base, W if cell.qweight is None else wq)
    found = weight_codes(ex, cell, wq)
    if found is None:     # SAT clamp-only (ApplyQuantization=0): float weights
        return ex.const(base, wq)
    codes, scale = found
    small = codes.min() >= -128 and codes.max() <= 127
    codes = ex.const(f"{base}_int", codes, numpy.int8 if small else numpy.int32)
    zero = ex.const(f"{base}_zero", 0, numpy.int8 if small else numpy.int32)
    return ex.node("DequantizeLinear", [codes, ex.const(f"{base}_scale", scale), zero],
                   f"{base}_dq")


def act_qdq(ex, cell, y):
    q, n = cell.qact, cell.name
    kind = type(q).__name__
    R = int(q.range)
    if R > 255:
        raise ex.error(cell, f"activation quantizer Range={R} does not fit uint8")
    if kind == "SATActQuantizer":
        a = abs(float(q.alpha))
        hi, scale = a, a / R
    elif kind == "LSQActQuantizer":
        scale = float(q.step_size)
        hi = R * scale
    else:
        raise ex.error(cell, f"activation quantizer {kind} has no QDQ export")
    y = clip(ex, n, y, 0.0, hi)
    s, z = ex.const(f"{n}/qscale", scale), ex.const(f"{n}/qzero", 0, numpy.uint8)
    y = ex.node("QuantizeLinear", [y, s, z], f"{n}/q")
    return ex.node("DequantizeLinear", [y, s, z], f"{n}/dq")


def fake_quantized(cell):
    if cell.qweight is None:
        return [asnumpy(W.data) for W in cell.weights]
    return [asnumpy(w.data) for w in cell.qweight(list(cell.weights))]


# ---------------------------------------------------------------- cells
def export_conv(ex, cell, xs):
    if cell.type_name != "Conv":
        raise ex.error(cell, "Deconv has no ONNX export yet")
    pads = cell.hw(cell.padding_dims)
    if min(pads) < 0:
        raise ex.error(cell, "negative padding (crop) has no ONNX export")
    stride, dilation = cell.stride_hw, cell.hw(cell.dilation_dims)
    wq = fake_quantized(cell)
    single = len(xs) == 1 and (cell.masks[0] is None or cell.groups[0] > 1)
    if single:
        W, Wq, group = asnumpy(cell.weights[0].data), wq[0], int(cell.groups[0])
    else:
        if cell.qweight is not None:
            raise ex.error(cell, "several inputs or a connection map with a weight quantizer")
        W, _ = cell.full_kernels()
        Wq, group = W, 1
    inputs = [ex.concat(cell, xs), weight_input(ex, cell, W, Wq, f"{cell.name}/W")]
    if cell.bias is not None:
        inputs.append(ex.const(f"{cell.name}/b", asnumpy(cell.bias.data)))
    return ex.node("Conv", inputs, f"{cell.name}/conv", kernel_shape=list(W.shape[2:]),
                   strides=list(stride), pads=[pads[0], pads[1], pads[0], pads[1]],
                   dilations=list(dilation), group=group)


def export_fc(ex, cell, xs):
    if cell.normalize:
        raise ex.error(cell, "Normalize=1 has no ONNX export")
    flat = [ex.node("Flatten", [x], f"{cell.name}/flatten", axis=1) for x in xs]
    x = flat[0] if len(flat) == 1 else ex.node("Concat", flat, f"{cell.name}/concat", axis=1)
    wq = fake_quantized(cell)
    W = numpy.concatenate([asnumpy(w.data) for w in cell.weights], axis=1)
    Wq = numpy.concatenate(wq, axis=1)
    if cell.qweight is not None and len(wq) > 1:
        raise ex.error(cell, "several inputs with a weight quantizer")
    inputs = [x, weight_input(ex, cell, W, Wq, f"{cell.name}/W")]
    if cell.bias is not None:
        inputs.append(ex.const(f"{cell.name}/b", asnumpy(cell.bias.data)))
    y = ex.node("Gemm", inputs, f"{cell.name}/gemm", transB=1)
    shape = ex.const(f"{cell.name}/shape", [0, cell.nb_outputs, 1, 1], numpy.int64)
    return ex.node("Reshape", [y, shape], f"{cell.name}/reshape")


def export_batchnorm(ex, cell, xs):
    n = cell.name
    inputs = [ex.concat(cell, xs)] + [ex.const(f"{n}/{k}", asnumpy(v)) for k, v in (
        ("scale", cell.scale.data), ("bias", cell.bias.data), ("mean", cell.mean),
        ("var", cell.variance))]
    return ex.node("BatchNormalization", inputs, f"{n}/bn", epsilon=float(cell.epsilon))


def export_pool(ex, cell, xs):
    kernel, stride = cell.hw(cell.pool_dims), cell.hw(cell.stride_dims)
    if hasattr(cell, "pads"):   # OnnxPoolCell: ONNX geometry kept from the import
        t, b, l, r = cell.pads
        ceil, include = int(cell.ceil_mode), int(cell.count_include_pad)
    else:
        (t, l), ceil, include = cell.hw(cell.padding_dims), 0, 1
        b, r = t, l
    attrs = dict(kernel_shape=list(kernel), strides=list(stride), pads=[t, l, b, r],
                 ceil_mode=ceil)
    x = ex.concat(cell, xs)
    mask = getattr(cell, "mask", None)
    if cell.pooling == "Max":
        y = ex.node("MaxPool", [x], f"{cell.name}/pool", **attrs)
        return y if mask is None else channel_max(ex, cell, y, mask)
    y = ex.node("AveragePool", [x], f"{cell.name}/pool", count_include_pad=include, **attrs)
    if mask is None:
        return y
    # N2D2's channel-wise average (F.channel_pool2d): out o = mean over the connected channels
    # of the per-channel averages, i.e. a 1x1 convolution with weights mask/count
    W = mask.astype(numpy.float32) / numpy.maximum(mask.sum(axis=1), 1)[:, None].astype(numpy.float32)
    return ex.node("Conv", [y, ex.const(f"{cell.name}/channel_mean", W[:, :, None, None])],
                   f"{cell.name}/channel_pool", kernel_shape=[1, 1])


def channel_max(ex, cell, y, mask):
    """N2D2's channel-wise max (F.channel_pool2d): out o = max over the connected channels
    (0 where none): one Gather + ReduceMax per output, then Concat."""
    n, outs = cell.name, []
    for o, row in enumerate(mask):
        channels = numpy.flatnonzero(row)
        if len(channels) == 0:
            raise ex.error(cell, f"output {o} of the Pool Mapping pools no channel")
        g = ex.node("Gather", [y, ex.const(f"{n}/ch{o}", channels, numpy.int64)], f"{n}/gather{o}",
                    axis=1)
        axes = ex.const(f"{n}/axes{o}", [1], numpy.int64)     # opset 18+: axes is an input
        outs.append(ex.node("ReduceMax", [g, axes], f"{n}/max{o}", keepdims=1))
    return outs[0] if len(outs) == 1 else ex.node("Concat", outs, f"{n}/channel_pool", axis=1)


def export_elemwise(ex, cell, xs):
    n, op = cell.name, cell.operation
    if op in ("Prod", "Max"):
        if cell.weights or cell.shifts:
            raise ex.error(cell, f"Operation={op} with Weights/Shifts")
        return xs[0] if len(xs) == 1 else ex.node("Mul" if op == "Prod" else "Max", xs, f"{n}/{op}") \
            if len(xs) == 2 or op == "Max" else _chain(ex, "Mul", xs, n)
    if op != "Sum":
        raise ex.error(cell, f"Operation={op} has no ONNX export")
    w, s = cell.coefficients(cell.weights, 1.0), cell.coefficients(cell.shifts, 0.0)
    terms = []
    for k, x in enumerate(xs):
        if w[k] != 1.0:
            x = ex.node("Mul", [x, ex.const(f"{n}/w{k}", w[k])], f"{n}/mul{k}")
        terms.append(x)
    y = terms[0] if len(terms) == 1 else ex.node("Sum", terms, f"{n}/sum")
    if sum(s):
        y = ex.node("Add", [y, ex.const(f"{n}/shift", sum(s))], f"{n}/shift")
    return y


def _chain(ex, op, xs, n):
    y = xs[0]
    for k, x in enumerate(xs[1:]):
        y = ex.node(op, [y, x], f"{n}/{op.lower()}{k}")
    return y


def export_softmax(ex, cell, xs):
    if cell.group_size:
        raise ex.error(cell, "GroupSize has no ONNX export")
    return ex.node("Softmax", [ex.concat(cell, xs)], f"{cell.name}/softmax", axis=1)


def export_padding(ex, cell, xs):
    """``Pad`` for the positive amounts, then ``Slice`` for the negative ones (crop): the
    reference evaluator refuses negative pads."""
    n, x = cell.name, ex.concat(cell, xs)
    t, b, l, r = cell.top, cell.bottom, cell.left, cell.right
    if max(t, b, l, r) > 0:
        pads = [0, 0, max(t, 0), max(l, 0), 0, 0, max(b, 0), max(r, 0)]
        x = ex.node("Pad", [x, ex.const(f"{n}/pads", pads, numpy.int64)], f"{n}/pad",
                    mode="constant")
    if min(t, b, l, r) < 0:
        h = cell.in_shapes[0][1] + max(t, 0) + max(b, 0)
        w = cell.in_shapes[0][2] + max(l, 0) + max(r, 0)
        starts, ends = [max(-t, 0), max(-l, 0)], [h - max(-b, 0), w - max(-r, 0)]
        x = ex.node("Slice", [x, ex.const(f"{n}/starts", starts, numpy.int64),
                              ex.const(f"{n}/ends", ends, numpy.int64),
                              ex.const(f"{n}/axes", [2, 3], numpy.int64)], f"{n}/crop")
    return x


def export_activation(ex, cell, xs):
    return ex.concat(cell, xs)


def export_dropout(ex, cell, xs):
    return ex.concat(cell, xs)      # inference: the identity, omitted


def export_reshape(ex, cell, xs):
    shape = ex.const(f"{cell.name}/shape", [0, *cell.out_shape], numpy.int64)
    return ex.node("Reshape", [ex.concat(cell, xs), shape], f"{cell.name}/reshape")


def export_lrn(ex, cell, xs):
    return ex.node("LRN", [ex.concat(cell, xs)], f"{cell.name}/lrn", size=int(cell.n),
                   alpha=float(cell.alpha), beta=float(cell.beta), bias=float(cell.k))


HANDLERS = {"Conv": export_conv, "Deconv": export_conv, "Fc": export_fc,
            "BatchNorm": export_batchnorm, "Pool": export_pool, "ElemWise": export_elemwise,
            "Softmax": export_softmax, "Padding": export_padding, "Activation": export_activation,
            "Dropout": export_dropout, "Reshape": export_reshape, "LRN": export_lrn}


def export_onnx(net, path=None, qdq=None):
    """Write ``net`` (a DeepNet, inference semantics) as an ONNX model at ``path`` (None: only
    return it). ``qdq``: weight/activation quantizers as QDQ nodes (default: when any cell has
    one; False exports the fake-quantized float weights and no activation quantizer)."""
    if qdq is None:
        qdq = any(getattr(c, "qweight", None) is not None or getattr(c, "qact", None) is not None
                  for c in net.cells.values())
    if not qdq and any(getattr(c, "qact", None) is not None for c in net.cells.values()):
        raise OnnxError("activation quantizers need qdq=True")
    return Exporter(net, qdq).run(path)


__all__ = ["export_onnx", "OPSET"]
