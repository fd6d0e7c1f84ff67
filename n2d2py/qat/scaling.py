"""Activation rescaling of the fused network: accumulator -> unsigned activation code
(docs/FUSION.md), with N2D2's rounding (half away from zero), clip and fixed-point rules.

Every fused layer ends with one ``ActivationRescaling``. Its input is the exact integer
accumulator ``acc`` of the integer engine, expressed in the *lowered* domain: the N2D2-domain
pre-activation is ``t = acc / D + B`` where ``D`` is the layer's weight denominator (1 when the
weights are integers, e.g. ``-wt-round-mode RINTF``; see ``fuse.py``) and ``B`` the fused bias.
Then, per output channel o (``S``, ``C`` as N2D2's fusion computes them):

==================  ================================================================
Floating-point      ``y = round(clip(t, 0, C) · S)``
Fixed-point16/32    ``y = (llround(clip(t, 0, C)) · S_fix + 2^(n−1)) >> n``,
                    ``S_fix = round(S · 2^n)``, n = ``fractional_bits``: 16 for the QAT
                    fusion (both modes, as N2D2's DeepNetQAT), per layer for PTQ
Single-shift        ``y = (llround(clip(t, 0, C)) + 2^(e−1)) >> e``,
                    e from ``single_shift(S)`` (N2D2's CPU kernel skips the clip)
==================  ================================================================

That is N2D2's simulation, which ``--n2d2-compat`` reproduces (and ``Floating-point`` uses).
Without it, the integer modes are computed by ``IntegerRescaling``: integers from the
accumulator to the code, nothing in floating point (see its docstring), which the C export
writes operation for operation.

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

__all__ = ["ACT_SCALING_MODES", "ROUND_MODES", "INTEGER_MODES", "parse_act_scaling_mode",
           "parse_round_mode", "round_half_away", "rintf", "llround", "single_shift",
           "power_of_two_divs", "fixed_point_multiplier", "ActivationRescaling",
           "IntegerForm", "IntegerRescaling", "FRACTIONAL_BITS"]

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
#: the modes whose rescaling is integer arithmetic
INTEGER_MODES = ("Fixed-point16", "Fixed-point32", "Single-shift", "Double-shift")


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
    """C ``rintf``: float32, half to even. Array or scalar in, float32 out."""
    return rint(numpy, numpy.asarray(x, dtype=numpy.float32))


def llround(xp, x):
    """C ``llround``: half away from zero, to int64."""
    return round_half_away(xp, x).astype(xp.int64)


def single_shift(S):
    """N2D2's ``approximateScalingWithPowerOf2Divs(S, 1)``: the shift e with 2^−e ≈ S.

    e0 = ceil(log2(1/S)); keep e0 if 2^−e0 / S ≥ 0.98, else e0 − 1. S ≤ 0 gives 0. Needs S ≤ 1.
    """
    S = float(S)
    if S <= 0.0:
        return 0
    if S > 1.0:
        raise N2D2Error(f"Single-shift rescaling needs a scale <= 1, got {S:.6g}")
    e0 = math.ceil(math.log2(1.0 / S))
    return e0 if 2.0 ** -e0 / S >= 0.98 else e0 - 1


def power_of_two_divs(S, divisions):
    """N2D2's ``approximateScalingWithPowerOf2Divs(S, n)``: exponents p_1 <= ... <= p_n with
    Σ 2^−p_i ≈ S, and the precision Σ 2^−p_i / S it reaches (1.0 when within 2 %).

    Each step takes the largest power of two not above what is left (p = ceil(log2(1/left)));
    an exact power of two splits into two halves; when the sum stays below 98 % of S, the last
    exponent is lowered by one (the sum then overshoots). ``divisions`` = 1 is ``single_shift``;
    2 gives Double-shift's (p_1, p_2). Needs 0 < S <= 1.
    """
    S = float(S)
    if not 0.0 < S <= 1.0:
        raise N2D2Error(f"power-of-two rescaling needs a scale in (0, 1], got {S:.6g}")
    exponents, precision = [], 0.0
    for _ in range(divisions):
        if precision == 1.0:
            exponents[-1] += 1
            exponents.append(exponents[-1])
        else:
            p = math.ceil(math.log2(1.0 / (S * (1.0 - precision))))
            precision += 1.0 / (S * 2.0 ** p)
            exponents.append(p)
    if precision >= 0.98:
        precision = 1.0
    elif precision < 1.0:
        precision += 1.0 / (S * 2.0 ** exponents[-1])
        exponents[-1] -= 1
    return exponents, precision


def fixed_point_multiplier(S, fractional_bits=FRACTIONAL_BITS):
    """``int32(std::round(S · 2^16))``, as N2D2."""
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
    ``clip_in_shift``: False reproduces N2D2's CPU single-shift (clip ignored);
    ``fractional_bits``: n of the fixed-point modes (``S_fix = round(S·2^n)``).
    """

    def __init__(self, D, B, C, S, mode, lo, hi, clip_in_shift=True,
                 fractional_bits=FRACTIONAL_BITS):
        self.D = float(D)
        self.B = None if B is None else numpy.asarray(B, numpy.float32)
        self.C = None if C is None else numpy.asarray(C, numpy.float32)
        self.S = None if S is None else numpy.asarray(S, numpy.float32)
        self.mode, self.lo, self.hi = mode, lo, hi
        self.clip_in_shift = clip_in_shift
        self.fractional_bits = int(fractional_bits)
        self.mult = self.shift = None
        if self.S is not None and mode in ("Fixed-point16", "Fixed-point32"):
            self.mult = numpy.array([fixed_point_multiplier(s, self.fractional_bits)
                                     for s in self.S], numpy.int64)
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
                n = self.fractional_bits
                y = (z * self._channel(xp, self.mult, acc.ndim, xp.int64)
                     + ((1 << (n - 1)) if n > 0 else 0)) >> n
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
            out["fractional_bits"] = self.fractional_bits
        if self.shift is not None:
            out["shift"] = [int(v) for v in self.shift]
            out["clip_in_shift"] = self.clip_in_shift
        return out

    def integer_form(self):
        """The ``IntegerForm`` of this rescaling when it is integer arithmetic from the
        accumulator on (an integer mode with ``integral`` constants: ``-b/-c-round-mode RINTF``
        and integer weights, or post-training quantization), else None (``float_reason``)."""
        if self.mode == "Floating-point" or not self.integral:
            return None
        bias = None if self.B is None else self.B.astype(numpy.int64)
        if self.S is None:
            return IntegerForm(len(bias) if bias is not None else 0, bias, None, "logits")
        clip = self.C is not None and (self.mode != "Single-shift" or self.clip_in_shift)
        C = self.C.astype(numpy.int64) if clip else None
        if self.mult is not None:
            return IntegerForm(len(self.S), bias, C, "fixed", self.lo, self.hi, mult=self.mult,
                               fractional_bits=getattr(self, "fractional_bits", FRACTIONAL_BITS))
        return IntegerForm(len(self.S), bias, C, "single", self.lo, self.hi, shift=self.shift)

    @property
    def float_reason(self):
        """Why ``integer_form`` is None (for the integer C export's refusal)."""
        if self.mode == "Floating-point":
            return ("it rescales in floating point (N2D2 rescales Fc layers in floating point "
                    "whatever the mode: --n2d2-compat keeps that)")
        return ("its pre-activation acc/D + B is a floating-point number that N2D2's simulation "
                "rounds (--n2d2-compat without --wt-, --b- and --c-round-mode RINTF)")


