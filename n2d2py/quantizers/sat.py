"""SAT: DoReFa-with-tanh weight quantizer and CG-PACT activation quantizer,
as N2D2 computes them (docs/QUANTIZERS.md).

Both are single fused Functions (one element-wise pass each way) computed in float32 with the
constants and operation order of N2D2's CPU kernels: quantizing in float64 gives a different
network (checked against N2D2's trained LeNets: e.g. a weight of 1e-8 with R=1 is −1 in float32
and +1 in float64).
"""
import functools
from typing import NamedTuple

import numpy

from ..autograd import Function
from ..backend import DTYPE
from ..errors import expect
from ..functions._im2col import scratch
from .. import parallel
from ..parallel import elementwise, split
from ..ini.convert import enum, to_bool, to_uint
from ..params import Key, at_least
from .base import (ACT_QUANTIZERS, WEIGHT_QUANTIZERS, ClipActQuantizer, Grid, RangeBits,
                   WeightQuantizer, follow_device)
from .rounding import rounding_function

QUANT_MODES = ("Default", "Symmetric", "Asymmetric", "FullRange")
F32 = DTYPE  # scalar constants are float32, as N2D2's T(1.0f / range)
CHUNK_ELEMENTS = 1 << 16  # SAT activation passes per leaf (at most): ~7 arrays of <= 256 KiB in L2
HALF_BELOW = F32(0.49999997)  # nextafter(0.5f, 0): floor(v + HALF_BELOW) rounds v >= 0 half away
ZERO, ONE = F32(0.0), F32(1.0)


def sat_scale_count(shape):
    """SAT's n for one weight tensor: N2D2's dimB·dimY·dimX, i.e. O·kH·kW
    (fan-out, not fan-in).

    Conv ``(O, C, kH, kW)`` -> O·kH·kW (fan-out, not fan-in); Fc ``(O, I)`` -> O. In general
    ``shape[0]·prod(shape[2:])``.
    """
    n = shape[0]
    for d in shape[2:]:
        n *= d
    return n


def accurate_sum(xp, x):
    """Σx accumulated in float64, returned as float32.

    N2D2's CPU kernel accumulates SAT's mean and variance left to right in float32 (relative
    error ~3e-5 on LeNet's fc1), its CUDA reduction is accurate: the reference weight files
    (trained on CUDA) satisfy Var_{N−1}(w_q)·n = 1 to 1e-7. We
    follow the accurate one; every element-wise step stays float32.
    """
    return xp.sum(x, dtype=xp.float64).astype(x.dtype)


