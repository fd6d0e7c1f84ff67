"""Activations beyond N2D2's set (**n2d2py extension, not in N2D2**), as PyTorch and ONNX define
them; float32 in, float32 out, written once against ``xp``.

* ``hard_sigmoid(x, alpha=1/6, beta=0.5)``: ``clip(alpha·x + beta, 0, 1)`` (ONNX HardSigmoid
  defaults are alpha=0.2; PyTorch's ``hardsigmoid`` is alpha=1/6); gradient alpha strictly
  inside (0, 1), 0 outside.
* ``hard_swish(x)``: ``x · clip(x/6 + 1/2, 0, 1)`` (ONNX HardSwish, PyTorch ``hardswish``);
  gradient 0 below -3, ``x/3 + 1/2`` on [-3, 3] (PyTorch's choice at the two kinks), 1 above.
* ``gelu(x, approximate="none")``: ``x · Φ(x)`` with Φ the standard normal CDF, ``0.5·(1 +
  erf(x/√2))``; ``approximate="tanh"``: ``0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))``.
* ``erf_array(xp, x)``: the error function on an array (NumPy has none): a Maclaurin series
  (all terms positive) for |x| ≤ 2.5, the continued fraction of erfc beyond; float64 inside,
  relative error below 1e-15, far under float32's rounding.
"""
import math

from ..autograd.function import Function

__all__ = ["hard_sigmoid", "hard_swish", "gelu", "erf_array", "HardSigmoid", "HardSwish",
           "Gelu"]

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_CUBIC = 0.044715
SERIES_LIMIT = 2.5
SERIES_TERMS = 40        # the series' term n < (2x²)^n / (2n+1)!!: < 1e-17 at x = 2.5, n = 40
FRACTION_TERMS = 60      # erfc's continued fraction beyond x = 2.5: converged to 1e-16


def erf_array(xp, x):
    """erf of every element of ``x`` (computed in float64, returned as float64)."""
    x = xp.asarray(x, dtype=xp.float64)
    a = xp.abs(x)
    # series: erf(a) = 2/√π · e^(-a²) · Σ_n (2a²)^n · a / (1·3·5···(2n+1))
    small = xp.minimum(a, SERIES_LIMIT)
    two_a2 = 2.0 * small * small
    term = small.copy()
    total = small.copy()
    for n in range(1, SERIES_TERMS):
        term = term * two_a2 / (2 * n + 1)
        total += term
    series = (2.0 / math.sqrt(math.pi)) * xp.exp(-small * small) * total
    # continued fraction: erfc(a) = e^(-a²)/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + ...))))
    big = xp.maximum(a, SERIES_LIMIT)
    tail = big.copy()
    for k in range(FRACTION_TERMS, 0, -1):
        tail = big + (k / 2.0) / tail
    fraction = 1.0 - xp.exp(-big * big) / (math.sqrt(math.pi) * tail)
    return xp.sign(x) * xp.where(a <= SERIES_LIMIT, series, fraction)


class HardSigmoid(Function):
    def __init__(self, alpha=1.0 / 6.0, beta=0.5):
        self.alpha, self.beta = float(alpha), float(beta)

    def forward(self, xp, x):
        y = xp.clip(self.alpha * x + self.beta, 0, 1).astype(x.dtype, copy=False)
        if self.needs_backward:
            self.saved = y
        return y

    def backward(self, xp, gy, needs_grad):
        y = self.saved
        return ((gy * ((y > 0) & (y < 1)) * self.alpha).astype(gy.dtype, copy=False),)


class HardSwish(Function):
    def forward(self, xp, x):
        if self.needs_backward:
            self.saved = x
        return (x * xp.clip(x / 6 + 0.5, 0, 1)).astype(x.dtype, copy=False)

    def backward(self, xp, gy, needs_grad):
        x = self.saved
        d = xp.where(x < -3, 0, xp.where(x > 3, 1, x / 3 + 0.5))
        return ((gy * d).astype(gy.dtype, copy=False),)


class Gelu(Function):
    def __init__(self, approximate="none"):
        if approximate not in ("none", "tanh"):
            raise ValueError(f"gelu: approximate={approximate!r}, expected 'none' or 'tanh'")
        self.approximate = approximate

    def forward(self, xp, x):
        x64 = x.astype(xp.float64)
        if self.approximate == "tanh":
            t = xp.tanh(SQRT_2_OVER_PI * (x64 + GELU_CUBIC * x64 ** 3))
            y = 0.5 * x64 * (1 + t)
            saved = t
        else:
            cdf = 0.5 * (1 + erf_array(xp, x64 / math.sqrt(2.0)))
            y = x64 * cdf
            saved = cdf
        if self.needs_backward:
            self.saved = (x64, saved)
        return y.astype(x.dtype)

    def backward(self, xp, gy, needs_grad):
        x, s = self.saved
        if self.approximate == "tanh":
            inner = SQRT_2_OVER_PI * (1 + 3 * GELU_CUBIC * x * x)
            d = 0.5 * (1 + s) + 0.5 * x * (1 - s * s) * inner
        else:   # Φ(x) + x·φ(x)
            d = s + x * xp.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return ((gy * d).astype(gy.dtype),)


def hard_sigmoid(x, alpha=1.0 / 6.0, beta=0.5):
    return HardSigmoid(alpha, beta).apply(x)


def hard_swish(x):
    return HardSwish().apply(x)


def gelu(x, approximate="none"):
    return Gelu(approximate).apply(x)
