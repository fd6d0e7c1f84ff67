"""Pool geometry ONNX has and N2D2's ``Type=Pool`` cell cannot express.

N2D2 emulates ``ceil_mode=1`` and asymmetric ``pads`` with extra zero padding and always counts
the padding in averages (``count_include_pad`` is ignored with a warning). That changes the
numbers: zero padding can win a max over negative inputs, and ONNX's default
``count_include_pad=0`` divides by the number of real pixels. **n2d2py differs on purpose**: such
pools become an ``OnnxPoolCell``, a ``PoolCell`` (same ``Type=Pool``, same keys; ``PaddingDims``
holds the leading pads) with ``pads`` (top, bottom, left, right), ``ceil_mode`` and
``count_include_pad`` handed to ``F.max_pool2d``/``F.avg_pool2d``, which match ONNX exactly.
So do pools with ``dilations`` (``F.dilated_pool2d``; N2D2's pools have none) and pools of a
1x1 input (N2D2 refuses them: "2D input expected"; GoogLeNet's last Inception block at 32 px).
Pools N2D2 can express keep the plain ``PoolCell``.
"""
import numpy

from .. import functions as F
from ..backend import asnumpy, to_device
from ..cells.base import Cell, concat_inputs
from ..cells.conv import DeconvCell
from ..cells.pool import PoolCell
from . import functions as OF
from .graph import cell_shape


class OnnxPoolCell(PoolCell):
    """``Type=Pool`` with ONNX's asymmetric padding, ceil mode and count_include_pad."""

    def __init__(self, name="", parents=("env",), pads=(0, 0, 0, 0), ceil_mode=False,
                 count_include_pad=True, dilations=(1, 1), **values):
        super().__init__(name, parents, **values)
        self.pads, self.ceil_mode = tuple(int(p) for p in pads), bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        self.dilations = tuple(int(d) for d in dilations)   # (dh, dw): n2d2py extension

    def compute_out_shape(self, in_shapes):
        hw = {tuple(s[1:]) for s in in_shapes}
        if len(hw) != 1:
            raise self.error(f"inputs {', '.join(self.parents)} have different sizes {in_shapes}")
        (h, w), = hw
        kernel = [(k - 1) * d + 1 for k, d in zip(self.hw(self.pool_dims), self.dilations)]
        oh, ow = F.pool_output_size((h, w), kernel, self.hw(self.stride_dims), self.pads,
                                    self.ceil_mode)
        return (self.nb_outputs, oh, ow)

    def forward(self, xs, training=False):
        x = concat_inputs(self, xs)
        kernel, stride = self.hw(self.pool_dims), self.hw(self.stride_dims)
        if self.dilations != (1, 1):
            y = F.dilated_pool2d(x, self.pooling, kernel, stride, self.dilations, self.pads,
                                 self.ceil_mode, self.count_include_pad)
        elif self.pooling == "Max":
            y = F.max_pool2d(x, kernel, stride, self.pads, self.ceil_mode)
        else:
            y = F.avg_pool2d(x, kernel, stride, self.pads, self.ceil_mode, self.count_include_pad)
        return self.activate(y, training)

    def onnx_geometry(self):
        t, b, l, r = self.pads
        return [t, l, b, r], int(self.ceil_mode), int(self.count_include_pad)

    def export_onnx(self, onnx, xs):
        if self.dilations == (1, 1):
            return super().export_onnx(onnx, xs)
        pads, ceil_mode, count_include_pad = self.onnx_geometry()
        attrs = dict(kernel_shape=list(self.hw(self.pool_dims)),
                     strides=list(self.hw(self.stride_dims)), pads=pads, ceil_mode=ceil_mode,
                     dilations=list(self.dilations))
        if self.pooling == "Max":
            return onnx.node("MaxPool", [onnx.concat(self, xs)], f"{self.name}/pool", **attrs)
        return onnx.node("AveragePool", [onnx.concat(self, xs)], f"{self.name}/pool",
                         count_include_pad=count_include_pad, **attrs)

    fusion_refusal = ("an average pool with ONNX geometry (asymmetric pads, ceil mode, "
                      "count_include_pad=0, dilations, a 1x1 input) is not part of the integer "
                      "engine (max pools are)")

    def fuse(self, fuser):
        if self.pooling == "Max":      # the max of integer codes is exact whatever the windows
            return fuser.pool(self, pads=self.pads, dilation=self.dilations)
        return Cell.fuse(self, fuser)

    def ptq(self, quantizer):
        """Post-training quantization: the same geometry-carrying integer pool as the fusion;
        the ceil mode also goes to the node's float twin (N2D2's simulator)."""
        if self.pooling == "Max":
            return quantizer.pool(self, pads=self.pads, dilation=self.dilations,
                                  ceil_mode=self.ceil_mode)
        return Cell.fuse(self, quantizer)