@functools.lru_cache(maxsize=64)
def mode_factor(mode, R):
    """c_mode of the SAT weight backward, a float32 scalar (computed once per (mode, R): NumPy
    scalar arithmetic costs about a microsecond an operation)."""
    if mode == "FullRange":
        return F32(F32(1.0) + F32(0.9998) / F32(R))
    if mode == "Asymmetric":
        return F32(F32(1.0) + F32(1.0) / (F32(2.0) * F32(R // 2)))
    return None


class LevelConstants(NamedTuple):
    """The float32 constants of the SAT weight levels (``SATWeightQuantize``), per (R, mode)."""
    steps: object             # Default: R/2 (0.5·R folded), FullRange: R, Symmetric: r
    step: object              # Default, FullRange: 2·(1/R) (the final doubling folded); else 1/r
    full_range_gain: object   # FullRange: 0.5·(1 + 0.9998/R) (the halving folded)
    full_range_shift: object  # FullRange: 0.4999/R
    asymmetric_gain: object   # Asymmetric: 1 + 1/(2r)
    half_step: object         # Asymmetric: 1/(2r)


@functools.lru_cache(maxsize=64)
def level_constants(R, mode):
    """``LevelConstants`` for (R, mode), each rounded to float32 as N2D2's kernels write them.

    Default and FullRange compute u = 0.5·(t/m + 1) [· (1 + 0.9998/R) − 0.4999/R], R·u, rint,
    (1/R)·…, 2·…, − 1; here each halving and doubling is folded into the neighbouring product:
    both are exact (u + 1 is 0 or at least 2^-24, (1/R)·k is 0 or at least 1/R: never
    subnormal), so 0.5·(c·u) rounds like (c/2)·u: two passes fewer, the same bits."""
    if mode in ("Symmetric", "Asymmetric"):
        r = F32(R // 2)
        half_step = F32(F32(1.0) / (F32(2.0) * r))
        return LevelConstants(r, F32(F32(1.0) / r), None, None,
                              F32(F32(1.0) + half_step), half_step)
    Rf = F32(R)
    inverse = F32(F32(1.0) / Rf)
    if mode == "FullRange":
        gain = F32(F32(F32(1.0) + F32(0.9998) / Rf) * F32(0.5))
        return LevelConstants(Rf, F32(inverse * F32(2.0)), gain, F32(F32(0.4999) / Rf),
                              None, None)
    return LevelConstants(F32(Rf * F32(0.5)), F32(inverse * F32(2.0)), None, None, None, None)


class SATWeightQuantize(Function):
    """One SAT weight tensor, t = tanh(w), m = max|t|:

    Default    w_q = 2·(1/R)·rint(R·u) − 1,          u = 0.5·(t/m + 1)
    Symmetric  w_q = (1/r)·rint(r·t/m),               r = floor(R/2)
    Asymmetric w_q = (1/r)·rint(r·v),                 v = (1 + 1/(2r))·t/m − 1/(2r)
    FullRange  w_q = 2·(1/R)·rint(R·u') − 1,          u' = (1 + 0.9998/R)·u − 0.4999/R
    no rounding (ApplyQuantization=0): t/m (v for Asymmetric)
    ApplyScaling: w_q /= s, s = sqrt(n·Var_{N−1}(w_q)).
    Backward: g_w = g·sech²(w)·(1/(m·s))·c_mode; m and s are constants (as in N2D2;
    c_mode applies even without rounding for Asymmetric and FullRange).
    """

    def __init__(self, R, mode, apply_quantization, apply_scaling, n_scale):
        self.R, self.mode = R, mode
        self.quantize, self.scale = apply_quantization, apply_scaling
        self.n_scale = n_scale
        self.tanh_max = self.scaling = None

    def forward(self, xp, w):
        # every step in place on the one fresh array tanh(w), in the order of the formulas
        # above (so bit-identical to them); max|t| as |max(max t, -min t)|, no |t| array (the
        # outer abs makes an all-zero tensor's m +0 as before, not -0)
        t = xp.tanh(w)
        top, bottom = t.max(), t.min()
        m = abs(max(top, -bottom))  # NaN when t holds one (then both are NaN)
        self.tanh_max = m
        t /= m
        wq = self._levels_in_place(xp, t)
        s = ONE
        if self.scale:
            s = self._scale(xp, wq)
            wq /= s
        self.scaling = s
        if self.needs_backward:
            self.saved = (w, m * s)  # factor m·s, float32 as N2D2's T factor
        return wq

    def _levels(self, xp, tn):
        """The levels of ``tn`` = t/m (a new array)."""
        return self._levels_in_place(xp, tn.copy())

    def _levels_in_place(self, xp, tn):
        """The levels of ``tn`` = t/m, computed in ``tn`` (overwritten) and returned."""
        k = level_constants(self.R, self.mode)
        if self.mode in ("Symmetric", "Asymmetric"):
            if self.mode == "Asymmetric":
                tn *= k.asymmetric_gain
                tn -= k.half_step
            if not self.quantize:
                return tn
            tn *= k.steps
            xp.rint(tn, out=tn)  # rint (C rintf), in place
            tn *= k.step
            return tn
        if not self.quantize:
            return tn  # Default and FullRange both clamp only: t/m
        u = tn
        u += ONE
        if self.mode == "FullRange":
            u *= k.full_range_gain
            u -= k.full_range_shift
        u *= k.steps
        xp.rint(u, out=u)  # rint (C rintf), in place
        u *= k.step
        u -= ONE
        return u

    def _scale(self, xp, wq):
        size = wq.dtype.type(wq.size)
        mean = accurate_sum(xp, wq) / size
        d = wq - mean
        d *= d
        var = accurate_sum(xp, d) / (size - 1)  # unbiased, as N2D2
        return xp.sqrt(var * wq.dtype.type(self.n_scale))

    def backward(self, xp, gy, needs_grad):
        w, factor = self.saved
        grad = xp.cosh(w)  # then 1/cosh, squared, times 1/factor (and c), times gy: in place
        xp.divide(ONE, grad, out=grad)
        xp.multiply(grad, grad, out=grad)
        grad *= ONE / factor
        c = mode_factor(self.mode, self.R)
        if c is not None:  # chosen from QuantMode alone, even without rounding (pitfall 4)
            grad *= c
        return (xp.multiply(gy, grad, out=grad),)


@WEIGHT_QUANTIZERS.register("SAT")
class SATWeightQuantizer(RangeBits, WeightQuantizer):
    """``QWeight=SAT``: tanh normalisation, DoReFa rounding, optional SAT scale.

    n (the scale's count) is Σ over the cell's tensors of ``sat_scale_count(shape)``. Biases are
    not quantized: the cell passes them unchanged. No learnable parameter, no state file.
    Read-only state for the fusion pass: ``range``, ``quant_mode``, ``tanh_max`` and ``scaling``
    (lists per tensor, from the last forward; ``scaling`` is 1.0 without ApplyScaling).
    """

    range = Key("Range", to_uint, default=255, doc="number of steps R (2^b − 1 for b bits)",
                check=at_least(1))
    quant_mode = Key("QuantMode", enum(*QUANT_MODES), default="Default")
    apply_quantization = Key("ApplyQuantization", to_bool, default=True,
                             doc="0: clamp only (t/m), no rounding")
    apply_scaling = Key("ApplyScaling", to_bool, default=False,
                        doc="divide by sqrt(n·Var(w_q)) (FC layers; Conv followed by BN uses 0)")

    def __init__(self, **values):
        self._functions = []
        super().__init__(**values)

    def check_keys(self):
        if self.quant_mode in ("Symmetric", "Asymmetric") and self.range < 2:
            return "Range", (f"QuantMode={self.quant_mode} needs Range >= 2 (it uses "
                             f"floor(Range/2) levels per sign), got {self.range}")
        return None

    def quantize(self, weights):
        n = sum(sat_scale_count(w.shape) for w in weights)
        self._functions = [SATWeightQuantize(self.range, self.quant_mode, self.apply_quantization,
                                             self.apply_scaling, n) for _ in weights]
        return [f.apply(w) for f, w in zip(self._functions, weights)]

    @property
    def tanh_max(self):
        return [float(f.tanh_max) for f in self._functions]

    @property
    def scaling(self):
        return [float(f.scaling) for f in self._functions]

    def grid(self):
        """Default/FullRange: (2k − R)/R, odd codes in [−R, R]; Symmetric: k/r in [−r, r];
        Asymmetric: k/r in [−r−1, r] (r = floor(R/2)); ApplyScaling divides by the scale s of
        the last forward's first tensor. None without rounding (ApplyQuantization=0)."""
        if not self.apply_quantization:
            return None
        R = int(self.range)
        r = R if self.quant_mode in ("Default", "FullRange") else R // 2
        scale, top = 1.0 / r, 1.0
        if self.apply_scaling:
            scale /= self.scaling[0]
            top /= self.scaling[0]
        return Grid(scale, -r - (self.quant_mode == "Asymmetric"), r, top)


#: 1/(max|tanh w|·s)² above which ``step_gain_notice`` speaks: trained LeNet and ResNet Fc
#: weights give 2 to 4, PyTorch's initialisation of the same layers 10 to 150
STEP_GAIN_NOTICE = 8.0


def step_gains(cells):
    """``{cell name: (gain, max|w|)}`` of the cells whose ``QWeight=SAT`` (with ApplyScaling,
    so no BatchNorm renormalises the output) would take large steps from their current weights.

    The quantized weights depend on w/max|tanh(w)| and are divided by s, and the backward
    multiplies by 1/(max|tanh w|·s): one solver step moves them (1/(max|tanh w|·s))² times as
    far as it moves float weights. Small weights (an untrained model) make that gain large."""
    gains = {}
    for cell in cells:
        q = getattr(cell, "qweight", None)
        if not isinstance(q, SATWeightQuantizer) or not q.apply_scaling or not cell.weights:
            continue
        cell.quantized_weights()
        m, s = q.tanh_max[0], q.scaling[0]
        if m * s > 0 and 1.0 / (m * s) ** 2 > STEP_GAIN_NOTICE:
            gains[cell.name] = (1.0 / (m * s) ** 2, m)
    return gains


def step_gain_notice(cells):
    """The notice printed before a training whose SAT weights start small (``step_gains``),
    or None. Not a defect (N2D2 computes the same): the user is told what to do."""
    gains = step_gains(cells)
    if not gains:
        return None
    listed = ", ".join(f"'{name}' {gain:.0f}x (max|w| {m:.2g})"
                       for name, (gain, m) in list(gains.items())[:4])
    return (f"Notice: QWeight=SAT starts from small weights: a solver step moves the quantized "
            f"weights of {listed}{', ...' if len(gains) > 4 else ''} as far as the float weights "
            f"(trained weights: under {STEP_GAIN_NOTICE:g}x), because SAT divides them by "
            f"max|tanh(w)| and by its scale. Training from such weights (an untrained model: "
            f"PyTorch draws |w| < 1/sqrt(fan-in)) can stay at chance: draw them with a filler "
            f"instead (an ONNX import: ONNX_init=0 and WeightsFiller=HeFiller), or divide these "
            f"cells' learning rate by about that factor")


class SATActQuantize(Function):
    """CG-PACT on (x, α), a = |α|:

    forward   x_c = clip(x, 0, a), q = x_c/a, y = (rnd(R·q)/R)·a
    backward  g_x = g·[0 < x ≤ a]
              g_α = Σ g·d, d = 1 if x ≥ a else rnd(R·q)/R − q   (no sign(α) factor)
    rnd = half away from zero (N2D2 CPU) or half to even (CUDA).

    The forward runs over the flattened arrays cut into ``flat_leaves`` (cache-sized ranges,
    split across threads): every pass of a leaf reads what the previous one wrote from
    cache. Backward writes g_x over the saved d: it runs once per forward (a second backward
    through the same graph is an error).
    """

    def __init__(self, R, rounding):
        self.R, self.rnd = R, rounding_function(rounding)
        self.half_away = rounding == "half_away"
        self.Rf = F32(R)

    def check_inputs(self, x, alpha):
        expect(alpha.size == 1, f"SAT activation: α must have one element, got shape {alpha.shape}")

    def forward(self, xp, x, alpha):
        # Few passes, each a fast SIMD loop, no fresh temporaries (at LeNet sizes every fresh
        # float array costs page faults as well as a pass): ``clip``, rounding as
        # floor(v + 0.49999997), and the masks for backward written where backward reads
        # them. The values are bit-identical to the textbook where(x < 0, 0, where(x < a, x,
        # a)) / a ... (tests/quantizers, and exhaustively checked for the rounding).
        a = xp.abs(alpha).reshape(())
        x = c_ordered(xp, x)
        y = xp.empty(x.shape, x.dtype)
        inside = xp.empty(x.shape, bool) if self.needs_backward else None
        d = xp.empty(x.shape, x.dtype) if self.needs_backward else None
        leaves = flat_leaves(xp, x.size)
        xf, yf = x.reshape(-1), y.reshape(-1)
        inside_f = None if inside is None else inside.reshape(-1)
        d_f = None if d is None else d.reshape(-1)

        def part(first, last):
            size = max(hi - lo for lo, hi in leaves[first:last])
            work = Work(xp, size, x.dtype, d is None)
            for lo, hi in leaves[first:last]:
                self._forward_part(xp, xf[lo:hi], a, yf[lo:hi],
                                   None if inside is None else inside_f[lo:hi],
                                   None if d is None else d_f[lo:hi], work)
        over_leaves(xp, leaves, part)
        if self.needs_backward:
            self.saved = (inside, d, alpha.shape)
        return y

    def _forward_part(self, xp, x, a, y, inside, d, work):
        """y = the quantized x; with ``inside``/``d`` (backward's [0 < x <= a] and d), those
        too; every array 1-D, the same size, written in place (``work``: scratch of that
        size or more)."""
        n = len(x)
        if n == 0:
            return
        q = work.clip(x, ZERO, a, out=d if d is not None else work.q[:n])  # becomes d below
        mask = work.mask[:n]
        top = q.max()
        has_nan = bool(top != top)  # x holds a NaN (or a is NaN: q is all NaN)
        if has_nan:
            xp.isnan(x, out=mask)
            xp.copyto(q, a, where=mask)  # NaN -> a (N2D2's x < 0 ? 0 : x < a ? x : a)
        q /= a
        Rf = self.Rf
        qd = xp.multiply(q, Rf, out=y)  # v = R·q, then rnd(v)/R in place; becomes the output
        if self.half_away:
            # round half away for v >= 0 is floor(v + 0.49999997f): the one float below 0.5
            # makes the addition exact where floor(v + 0.5) is not (0.49999997 + 0.5 rounds
            # up to 1), checked on every float32 in [0, 2^24] against floor(v) + [frac >= .5]
            qd += HALF_BELOW
            xp.floor(qd, out=qd)
        else:
            qd += ZERO  # clip keeps -0.0 where maximum gave +0.0, and rint keeps the sign
            xp.rint(qd, out=qd)
        qd /= Rf
        if inside is not None:
            # g_x passes on 0 < x <= a; d = 1 where x >= a (there q = qd = 1), else qd - q
            xp.greater(x, ZERO, out=inside)
            inside &= xp.less_equal(x, a, out=mask)
            if has_nan:
                dd = xp.subtract(qd, q, out=q)
                dd += xp.greater_equal(x, a, out=mask)
            else:
                # [x >= a] is floor(q): q = c/a <= 1 is 1 exactly where c = a, i.e. x >= a
                # (NaN where a is 0, inf or NaN, as qd - q is); float + float beats the
                # bool -> float cast of ``d += x >= a`` and a data-dependent copyto
                ge = xp.floor(q, out=work.ge[:n])
                dd = xp.subtract(qd, q, out=q)
                dd += ge
        qd *= a

    def backward(self, xp, gy, needs_grad):
        if self.saved is None:
            raise RuntimeError("SAT activation: backward already ran through this graph (its "
                               "saved d holds the input gradient now); run the forward again")
        inside, d, alpha_shape = self.saved
        self.saved = None
        if gy.ndim == 0 or gy.size == 0:
            return (gy * inside if needs_grad[0] else None,
                    (gy * d).sum(dtype=xp.float64).astype(gy.dtype).reshape(alpha_shape)
                    if needs_grad[1] else None)
        # one pass over batch chunks: Σ gy·d per item (a batched dot, float32) while gy is in
        # cache, then over the batch in float64 (the same bits for any chunking or thread
        # count); and g_x = gy·inside written over d, chunk by chunk once d is read: d is this
        # Function's own array and dead after this, and overwriting what was just read is
        # cache-hot, where a fresh array costs its memory traffic twice
        gx = d if needs_grad[0] else None
        gy2, d2 = gy.reshape(len(gy), -1), d.reshape(len(d), -1)
        per_item = xp.empty((len(gy), 1, 1), gy.dtype) if needs_grad[1] else None

        def part(lo, hi):
            if per_item is not None:
                xp.matmul(gy2[lo:hi, None, :], d2[lo:hi, :, None], out=per_item[lo:hi])
            if gx is not None:
                xp.multiply(gy[lo:hi], inside[lo:hi], out=gx[lo:hi])
        elementwise(xp, gy, part, CHUNK_ELEMENTS)
        galpha = None if per_item is None else \
            per_item.sum(dtype=xp.float64).astype(gy.dtype).reshape(alpha_shape)
        return gx, galpha


def c_ordered(xp, a):
    """``a`` itself when C-contiguous, else a C-ordered copy (0-d arrays stay 0-d, which
    ``ascontiguousarray`` does not keep)."""
    return a if a.flags.c_contiguous else xp.ascontiguousarray(a)


class Work:
    """The scratch arrays of one thread's ``SATActQuantize`` forward (``size`` elements)."""

    def __init__(self, xp, size, dtype, need_q):
        self.q = scratch(xp, "sat_act_q", (size,), dtype) if need_q else None
        self.mask = scratch(xp, "sat_act_mask", (size,), bool)
        self.ge = scratch(xp, "sat_act_ge", (size,), dtype)
        self.clip = _numpy_clip if xp is numpy and _numpy_clip is not None else \
            (lambda x, lo, hi, out: xp.clip(x, lo, hi, out=out))


#: NumPy's clip ufunc itself: ``numpy.clip``'s Python argument handling costs 2-3 µs a call,
#: a third of a cache-sized pass (None where NumPy keeps it elsewhere: then ``xp.clip``)
_numpy_clip = getattr(getattr(getattr(numpy, "_core", None), "umath", None), "clip", None)


def flat_leaves(xp, n):
    """The ranges (lo, hi) of the n flat elements that the forward's element-wise passes run
    on: at most ``CHUNK_ELEMENTS`` each, about equal (several arrays of one leaf stay in a
    core's L2 while the passes chain). On a GPU one leaf (one launch per pass)."""
    if xp.__name__ != "numpy" or n <= CHUNK_ELEMENTS:
        return [(0, n)]
    return _even_ranges(n, CHUNK_ELEMENTS)


@functools.lru_cache(maxsize=256)
def _even_ranges(n, limit):
    count = -(-n // limit)
    return [(n * i // count, n * (i + 1) // count) for i in range(count)]


def over_leaves(xp, leaves, part):
    """``part(first, last)`` over ranges of leaf indices, one per thread (``parallel.split``,
    enough elements each to pay a thread's wake-up); the results in leaf order."""
    if len(leaves) == 1:
        return [part(0, 1)]
    per_leaf = max(1, leaves[-1][1] // len(leaves))
    return split(xp, len(leaves), part, max(1, parallel.MIN_ELEMENTS_PER_THREAD // per_leaf))


@ACT_QUANTIZERS.register("SAT")
class SATActQuantizer(ClipActQuantizer):
    """``QAct=SAT`` (CG-PACT): clip to [0, |α|], R+1 unsigned levels, learnable α.

    α is a 1-element Parameter (group "quantizer") initialised from ``Alpha`` (default 1.0 in
    N2D2's code, not the 8.0 of its docs, pitfall 15). Gradients: see ``SATActQuantize``; with our
    batch-mean convention the incoming ``gy`` already carries N2D2's 1/B, so g_α = Σ gy·d.
    ``rounding`` is ``"half_away"`` (N2D2 CPU, default) or ``"half_even"`` (N2D2 CUDA parity).
    State: ``<cell>_QAct_SAT_Alpha.syntxt``, one float, no newline.
    """

    def __init__(self, rounding="half_away", **values):
        rounding_function(rounding)
        self.rounding = rounding
        super().__init__(**values)

    def __call__(self, x, training=True):
        return SATActQuantize(self.range, self.rounding).apply(x, follow_device(self.alpha_param, x))
