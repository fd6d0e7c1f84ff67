"""Autograd Functions for the ONNX operators n2d2py imports beyond N2D2's set (**n2d2py
extension, not in N2D2**; docs/ONNX.md lists N2D2's own set). Each has a forward and a
backward, so an imported graph stays trainable (``tests/onnx/test_onnx_extension.py`` checks
every backward with ``check_backward``).

* ``unary(x, kind, alpha, gamma)``: Elu, Selu, Exp, Log, Neg, Abs, Sqrt, Reciprocal, Softsign,
  HardSigmoid, Erf, and Pow by a constant exponent ``alpha`` (ONNX definitions;
  ``alpha``/``gamma`` are the ONNX attributes). (An imported HardSigmoid is the activation
  function of ``cells/activation_functions.py``; the kind stays for cells built before.)
* ``prelu(x, slope)``: ``x >= 0 ? x : slope * x``, ``slope`` broadcast (a learnable Parameter).
* ``minimum(a, b)`` / ``maximum(a, b)``: element-wise with NumPy broadcasting; the gradient goes
  to the first operand on ties (as ``numpy.argmin``).
* ``reduce(x, kind, axes, keepdims)``: ReduceSum / ReduceMean / ReduceMax / ReduceMin over
  ``axes`` (max/min: the gradient goes to every position equal to the extremum, divided by
  their count).
"""
import numpy

from ..autograd.function import Function
from ..errors import expect
from ..functions.activation_ext import erf_array
from ..functions.arith import unbroadcast

UNARY = ("Elu", "Selu", "Exp", "Log", "Neg", "Abs", "Sqrt", "Reciprocal", "Softsign",
         "HardSigmoid", "Erf", "Pow")
SELU_ALPHA, SELU_GAMMA = 1.67326319217681884765625, 1.05070102214813232421875


class Unary(Function):
    """One of ``UNARY``; ``alpha``/``gamma`` as in ONNX (Elu alpha=1; Selu alpha, gamma;
    HardSigmoid alpha=0.2, beta=``gamma``=0.5; Pow: the exponent ``alpha``, default 2)."""

    def __init__(self, kind, alpha=None, gamma=None):
        expect(kind in UNARY, f"unary: unknown operation {kind!r}; known: {', '.join(UNARY)}")
        self.kind = kind
        defaults = {"Elu": (1.0, 0.0), "Selu": (SELU_ALPHA, SELU_GAMMA),
                    "HardSigmoid": (0.2, 0.5), "Pow": (2.0, 0.0)}.get(kind, (0.0, 0.0))
        self.alpha = defaults[0] if alpha is None else float(alpha)
        self.gamma = defaults[1] if gamma is None else float(gamma)

    def forward(self, xp, x):
        k, a, g = self.kind, self.alpha, self.gamma
        if k in ("Elu", "Selu"):
            neg = a * xp.expm1(xp.minimum(x, 0))
            y = xp.where(x > 0, x, neg)
            y = y * g if k == "Selu" else y
        elif k == "Exp":
            y = xp.exp(x)
        elif k == "Log":
            y = xp.log(x)
        elif k == "Neg":
            y = -x
        elif k == "Abs":
            y = xp.abs(x)
        elif k == "Sqrt":
            y = xp.sqrt(x)
        elif k == "Reciprocal":
            y = 1 / x
        elif k == "Softsign":
            y = x / (1 + xp.abs(x))
        elif k == "Erf":
            y = erf_array(xp, x)
        elif k == "Pow":
            y = x * x if a == 2.0 else xp.power(x, x.dtype.type(a))
        else:   # HardSigmoid
            y = xp.clip(a * x + g, 0, 1)
        y = y.astype(x.dtype, copy=False)
        if self.needs_backward:
            self.saved = (x, y)
        return y

    def backward(self, xp, gy, needs_grad):
        x, y = self.saved
        k, a, g = self.kind, self.alpha, self.gamma
        if k == "Elu":
            d = xp.where(x > 0, 1, y + a)
        elif k == "Selu":
            d = xp.where(x > 0, g, y + a * g)
        elif k == "Exp":
            d = y
        elif k == "Log":
            d = 1 / x
        elif k == "Neg":
            d = -xp.ones_like(x)
        elif k == "Abs":
            d = xp.sign(x)
        elif k == "Sqrt":
            d = 0.5 / y
        elif k == "Reciprocal":
            d = -y * y
        elif k == "Softsign":
            d = 1 / (1 + xp.abs(x)) ** 2
        elif k == "Erf":
            d = (2.0 / numpy.sqrt(numpy.pi)) * xp.exp(-x * x)
        elif k == "Pow":
            d = 2 * x if a == 2.0 else a * xp.power(x, x.dtype.type(a - 1))
        else:
            d = xp.where((y > 0) & (y < 1), a, 0)
        return ((gy * d).astype(gy.dtype, copy=False),)


