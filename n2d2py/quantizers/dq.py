"""DQ, differentiable quantization (Uhlich et al., ICLR 2020; docs/QUANTIZERS.md).

``QWeight=DQ`` / ``QAct=DQ``: a symmetric uniform quantizer with a learnable step d and a
learnable dynamic range q_max, the parametrisation the paper recommends (its gradients are
bounded and well scaled); the bit-width is *derived*, never learned directly:

    Q(x) = sign(x)·min(d·rint(|x|/d), q_max)
    b    = ceil(log2(q_max/d + 1) + 1)      signed (weights)
    b    = ceil(log2(q_max/d + 1))          unsigned (post-ReLU activations, ``Signed=0``)

Backward (STE on rint): inside |x| ≤ q_max: g_x = g, g_d = g·(Q − x)/d,
g_qmax = 0; outside: g_x = 0, g_d = 0, g_qmax = g·sign(x).

What the reference code (Sony ``mixed-precision-dnns``) adds and we keep: d is projected to a
power of two 2^rint(log2 d) in the forward (straight through in the backward), the gradients of
d and q_max are clipped to ±d, and d, q_max and b stay inside boxes (d ∈ [2^-8, 1], q_max ∈
[2^-8, 127] weights / [2^-8, 255] activations, b ∈ [2, 8] / [1, 8]). We apply the boxes to the
parameters before each use rather than after each solver step: the same values reach every
forward, without a hook in the training loop.
"""
import math

from ..autograd import Function, grad_enabled
from ..backend import DTYPE
from ..errors import expect
from ..ini.convert import to_bool, to_float, to_uint
from ..io.names import cell_file
from ..params import Key
from .constraints import ConstraintKeys
from .base import (ACT_QUANTIZERS, WEIGHT_QUANTIZERS, ActQuantizer, LazyParameter,
                   WeightQuantizer, follow_device, load_state_values, param_value,
                   write_syntxt_rows)

F32 = DTYPE
BITS_TOL = 1e-4  # q_max = d·(2^(b−1)−1) in float32 must give b, not b+1


class DQQuantize(Function):
    """Q(x; d, q_max) on (x, d, q_max), d and q_max 1-element arrays (formula in the module doc).

    ``pow2``: use 2^rint(log2 d) in the forward, gradient straight through to d.
    ``clip_grads``: clip g_d and g_qmax to ±d (reference code's ``clip_quant_grads``).
    """

    def __init__(self, pow2=True, clip_grads=True):
        self.pow2, self.clip_grads = pow2, clip_grads

    def check_inputs(self, x, d, qmax):
        expect(d.size == 1 and qmax.size == 1,
               f"DQ: d and q_max must have one element, got shapes {d.shape}, {qmax.shape}")

    def forward(self, xp, x, d, qmax):
        d0 = d.reshape(())
        if self.pow2:
            d0 = xp.exp2(xp.rint(xp.log2(d0)))
        q0 = qmax.reshape(())
        a = xp.abs(x)
        y = xp.sign(x) * xp.minimum(d0 * xp.rint(a / d0), q0)
        if self.needs_backward:
            self.saved = (x, y, d0, q0, d.shape)
        return y.astype(x.dtype, copy=False)

    def backward(self, xp, gy, needs_grad):
        x, y, d0, q0, shape = self.saved
        inside = xp.abs(x) <= q0
        gx = gy * inside if needs_grad[0] else None
        gd = gq = None
        if needs_grad[1]:
            gd = xp.sum(gy * xp.where(inside, (y - x) / d0, F32(0)), dtype=gy.dtype)
        if needs_grad[2]:
            gq = xp.sum(gy * xp.where(inside, F32(0), xp.sign(x)), dtype=gy.dtype)
        if self.clip_grads:  # bounded steps for the range parameters (reference code)
            gd = None if gd is None else xp.clip(gd, -d0, d0)
            gq = None if gq is None else xp.clip(gq, -d0, d0)
        return (gx, None if gd is None else gd.reshape(shape).astype(gy.dtype),
                None if gq is None else gq.reshape(shape).astype(gy.dtype))


class CeilSTE(Function):
    """y = ceil(x), g_x = g: the derived bit-width stays an integer in the forward while the
    size/BitOps penalties still reach d and q_max (constraints.py)."""

    def forward(self, xp, x):
        return xp.ceil(x - x.dtype.type(BITS_TOL))

    def backward(self, xp, gy, needs_grad):
        return (gy,)


class Log2(Function):
    """y = log2(x), g_x = g/(x·ln 2)."""

    def forward(self, xp, x):
        if self.needs_backward:
            self.saved = x
        return xp.log2(x)

    def backward(self, xp, gy, needs_grad):
        return (gy / (self.saved * x_dtype(self.saved)(math.log(2.0))),)


def x_dtype(x):
    return x.dtype.type


def derived_bits(d, qmax, signed):
    """b = ceil(log2(q_max/d + 1) (+1 if signed)) as Python numbers."""
    return math.ceil(math.log2(qmax / d + 1.0) + (1.0 if signed else 0.0) - BITS_TOL)


