"""``CalibratedNet``: the result of post-training quantization, a ``qat.engine.FusedNet`` (the
same integer engine, exports and ``weights_quantized/`` as ``--qat-sat``) with

* its input coding: x -> trunc(x·Q_env/R) saturated to the input's codes (N2D2 truncates);
* ``fake_quantized()``: the same network seen through the nodes' float twins (N2D2's
  simulator: the codes held in float64 through the float functions, ``nodes.py``);
* ``table``: one row per layer (range, threshold, step, rescale and its error), and the
  statistics it came from.
"""
import copy

import numpy

from ..backend import get_xp
from ..errors import N2D2Error
from ..qat.engine import FusedNet
from .nodes import Simulated

__all__ = ["CalibratedNet"]

F32 = numpy.float32


class CalibratedNet(FusedNet):
    """See the module docstring; built by ``calibration.calibrate``."""

    @classmethod
    def from_builder(cls, builder, net, options, stats):
        targets = []
        for target in net.targets:
            fused = copy.deepcopy(target)
            fused.cell = builder.alias[target.cell]
            targets.append(fused)
        self = cls(builder.nodes, builder.input, targets, net.sp, options, builder.constants,
                   builder.alias)
        self.input_format, self.formats = builder.formats["env"], builder.formats
        self.rows, self.notices, self.stats = builder.rows, builder.notices, stats
        self.simulated = False
        self.equalization = None   # calibration.calibrate: the cross-layer equalization done
        return self

    def input_codes(self, x):
        """Stimuli -> input codes: trunc(x/R·Q_env) in float32 as N2D2, saturated."""
        xp = get_xp(x)
        fmt = self.input_format
        top = fmt.hi
        R = F32(fmt.step * top)
        y = xp.asarray(x, dtype=xp.float32)
        if R != F32(1.0):
            y = y / R
        codes = xp.trunc(y * F32(top))
        if not bool(xp.isfinite(codes).all()):
            raise N2D2Error("stimuli with NaN or infinite values cannot be quantized")
        return xp.clip(codes, fmt.lo, fmt.hi).astype(xp.int32)

    def fake_quantized(self):
        """This network through its nodes' float twins (``nodes.Simulated``): ``test`` and
        ``forward`` then give N2D2's simulator's numbers."""
        twin = copy.copy(self)
        twin.nodes = {name: Simulated(node) for name, node in self.nodes.items()}
        twin.simulated = True
        return twin
