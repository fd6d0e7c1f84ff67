"""Activation functions (``ActivationFunction=`` + ``ActivationFunction.*``, spec/ini.md §2.8.2),
registered by name in ``ACTIVATIONS`` (the ``Type=Activation`` cell is in ``activation.py``).

An activation is a small ``Parameterizable`` callable ``Variable -> Variable``; its options are
read from the cell section with the ``ActivationFunction.`` prefix stripped. ``with_loss`` marks
``LogisticWithLoss``: the DeepNet then uses a sigmoid cross-entropy on the pre-activation
(``cell.last_logits``) instead of back-propagating through the sigmoid (spec §2.6).
"""
from .. import functions as F
from ..ini.convert import to_float
from ..params import Key, Parameterizable, Registry

ACTIVATIONS = Registry("activation function")


class ActivationFunction(Parameterizable):
    with_loss = False

    def __call__(self, x):
        raise NotImplementedError

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


@ACTIVATIONS.register("Rectifier")
class Rectifier(ActivationFunction):
    """ReLU with ``LeakSlope`` for x < 0 and an optional upper ``Clipping`` (ReLU6 = 6.0)."""
    leak_slope = Key("LeakSlope", to_float, 0.0)
    clipping = Key("Clipping", to_float, 0.0)

    def __call__(self, x):
        return F.relu(x, self.leak_slope, self.clipping)


@ACTIVATIONS.register("Tanh")
class Tanh(ActivationFunction):
    """``tanh(Alpha * x)``."""
    alpha = Key("Alpha", to_float, 1.0)

    def __call__(self, x):
        return F.tanh(x, self.alpha)


@ACTIVATIONS.register("TanhLeCun")
class TanhLeCun(Tanh):
    """N2D2's TanhLeCun: ``tanh(1.7159 * 2/3 * x)`` with no 1.7159 output gain (spec §8 item 16)."""
    alpha = Key("Alpha", to_float, 1.7159 * 2.0 / 3.0)


@ACTIVATIONS.register("Logistic")
class Logistic(ActivationFunction):
    def __call__(self, x):
        return F.sigmoid(x)


@ACTIVATIONS.register("LogisticWithLoss")
class LogisticWithLoss(Logistic):
    """Sigmoid whose derivative the loss skips (cross-entropy on the logits, spec §2.6)."""
    with_loss = True


@ACTIVATIONS.register("Saturation")
class Saturation(ActivationFunction):
    """Clamp to [-Threshold, Threshold]."""
    threshold = Key("Threshold", to_float, 1.0)

    def __call__(self, x):
        return F.saturation(x, self.threshold)


@ACTIVATIONS.register("Softplus")
class Softplus(ActivationFunction):
    def __call__(self, x):
        return F.softplus(x)


@ACTIVATIONS.register("Swish")
class Swish(ActivationFunction):
    def __call__(self, x):
        return F.swish(x)