class _DQBase:
    """Parameters, boxes, bits and state shared by the DQ weight and activation quantizers."""

    signed_default = True

    step_init = Key("StepSize", to_float, default=2.0 ** -3, doc="initial step d0")
    bits_init = Key("Bits", to_float, default=4.0, doc="initial bit-width b0 (q_max0 from d0, b0)")
    d_min = Key("StepSizeMin", to_float, default=2.0 ** -8)
    d_max = Key("StepSizeMax", to_float, default=1.0)
    qmax_min = Key("QMaxMin", to_float, default=2.0 ** -8)
    power_of_two = Key("PowerOfTwoStep", to_bool, default=True,
                       doc="project d to 2^rint(log2 d) in the forward (reference code)")
    clip_grads = Key("ClipGradients", to_bool, default=True, doc="clip g_d, g_qmax to ±d")

    d_param = LazyParameter("dq_step", lambda q: q.step_init)
    qmax_param = LazyParameter("dq_qmax", lambda q: q._qmax0())

    @property
    def signed(self):
        return self.signed_default

    def _qmax0(self):
        levels = 2.0 ** (self.bits_init - 1) - 1 if self.signed else 2.0 ** self.bits_init - 1
        return self.step_init * levels

    def project(self):
        """Keep d, q_max and the derived b inside their boxes (in place, before each use)."""
        d, q = self.d_param.data, self.qmax_param.data
        d[...] = min(max(float(d[0]), self.d_min), self.d_max)
        dv = self.step_size
        hi_levels = 2.0 ** (self.bits_max - 1) - 1 if self.signed else 2.0 ** self.bits_max - 1
        lo_levels = 2.0 ** (self.bits_min - 1) - 1 if self.signed else 2.0 ** self.bits_min - 1
        lo = max(self.qmax_min, dv * lo_levels)
        hi = min(self.qmax_max, dv * hi_levels)
        q[...] = min(max(float(q[0]), lo), max(lo, hi))

    @property
    def step_size(self):
        """d as used by the forward (power-of-two projected when PowerOfTwoStep)."""
        d = param_value(self.d_param)
        return 2.0 ** round(math.log2(d)) if self.power_of_two else d

    @property
    def q_max(self):
        return param_value(self.qmax_param)

    def bits(self):
        """The derived integer bit-width b, for the size/BitOps report."""
        return derived_bits(self.step_size, self.q_max, self.signed)

    @property
    def range(self):
        """N2D2's Range R = 2^b − 1 for the derived b."""
        return 2 ** self.bits() - 1

    def bits_variable(self):
        """Differentiable b for the constraints: ceil-STE of log2(q_max/d + 1) (+1)."""
        d = self.d_param
        ratio = self.qmax_param / d + 1.0
        return CeilSTE().apply(Log2().apply(ratio) + (1.0 if self.signed else 0.0))

    def _apply(self, x):
        d = follow_device(self.d_param, x)
        q = follow_device(self.qmax_param, x)
        if grad_enabled():
            self.project()
        return DQQuantize(self.power_of_two, self.clip_grads).apply(x, d, q)

    def export_state(self, folder, cell_name):
        write_syntxt_rows(self.state_file(folder, cell_name),
                          [[param_value(self.d_param), self.q_max]])

    def import_state(self, folder, cell_name, ignore_missing=False):
        values = load_state_values(self.state_file(folder, cell_name), ignore_missing, 2, "d q_max")
        if values is None:
            return
        self.d_param.data[...] = F32(values[0])
        self.qmax_param.data[...] = F32(values[1])


@WEIGHT_QUANTIZERS.register("DQ")
class DQWeightQuantizer(_DQBase, ConstraintKeys, WeightQuantizer):
    """``QWeight=DQ``: one (d, q_max) pair per cell, shared by its weight tensors; signed b.
    ``TargetSize``/``TargetBitOps`` add the one-sided penalty λ·relu(C/C* − 1)² (constraints.py).
    State: ``<cell>_QWeight_DQ.syntxt`` = "d q_max"."""

    qmax_max = Key("QMaxMax", to_float, default=127.0)
    bits_min = Key("BitsMin", to_uint, default=2)
    bits_max = Key("BitsMax", to_uint, default=8)

    def quantize(self, weights):
        return [self._apply(w) for w in weights]

    @staticmethod
    def state_file(folder, cell_name):
        return cell_file(folder, cell_name, "_QWeight_DQ.syntxt")


@ACT_QUANTIZERS.register("DQ")
class DQActQuantizer(_DQBase, ActQuantizer):
    """``QAct=DQ``: the same quantizer on the activation; unsigned b unless ``Signed=1``.
    State: ``<cell>_QAct_DQ.syntxt`` = "d q_max"."""

    qmax_max = Key("QMaxMax", to_float, default=255.0)
    bits_min = Key("BitsMin", to_uint, default=1)
    bits_max = Key("BitsMax", to_uint, default=8)
    signed_key = Key("Signed", to_bool, default=False, doc="count a sign bit in b")

    @property
    def signed(self):
        return self.signed_key

    def __call__(self, x, training=True):
        return self._apply(x)

    @staticmethod
    def state_file(folder, cell_name):
        return cell_file(folder, cell_name, "_QAct_DQ.syntxt")
