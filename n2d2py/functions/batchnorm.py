"""Batch normalisation over the channel axis (N2D2 ``Type=BatchNorm``).

    y = scale · (x - μ) / sqrt(σ² + eps) + bias        per channel c (axis 1), over (N, H, W)

Training (``momentum > 0``) normalises with the batch mean and the **biased** batch variance
(Σ(x-μ)²/n, n = N·H·W), like cuDNN, PyTorch and N2D2's CPU ``Frame``, and updates the running
statistics in place:

    mean ← m·μ + (1 - m)·mean          var ← m·σ²·n/(n-1) + (1 - m)·var

with the **unbiased** batch variance (N2D2 with cuDNN, and PyTorch). ``m`` weights
the *new* batch (PyTorch's convention, default 0.1). N2D2's running variance starts at 0 (set by
the cell, not here).

Inference, and training with ``momentum == 0`` (N2D2's "freezing trick": frozen statistics),
use the running statistics; the function is then a per-channel affine map and gradients flow
through it as such (nothing is updated).

``group`` (a data-parallel communicator, ``distributed/sync_batchnorm.py``): the per-channel
batch sums are summed over the replicas before use, so each normalises with the global batch's
statistics (SyncBatchNorm); the gradients of scale and bias stay the replica's own sums (the
gradient allreduce adds them), the one of x uses the global ones.
"""
import numpy

from ..autograd.function import Function
from ..errors import expect
from ..parallel import elementwise
from . import _onednn_chain
from ._im2col import scratch
from .activation import rectified_gradient, rectified_gradient_all, rectify, rectify_all, \
    relu_top

__all__ = ["batch_norm"]


