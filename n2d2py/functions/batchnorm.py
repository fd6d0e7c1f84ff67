"""Batch normalisation over the channel axis (N2D2 ``Type=BatchNorm``, spec/ini.md §2.8.1, §8.13).

    y = scale · (x - μ) / sqrt(σ² + eps) + bias        per channel c (axis 1), over (N, H, W)

Training (``momentum > 0``) normalises with the batch mean and the **biased** batch variance
(Σ(x-μ)²/n, n = N·H·W), like cuDNN, PyTorch and N2D2's CPU ``Frame``, and updates the running
statistics in place:

    mean ← m·μ + (1 - m)·mean          var ← m·σ²·n/(n-1) + (1 - m)·var

with the **unbiased** batch variance (N2D2 with cuDNN, and PyTorch; spec §2.8.1). ``m`` weights
the *new* batch (PyTorch's convention, default 0.1). N2D2's running variance starts at 0 (set by
the cell, not here).

Inference, and training with ``momentum == 0`` (N2D2's "freezing trick", §8.13), use the running
statistics; the function is then a per-channel affine map and gradients flow through it as such
(nothing is updated).
"""
from ..autograd.function import Function
from ..errors import expect

__all__ = ["batch_norm"]


class BatchNorm(Function):
    """y = scale·x̂ + bias with x̂ = (x - μ)/sqrt(σ² + eps); inputs (x, scale, bias).

    ``mean`` and ``var`` are plain (C,) arrays (not differentiated), updated in place when
    training with batch statistics.
    """

    def __init__(self, mean, var, eps=1e-5, training=True, momentum=0.1):
        self.mean, self.var = mean, var
        self.eps, self.momentum = float(eps), float(momentum)
        self.batch_stats = bool(training) and self.momentum != 0.0

    def check_inputs(self, x, scale, bias):
        expect(x.ndim >= 2, f"batch_norm: x must be (N, C, ...), got shape {x.shape}")
        c = x.shape[1]
        for name, a in (("scale", scale), ("bias", bias), ("mean", self.mean), ("var", self.var)):
            expect(tuple(a.shape) == (c,),
                   f"batch_norm: {name} must have shape ({c},) for x of shape {x.shape}, "
                   f"got {tuple(a.shape)}")

    def forward(self, xp, x, scale, bias):
        # (N, C, rest) view: per-channel sums are one einsum each (a fused reduction, no
        # temporary), and every broadcast is against a (C, 1) column
        x3 = x.reshape(x.shape[0], x.shape[1], -1)
        n = x3.shape[0] * x3.shape[2]
        dt = x.dtype.type
        if self.batch_stats:
            mu = xp.einsum("nci->c", x3) / dt(n)
            d = x3 - mu[:, None]
            var = xp.einsum("nci,nci->c", d, d) / dt(n)
            self._update_running(xp, mu, var, n)
        else:
            mu, var = self.mean.astype(x.dtype), self.var.astype(x.dtype)
            d = x3 - mu[:, None]
        inv_std = 1 / xp.sqrt(var + dt(self.eps))
        d *= inv_std[:, None]  # d is x_hat from here on
        if self.needs_backward:
            self.saved = (d, inv_std, scale, n)
        y = d * scale.astype(x.dtype, copy=False)[:, None]
        y += bias.astype(x.dtype, copy=False)[:, None]
        return y.reshape(x.shape)

    def _update_running(self, xp, mu, var, n):
        # n/(n-1) turns the biased batch variance into the unbiased one (spec §2.8.1); a
        # one-value-per-channel batch has no unbiased estimate, so it keeps the biased one.
        unbiased = var * (n / max(n - 1, 1))
        m = self.momentum
        self.mean[...] = m * mu.astype(self.mean.dtype) + (1 - m) * self.mean
        self.var[...] = m * unbiased.astype(self.var.dtype) + (1 - m) * self.var

    def backward(self, xp, gy, needs_grad):
        x_hat, inv_std, scale, n = self.saved
        gy3 = gy.reshape(x_hat.shape)
        g_scale = xp.einsum("nci,nci->c", gy3, x_hat)
        g_bias = xp.einsum("nci->c", gy3)
        gx = None
        if needs_grad[0]:
            k = (scale * inv_std)[:, None]
            if self.batch_stats:
                # closed form of d/dx through μ and σ²: scale/σ · (g - mean(g) - x̂·mean(g·x̂))
                gx = x_hat * (-g_scale / n)[:, None]
                gx += gy3
                gx -= (g_bias / n)[:, None]
                gx *= k
            else:
                gx = gy3 * k
            gx = gx.reshape(gy.shape)
        return (gx,
                g_scale.astype(scale.dtype, copy=False) if needs_grad[1] else None,
                g_bias.astype(scale.dtype, copy=False) if needs_grad[2] else None)


def batch_norm(x, scale, bias, mean, var, eps=1e-5, training=True, momentum=0.1):
    """N2D2 BatchNorm on (N, C, ...) ``x``; ``scale``/``bias`` (C,) Parameters or arrays,
    ``mean``/``var`` (C,) arrays updated in place when ``training and momentum != 0``."""
    return BatchNorm(mean, var, eps, training, momentum).apply(x, scale, bias)
