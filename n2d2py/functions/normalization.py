"""Normalisations across channels: N2D2 ``LRN`` and ``Normalize``.

LRN (across channels, the cuDNN/ONNX definition that N2D2's ``LRNCell_Frame_CUDA`` calls):

    d_c = k + (alpha/n) · Σ_{j = c-lo}^{c+hi} x_j²        lo = floor((n-1)/2), hi = ceil((n-1)/2)
    y_c = x_c · d_c^(-beta)

``alpha`` is divided by the window size ``n`` (cuDNN, ONNX and torch agree on that). For odd n
the window is centred and equals torch's ``local_response_norm``; for even n torch's window is
[c - n/2, c + n/2 - 1] (one channel lower) whereas cuDNN/ONNX use [c - n/2 + 1, c + n/2] as here.
N2D2's CPU ``LRNCell_Frame`` sums x (not x²) and has no backward; it is not followed.

Normalize (``NormalizeCell_Frame``), over the channel axis at each (n, y, x):

    L2:  y = x / sqrt(Σ_c x_c² + eps)     eps = 1e-6 (N2D2's constant)
    L1:  y = x / (Σ_c |x_c| + eps)        (N2D2 throws "Unsupported norm" for L1; ours is the
                                          natural counterpart)
"""
from ..autograd.function import Function
from ..errors import N2D2Error, expect

__all__ = ["lrn", "normalize", "NORMALIZE_EPS"]

NORMALIZE_EPS = 1e-6


def _window_sum(xp, a, lo, hi):
    """s_c = Σ_{j=c-lo}^{c+hi} a_j along axis 1, zero outside [0, C): one slice-add per offset
    (the window is a handful of channels, never the pixels)."""
    s = a.copy()
    c = a.shape[1]
    for offset in range(1, max(lo, hi) + 1):
        if offset < c:
            if offset <= hi:   # a_{c+offset} contributes to s_c
                s[:, :c - offset] += a[:, offset:]
            if offset <= lo:   # a_{c-offset} contributes to s_c
                s[:, offset:] += a[:, :c - offset]
    return s


class LRN(Function):
    """Across-channel local response normalisation (module docstring); inputs (N, C, ...)."""

    def __init__(self, n=5, alpha=1e-4, beta=0.75, k=2.0):
        expect(int(n) >= 1, f"lrn: window size N must be >= 1, got {n}", N2D2Error)
        self.n, self.alpha, self.beta, self.k = int(n), float(alpha), float(beta), float(k)
        self.lo = (self.n - 1) // 2
        self.hi = self.n - 1 - self.lo

    def check_inputs(self, x):
        expect(x.ndim >= 2, f"lrn: x must be (N, C, ...), got shape {x.shape}")

    def forward(self, xp, x):
        d = self.k + (self.alpha / self.n) * _window_sum(xp, x * x, self.lo, self.hi)
        d_pow = d ** (-self.beta)
        y = x * d_pow
        if self.needs_backward:
            self.saved = (x, d, d_pow)
        return y.astype(x.dtype, copy=False)

    def backward(self, xp, gy, needs_grad):
        x, d, d_pow = self.saved
        # channel c enters d_j for j in [c-hi, c+lo]: the transposed window swaps lo and hi
        t = gy * x * d_pow / d
        spread = _window_sum(xp, t, self.hi, self.lo)
        gx = gy * d_pow - (2 * self.alpha * self.beta / self.n) * x * spread
        return (gx.astype(gy.dtype, copy=False),)


class Normalize(Function):
    """y = x / ‖x‖ over axis 1 (L2 with eps inside the root, or L1); see module docstring."""

    def __init__(self, norm="L2", eps=NORMALIZE_EPS):
        expect(norm in ("L1", "L2"), f"normalize: Norm must be L1 or L2, got {norm!r}", N2D2Error)
        self.norm, self.eps = norm, float(eps)

    def check_inputs(self, x):
        expect(x.ndim >= 2, f"normalize: x must be (N, C, ...), got shape {x.shape}")

    def forward(self, xp, x):
        if self.norm == "L2":
            scale = xp.sqrt((x * x).sum(axis=1, keepdims=True) + self.eps)
        else:
            scale = xp.abs(x).sum(axis=1, keepdims=True) + self.eps
        y = (x / scale).astype(x.dtype, copy=False)
        if self.needs_backward:
            self.saved = (x, y, scale)
        return y

    def backward(self, xp, gy, needs_grad):
        x, y, scale = self.saved
        # d‖x‖/dx is y for L2 and sign(x) for L1: gx = (gy - ∂‖x‖/∂x · Σ_c gy·y) / ‖x‖
        dot = (gy * y).sum(axis=1, keepdims=True)
        direction = y if self.norm == "L2" else xp.sign(x)
        return (((gy - direction * dot) / scale).astype(gy.dtype, copy=False),)


def lrn(x, n=5, alpha=1e-4, beta=0.75, k=2.0):
    """N2D2 ``LRN`` (config keys ``N``, ``Alpha``, ``Beta``, ``K``), across channels."""
    return LRN(n, alpha, beta, k).apply(x)


def normalize(x, norm="L2"):
    """N2D2 ``Normalize`` (``Norm=L1|L2``) over the channel axis."""
    return Normalize(norm).apply(x)