# -- integer-only rescaling (the integer modes without --n2d2-compat) ------------------------------
INT32_MAX = 2 ** 31 - 1
INT64_MAX = 2 ** 63 - 1
#: (largest multiplier, largest product, most fractional bits) of the fixed-point modes: a 16-bit
#: multiplier whose products stay in int32, a 32-bit one whose products need int64
FIXED_POINT = {"Fixed-point16": (2 ** 15 - 1, INT32_MAX, 30),
               "Fixed-point32": (2 ** 31 - 1, INT64_MAX, 62)}


def _half(bits):
    """2^(bits − 1), 0 for bits = 0 (the rounding term of a right shift), per element."""
    bits = numpy.asarray(bits, numpy.int64)
    return numpy.where(bits > 0, numpy.left_shift(1, numpy.maximum(bits - 1, 0)), 0)


class IntegerForm:
    """A layer's rescaling as integer operations, per output channel o (all values integers)::

        x = acc + bias[o]                               (acc: the exact integer accumulator)
        z = min(max(x, min(clip[o], 0)), max(clip[o], 0))          (no clip: z = x)
        fixed    y = (z·mult[o] + 2^(n−1)) >> n          n = fractional_bits (one per layer)
        single   y = (z + 2^(e−1)) >> e                 e = shift[o]
        double   y = (z + z·2^a + 2^(b−1)) >> b         (a, b) = shift_a[o], shift_b[o]
        logits   y = x                                  (a last layer without quantizer)
        y = min(max(y, lo), hi)

    ``>>`` is an arithmetic shift (a floor); 2^(k−1) is 0 for k = 0. The C export writes these
    operations in int32, except Fixed-point32's product z·mult, the one int64 operation
    (``int32_problem`` says where int32 would not hold, ``wide_product`` where int64 is needed).
    """

    def __init__(self, channels, bias, clip, op, lo=None, hi=None, mult=None,
                 fractional_bits=0, shift=None, shift_a=None, shift_b=None):
        as_int = lambda v: None if v is None else numpy.asarray(v, numpy.int64)  # noqa: E731
        self.channels, self.op = int(channels), op
        self.bias, self.clip = as_int(bias), as_int(clip)
        self.lo, self.hi = lo, hi
        self.mult, self.fractional_bits = as_int(mult), int(fractional_bits)
        self.shift, self.shift_a, self.shift_b = as_int(shift), as_int(shift_a), as_int(shift_b)

    @staticmethod
    def _channel(xp, values, ndim):
        return xp.asarray(values, dtype=xp.int64).reshape((1, -1) + (1,) * (ndim - 2))

    def apply(self, xp, acc):
        """acc: integers (N, O, ...) as int64, or floats holding exact integers -> codes
        (int32; int64 logits for ``op`` = "logits")."""
        x = acc.astype(xp.int64) if acc.dtype.kind in "iu" else xp.rint(acc).astype(xp.int64)
        if self.bias is not None:
            x = x + self._channel(xp, self.bias, acc.ndim)
        if self.op == "logits":
            return x
        z = x
        if self.clip is not None:
            C = self._channel(xp, self.clip, acc.ndim)
            z = xp.minimum(xp.maximum(z, xp.minimum(C, 0)), xp.maximum(C, 0))
        if self.op == "fixed":
            n = self.fractional_bits
            y = (z * self._channel(xp, self.mult, acc.ndim) + int(_half(n))) >> n
        elif self.op == "single":
            e = self._channel(xp, self.shift, acc.ndim)
            y = (z + self._channel(xp, _half(self.shift), acc.ndim)) >> e
        else:
            a = self._channel(xp, numpy.left_shift(1, self.shift_a), acc.ndim)
            b = self._channel(xp, self.shift_b, acc.ndim)
            y = (z + z * a + self._channel(xp, _half(self.shift_b), acc.ndim)) >> b
        return xp.clip(y, self.lo, self.hi).astype(xp.int32)

    # -- bounds (what the C export's integer types must hold) --------------------------------
    def x_bound(self, acc_bound):
        """Largest |acc + bias| for accumulators |acc| <= ``acc_bound``."""
        bias = int(numpy.abs(self.bias).max()) if self.bias is not None and self.bias.size else 0
        return int(acc_bound) + bias

    def z_bound(self, acc_bound):
        """Largest |z| (the clipped value the rescale multiplies or shifts)."""
        if self.clip is not None:
            return min(int(numpy.abs(self.clip).max()) if self.clip.size else 0,
                       self.x_bound(acc_bound))
        return self.x_bound(acc_bound)

    def operand_bound(self, acc_bound):
        """Largest |value| before the final shift (product or shifted sum, rounding term in)."""
        z = self.z_bound(acc_bound)
        if self.op == "fixed":
            m = int(numpy.abs(self.mult).max()) if self.mult.size else 0
            return z * m + int(_half(self.fractional_bits))
        if self.op == "single":
            return z + (int(_half(self.shift).max()) if self.shift.size else 0)
        if self.op == "double":
            a = numpy.left_shift(1, self.shift_a) + 1
            return int((z * a + _half(self.shift_b)).max()) if a.size else 0
        return 0

    @property
    def multiplier_bits(self):
        """16 when the fixed-point multipliers fit int16, else 32."""
        m = int(numpy.abs(self.mult).max()) if self.mult is not None and self.mult.size else 0
        return 16 if m <= 2 ** 15 - 1 else 32

    def wide_product(self, acc_bound):
        """Whether the fixed-point product z·mult needs int64 (it does not fit int32)."""
        return self.op == "fixed" and self.operand_bound(acc_bound) > INT32_MAX

    def int32_problem(self, acc_bound):
        """None when every value of the integer operations fits int32 (the fixed-point product
        aside when ``wide_product``, then within int64); else what overflows."""
        x = self.x_bound(acc_bound)
        if x > INT32_MAX:
            return f"its accumulator with bias can reach {x} (beyond int32)"
        operand = self.operand_bound(acc_bound)
        shifts = [v for v in (self.shift, self.shift_b) if v is not None and v.size]
        if any(int(v.max()) > 31 for v in shifts) or \
                (self.shift_a is not None and self.shift_a.size and int(self.shift_a.max()) > 30):
            return "its shifts reach 32 bits (a factor too small for int32)"
        if self.op in ("single", "double") and operand > INT32_MAX:
            return f"its shifted sums can reach {operand} (beyond int32)"
        if self.op == "fixed" and operand > INT64_MAX:
            return f"its fixed-point products can reach {operand} (beyond int64)"
        return None

    def describe(self):
        out = {"operation": self.op,
               "bias": None if self.bias is None else [int(v) for v in self.bias],
               "clip": None if self.clip is None else [int(v) for v in self.clip]}
        if self.op == "fixed":
            out.update(multiplier=[int(v) for v in self.mult],
                       fractional_bits=self.fractional_bits)
        elif self.op == "single":
            out["shift"] = [int(v) for v in self.shift]
        elif self.op == "double":
            out["shifts"] = [[int(a), int(b)] for a, b in zip(self.shift_a, self.shift_b)]
        return out


