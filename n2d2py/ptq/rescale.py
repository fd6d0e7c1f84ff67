"""How a layer's real rescale factors f_o become what the integer engine applies
(``--act-rescaling-mode``, N2D2's ``approximateActivationScaling``):

* ``Floating-point``: f_o stored as float32, ``y = round(acc·f_o)`` (half away from zero).
* ``Fixed-point16`` / ``Fixed-point32``: ``y = (acc·M_o + 2^(n−1)) >> n`` with one n per layer,
  the largest that keeps every M_o = round(f_o·2^n) below 2^15 (resp. 2^31), at most 50, and
  (n2d2py) every product acc·M_o below 2^62, which wide accumulators (16-bit codes) need. A
  factor of 2^15 or more sends a Fixed-point16 layer to Fixed-point32 (as N2D2 does); 2^31 or
  more has no fixed-point form (use Floating-point).
* ``Single-shift``: ``y = (acc + 2^(e−1)) >> e`` with 2^−e the power of two just below f_o, or
  the one above when that is closer than 2 %: the weights and bias of the channel are divided by
  p_o = 2^−e/f_o (1 ≤ p_o < 2) before rounding, so the rescale is exact and the loss is the
  weights' resolution (log2 p_o bits). A factor above 1 has no shift form: N2D2 silently sends
  such a layer to Fixed-point16; n2d2py refuses it and names the modes that work.
* ``Double-shift``: ``y = (acc + acc·2^d + 2^(e2−1)) >> e2``, i.e. acc·(2^−e1 + 2^−e2) with
  d = e2 − e1, N2D2's two-term approximation (``qat.scaling.power_of_two_divs``), compensated in
  the weights as Single-shift's (p_o ≥ 1; 1 when the sum is within 2 % below f_o).

``Approximation.error`` is the largest relative error of the applied factor against f_o (after
the shift compensation).
"""
import math

import numpy

from ..errors import N2D2Error
from ..qat.scaling import FRACTIONAL_BITS, fixed_point_multiplier, power_of_two_divs, single_shift

__all__ = ["Approximation", "approximate", "FIXED_LIMITS", "MAX_FRACTIONAL_BITS"]

F32 = numpy.float32
FIXED_LIMITS = {"Fixed-point16": 2 ** 15 - 1, "Fixed-point32": 2 ** 31 - 1}
MAX_FRACTIONAL_BITS = 50


class Approximation:
    """``S`` (float32 factors the rescaling stores), ``mode`` (the one applied: a Fixed-point16
    layer may become Fixed-point32), ``p`` (Single-shift compensations, else None),
    ``fractional_bits`` (n of the fixed-point modes), ``error``, ``notice`` (None or a line)."""

    def __init__(self, S, mode, p=None, fractional_bits=FRACTIONAL_BITS, notice=None):
        self.S, self.mode, self.p = S, mode, p
        self.fractional_bits, self.notice = int(fractional_bits), notice

    def applied(self):
        """The factor each channel really gets, the compensation of the weights included."""
        S = self.S.astype(numpy.float64)
        if self.mode == "Single-shift":
            e = numpy.array([single_shift(s) for s in self.S], numpy.float64)
            return 2.0 ** -e / self.p
        if self.mode == "Double-shift":
            e = numpy.array([power_of_two_divs(s, 2)[0] for s in self.S], numpy.float64)
            return (2.0 ** -e).sum(axis=1) / self.p
        if self.mode.startswith("Fixed-point"):
            M = numpy.array([fixed_point_multiplier(s, self.fractional_bits) for s in self.S],
                            numpy.float64)
            return M / 2.0 ** self.fractional_bits
        return S

    def describe(self):
        if self.mode == "Single-shift":
            e = [single_shift(s) for s in self.S]
            return f"shift {min(e)}..{max(e)}" if min(e) != max(e) else f"shift {e[0]}"
        if self.mode == "Double-shift":
            e = sorted({tuple(power_of_two_divs(s, 2)[0]) for s in self.S})
            return "2^-" + " + 2^-".join(map(str, e[0])) + ("" if len(e) == 1 else " ...")
        if self.mode.startswith("Fixed-point"):
            return f"{self.mode[-2:]}-bit M / 2^{self.fractional_bits}"
        return "float"


def approximate(name, f, mode, acc_bound=0):
    """The ``Approximation`` of the factors ``f`` (array, > 0) of layer ``name`` in ``mode``;
    ``acc_bound``: the largest |accumulator| (fixed-point products must stay within int64)."""
    S = F32(numpy.asarray(f, numpy.float64))
    if mode == "Floating-point":
        return Approximation(S, mode)
    if mode in ("Single-shift", "Double-shift"):
        top = float(S.max())
        if top > 1.0:
            raise N2D2Error(f"[{name}] rescale factor {top:.4g} > 1: {mode} only divides "
                            f"by powers of two; use --act-rescaling-mode Fixed-point16 (N2D2 "
                            f"switches this layer to it), Fixed-point32 or Floating-point")
        if mode == "Double-shift":   # N2D2's precision: the sum over f, >= 1 (1 within 2 %)
            p = numpy.array([power_of_two_divs(s, 2)[1] for s in S], numpy.float64)
            return Approximation(S, mode, p)
        e = numpy.array([single_shift(s) for s in S], numpy.float64)
        p = 2.0 ** -e / S.astype(numpy.float64)
        return Approximation(S, mode, numpy.where(p < 1.0, 1.0, p))
    notice = None
    top = float(S.max())
    if mode == "Fixed-point16" and top >= FIXED_LIMITS[mode]:
        notice = (f"Notice: [{name}] rescale factor {top:.4g} does not fit Fixed-point16: this "
                  f"layer uses Fixed-point32")
        mode = "Fixed-point32"
    limit = FIXED_LIMITS[mode]
    if top >= limit:
        raise N2D2Error(f"[{name}] rescale factor {top:.4g} does not fit {mode} (below "
                        f"{limit}): use --act-rescaling-mode Floating-point")
    bits = MAX_FRACTIONAL_BITS if top <= 0 else \
        min(int(math.floor(math.log(limit / top) / math.log(2))), MAX_FRACTIONAL_BITS)
    if acc_bound and top > 0:   # acc·M < 2^62 (N2D2's int64 product would wrap at 16 bits)
        room = int(math.floor(math.log2(2.0 ** 62 / (float(acc_bound) * top))))
        bits = min(bits, room)
    return Approximation(S, mode, None, max(bits, 0), notice)
