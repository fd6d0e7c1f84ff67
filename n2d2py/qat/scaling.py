"""Activation rescaling of the fused network: accumulator -> unsigned activation code
(spec/qat.md §5.4 "What the fused Conv computes", §5.5, §8 pitfalls 1, 10, 11).

Every fused layer ends with one ``ActivationRescaling``. Its input is the exact integer
accumulator ``acc`` of the integer engine, expressed in the *lowered* domain: the N2D2-domain
pre-activation is ``t = acc / D + B`` where ``D`` is the layer's weight denominator (1 when the
weights are integers, e.g. ``-wt-round-mode RINTF``; see ``fuse.py``) and ``B`` the fused bias.
Then, per output channel o (``S``, ``C`` as N2D2's fusion computes them):

==================  ================================================================
Floating-point      ``y = round(clip(t, 0, C) · S)``
Fixed-point16/32    ``y = (llround(clip(t, 0, C)) · S_fix + 2^15) >> 16``,
                    ``S_fix = round(S · 2^16)`` (both modes use 16 fractional bits)
Single-shift        ``y = (llround(clip(t, 0, C)) + 2^(e−1)) >> e``,
                    e from ``single_shift(S)`` (N2D2's CPU kernel skips the clip)
==================  ================================================================

``round``/``llround`` are half away from zero (C ``round``); ``>>`` is an arithmetic shift (a
floor). The result is saturated to ``[lo, hi]``. When ``D == 1`` and B and C are integers
(``-b-round-mode``/``-c-round-mode RINTF``) the fixed-point and shift paths are pure int64
arithmetic; otherwise ``t`` is a float64 (exact for integer ``acc``: |acc| < 2^53, checked by the
engine) that ``llround`` turns into an integer before the multiply, as N2D2's simulation does.
Floating-point mode multiplies in float64 (N2D2: float32), which only moves exact ties.
"""
import math

import numpy

from ..errors import N2D2Error
from ..quantizers.rounding import rint, round_half_away

__all__ = ["ACT_SCALING_MODES", "ROUND_MODES", "parse_act_scaling_mode", "parse_round_mode",
           "round_half_away", "rintf", "llround", "single_shift", "fixed_point_multiplier",
           "ActivationRescaling", "FRACTIONAL_BITS"]

#: N2D2 spelling -> accepted aliases (case-insensitive, '-', '_' and ' ' ignored).
ACT_SCALING_MODES = {
    "Floating-point": ("floatingpoint", "float", "floatmult", "fp"),
    "Fixed-point16": ("fixedpoint16", "fixedmult16", "fixed16"),
    "Fixed-point32": ("fixedpoint32", "fixedmult32", "fixed32", "fixedpoint", "fixed"),
    "Single-shift": ("singleshift", "shift"),
    "Double-shift": ("doubleshift",),
}
ROUND_MODES = {"NONE": ("none", "no", "off"), "RINTF": ("rintf", "rint", "round")}
FRACTIONAL_BITS = 16  # FIXED_MULT16 and FIXED_MULT32 alike (pitfall 11)


def _parse(value, table, what):
    key = str(value).lower().replace("-", "").replace("_", "").replace(" ", "")
    for name, aliases in table.items():
        if key == name.lower().replace("-", "") or key in aliases:
            return name
    raise N2D2Error(f"unknown {what} '{value}': expected one of {', '.join(table)}")


def parse_act_scaling_mode(value):
    """``-act-rescaling-mode`` value -> N2D2 spelling (``Fixed-point32``, ...)."""
    return _parse(value, ACT_SCALING_MODES, "activation rescaling mode")


def parse_round_mode(value):
    """``-wt-round-mode`` / ``-b-round-mode`` / ``-c-round-mode`` value -> ``NONE`` | ``RINTF``."""
    return _parse(value, ROUND_MODES, "round mode")


def rintf(x):
    """C ``rintf``: float32, half to even (spec §0). Array or scalar in, float32 out."""
    return rint(numpy, numpy.asarray(x, dtype=numpy.float32))


def llround(xp, x):
    """C ``llround``: half away from zero, to int64."""
    return round_half_away(xp, x).astype(xp.int64)


def single_shift(S):
    """N2D2's ``approximateScalingWithPowerOf2Divs(S, 1)`` (§5.4): the shift e with 2^−e ≈ S.

    e0 = ceil(log2(1/S)); keep e0 if 2^−e0 / S ≥ 0.98, else e0 − 1. S ≤ 0 gives 0. Needs S ≤ 1.
    """
    S = float(S)
    if S <= 0.0:
        return 0
    if S > 1.0:
        raise N2D2Error(f"Single-shift rescaling needs a scale <= 1, got {S:.6g}")
    e0 = math.ceil(math.log2(1.0 / S))
    return e0 if 2.0 ** -e0 / S >= 0.98 else e0 - 1


def fixed_point_multiplier(S, fractional_bits=FRACTIONAL_BITS):
    """``int32(std::round(S · 2^16))`` (§5.4)."""
    return int(round_half_away(numpy, numpy.float64(S) * 2.0 ** fractional_bits))


