"""SAT: DoReFa-with-tanh weight quantizer (spec/qat.md §1) and CG-PACT activation quantizer (§2).

Both are single fused Functions (one element-wise pass each way) computed in float32 with the
constants and operation order of N2D2's CPU kernels: quantizing in float64 gives a different
network (spec/qat.md §7, e.g. a weight of 1e-8 with R=1 is −1 in float32 and +1 in float64).
"""
import os

from ..autograd import Function, Parameter
from ..backend import DTYPE
from ..errors import expect
from ..ini.convert import enum, to_bool, to_float, to_uint
from ..params import Key
from .base import (ACT_QUANTIZERS, WEIGHT_QUANTIZERS, ActQuantizer, WeightQuantizer,
                   follow_device, load_scalar_state, param_value, scalar_param_data, write_syntxt_scalar)
from .rounding import rint, rounding_function

QUANT_MODES = ("Default", "Symmetric", "Asymmetric", "FullRange")
F32 = DTYPE  # scalar constants are float32, as N2D2's T(1.0f / range)


def sat_scale_count(shape):
    """SAT's n for one weight tensor: N2D2's dimB·dimY·dimX (spec/qat.md §1.2, pitfall 3).

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
    (trained on CUDA) satisfy Var_{N−1}(w_q)·n = 1 to 1e-7 (spec/qat.md §1.2 [checked]). We
    follow the accurate one; every element-wise step stays float32.
    """
    return xp.sum(x, dtype=xp.float64).astype(x.dtype)


