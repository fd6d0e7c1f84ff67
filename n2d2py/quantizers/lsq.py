"""LSQ: learned step-size quantizers for weights and activations (Esser et al.,
ICLR 2020), as N2D2's LSQ cell and activation quantizers compute them.

One fused Function ``LSQQuantize`` serves both; they differ only in the integer range, how the
step is initialised, and the gradient scale G. float32 throughout, as N2D2's kernels.
"""
import math

from ..autograd import Function, Variable
from ..backend import DTYPE
from ..distributed.shard import current as current_part
from ..errors import expect
from ..ini.convert import to_bool, to_float, to_uint
from ..io.names import cell_file
from ..params import Key, at_least
from .base import (ACT_QUANTIZERS, WEIGHT_QUANTIZERS, ActQuantizer, Grid, LazyParameter,
                   RangeBits, WeightQuantizer, follow_device, load_scalar_state,
                   param_value, write_syntxt_scalar)
from .rounding import rounding_function

F32 = DTYPE


class LSQQuantize(Function):
    """LSQ on (x, s), integer range [Qn, Qp], v = x/s:

    forward   y = Qn·s if v ≤ Qn;  Qp·s if v ≥ Qp;  rnd(v)·s otherwise
    backward  g_x = g·[Qn < v < Qp]                              (strict: bounds get nothing)
              g_s = G·Σ g·e,  e = Qn if v ≤ Qn;  Qp if v ≥ Qp;  rnd(v) − v otherwise
    rnd = half away from zero (N2D2 CPU) or half to even (CUDA).
    """

    def __init__(self, qn, qp, grad_scale, rounding="half_away"):
        self.qn, self.qp, self.grad_scale = qn, qp, grad_scale
        self.rnd = rounding_function(rounding)

    def check_inputs(self, x, s):
        expect(s.size == 1, f"LSQ: the step size must have one element, got shape {s.shape}")

    def forward(self, xp, x, s):
        # clip(rnd(v), Qn, Qp) is the three-way select above (Qn, Qp are integers, so rounding
        # inside never leaves them; NaN stays NaN) without ``where``, slow on random data
        s0 = s.reshape(())
        v = x / s0
        r = self.rnd(xp, v)
        xp.clip(r, F32(self.qn), F32(self.qp), out=r)
        if self.needs_backward:
            self.saved = (v, s.shape)
        r *= s0
        return r

    def backward(self, xp, gy, needs_grad):
        v, s_shape = self.saved
        qn, qp = self.qn, self.qp
        inside = (v > qn) & (v < qp)
        gx = gy * inside if needs_grad[0] else None
        gs = None
        if needs_grad[1]:
            # e = r - v inside, r (= Qn or Qp) outside; v is clamped first so that an infinite
            # v outside gives r, not r - inf·0
            r = self.rnd(xp, v)
            xp.clip(r, F32(qn), F32(qp), out=r)
            vc = xp.maximum(v, F32(qn))
            xp.minimum(vc, F32(qp), out=vc)
            vc *= inside
            e = r - vc
            gs = (xp.sum(gy * e, dtype=gy.dtype) * gy.dtype.type(self.grad_scale)).reshape(s_shape)
        return gx, gs


