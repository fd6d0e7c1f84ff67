"""Straight-through estimators (STE): rounding and clamping whose backward ignores the step.

The QAT quantizers (``n2d2py.quantizers``) fuse their own STE rules into one Function each (SAT's,
CG-PACT's and LSQ's, as N2D2 computes them); these small building blocks are for users composing
their own quantizers from ``F.*`` functions:

    round_ste(x, rounding)   y = rnd(x),            g_x = g            (rnd: "half_even" | "half_away")
    clamp_ste(x, lo, hi)     y = min(max(x,lo),hi), g_x = g·[lo ≤ x ≤ hi]
"""
from ..autograd.function import Function
from ..quantizers.rounding import rounding_function

__all__ = ["round_ste", "clamp_ste"]


class RoundSTE(Function):
    def __init__(self, rounding):
        self.rnd = rounding_function(rounding)

    def forward(self, xp, x):
        return self.rnd(xp, x)

    def backward(self, xp, gy, needs_grad):
        return (gy,)  # the rounding's zero-almost-everywhere derivative is replaced by 1


class ClampSTE(Function):
    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def forward(self, xp, x):
        if self.needs_backward:
            self.saved = x
        return xp.minimum(xp.maximum(x, x.dtype.type(self.lo)), x.dtype.type(self.hi))

    def backward(self, xp, gy, needs_grad):
        x = self.saved
        return (gy * ((x >= self.lo) & (x <= self.hi)),)


def round_ste(x, rounding="half_even"):
    """Round with a straight-through gradient; ``"half_even"`` = C rintf, ``"half_away"`` = C round."""
    return RoundSTE(rounding).apply(x)


def clamp_ste(x, lo, hi):
    """Clamp to [lo, hi]; the gradient passes inside the closed interval and is 0 outside."""
    return ClampSTE(lo, hi).apply(x)
