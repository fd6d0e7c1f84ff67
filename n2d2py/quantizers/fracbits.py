"""FracBits, fractional bit-widths (Yang & Jin, AAAI 2021; docs/QUANTIZERS.md).

``QWeight=FracBits``: each cell holds a real, learnable bit-width b. With f = floor(b) the
weights used in the forward interpolate between the two neighbouring integer quantizers:

    Q_b(w)   = (f + 1 − b)·Q_f(w) + (b − f)·Q_{f+1}(w)
    dQ_b/db  = Q_{f+1}(w) − Q_f(w)

The base quantizer is SAT-style DoReFa (SAT's "Default" mode):
t = tanh(w), m = max|t|, Q_k(w) = 2·rint((2^k − 1)·(t/(2m) + ½))/(2^k − 1) − 1, with its STE in
both branches: g_w = g·sech²(w)/m, m a constant, as in SAT. ``ApplyScaling=1`` divides
by SAT's s = sqrt(n·Var(Q_b)) (a constant in the backward, n = O·kH·kW as sat_scale_count).
At integer b the result is exactly Q_b.

Search then fine-tune: b is kept in [BitsMin, BitsMax] while learning; the size/BitOps penalty
(constraints.py) uses the fractional b so it stays differentiable. ``freeze()`` (or ``Frozen=1``
in the INI of the fine-tuning run) rounds b and stops learning it.
"""
import math

from ..autograd import Function, grad_enabled
from ..backend import DTYPE
from ..errors import expect
from ..ini.convert import enum, to_bool, to_float
from ..io.names import cell_file
from ..params import Key
from .base import (WEIGHT_QUANTIZERS, LazyParameter, WeightQuantizer, follow_device,
                   load_state_values, param_value, write_syntxt_rows)
from .constraints import ConstraintKeys
from .sat import accurate_sum, sat_scale_count

F32 = DTYPE


def dorefa_levels(xp, u, k):
    """Q_k on u = t/(2m) + ½ ∈ [0, 1]: 2·rint((2^k − 1)·u)/(2^k − 1) − 1."""
    r = F32(2.0 ** k - 1.0)
    return F32(2.0) * xp.rint(u * r) / r - F32(1.0)


class FracBitsQuantize(Function):
    """Q_b(w) on (w, b), b a 1-element array (formula in the module docstring)."""

    def __init__(self, apply_scaling=False, n_scale=1):
        self.apply_scaling, self.n_scale = apply_scaling, n_scale
        self.scaling = 1.0

    def check_inputs(self, w, b):
        expect(b.size == 1, f"FracBits: the bit-width must have one element, got {b.shape}")

    def forward(self, xp, w, b):
        t = xp.tanh(w)
        m = xp.abs(t).max()
        u = t / (F32(2.0) * m) + F32(0.5)
        bv = float(b.reshape(-1)[0])
        f = math.floor(bv)
        lo, hi = dorefa_levels(xp, u, f), dorefa_levels(xp, u, f + 1)
        T = w.dtype.type  # float32 in training; float64 keeps finite differences exact
        y = T(f + 1 - bv) * lo + T(bv - f) * hi
        s = F32(1.0)
        if self.apply_scaling:
            mean = accurate_sum(xp, y) / F32(y.size)
            s = xp.sqrt(accurate_sum(xp, (y - mean) ** 2) / F32(y.size - 1) * F32(self.n_scale))
            y = y / s
        self.scaling = s
        if self.needs_backward:
            self.saved = (w, m * s, hi - lo, s, b.shape)
        return y

    def backward(self, xp, gy, needs_grad):
        w, factor, diff, s, shape = self.saved
        gw = gb = None
        if needs_grad[0]:
            sech = F32(1.0) / xp.cosh(w)
            gw = gy * sech * sech / factor
        if needs_grad[1]:
            gb = (xp.sum(gy * diff, dtype=gy.dtype) / s).reshape(shape).astype(gy.dtype)
        return gw, gb


@WEIGHT_QUANTIZERS.register("FracBits")
class FracBitsWeightQuantizer(ConstraintKeys, WeightQuantizer):
    """``QWeight=FracBits``: one learnable b per cell shared by its weight tensors.
    State: ``<cell>_QWeight_FracBits.syntxt`` = "b"."""

    bits_init = Key("Bits", to_float, default=8.0, doc="initial bit-width b0")
    bits_min = Key("BitsMin", to_float, default=2.0)
    bits_max = Key("BitsMax", to_float, default=8.0)
    apply_scaling = Key("ApplyScaling", to_bool, default=False, doc="SAT scale adjustment")
    frozen = Key("Frozen", to_bool, default=False, doc="round b and stop learning it")
    constraint_mode = Key("ConstraintMode", enum("Relu2", "L1"), default="L1",
                          doc="L1: the target is pulled from both sides (NNCF)")

    bits_param = LazyParameter("fracbits_b", lambda q: q.bits_init)
    state_names = ("frozen_by_run",)

    def __init__(self, **values):
        self.frozen_by_run = False  # freeze() called during training (the INI's Frozen stays as read)
        self.scaling = []
        super().__init__(**values)

    @property
    def is_frozen(self):
        return self.frozen or self.frozen_by_run

    def parameters(self):
        return [] if self.is_frozen else [self.bits_param]

    def freeze(self):
        """End of the search phase: b ← rint(b), no longer learned."""
        self.bits_param.data[...] = F32(round(param_value(self.bits_param)))
        self.frozen_by_run = True

    def bits(self):
        """The current (fractional while searching) bit-width, for the report."""
        return param_value(self.bits_param)

    def bits_variable(self):
        """b itself: the cost terms use the fractional b (differentiable)."""
        return self.bits_param if not self.is_frozen else self.bits_param.detach()

    @property
    def range(self):
        return 2 ** round(self.bits()) - 1

    def quantize(self, weights):
        b = follow_device(self.bits_param, weights[0])
        if self.is_frozen:
            b.data[...] = F32(round(param_value(b)))
            b = b.detach()
        elif grad_enabled():
            b.data[...] = F32(min(max(param_value(b), self.bits_min), self.bits_max))
        n = sum(sat_scale_count(w.shape) for w in weights)
        fns = [FracBitsQuantize(self.apply_scaling, n) for _ in weights]
        out = [fn.apply(w, b) for fn, w in zip(fns, weights)]
        self.scaling = [fn.scaling for fn in fns]
        return out

    @staticmethod
    def state_file(folder, cell_name):
        return cell_file(folder, cell_name, "_QWeight_FracBits.syntxt")

    def export_state(self, folder, cell_name):
        write_syntxt_rows(self.state_file(folder, cell_name), [[self.bits()]])

    def import_state(self, folder, cell_name, ignore_missing=False):
        values = load_state_values(self.state_file(folder, cell_name), ignore_missing, 1, "b")
        if values is not None:
            self.bits_param.data[...] = F32(values[0])
