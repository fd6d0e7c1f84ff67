"""``n2d2.filler``: Constant, Normal, Uniform, Xavier, He (N2D2's names) over ``fillers/``."""
from ..fillers import ConstantFiller, HeFiller, NormalFiller, UniformFiller, XavierFiller
from .view import View


class Filler(View):
    """Base of the fillers."""


class Constant(Filler):
    """``value``."""
    _core_class = ConstantFiller


class Normal(Filler):
    """``mean`` (0.0), ``std_dev`` (1.0)."""
    _core_class = NormalFiller


class Uniform(Filler):
    """``min`` (0.0), ``max`` (1.0)."""
    _core_class = UniformFiller


class Xavier(Filler):
    """``variance_norm`` (FanIn, Average, FanOut), ``distribution`` (Uniform, Normal),
    ``scaling``."""
    _core_class = XavierFiller


class He(Filler):
    """``variance_norm``, ``mean_norm``, ``scaling``."""
    _core_class = HeFiller


__all__ = ["Filler", "Constant", "Normal", "Uniform", "Xavier", "He"]
