"""``n2d2.activation``: Linear, Rectifier, Tanh, Softplus, ... (N2D2's names) over the
activation functions of ``cells/activation_functions.py``; ``quantizer=`` takes an activation
quantizer (``SATAct``, ``LSQAct``), which the cell runs after the function (its ``QAct``)."""
from ..cells import activation_functions as functions
from .errors import check_type
from .view import View


class ActivationFunction(View):
    """Base of the activations; ``quantizer``: an ``ActivationQuantizer`` or None."""

    def __init__(self, quantizer=None, **config_parameters):
        super().__init__(**config_parameters)
        self._quantizer = None
        self.quantizer = quantizer

    def _adopt(self):
        self._quantizer = None

    @property
    def quantizer(self):
        return self._quantizer

    @quantizer.setter
    def quantizer(self, quantizer):
        from .quantizer import ActivationQuantizer
        if quantizer is not None:
            check_type(self._describe(), "quantizer", quantizer, ActivationQuantizer,
                       "an activation quantizer (SATAct, LSQAct)")
        self._quantizer = quantizer

    def has_quantizer(self):
        return self._quantizer is not None

    def get_quantizer(self):
        return self._quantizer

    def set_quantizer(self, quantizer):
        self.quantizer = quantizer

    def __str__(self):
        text = super().__str__()
        return text if self._quantizer is None else f"{text[:-1]}, quantizer={self._quantizer})"


class Linear(ActivationFunction):
    """``clipping`` (0: none)."""
    _core_class = functions.Linear


class Rectifier(ActivationFunction):
    """ReLU: ``leak_slope``, ``clipping``."""
    _core_class = functions.Rectifier


class Tanh(ActivationFunction):
    """``alpha``."""
    _core_class = functions.Tanh


class Softplus(ActivationFunction):
    _core_class = functions.Softplus


class Saturation(ActivationFunction):
    """``threshold``."""
    _core_class = functions.Saturation


class Logistic(ActivationFunction):
    _core_class = functions.Logistic


class Swish(ActivationFunction):
    _core_class = functions.Swish


def activation_of(cell):
    """The view of a built cell's activation and activation quantizer (None: no activation)."""
    if cell.activation is None:
        return None
    from .quantizer import ActivationQuantizer
    view = ActivationFunction.from_core(cell.activation)
    if cell.qact is not None:
        view._quantizer = ActivationQuantizer.from_cell(cell)
    return view


__all__ = ["ActivationFunction", "Linear", "Rectifier", "Tanh", "Softplus", "Saturation",
           "Logistic", "Swish"]
