"""Filler: how a weight or bias tensor is initialised (``WeightsFiller=``, ``BiasFiller=``,
docs/INI.md §8).

``fill(shape, fan_in, fan_out, rng, xp)`` draws on the CPU from the NumPy Generator ``rng`` (so a
seed gives the same network on NumPy and CuPy), casts to float32, then moves to ``xp``.

Fan rule (N2D2's, per **parent** tensor: a Conv/Fc cell has one weight tensor per input):
  * Conv weight (O, C', kH, kW), C' = C/groups for a group map, the full C otherwise:
    ``fan_in = kW·kH·C'``, ``fan_out = kW·kH·O``;
  * Fc weight (O, I): ``fan_in = I``, ``fan_out = O``.
``fans(shape)`` computes both from the weight tensor's shape.
"""
import numpy

from ..backend import DTYPE
from ..params import Parameterizable, Registry

FILLERS = Registry("filler")


def fans(shape):
    """``(fan_in, fan_out)`` of a weight tensor (O, C, kH, kW), (O, I) or (O,)."""
    shape = tuple(int(n) for n in shape)
    if len(shape) < 2:
        return (1, shape[0] if shape else 1)
    receptive = int(numpy.prod(shape[2:], dtype=numpy.int64))
    return shape[1] * receptive, shape[0] * receptive


def variance_norm_count(mode, fan_in, fan_out):
    """``n`` of Xavier/He: FanIn, Average ((in+out)/2) or FanOut."""
    return {"FanIn": fan_in, "Average": (fan_in + fan_out) / 2.0, "FanOut": fan_out}[mode]


class Filler(Parameterizable):
    """Base of every filler. Subclasses write ``_draw(shape, fan_in, fan_out, rng)`` -> NumPy."""

    def fill(self, shape, fan_in=None, fan_out=None, rng=None, xp=numpy):
        """A float32 array of ``shape`` on ``xp``; fans default to ``fans(shape)``."""
        if fan_in is None or fan_out is None:
            default_in, default_out = fans(shape)
            fan_in = default_in if fan_in is None else fan_in
            fan_out = default_out if fan_out is None else fan_out
        if rng is None:
            rng = numpy.random.default_rng()
        values = numpy.asarray(self._draw(tuple(shape), fan_in, fan_out, rng), dtype=DTYPE)
        return values if xp is numpy else xp.asarray(values)

    def _draw(self, shape, fan_in, fan_out, rng):
        raise NotImplementedError

    def describe(self):
        return type(self).type_name
