"""Activation functions (``ActivationFunction=`` + ``ActivationFunction.*``, docs/INI.md §6),
registered by name in ``ACTIVATIONS`` (the ``Type=Activation`` cell is in ``activation.py``).

An activation is a small ``Parameterizable`` callable ``Variable -> Variable``; its options are
read from the cell section with the ``ActivationFunction.`` prefix stripped. Each declares its
ONNX nodes (``export_onnx(onnx, cell, y)``, or ``onnx_refusal``) and ``is_identity`` (what the
``--qat-sat`` fusion accepts before a quantizer: N2D2 needs a Linear activation there) and
``ptq_sign``: what post-training quantization (``--calib``, ``ptq/``) makes of its outputs,
``"unsigned"`` codes 0..2^B−1 (ReLU), ``"signed"`` codes (Linear, Saturation: the saturation of
the codes is the clipping), or None: no integer form, the layer is refused. ``with_loss`` marks
``LogisticWithLoss``: the DeepNet then uses a sigmoid cross-entropy on the pre-activation
(``cell.last_logits``) instead of back-propagating through the sigmoid, as N2D2.
"""
import math

from .. import functions as F
from ..functions.activation_ext import GELU_CUBIC, SQRT_2_OVER_PI
from ..ini.convert import enum, to_float
from ..params import Key, Parameterizable, Registry

ACTIVATIONS = Registry("activation function")


class ActivationFunction(Parameterizable):
    with_loss = False
    is_identity = False
    onnx_refusal = None
    ptq_sign = None
    #: a plain ReLU's clipping (0: none) where a cell may fuse it into its own function
    #: (``F.batch_norm(..., relu_clipping=)``: the same numbers, one pass over memory fewer)
    fused_relu_clipping = None

    def __call__(self, x):
        raise NotImplementedError

    def export_onnx(self, onnx, cell, y):
        """The ONNX tensor of this activation on the tensor ``y`` of ``cell``."""
        if self.onnx_refusal is None:
            raise NotImplementedError(f"{type(self).__name__} declares neither export_onnx() "
                                      f"nor onnx_refusal")
        raise onnx.error(cell, self.onnx_refusal)

    def describe(self):
        return f"ActivationFunction={self.type_name}"

    def __repr__(self):
        options = ", ".join(f"{k}={v}" for k, v in self.parameters_dict().items())
        return f"{self.type_name}({options})"


@ACTIVATIONS.register("Linear")
class Linear(ActivationFunction):
    """``y = x``, clamped to [-c, c] when ``Clipping`` c ≠ 0."""
    clipping = Key("Clipping", to_float, 0.0)

    def __call__(self, x):
        return F.linear_clip(x, self.clipping) if self.clipping else x

    ptq_sign = "signed"

    @property
    def is_identity(self):
        return not self.clipping

    def export_onnx(self, onnx, cell, y):
        c = self.clipping
        return onnx.clip(cell.name, y, -c, c) if c else y


@ACTIVATIONS.register("Rectifier")
class Rectifier(ActivationFunction):
    """ReLU with ``LeakSlope`` for x < 0 and an optional upper ``Clipping`` (ReLU6 = 6.0)."""
    leak_slope = Key("LeakSlope", to_float, 0.0)
    clipping = Key("Clipping", to_float, 0.0)

    def __call__(self, x):
        return F.relu(x, self.leak_slope, self.clipping)

    @property
    def fused_relu_clipping(self):
        return None if self.leak_slope else self.clipping

    @property
    def ptq_sign(self):
        """A leaky ReLU has no integer form here (the saturation at 0 is the ReLU)."""
        return None if self.leak_slope else "unsigned"

    def export_onnx(self, onnx, cell, y):
        n = cell.name
        if self.leak_slope:
            y = onnx.node("LeakyRelu", [y], f"{n}/leaky", alpha=float(self.leak_slope))
            return onnx.node("Min", [y, onnx.const(f"{n}/clip_max", self.clipping)], f"{n}/clip") \
                if self.clipping else y
        return onnx.clip(n, y, 0.0, self.clipping) if self.clipping else \
            onnx.node("Relu", [y], f"{n}/relu")


@ACTIVATIONS.register("Tanh")
class Tanh(ActivationFunction):
    """``tanh(Alpha * x)``."""
    alpha = Key("Alpha", to_float, 1.0)

    def __call__(self, x):
        return F.tanh(x, self.alpha)

    def export_onnx(self, onnx, cell, y):
        n, alpha = cell.name, float(self.alpha)
        if alpha != 1.0:
            y = onnx.node("Mul", [y, onnx.const(f"{n}/alpha", alpha)], f"{n}/scaled")
        return onnx.node("Tanh", [y], f"{n}/tanh")


@ACTIVATIONS.register("TanhLeCun")
class TanhLeCun(Tanh):
    """N2D2's TanhLeCun: ``tanh(1.7159 * 2/3 * x)`` with no 1.7159 output gain."""
    alpha = Key("Alpha", to_float, 1.7159 * 2.0 / 3.0)
    onnx_refusal = "TanhLeCun has no ONNX export"
    export_onnx = ActivationFunction.export_onnx