class PRelu(Function):
    """y = x where x >= 0, slope·x elsewhere; gx = gy or slope·gy, gslope = Σ gy·x (x < 0)."""

    def check_inputs(self, x, slope):
        try:
            shape = numpy.broadcast_shapes(tuple(x.shape), tuple(slope.shape))
        except ValueError:
            shape = None
        expect(shape == tuple(x.shape), f"prelu: slope {tuple(slope.shape)} does not broadcast "
                                        f"to the input {tuple(x.shape)}")

    def forward(self, xp, x, slope):
        negative = x < 0
        if self.needs_backward:
            self.saved = (x, slope, negative)
        return xp.where(negative, slope * x, x).astype(x.dtype, copy=False)

    def backward(self, xp, gy, needs_grad):
        x, slope, negative = self.saved
        gx = xp.where(negative, slope * gy, gy).astype(gy.dtype, copy=False) \
            if needs_grad[0] else None
        gs = unbroadcast(xp, xp.where(negative, gy * x, 0), slope.shape).reshape(slope.shape) \
            .astype(slope.dtype, copy=False) if needs_grad[1] else None
        return gx, gs


class Extremum(Function):
    """Element-wise min or max of two broadcasting operands."""

    def __init__(self, kind):
        self.kind = kind

    def forward(self, xp, a, b):
        first = (a <= b) if self.kind == "Min" else (a >= b)
        if self.needs_backward:
            self.saved = (a.shape, b.shape, first)
        return xp.where(first, a, b).astype(xp.result_type(a, b), copy=False)

    def backward(self, xp, gy, needs_grad):
        sa, sb, first = self.saved
        ga = unbroadcast(xp, xp.where(first, gy, 0), sa).reshape(sa) if needs_grad[0] else None
        gb = unbroadcast(xp, xp.where(first, 0, gy), sb).reshape(sb) if needs_grad[1] else None
        return ga, gb


class Reduce(Function):
    """Sum, Mean, Max or Min over ``axes`` (non-negative), keeping them as size 1 if
    ``keepdims``."""

    def __init__(self, kind, axes, keepdims=True):
        self.kind, self.axes, self.keepdims = kind, tuple(int(a) for a in axes), bool(keepdims)

    def forward(self, xp, x):
        fn = {"Sum": xp.sum, "Mean": xp.mean, "Max": xp.max, "Min": xp.min}[self.kind]
        y = fn(x, axis=self.axes, keepdims=True)
        if self.needs_backward:
            self.saved = (x, y)
        return (y if self.keepdims else y.reshape(
            [d for i, d in enumerate(y.shape) if i not in self.axes])).astype(x.dtype, copy=False)

    def backward(self, xp, gy, needs_grad):
        x, y = self.saved
        g = gy.reshape(y.shape)
        if self.kind == "Sum":
            gx = xp.broadcast_to(g, x.shape)
        elif self.kind == "Mean":
            count = int(numpy.prod([x.shape[a] for a in self.axes]))
            gx = xp.broadcast_to(g / count, x.shape)
        else:
            hit = (x == y)
            gx = hit * (g / hit.sum(axis=self.axes, keepdims=True))
        return (xp.ascontiguousarray(gx).astype(gy.dtype, copy=False),)


def unary(x, kind, alpha=None, gamma=None):
    return Unary(kind, alpha, gamma).apply(x)


def prelu(x, slope):
    return PRelu().apply(x, slope)


def minimum(a, b):
    return Extremum("Min").apply(a, b)


def maximum(a, b):
    return Extremum("Max").apply(a, b)


def reduce(x, kind, axes, keepdims=True):
    return Reduce(kind, axes, keepdims).apply(x)


__all__ = ["UNARY", "unary", "prelu", "minimum", "maximum", "reduce", "Unary", "PRelu",
           "Extremum", "Reduce"]
