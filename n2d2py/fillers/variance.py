"""Fan-scaled fillers: XavierFiller and HeFiller, as N2D2's.

``n`` is FanIn, Average ((fan_in+fan_out)/2) or FanOut of the tensor being filled (per parent,
see ``fillers.base``). ``Scaling=0`` gives zeros (ZeroInit residual branches).
"""
import math

from ..ini.convert import enum, to_float
from ..params import Key
from .base import FILLERS, Filler, variance_norm_count

_VARIANCE_NORMS = ("FanIn", "Average", "FanOut")


@FILLERS.register("XavierFiller")
class XavierFiller(Filler):
    """Uniform: ``Scaling·U[−sqrt(3/n), sqrt(3/n)]``; Normal: ``Scaling·N(0, 1/n)``."""
    variance_norm = Key("VarianceNorm", enum(*_VARIANCE_NORMS), default="FanIn")
    distribution = Key("Distribution", enum("Uniform", "Normal"), default="Uniform")
    scaling = Key("Scaling", to_float, default=1.0)

    def _draw(self, shape, fan_in, fan_out, rng):
        n = variance_norm_count(self.variance_norm, fan_in, fan_out)
        if self.distribution == "Uniform":
            bound = math.sqrt(3.0 / n)
            return self.scaling * rng.uniform(-bound, bound, shape)
        return self.scaling * rng.normal(0.0, math.sqrt(1.0 / n), shape)


@FILLERS.register("HeFiller")
class HeFiller(Filler):
    """``Scaling·N(MeanNorm/n, 2/n)``: always normal, whatever a Distribution key would say."""
    variance_norm = Key("VarianceNorm", enum(*_VARIANCE_NORMS), default="FanIn")
    mean_norm = Key("MeanNorm", to_float, default=0.0)
    scaling = Key("Scaling", to_float, default=1.0)

    def _draw(self, shape, fan_in, fan_out, rng):
        n = variance_norm_count(self.variance_norm, fan_in, fan_out)
        return self.scaling * rng.normal(self.mean_norm / n, math.sqrt(2.0 / n), shape)