def _round_half_away_inplace(xp, v):
    """C ``round`` of a float64 array that the caller owns (overwritten): the same values as
    ``round_half_away`` with fewer temporaries (|v| − floor(|v|) is exact)."""
    a = xp.abs(v)
    fl = xp.floor(a)
    a -= fl
    fl += a >= 0.5
    return xp.copysign(fl, v, out=v)


class ActivationRescaling:
    """Per-channel rescale, clip and saturation of one fused layer (see the module docstring).

    ``D`` scalar float (weight denominator), ``B``, ``C``, ``S`` per channel (float32 values as
    N2D2 stores them; ``B`` None = 0, ``C`` None = no clip, ``S`` None = no rescale: the output is
    ``t`` itself, float64 logits), ``mode`` N2D2 spelling, ``lo``/``hi`` the saturation range,
    ``clip_in_shift``: False reproduces N2D2's CPU single-shift (clip ignored).
    """

    def __init__(self, D, B, C, S, mode, lo, hi, clip_in_shift=True):
        self.D = float(D)
        self.B = None if B is None else numpy.asarray(B, numpy.float32)
        self.C = None if C is None else numpy.asarray(C, numpy.float32)
        self.S = None if S is None else numpy.asarray(S, numpy.float32)
        self.mode, self.lo, self.hi = mode, lo, hi
        self.clip_in_shift = clip_in_shift
        self.mult = self.shift = None
        if self.S is not None and mode in ("Fixed-point16", "Fixed-point32"):
            self.mult = numpy.array([fixed_point_multiplier(s) for s in self.S], numpy.int64)
        if self.S is not None and mode == "Single-shift":
            self.shift = numpy.array([single_shift(s) for s in self.S], numpy.int64)

    @property
    def integral(self):
        """True when t = acc + B with integer B and C: the shift/fixed paths are int64 only."""
        return self.D == 1.0 and all(v is None or bool(numpy.all(v == numpy.round(v)))
                                     for v in (self.B, self.C))

    def _channel(self, xp, values, ndim, dtype):
        shape = (1, -1) + (1,) * (ndim - 2)
        return xp.asarray(values, dtype=dtype).reshape(shape)

    def pre_activation(self, xp, acc):
        """t = acc / D + B in float64 (the N2D2-domain accumulator); a new array."""
        t = acc.astype(xp.float64)   # always a copy: the in-place steps below own it
        if self.D != 1.0:
            t /= self.D
        if self.B is not None:
            t += self._channel(xp, self.B, acc.ndim, xp.float64)
        return t

    def _clip(self, xp, t, ndim, out=None):
        if self.C is None:
            return t
        C = self._channel(xp, self.C, ndim, t.dtype)
        # CPU Clip with C <= 0 clamps to [C, 0]; C >= 0 whenever α > 0 (pitfall 10)
        y = xp.maximum(t, xp.minimum(C, 0), out=out)
        return xp.minimum(y, xp.maximum(C, 0), out=y)

    def __call__(self, xp, acc):
        """acc: array of integers (N, O, ...), int64 or float holding exact integers ->
        output array (int32 codes, or float64 logits)."""
        if self.S is None:
            return self.pre_activation(xp, acc)
        if self.mode == "Floating-point":
            t = self.pre_activation(xp, acc)
            z = self._clip(xp, t, acc.ndim, out=t)
            z *= self._channel(xp, self.S, acc.ndim, xp.float64)
            y = _round_half_away_inplace(xp, z)
        else:
            z = self._integer_input(xp, acc)
            if self.mult is not None:
                y = (z * self._channel(xp, self.mult, acc.ndim, xp.int64)
                     + (1 << (FRACTIONAL_BITS - 1))) >> FRACTIONAL_BITS
            else:
                e = self._channel(xp, self.shift, acc.ndim, xp.int64)
                half = xp.where(e > 0, xp.left_shift(xp.int64(1), xp.maximum(e - 1, 0)), 0)
                y = (z + half) >> e
        return xp.clip(y, self.lo, self.hi).astype(xp.int32)

    def _integer_input(self, xp, acc):
        """llround(clip(t, 0, C)) as int64 (no clip for N2D2's CPU single-shift)."""
        clip = self.mode != "Single-shift" or self.clip_in_shift
        if self.integral:
            z = acc.astype(xp.int64)
            if self.B is not None:
                z = z + self._channel(xp, self.B, acc.ndim, xp.int64)
            if clip and self.C is not None:
                C = self._channel(xp, self.C, acc.ndim, xp.int64)
                z = xp.minimum(xp.maximum(z, xp.minimum(C, 0)), xp.maximum(C, 0))
            return z
        t = self.pre_activation(xp, acc)
        return llround(xp, self._clip(xp, t, acc.ndim) if clip else t)

    def describe(self):
        """JSON-ready dict (export.py's scales-and-clips file)."""
        out = {"mode": self.mode, "weight_denominator": self.D, "saturation": [self.lo, self.hi],
               "bias": None if self.B is None else [float(v) for v in self.B],
               "clip": None if self.C is None else [float(v) for v in self.C],
               "scale": None if self.S is None else [float(v) for v in self.S]}
        if self.mult is not None:
            out["fixed_point_multiplier"] = [int(v) for v in self.mult]
            out["fractional_bits"] = FRACTIONAL_BITS
        if self.shift is not None:
            out["shift"] = [int(v) for v in self.shift]
            out["clip_in_shift"] = self.clip_in_shift
        return out