class BatchNorm(Function):
    """y = scale·x̂ + bias with x̂ = (x - μ)/sqrt(σ² + eps); inputs (x, scale, bias).

    ``mean`` and ``var`` are plain (C,) arrays (not differentiated), updated in place when
    training with batch statistics.
    """

    fast = False  # set by _fast_forward: backward from the saved x, not x_hat

    def __init__(self, mean, var, eps=1e-5, training=True, momentum=0.1, group=None,
                 relu_clipping=None):
        self.mean, self.var = mean, var
        self.eps, self.momentum = float(eps), float(momentum)
        self.batch_stats = bool(training) and self.momentum != 0.0
        self.group = group
        self.top = relu_top(relu_clipping)  # a fused ReLU's cap (inf: none), or None

    def _global(self, xp, *sums):
        """Per-channel sums (and counts) of this batch, summed over ``group`` when given."""
        if self.group is None:
            return sums
        sizes = [s.size for s in sums]
        flat = self.group.allreduce(xp.concatenate([xp.asarray(s).reshape(-1) for s in sums]))
        offsets = numpy.cumsum([0] + sizes)
        return tuple(flat[a:b].reshape(xp.asarray(s).shape).astype(xp.asarray(s).dtype)
                     for s, a, b in zip(sums, offsets[:-1], offsets[1:]))

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
            fast = self._fast_forward(xp, x, x3, scale, bias, n)
            if fast is not None:
                return fast
            if self.group is not None:
                n = int(self._global(xp, xp.asarray([float(n)]))[0][0])
            mu = self._global(xp, xp.einsum("nci->c", x3))[0] / dt(n)
            d = x3 - mu[:, None]
            var = self._global(xp, xp.einsum("nci,nci->c", d, d))[0] / dt(n)
            self._update_running(xp, mu, var, n)
        else:
            mu, var = self.mean.astype(x.dtype), self.var.astype(x.dtype)
            if not self.needs_backward:
                return self._inference(xp, x, x3, mu, 1 / xp.sqrt(var + dt(self.eps)), scale,
                                       bias)
            d = x3 - mu[:, None]
        inv_std = 1 / xp.sqrt(var + dt(self.eps))
        d *= inv_std[:, None]  # d is x_hat from here on
        if self.needs_backward:
            self.saved = (d, inv_std, scale, n)
        y = d * scale.astype(x.dtype, copy=False)[:, None]
        y += bias.astype(x.dtype, copy=False)[:, None]
        if self.top is not None:
            rectify_all(xp, y, self.top, y)
        return self._output(y.reshape(x.shape))

    def _inference(self, xp, x, x3, mu, inv_std, scale, bias):
        """Running statistics, nothing saved: the operations of the path above in one pass
        over cache-sized batch chunks (the same bits), no x̂ array."""
        columns = [a.astype(x.dtype, copy=False)[:, None] for a in (mu, inv_std, scale, bias)]
        mu, inv_std, scale, bias = columns
        y = xp.empty_like(x3)

        def normalise(lo, hi):
            out = y[lo:hi]
            xp.subtract(x3[lo:hi], mu, out=out)
            out *= inv_std
            out *= scale
            out += bias
            if self.top is not None:
                rectify(xp, out, self.top, out)
        elementwise(xp, x3, normalise)
        return y.reshape(x.shape)

    def _output(self, y):
        if self.top is not None and self.needs_backward:
            self.rectified = y  # the fused ReLU's gradient mask comes from its output
        return y

    def _fast_forward(self, xp, x, x3, scale, bias, n):
        """Batch statistics in one reading pass, y = x·A + B in two: or None (then the
        two-pass code above runs) where the channel means are large against their spread.

        Σx and Σx² are summed per (item, channel) in float32 (einsum, a batched dot) and over
        the batch in float64, so var = E[x²] − μ² loses ~log10(1 + μ²/σ²) digits to the
        cancellation: bounded by ``FAST_MEAN_RATIO`` (μ² <= 64·σ²), else the two-pass path.
        Backward then needs x (kept by the graph anyway), not a saved x̂, and takes x̂ as
        (x − μ)·inv_std inside its per-channel coefficients.
        """
        if not ((n > 1 or self.group is not None) and x.dtype == xp.float32 and x3.shape[2] > 0):
            return None
        f64 = xp.float64
        s1, s2 = _channel_sums(xp, x3, x3)
        if self.group is not None:
            s1, s2, count = self._global(xp, s1, s2, xp.asarray([float(n)]))
            n = int(count[0])
        mu = s1 / n
        var = xp.maximum(s2 / n - mu * mu, 0.0)
        if bool((mu * mu > FAST_MEAN_RATIO * var).any()):
            return None
        dt = x.dtype.type
        mu32, var32 = mu.astype(x.dtype), var.astype(x.dtype)
        self._update_running(xp, mu32, var32, n)
        inv_std = 1 / xp.sqrt(var + self.eps)  # float64 per channel
        A = scale.astype(f64) * inv_std
        B = bias.astype(f64) - mu * A
        if self.needs_backward:
            self.fast, self.saved = True, (x3, mu, inv_std, scale, n)
        # (N, C·rest) against a (C·rest,) row: a contiguous inner loop (2x faster than a
        # (C, 1) column broadcast)
        x2 = x3.reshape(x3.shape[0], -1)
        y = xp.empty_like(x2)
        relu = () if self.top is None else (("relu", self.top),)
        # oneDNN's ReLU makes NaN 0 where rectify keeps it: only finite coefficients (then
        # x·A + B is NaN nowhere, the statistics being finite)
        if not (bool(xp.isfinite(A).all() and xp.isfinite(B).all()) and _onednn_chain.chain(
                y.reshape(x3.shape), x3, "mul", A.astype(dt), ("add", B.astype(dt)), *relu)):
            A_row, B_row = _row(xp, A, x3.shape[2], dt), _row(xp, B, x3.shape[2], dt)

            def affine(lo, hi):
                xp.multiply(x2[lo:hi], A_row, out=y[lo:hi])
                y[lo:hi] += B_row
                if self.top is not None:
                    rectify(xp, y[lo:hi], self.top, y[lo:hi])
            elementwise(xp, x2, affine)
        return self._output(y.reshape(x.shape))

    def _update_running(self, xp, mu, var, n):
        # n/(n-1) turns the biased batch variance into the unbiased one (N2D2, PyTorch); a
        # one-value-per-channel batch has no unbiased estimate, so it keeps the biased one.
        unbiased = var * (n / max(n - 1, 1))
        m = self.momentum
        self.mean[...] = m * mu.astype(self.mean.dtype) + (1 - m) * self.mean
        self.var[...] = m * unbiased.astype(self.var.dtype) + (1 - m) * self.var

    def backward(self, xp, gy, needs_grad):
        if self.fast:
            return self._fast_backward(xp, gy, needs_grad)
        if self.top is not None:  # through the fused ReLU first (a fresh array)
            gy = rectified_gradient_all(xp, self.rectified, gy, self.top)
        x_hat, inv_std, scale, n = self.saved
        gy3 = gy.reshape(x_hat.shape)
        g_scale = xp.einsum("nci,nci->c", gy3, x_hat)
        g_bias = xp.einsum("nci->c", gy3)
        gx = None
        if needs_grad[0]:
            k = (scale * inv_std)[:, None]
            if self.batch_stats:
                # closed form of d/dx through μ and σ²: scale/σ · (g - mean(g) - x̂·mean(g·x̂))
                total_scale, total_bias = self._global(xp, g_scale, g_bias)
                gx = x_hat * (-total_scale / n)[:, None]
                gx += gy3
                gx -= (total_bias / n)[:, None]
                gx *= k
            else:
                gx = gy3 * k
            gx = gx.reshape(gy.shape)
        return (gx,
                g_scale.astype(scale.dtype, copy=False) if needs_grad[1] else None,
                g_bias.astype(scale.dtype, copy=False) if needs_grad[2] else None)

    def _fast_backward(self, xp, gy, needs_grad):
        """Backward of ``_fast_forward``: Σg and Σg·x in one pass each (per item in float32,
        over the batch in float64), Σg·x̂ = inv_std·(Σg·x − μ·Σg), and
        g_x = k·(g − Σg/n − x̂·Σg·x̂/n) = k·(g + Q·x + R) per channel, in four passes (the
        traffic of the two-pass backward, reading x instead of a saved x̂)."""
        x3, mu, inv_std, scale, n = self.saved
        f64 = xp.float64
        if self.top is None:
            gy3 = gy.reshape(x3.shape)
            g_bias, g_dot = _channel_sums(xp, gy3, x3)
        else:  # through the fused ReLU chunk by chunk, summed while in cache; gx's buffer
            y, gy3 = self.rectified.reshape(x3.shape), xp.empty(x3.shape, gy.dtype)
            g_out = gy.reshape(x3.shape)
            g_bias, g_dot = _channel_sums(xp, gy3, x3, lambda lo, hi: rectified_gradient(
                xp, y[lo:hi], g_out[lo:hi], self.top, gy3[lo:hi]))
        g_scale = inv_std * (g_dot - mu * g_bias)
        gx = None
        if needs_grad[0]:
            dt, rest = gy.dtype.type, x3.shape[2]
            total_scale, total_bias = self._global(xp, g_scale, g_bias)
            Q = -inv_std * total_scale / n
            R = -total_bias / n - Q * mu
            x2, gy2 = x3.reshape(x3.shape[0], -1), gy3.reshape(x3.shape[0], -1)
            K = scale.astype(f64) * inv_std
            owned = self.top is not None  # gy3 is this function's own array: gx goes there
            gx = gy2 if owned else xp.empty_like(x2)
            if _onednn_chain.chain(gx.reshape(x3.shape), x3, "mul", Q.astype(dt),
                                   ("add", gy3), ("add", R.astype(dt)), ("mul", K.astype(dt))):
                return (gx.reshape(gy.shape),
                        g_scale.astype(scale.dtype) if needs_grad[1] else None,
                        g_bias.astype(scale.dtype) if needs_grad[2] else None)
            Q_row, R_row, K_row = (_row(xp, v, rest, dt) for v in (Q, R, K))

            def grad(lo, hi):
                g = gx[lo:hi]
                if owned:
                    g += xp.multiply(x2[lo:hi], Q_row,
                                     out=scratch(xp, "bn_grad", g.shape, g.dtype))
                else:
                    xp.multiply(x2[lo:hi], Q_row, out=g)
                    g += gy2[lo:hi]
                g += R_row
                g *= K_row
            elementwise(xp, x2, grad)
            gx = gx.reshape(gy.shape)
        return (gx,
                g_scale.astype(scale.dtype) if needs_grad[1] else None,
                g_bias.astype(scale.dtype) if needs_grad[2] else None)