def _fixed_point(name, scale, mode, z_bound):
    """(multipliers, n): the most fractional bits n with every |round(scale·2^n)| within the
    mode's multiplier width and every product |z·M| + 2^(n−1) within its product width."""
    limit, room, most = FIXED_POINT[mode]
    top = float(numpy.abs(scale).max()) if scale.size else 0.0
    if top == 0.0:
        return numpy.zeros(len(scale), numpy.int64), 0
    for n in range(most, -1, -1):
        scaled = round_half_away(numpy, scale * 2.0 ** n)      # float64: no int64 overflow
        if float(numpy.abs(scaled).max()) > limit:
            continue
        mult = scaled.astype(numpy.int64)
        if z_bound * int(numpy.abs(mult).max()) + int(_half(n)) <= room:
            return mult, n
    product = "int32" if mode == "Fixed-point16" else "int64"
    raise N2D2Error(f"[{name}] rescale factor {top:.6g} per accumulator unit does not fit "
                    f"{mode} (a multiplier of at most {limit} whose products, up to "
                    f"{z_bound}·M, stay in {product}): use "
                    f"{'Fixed-point32' if mode == 'Fixed-point16' else 'Floating-point'}")


def _power_of_two(name, scale, clip, mode):
    """Per-channel exponent lists (one or two) of the shift modes; a factor above 1 (or a
    channel with factor 0 that is not clipped to 0) has no shift form."""
    divisions = 1 if mode == "Single-shift" else 2
    out = []
    for o, s in enumerate(scale):
        if s > 1.0:
            raise N2D2Error(f"[{name}] rescale factor {s:.6g} of channel {o} per accumulator "
                            f"unit is above 1: {mode} only divides by powers of two; use "
                            f"Fixed-point16 or Fixed-point32")
        if s <= 0.0:
            if clip is None or clip[o] != 0:
                raise N2D2Error(f"[{name}] rescale factor {s:.6g} of channel {o}: {mode} "
                                f"needs positive factors")
            out.append([0] if divisions == 1 else [0, 1])   # a dead channel: z = 0 anyway
            continue
        out.append(power_of_two_divs(s, divisions)[0])
    return numpy.asarray(out, numpy.int64).reshape(len(scale), divisions)


