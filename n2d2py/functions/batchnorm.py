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


def _channel_view(a, ndim):
    """(C,) → (1, C, 1, ...) to broadcast against an (N, C, ...) array."""
    return a.reshape((1, -1) + (1,) * (ndim - 2))


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
        axes = (0,) + tuple(range(2, x.ndim))
        if self.batch_stats:
            mu = x.mean(axis=axes)
            var = x.var(axis=axes)
            self._update_running(xp, mu, var, x.size // x.shape[1])
        else:
            mu, var = self.mean.astype(x.dtype), self.var.astype(x.dtype)
        inv_std = 1 / xp.sqrt(var + x.dtype.type(self.eps))
        x_hat = (x - _channel_view(mu, x.ndim)) * _channel_view(inv_std, x.ndim)
        if self.needs_backward:
            self.saved = (x_hat, inv_std, scale, axes)
        return _channel_view(scale, x.ndim) * x_hat + _channel_view(bias, x.ndim)

    def _update_running(self, xp, mu, var, n):
        # n/(n-1) turns the biased batch variance into the unbiased one (spec §2.8.1); a
        # one-value-per-channel batch has no unbiased estimate, so it keeps the biased one.
        unbiased = var * (n / max(n - 1, 1))
        m = self.momentum
        self.mean[...] = m * mu.astype(self.mean.dtype) + (1 - m) * self.mean
        self.var[...] = m * unbiased.astype(self.var.dtype) + (1 - m) * self.var

    def backward(self, xp, gy, needs_grad):
        x_hat, inv_std, scale, axes = self.saved
        ndim = gy.ndim
        g_scale = (gy * x_hat).sum(axis=axes)
        g_bias = gy.sum(axis=axes)
        gx = None
        if needs_grad[0]:
            g_hat = gy * _channel_view(scale, ndim)
            if self.batch_stats:
                # closed form of d/dx through μ and σ²: (ĝ - mean(ĝ) - x̂·mean(ĝ·x̂)) / σ
                n = gy.size // gy.shape[1]
                mean_g = _channel_view(g_bias * scale / n, ndim)
                mean_gx = _channel_view(g_scale * scale / n, ndim)
                gx = (g_hat - mean_g - x_hat * mean_gx) * _channel_view(inv_std, ndim)
            else:
                gx = g_hat * _channel_view(inv_std, ndim)
        return (gx,
                g_scale.astype(scale.dtype, copy=False) if needs_grad[1] else None,
                g_bias.astype(scale.dtype, copy=False) if needs_grad[2] else None)


def batch_norm(x, scale, bias, mean, var, eps=1e-5, training=True, momentum=0.1):
    """N2D2 BatchNorm on (N, C, ...) ``x``; ``scale``/``bias`` (C,) Parameters or arrays,
    ``mean``/``var`` (C,) arrays updated in place when ``training and momentum != 0``."""
    return BatchNorm(mean, var, eps, training, momentum).apply(x, scale, bias)