FAST_MEAN_RATIO = 64.0  # single-pass statistics while μ² <= 64·σ² per channel (see above)


def _channel_sums(xp, a3, b3, produce=None):
    """Σa and Σa·b per channel of (N, C, rest) views, float64: per item and channel in
    float32 (a sum and a batched dot), over the batch in float64 (the same bits for any
    thread count). Each thread sums its batch range in chunks of ``SUM_CHUNK_ELEMENTS``;
    ``produce(lo, hi)``, if given, first writes that chunk of ``a3``."""
    per_item = xp.empty((2,) + a3.shape[:2], dtype=a3.dtype)

    def sums(lo, hi):
        if produce is not None:
            produce(lo, hi)
        per_item[0, lo:hi] = xp.einsum("nci->nc", a3[lo:hi])  # (CuPy's einsum has no out=)
        per_item[1, lo:hi] = _row_dots(xp, a3[lo:hi], b3[lo:hi])
    elementwise(xp, a3, sums, SUM_CHUNK_ELEMENTS)
    totals = per_item.sum(axis=1, dtype=xp.float64)
    return totals[0], totals[1]


#: a chunk of ``_channel_sums`` (8 MiB of float32). L2-sized chunks (1 << 17) read each operand
#: once from memory but took as long on one thread, and on two they made each thread take the
#: GIL back ~30 times per range, each time another thread's chunk held it a futex sleep and
#: wake-up (~100 µs on the 2-core VM of tools/bench/README.md): the sums of a ResNet-20 step
#: went 46 -> 41 ms from 1 to 2 threads, 44 -> 28 ms with these chunks
SUM_CHUNK_ELEMENTS = 1 << 21


