"""``QAct=PACT``: parameterized clipping activation (Choi et al., 2018), the
baseline SAT's CG-PACT refines. **n2d2py extension: N2D2 has no PACT quantizer**; the keys are
SAT's (``QAct.Range``, ``QAct.Alpha``), and so are the grid, the state file
(``<cell>_QAct_PACT_Alpha.syntxt``) and what the ONNX export and the fusion read
(``ClipActQuantizer``). With a = |α| and R = ``Range``:

    forward   y = clip(x, 0, a),  y_q = rint(R·(y/a))/R · a         (rint: half to even)
    backward  g_x = g·[0 ≤ x < a]
              g_α = Σ g·[x ≥ a]                                      (no rounding-error term)

The rounding is straight through (the paper's STE): unlike CG-PACT, α's gradient ignores the
rounding error below a, and x gets the gradient on [0, a) rather than (0, a].
"""
from ..autograd import Function
from ..backend import DTYPE
from ..errors import expect
from .base import ACT_QUANTIZERS, ClipActQuantizer, follow_device

F32 = DTYPE


class PACTQuantize(Function):
    """PACT on (x, α), formulas in the module docstring."""

    def __init__(self, R):
        self.R = R

    def check_inputs(self, x, alpha):
        expect(alpha.size == 1, f"PACT: α must have one element, got shape {alpha.shape}")

    def forward(self, xp, x, alpha):
        a = xp.abs(alpha).reshape(())
        y = xp.clip(x, F32(0.0), a)
        Rf = F32(self.R)
        yq = xp.rint((y / a) * Rf) / Rf * a
        if self.needs_backward:
            self.saved = ((x >= 0) & (x < a), x >= a, alpha.shape)
        return yq.astype(x.dtype, copy=False)

    def backward(self, xp, gy, needs_grad):
        inside, above, alpha_shape = self.saved
        gx = gy * inside if needs_grad[0] else None
        galpha = xp.sum(gy * above, dtype=gy.dtype).reshape(alpha_shape) if needs_grad[1] else None
        return gx, galpha


@ACT_QUANTIZERS.register("PACT")
class PACTActQuantizer(ClipActQuantizer):
    """``QAct=PACT``: clip to [0, |α|] with a learnable α (``Alpha``, default 1.0), R+1 levels."""

    def __call__(self, x, training=True):
        return PACTQuantize(self.range).apply(x, follow_device(self.alpha_param, x))


__all__ = ["PACTActQuantizer", "PACTQuantize"]