def lsq_weight_range(R):
    """Qn = −((R+1)//2), Qp = (R−1)//2: R=255 -> [−128, 127], R=15 -> [−8, 7], R=1 -> [−1, 0]."""
    return -((R + 1) // 2), (R - 1) // 2


def init_step(xp, x, qp, part=None):
    """s0 = 2·mean|x|/sqrt(Qp): mean accumulated in float64, quotient cast to float32, then
    doubled in float32 (N2D2's ``2.0f * float(mean(true) / sqrt(Qp))``). ``part``: a
    data-parallel replica's part of the batch (``distributed.shard``): the global batch's mean."""
    if part is None:
        mean = float(xp.mean(xp.abs(x), dtype=xp.float64))
    else:
        total, count = part.sum([float(xp.abs(x).sum(dtype=xp.float64)), x.size])
        mean = total / count
    return F32(2.0) * F32(mean / math.sqrt(qp))


class _LSQStep(RangeBits):
    """Keys, the learnable step (group "quantizer"), its first-forward initialisation, grid and
    state shared by both LSQ quantizers; ``qn_qp`` is the integer range."""

    step_size_init = Key("StepSize", to_float, default=100.0,
                         doc="initial step when SetOptInitStepSize=0")
    set_opt_init_step_size = Key("SetOptInitStepSize", to_bool, default=True,
                                 doc="initialise the step at the first forward (weights, batch)")
    step_param = LazyParameter("step_size", lambda q: q.step_size_init)
    state_names = ("_initialized",)  # N2D2's 10000 sentinel: s0 is set at the first forward

    def __init__(self, rounding="half_away", **values):
        rounding_function(rounding)
        self.rounding = rounding
        self._initialized = False
        super().__init__(**values)

    @property
    def step_size(self):
        """The current step s (float32 value), read by the fusion/export passes."""
        return param_value(self.step_param)

    def grid(self):
        qn, qp = self.qn_qp
        s = self.step_size
        return Grid(s, qn, qp, qp * s)

    def _initialize(self, xp, x, qp, part=None):
        if not self._initialized:
            if self.set_opt_init_step_size:
                self.step_param.data[...] = init_step(xp, x, qp, part)
            self._initialized = True

    def export_state(self, folder, cell_name):
        write_syntxt_scalar(self.state_file(folder, cell_name), self.step_size,
                            trailing=self.state_trailing)

    def import_state(self, folder, cell_name, ignore_missing=False):
        value = load_scalar_state(self.state_file(folder, cell_name), ignore_missing)
        if value is not None:
            self.step_param.data[...] = F32(value)
            # N2D2's weight quantizer would re-initialise over an imported step (its sentinel
            # survives the import); we keep the imported value, as its activation quantizer does.
            self._initialized = True


@WEIGHT_QUANTIZERS.register("LSQ")
class LSQWeightQuantizer(_LSQStep, WeightQuantizer):
    """``QWeight=LSQ``: signed range [−((R+1)//2), (R−1)//2], learnable step.

    With SetOptInitStepSize (default) the first forward sets s0 = 2·mean|W_0|/sqrt(Qp) from the
    cell's first weight tensor only. G = 1/sqrt(N_w·Qp), N_w = all weights of the cell. Every
    tensor is quantized with the same step; g_s sums over them. Ordinary gradients: the incoming
    ``gy`` already carries N2D2's 1/B. State: ``<cell>_alphaW_LSQ.syntxt`` ("<s> ").
    """

    # R=1 gives Qp=0: N2D2 then divides by sqrt(0) (infinite s0 and G); refused where read
    range = Key("Range", to_uint, default=255, doc="number of steps R", check=at_least(2))
    state_trailing = " "

    @property
    def qn_qp(self):
        return lsq_weight_range(self.range)

    def quantize(self, weights):
        qn, qp = self.qn_qp
        step = follow_device(self.step_param, weights[0])
        first = weights[0].data if isinstance(weights[0], Variable) else weights[0]
        self._initialize(step.xp, first, qp)
        n_w = sum(w.size for w in weights)
        g = float(F32(1.0 / math.sqrt(n_w * qp)))
        return [LSQQuantize(qn, qp, g, self.rounding).apply(w, step) for w in weights]

    @staticmethod
    def state_file(folder, cell_name):
        return cell_file(folder, cell_name, "_alphaW_LSQ.syntxt")


@ACT_QUANTIZERS.register("LSQ")
class LSQActQuantizer(_LSQStep, ActQuantizer):
    """``QAct=LSQ``: unsigned range [0, R], learnable step.

    With SetOptInitStepSize (default) the first forward sets s0 = 2·mean|x|/sqrt(R) over the
    whole batch tensor. G = 1/sqrt(numel(x)·R) is recomputed at every forward, so it depends on
    the batch size. State: ``<cell>_QAct_LSQ_StepSize.syntxt`` (one float, no newline).
    """

    range = Key("Range", to_uint, default=255, doc="number of steps R", check=at_least(1))
    state_trailing = ""

    @property
    def qn_qp(self):
        return 0, int(self.range)

    def __call__(self, x, training=True):
        R = self.range
        step = follow_device(self.step_param, x)
        data = x.data if isinstance(x, Variable) else x
        part = current_part() if training else None    # data-parallel: the global batch's
        self._initialize(step.xp, data, R, part)
        size = data.size if part is None else part.global_size(data.size)
        g = float(F32(1.0 / math.sqrt(size * R)))
        return LSQQuantize(0, R, g, self.rounding).apply(x, step)

    @staticmethod
    def state_file(folder, cell_name):
        return cell_file(folder, cell_name, "_QAct_LSQ_StepSize.syntxt")