def _row_dots(xp, a, b):
    """(N, C, I) x (N, C, I) -> (N, C) float32 dot products: a batched matmul (BLAS dots,
    2-3x faster than einsum's sum of products) unless the rows are too short to pay.

    Not einsum for long rows either, though OpenBLAS's dots run side by side badly on two
    threads: einsum's two-operand sums changed with the batch around a row (a SyncBatchNorm
    over two replicas no longer matched one process over their global batch)."""
    if a.shape[2] >= 16:
        return xp.matmul(a[:, :, None, :], b[:, :, :, None])[:, :, 0, 0]
    return xp.einsum("nci,nci->nc", a, b)


def _row(xp, per_channel, rest, dt):
    """A per-channel (C,) float64 vector as the (C·rest,) float32 row of an (N, C·rest) view."""
    return xp.repeat(per_channel.astype(dt), rest)


def batch_norm(x, scale, bias, mean, var, eps=1e-5, training=True, momentum=0.1, group=None,
               relu_clipping=None):
    """N2D2 BatchNorm on (N, C, ...) ``x``; ``scale``/``bias`` (C,) Parameters or arrays,
    ``mean``/``var`` (C,) arrays updated in place when ``training and momentum != 0``;
    ``group``: the replicas whose batches share their statistics (SyncBatchNorm).

    ``relu_clipping``: None, or a ReLU fused after the normalisation, the same numbers as
    ``relu(batch_norm(...), clipping=relu_clipping)`` (0: no cap, 6: ReLU6) without the
    normalised array in between: one pass over memory fewer forward and backward."""
    return BatchNorm(mean, var, eps, training, momentum, group,
                     relu_clipping).apply(x, scale, bias)