class OnnxDeconvCell(DeconvCell):
    """**n2d2py extension, not in N2D2** (N2D2's importer has no ConvTranspose): ``Type=Deconv``
    with ONNX's ``pads`` (top, bottom, left, right; asymmetric allowed: they crop the full
    transposed convolution) and ``output_padding`` (oh, ow: rows/columns added at the end, which
    hold only the bias where nothing reaches them). ``PaddingDims`` is unused (0)."""

    def __init__(self, name="", parents=("env",), pads=(0, 0, 0, 0), output_padding=(0, 0),
                 **values):
        super().__init__(name, parents, **values)
        self.pads = tuple(int(p) for p in pads)
        self.output_padding = tuple(int(p) for p in output_padding)

    def compute_out_shape(self, in_shapes):
        hw = {tuple(s[1:]) for s in in_shapes}
        if len(hw) != 1:
            raise self.error(f"inputs {', '.join(self.parents)} have different sizes {in_shapes}")
        (h, w), = hw
        (kh, kw), (dh, dw), (sh, sw) = (self.hw(self.kernel_dims), self.hw(self.dilation_dims),
                                        self.stride_hw)
        t, b, l, r = self.pads
        oph, opw = self.output_padding
        return (self.nb_outputs, (h - 1) * sh + dh * (kh - 1) + 1 - t - b + oph,
                (w - 1) * sw + dw * (kw - 1) + 1 - l - r + opw)

    def forward(self, xs, training=False):
        xs = self.inputs(xs)
        t, b, l, r = self.pads
        extra_b, extra_r = b - self.output_padding[0], r - self.output_padding[1]
        pads = (t, max(extra_b, 0), l, max(extra_r, 0))
        y = None
        for x, W in zip(xs, self.quantized_weights()):
            part = F.deconv2d(x, W, None, self.stride_hw, pads, self.hw(self.dilation_dims), 1)
            y = part if y is None else y + part
        if extra_b < 0 or extra_r < 0:
            y = F.pad2d(y, 0, max(-extra_b, 0), 0, max(-extra_r, 0))
        if self.bias is not None:
            y = y + F.reshape(self.bias, (1, -1, 1, 1))
        return self.activate(y, training)