class IntegerRescaling:
    """The rescaling of a fused layer in an integer mode, computed with integers only (the
    integer modes without ``--n2d2-compat``); an ``IntegerForm`` with, per channel o:

    * ``bias = round(B·D)``, ``clip = round(C·D)``: B and C in accumulator units (D the weight
      denominator: the weights' integers are the N2D2-domain weights times D);
    * the factor ``S/D`` per accumulator unit, as the mode writes it: ``Fixed-point16`` a
      16-bit multiplier whose products z·M stay in int32, ``Fixed-point32`` a 32-bit one (the
      products in int64), each with the most fractional bits n (one per layer) those widths
      allow; ``Single-shift`` / ``Double-shift`` N2D2's power-of-two approximations
      ``power_of_two_divs(S/D, 1 | 2)`` (factors must be <= 1);
    * ``S`` None (a last Fc without quantizer): the logits ``acc + bias``, in accumulator units.

    One rounding (at the shift) instead of N2D2's two (llround of the pre-activation, then the
    shift), with D = 1 and integer B, C (``RINTF``) the same numbers but for the fixed-point
    modes' n (N2D2's -qat-sat always uses 16). Attributes as ``ActivationRescaling``'s: ``D``,
    ``B``, ``C``, ``S`` (N2D2 domain), ``mode``, ``lo``, ``hi``; ``form``; ``acc_bound`` the
    largest |acc| the fusion proved.
    """

    mult = shift = None           # (ActivationRescaling's N2D2-simulation fields: unused here)
    clip_in_shift = True

    def __init__(self, name, D, B, C, S, mode, lo, hi, acc_bound):
        if mode not in INTEGER_MODES:
            raise ValueError(f"IntegerRescaling needs an integer mode, not {mode}")
        self.D = float(D)
        self.B = None if B is None else numpy.asarray(B, numpy.float32)
        self.C = None if C is None else numpy.asarray(C, numpy.float32)
        self.S = None if S is None else numpy.asarray(S, numpy.float32)
        self.mode, self.lo, self.hi = mode, lo, hi
        self.acc_bound = int(acc_bound)
        to_acc = lambda v: None if v is None else \
            round_half_away(numpy, v.astype(numpy.float64) * self.D).astype(numpy.int64)  # noqa: E731
        bias, clip = to_acc(self.B), to_acc(self.C)
        if self.S is None:
            self.form = IntegerForm(0 if bias is None else len(bias), bias, None, "logits")
            return
        channels = len(self.S)
        scale = self.S.astype(numpy.float64) / self.D
        if clip is not None and clip.size == 1 and channels > 1:
            clip = numpy.full(channels, clip[0])
        form = IntegerForm(channels, bias, clip, "fixed", lo, hi)
        z_bound = form.z_bound(self.acc_bound)
        if mode.startswith("Fixed-point"):
            mult, n = _fixed_point(name, scale, mode, z_bound)
            self.form = IntegerForm(channels, bias, clip, "fixed", lo, hi, mult=mult,
                                    fractional_bits=n)
        elif mode == "Single-shift":
            e = _power_of_two(name, scale, clip, mode)
            self.form = IntegerForm(channels, bias, clip, "single", lo, hi, shift=e[:, 0])
        else:
            p = _power_of_two(name, scale, clip, mode)
            self.form = IntegerForm(channels, bias, clip, "double", lo, hi,
                                    shift_a=p[:, 1] - p[:, 0], shift_b=p[:, 1])

    integral = True

    def integer_form(self):
        return self.form

    def __call__(self, xp, acc):
        return self.form.apply(xp, acc)

    def describe(self):
        out = {"mode": self.mode, "weight_denominator": self.D,
               "saturation": [self.lo, self.hi],
               "bias": None if self.B is None else [float(v) for v in self.B],
               "clip": None if self.C is None else [float(v) for v in self.C],
               "scale": None if self.S is None else [float(v) for v in self.S],
               "integer": self.form.describe()}
        return out
