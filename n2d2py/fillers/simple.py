"""Fillers with fixed distributions: ConstantFiller, NormalFiller, UniformFiller, as N2D2's."""
import numpy

from ..ini.convert import to_float
from ..params import Key
from .base import FILLERS, Filler


@FILLERS.register("ConstantFiller")
class ConstantFiller(Filler):
    """Every element equals ``Value`` (required: N2D2 has no default)."""
    value = Key("Value", to_float)

    def _draw(self, shape, fan_in, fan_out, rng):
        return numpy.full(shape, self.value)


@FILLERS.register("NormalFiller")
class NormalFiller(Filler):
    """N(Mean, StdDev²). N2D2's default for Conv/Deconv/Fc weights and biases is N(0, 0.05²)."""
    mean = Key("Mean", to_float, default=0.0)
    std_dev = Key("StdDev", to_float, default=1.0)

    def _draw(self, shape, fan_in, fan_out, rng):
        return rng.normal(self.mean, self.std_dev, shape)


@FILLERS.register("UniformFiller")
class UniformFiller(Filler):
    """U[Min, Max]."""
    min = Key("Min", to_float, default=0.0)
    max = Key("Max", to_float, default=1.0)

    def _draw(self, shape, fan_in, fan_out, rng):
        return rng.uniform(self.min, self.max, shape)


def default_filler():
    """The filler N2D2 gives Conv, Deconv and Fc weights and biases when none is set."""
    return NormalFiller(mean=0.0, std_dev=0.05)