def mode_factor(mode, R):
    """c_mode of the SAT weight backward (spec/qat.md §1.3), a float32 scalar."""
    if mode == "FullRange":
        return F32(F32(1.0) + F32(0.9998) / F32(R))
    if mode == "Asymmetric":
        return F32(F32(1.0) + F32(1.0) / (F32(2.0) * F32(R // 2)))
    return None


class SATWeightQuantize(Function):
    """One SAT weight tensor (spec/qat.md §1.2-1.3), t = tanh(w), m = max|t|:

    Default    w_q = 2·(1/R)·rint(R·u) − 1,          u = 0.5·(t/m + 1)
    Symmetric  w_q = (1/r)·rint(r·t/m),               r = floor(R/2)
    Asymmetric w_q = (1/r)·rint(r·v),                 v = (1 + 1/(2r))·t/m − 1/(2r)
    FullRange  w_q = 2·(1/R)·rint(R·u') − 1,          u' = (1 + 0.9998/R)·u − 0.4999/R
    no rounding (ApplyQuantization=0): t/m (v for Asymmetric)
    ApplyScaling: w_q /= s, s = sqrt(n·Var_{N−1}(w_q)).
    Backward: g_w = g·sech²(w)·(1/(m·s))·c_mode; m and s are constants (§1.3, pitfall 4).
    """

    def __init__(self, R, mode, apply_quantization, apply_scaling, n_scale):
        self.R, self.mode = R, mode
        self.quantize, self.scale = apply_quantization, apply_scaling
        self.n_scale = n_scale
        self.tanh_max = self.scaling = None

    def forward(self, xp, w):
        t = xp.tanh(w)
        m = xp.abs(t).max()
        self.tanh_max = m
        wq = self._levels(xp, t / m)
        s = F32(1.0)
        if self.scale:
            s = self._scale(xp, wq)
            wq = wq / s
        self.scaling = s
        if self.needs_backward:
            self.saved = (w, m * s)  # factor m·s, float32 as N2D2's T factor
        return wq

    def _levels(self, xp, tn):
        R, mode = self.R, self.mode
        if mode in ("Symmetric", "Asymmetric"):
            r = F32(R // 2)
            if mode == "Asymmetric":
                half_step = F32(1.0) / (F32(2.0) * r)
                tn = F32(F32(1.0) + half_step) * tn - half_step
            if not self.quantize:
                return tn
            return F32(F32(1.0) / r) * rint(xp, tn * r)
        if not self.quantize:
            return tn  # Default and FullRange both clamp only: t/m
        u = F32(0.5) * (tn + F32(1.0))
        Rf = F32(R)
        if mode == "FullRange":
            u = F32(F32(1.0) + F32(0.9998) / Rf) * u - F32(F32(0.4999) / Rf)
        u = F32(F32(1.0) / Rf) * rint(xp, u * Rf)
        return u * F32(2.0) - F32(1.0)

    def _scale(self, xp, wq):
        size = wq.dtype.type(wq.size)
        mean = accurate_sum(xp, wq) / size
        d = wq - mean
        var = accurate_sum(xp, d * d) / (size - 1)  # unbiased (§1.2)
        return xp.sqrt(var * wq.dtype.type(self.n_scale))

    def backward(self, xp, gy, needs_grad):
        w, factor = self.saved
        inv_cosh = F32(1.0) / xp.cosh(w)
        grad = inv_cosh * inv_cosh * (F32(1.0) / factor)
        c = mode_factor(self.mode, self.R)
        if c is not None:  # chosen from QuantMode alone, even without rounding (pitfall 4)
            grad = grad * c
        return (gy * grad,)


@WEIGHT_QUANTIZERS.register("SAT")
class SATWeightQuantizer(WeightQuantizer):
    """``QWeight=SAT`` (spec/qat.md §1): tanh normalisation, DoReFa rounding, optional SAT scale.

    n (the scale's count) is Σ over the cell's tensors of ``sat_scale_count(shape)``. Biases are
    not quantized (§1.4): the cell passes them unchanged. No learnable parameter, no state file.
    Read-only state for the fusion pass: ``range``, ``quant_mode``, ``tanh_max`` and ``scaling``
    (lists per tensor, from the last forward; ``scaling`` is 1.0 without ApplyScaling).
    """

    range = Key("Range", to_uint, default=255, doc="number of steps R (2^b − 1 for b bits)")
    quant_mode = Key("QuantMode", enum(*QUANT_MODES), default="Default")
    apply_quantization = Key("ApplyQuantization", to_bool, default=True,
                             doc="0: clamp only (t/m), no rounding")
    apply_scaling = Key("ApplyScaling", to_bool, default=False,
                        doc="divide by sqrt(n·Var(w_q)) (FC layers; Conv followed by BN uses 0)")

    def __init__(self, **values):
        super().__init__(**values)
        self._functions = []

    def quantize(self, weights):
        expect(self.range >= 1, f"{self.describe()}: Range must be >= 1, got {self.range}")
        expect(self.range >= 2 or self.quant_mode not in ("Symmetric", "Asymmetric"),
               f"{self.describe()}: QuantMode={self.quant_mode} needs Range >= 2 "
               f"(it uses floor(Range/2) levels per sign)")
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


class SATActQuantize(Function):
    """CG-PACT on (x, α) (spec/qat.md §2), a = |α|:

    forward   x_c = clip(x, 0, a), q = x_c/a, y = (rnd(R·q)/R)·a
    backward  g_x = g·[0 < x ≤ a]
              g_α = Σ g·d, d = 1 if x ≥ a else rnd(R·q)/R − q   (no sign(α) factor)
    rnd = half away from zero (N2D2 CPU) or half to even (CUDA).
    """

    def __init__(self, R, rounding):
        self.R, self.rnd = R, rounding_function(rounding)
        self.half_away = rounding == "half_away"

    def check_inputs(self, x, alpha):
        expect(alpha.size == 1, f"SAT activation: α must have one element, got shape {alpha.shape}")

    def forward(self, xp, x, alpha):
        # One array per step where possible (out=, in place): at LeNet sizes every fresh
        # float array costs page faults as well as a pass.
        a = xp.abs(alpha).reshape(())
        q = xp.maximum(x, F32(0.0))  # clip(x, 0, a) without ``where``; NaN -> a as before
        xp.fmin(q, a, out=q)
        q /= a
        Rf = F32(self.R)
        v = q * Rf
        if self.half_away:
            # round_half_away for v >= 0: floor(v) + [v - floor(v) >= 0.5], the same values
            # (v - floor(v) is exact, so 0.49999997 still rounds down), fewer passes
            qd = xp.floor(v)
            v -= qd
            qd += v >= F32(0.5)
        else:
            qd = self.rnd(xp, v)
        qd /= Rf
        if self.needs_backward:
            # what backward needs, as masks and one float array: g_x passes on 0 < x <= a;
            # d = 1 where x >= a (there q = qd = 1, so qd - q = 0), else qd - q
            inside = x > F32(0.0)
            inside &= x <= a
            d = xp.subtract(qd, q, out=v)
            d += x >= a
            self.saved = (inside, d, alpha.shape)
        qd *= a
        return qd

    def backward(self, xp, gy, needs_grad):
        inside, d, alpha_shape = self.saved
        gx = gy * inside if needs_grad[0] else None
        galpha = None
        if needs_grad[1]:
            galpha = xp.sum(gy * d, dtype=gy.dtype).reshape(alpha_shape)
        return gx, galpha


@ACT_QUANTIZERS.register("SAT")
class SATActQuantizer(ActQuantizer):
    """``QAct=SAT`` (CG-PACT, spec/qat.md §2): clip to [0, |α|], R+1 unsigned levels, learnable α.

    α is a 1-element Parameter (group "quantizer") initialised from ``Alpha`` (default 1.0 in
    N2D2's code, not the 8.0 of its docs, pitfall 15). Gradients: see ``SATActQuantize``; with our
    batch-mean convention the incoming ``gy`` already carries N2D2's 1/B, so g_α = Σ gy·d.
    ``rounding`` is ``"half_away"`` (N2D2 CPU, default) or ``"half_even"`` (N2D2 CUDA parity).
    State: ``<cell>_QAct_SAT_Alpha.syntxt``, one float, no newline.
    """

    range = Key("Range", to_uint, default=255, doc="number of steps R")
    alpha_init = Key("Alpha", to_float, default=1.0, doc="initial clipping value α")

    def __init__(self, rounding="half_away", **values):
        super().__init__(**values)
        rounding_function(rounding)
        self.rounding = rounding
        self._alpha = None

    @property
    def alpha_param(self):
        """The learnable α (created from ``Alpha`` on first use, as N2D2 does lazily)."""
        if self._alpha is None:
            self._alpha = Parameter(scalar_param_data(self.alpha_init), name="alpha",
                                    group="quantizer")
        return self._alpha

    def parameters(self):
        return [self.alpha_param]

    @property
    def alpha(self):
        """α as stored (signed; the fusion uses it as is, spec/qat.md §8 pitfall 7)."""
        return param_value(self.alpha_param)

    def __call__(self, x, training=True):
        expect(self.range >= 1, f"{self.describe()}: Range must be >= 1, got {self.range}")
        return SATActQuantize(self.range, self.rounding).apply(x, follow_device(self.alpha_param, x))

    @staticmethod
    def state_file(folder, cell_name):
        return os.path.join(folder, f"{cell_name}_QAct_SAT_Alpha.syntxt")

    def export_state(self, folder, cell_name):
        write_syntxt_scalar(self.state_file(folder, cell_name), self.alpha)

    def import_state(self, folder, cell_name, ignore_missing=False):
        value = load_scalar_state(self.state_file(folder, cell_name), ignore_missing)
        if value is not None:
            p = self.alpha_param
            p.data[...] = F32(value)
