"""Fillers (``WeightsFiller=``, ``BiasFiller=``): ``FILLERS.get("XavierFiller")(**keys).fill(...)``
(docs/INI.md §8). ``default_filler()`` is N2D2's NormalFiller(0, 0.05)."""
from .base import FILLERS, Filler, fans
from .simple import ConstantFiller, NormalFiller, UniformFiller, default_filler
from .variance import HeFiller, XavierFiller

__all__ = ["FILLERS", "Filler", "fans", "default_filler", "ConstantFiller", "NormalFiller",
           "UniformFiller", "XavierFiller", "HeFiller"]