@ACTIVATIONS.register("Logistic")
class Logistic(ActivationFunction):
    def __call__(self, x):
        return F.sigmoid(x)

    def export_onnx(self, onnx, cell, y):
        return onnx.node("Sigmoid", [y], f"{cell.name}/sigmoid")


@ACTIVATIONS.register("LogisticWithLoss")
class LogisticWithLoss(Logistic):
    """Sigmoid whose derivative the loss skips (cross-entropy on the logits, as N2D2)."""
    with_loss = True


@ACTIVATIONS.register("Saturation")
class Saturation(ActivationFunction):
    """Clamp to [-Threshold, Threshold]."""
    threshold = Key("Threshold", to_float, 1.0)
    ptq_sign = "signed"

    def __call__(self, x):
        return F.saturation(x, self.threshold)

    def export_onnx(self, onnx, cell, y):
        t = float(self.threshold)
        return onnx.clip(cell.name, y, -t, t)


@ACTIVATIONS.register("Softplus")
class Softplus(ActivationFunction):
    def __call__(self, x):
        return F.softplus(x)

    def export_onnx(self, onnx, cell, y):
        return onnx.node("Softplus", [y], f"{cell.name}/softplus")


@ACTIVATIONS.register("Swish")
class Swish(ActivationFunction):
    def __call__(self, x):
        return F.swish(x)

    def export_onnx(self, onnx, cell, y):
        n = cell.name
        return onnx.node("Mul", [y, onnx.node("Sigmoid", [y], f"{n}/sigmoid")], f"{n}/swish")


# ---------------------------------------------------------------- n2d2py extensions
# N2D2 has no activation of the three below; PyTorch models bring them (MobileNet-v3's h-swish
# and h-sigmoid, ConvNeXt's and the transformers' GELU). Their ONNX operators import as them.
@ACTIVATIONS.register("HardSigmoid")
class HardSigmoid(ActivationFunction):
    """**n2d2py extension, not in N2D2**: ``clip(Alpha·x + Beta, 0, 1)`` (PyTorch's
    ``hardsigmoid``: Alpha=1/6, Beta=0.5, the defaults; ONNX's HardSigmoid defaults to 0.2)."""
    alpha = Key("Alpha", to_float, 1.0 / 6.0)
    beta = Key("Beta", to_float, 0.5)

    def __call__(self, x):
        return F.hard_sigmoid(x, self.alpha, self.beta)

    def export_onnx(self, onnx, cell, y):
        return onnx.node("HardSigmoid", [y], f"{cell.name}/hardsigmoid", alpha=float(self.alpha),
                         beta=float(self.beta))


@ACTIVATIONS.register("HardSwish")
class HardSwish(ActivationFunction):
    """**n2d2py extension, not in N2D2**: ``x · clip(x/6 + 1/2, 0, 1)`` (MobileNet-v3's h-swish)."""

    def __call__(self, x):
        return F.hard_swish(x)

    def export_onnx(self, onnx, cell, y):
        return onnx.node("HardSwish", [y], f"{cell.name}/hardswish")


@ACTIVATIONS.register("GELU")
class GELU(ActivationFunction):
    """**n2d2py extension, not in N2D2**: ``x · Φ(x)`` (Φ: the standard normal CDF), or with
    ``Approximate=Tanh`` ``0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`` (PyTorch's ``gelu``)."""
    approximate = Key("Approximate", enum("None", "Tanh"), "None")

    def __call__(self, x):
        return F.gelu(x, self.approximate.lower())

    def export_onnx(self, onnx, cell, y):
        """Erf (or Tanh) and arithmetic: ONNX has a Gelu operator only from opset 20."""
        n = cell.name
        if self.approximate == "Tanh":
            cube = onnx.node("Mul", [y, onnx.node("Mul", [y, y], f"{n}/square")], f"{n}/cube")
            inner = onnx.node("Add", [y, onnx.node("Mul", [cube, onnx.const(
                f"{n}/cubic", GELU_CUBIC)], f"{n}/cubic_term")], f"{n}/inner")
            t = onnx.node("Tanh", [onnx.node("Mul", [inner, onnx.const(
                f"{n}/sqrt_2_over_pi", SQRT_2_OVER_PI)], f"{n}/scaled")],
                f"{n}/tanh")
        else:
            t = onnx.node("Erf", [onnx.node("Mul", [y, onnx.const(
                f"{n}/rsqrt2", 1.0 / math.sqrt(2.0))], f"{n}/scaled")], f"{n}/erf")
        half = onnx.node("Mul", [y, onnx.const(f"{n}/half", 0.5)], f"{n}/half_x")
        return onnx.node("Mul", [half, onnx.node("Add", [t, onnx.const(f"{n}/one", 1.0)],
                                                 f"{n}/one_plus")], f"{n}/gelu")