class OnnxTensorCell(Cell):
    """**n2d2py extension, not in N2D2**: one ONNX operator N2D2 has no cell for, computed on
    the ONNX shapes. The inputs (N, C, H, W) are viewed as their ONNX shapes (``in_dims``: each
    shape without its batch axis; the element order is the same), ``op`` runs, and the
    result is viewed back as the (C, H, W) of ``out_dims``. Operations (``op``, ``options``):

    * ``("Unary", {"kind", "alpha", "gamma"})``: ``functions.UNARY`` (Elu, Selu, Exp, Neg...);
    * ``("PRelu", {"slope"})``: a learnable slope (Parameter ``weights``, shape broadcasting to
      the input with a batch axis of 1; solver role ``Weights``);
    * ``("Binary", {"kind", "constants"})``: Add, Sub, Mul, Div, Min, Max, Sum folded left to
      right over the inputs with NumPy broadcasting; ``constants`` maps an operand position to
      a fixed array (not learnt);
    * ``("LogSoftmax", {"axis"})``; ``("Reduce", {"kind", "axes", "keepdims"})``.
    """
    type_name = "OnnxOp"
    solver_roles = ("Weights",)
    keeps_precision = False
    fusion_refusal = "n2d2py's ONNX-extension cells are not part of N2D2's QAT fusion"

    def __init__(self, name="", parents=("env",), op="Unary", options=None, in_dims=(),
                 out_dims=(), **values):
        super().__init__(name, parents, **values)
        self.op, self.options = op, dict(options or {})
        self.in_dims = [tuple(int(d) for d in dims) for dims in in_dims]
        self.out_dims = tuple(int(d) for d in out_dims)
        self.constants = {int(k): numpy.asarray(v, numpy.float32)
                          for k, v in self.options.pop("constants", {}).items()}
        self.slope = None

    def describe(self):
        return f"cell [{self.name}] (n2d2py ONNX {self.op})"

    def compute_out_shape(self, in_shapes):
        for shape, dims in zip(in_shapes, self.in_dims):
            if int(numpy.prod(shape)) != int(numpy.prod(dims)):
                raise self.error(f"input of {shape} (C, H, W) is not the ONNX shape {dims}")
        return cell_shape((1,) + self.out_dims)

    def create_parameters(self, rng):
        if self.op == "PRelu":
            self.slope = self.new_parameter(numpy.asarray(self.options["slope"], numpy.float32),
                                            "Weights", "weights")

    def own_parameters(self):
        return [] if self.slope is None else [self.slope]

    def to(self, device):
        super().to(device)
        self.constants = {k: to_device(v, device) for k, v in self.constants.items()}
        return self

    def forward(self, xs, training=False):
        xs = [F.reshape(x, (x.shape[0],) + dims) for x, dims in zip(xs, self.in_dims)]
        o, op = self.options, self.op
        if op == "Unary":
            y = OF.unary(xs[0], o["kind"], o.get("alpha"), o.get("gamma"))
        elif op == "PRelu":
            y = OF.prelu(xs[0], self.slope)
        elif op == "LogSoftmax":
            y = F.log_softmax(xs[0], o["axis"])
        elif op == "Reduce":
            y = OF.reduce(xs[0], o["kind"], o["axes"], o["keepdims"])
        else:
            operands = list(xs)
            for k in sorted(self.constants):
                operands.insert(k, self.constants[k])
            y = operands[0]
            for z in operands[1:]:
                y = binary(o["kind"], y, z)
        y = F.reshape(y, (y.shape[0],) + cell_shape((1,) + self.out_dims))
        return self.activate(y, training)


    def export_onnx(self, onnx, xs):
        """The ONNX operator on the inputs reshaped to their ONNX shapes, then ``Reshape``
        to the cell's (N, C, H, W)."""
        n, o, op = self.name, self.options, self.op
        xs = [onnx.node("Reshape", [x, onnx.const(f"{n}/in{k}_shape", [0, *dims], numpy.int64)],
                        f"{n}/in{k}") for k, (x, dims) in enumerate(zip(xs, self.in_dims))]
        if op == "Unary":
            y = self.export_unary(onnx, xs[0])
        elif op == "PRelu":
            y = onnx.node("PRelu", [xs[0], onnx.const(f"{n}/slope", asnumpy(self.slope.data))],
                          f"{n}/prelu")
        elif op == "LogSoftmax":
            y = onnx.node("LogSoftmax", xs, f"{n}/logsoftmax", axis=int(o["axis"]))
        elif op == "Reduce":
            y = onnx.node(f"Reduce{o['kind']}", [xs[0], onnx.const(f"{n}/axes", list(o["axes"]),
                                                                  numpy.int64)],
                          f"{n}/reduce", keepdims=int(o["keepdims"]))
        else:
            operands = list(xs)
            for k in sorted(self.constants):
                operands.insert(k, onnx.const(f"{n}/c{k}", asnumpy(self.constants[k])))
            kind = "Add" if o["kind"] == "Sum" else o["kind"]
            y = operands[0]
            for k, z in enumerate(operands[1:]):
                y = onnx.node(kind, [y, z], f"{n}/{kind.lower()}{k}")
        shape = onnx.const(f"{n}/shape", [0, *self.out_shape], numpy.int64)
        return onnx.node("Reshape", [y, shape], f"{n}/reshape")

    def export_unary(self, onnx, x):
        o, n = self.options, self.name
        kind, alpha, gamma = o["kind"], o.get("alpha"), o.get("gamma")
        if kind == "Pow":
            exponent = onnx.const(f"{n}/exponent", 2.0 if alpha is None else alpha)
            return onnx.node("Pow", [x, exponent], f"{n}/pow")
        attrs = {}
        if kind in ("Elu", "Selu", "HardSigmoid") and alpha is not None:
            attrs["alpha"] = float(alpha)
        if kind == "Selu" and gamma is not None:
            attrs["gamma"] = float(gamma)
        if kind == "HardSigmoid" and gamma is not None:
            attrs["beta"] = float(gamma)
        return onnx.node(kind, [x], f"{n}/{kind.lower()}", **attrs)


def binary(kind, a, b):
    if kind in ("Add", "Sum"):
        return F.add(a, b)
    if kind == "Sub":
        return F.sub(a, b)
    if kind == "Mul":
        return F.mul(a, b)
    if kind == "Div":
        return F.div(a, b)
    return OF.minimum(a, b) if kind == "Min" else OF.maximum(a, b)


__all__ = ["OnnxPoolCell", "OnnxDeconvCell", "OnnxTensorCell"]
