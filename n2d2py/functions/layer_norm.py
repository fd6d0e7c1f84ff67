"""Layer normalisation (ONNX ``LayerNormalization``, PyTorch ``layer_norm``; **n2d2py
extension, not in N2D2**): over the trailing ``axes`` of x,

    y = (x - mean) / sqrt(var + epsilon) * scale + bias      (var: the biased variance)

``scale`` and ``bias`` (or None) broadcast to the normalised trailing shape. Backward, with
x̂ = (x - mean)·r, r = 1/sqrt(var + ε), ĝ = gy·scale and means over the normalised axes:
gx = r·(ĝ - mean(ĝ) - x̂·mean(ĝ·x̂)); gscale = Σ gy·x̂, gbias = Σ gy over the other axes.
Statistics in float64 (a mean of thousands of float32 values), the output in x's dtype.
"""
from ..autograd.function import Function
from .arith import unbroadcast

__all__ = ["layer_norm", "LayerNorm"]


class LayerNorm(Function):
    def __init__(self, count, epsilon=1e-5):
        self.count, self.epsilon = int(count), float(epsilon)   # the trailing axes normalised

    def axes(self, x):
        return tuple(range(x.ndim - self.count, x.ndim))

    def forward(self, xp, x, scale=None, bias=None):
        axes = self.axes(x)
        x64 = x.astype(xp.float64)
        mean = x64.mean(axis=axes, keepdims=True)
        centred = x64 - mean
        rstd = 1.0 / xp.sqrt((centred * centred).mean(axis=axes, keepdims=True) + self.epsilon)
        xhat = centred * rstd
        y = xhat if scale is None else xhat * scale
        y = y if bias is None else y + bias
        if self.needs_backward:
            self.saved = (xhat, rstd, scale, bias is not None)
        return y.astype(x.dtype)

    def backward(self, xp, gy, needs_grad):
        xhat, rstd, scale, has_bias = self.saved
        axes = tuple(range(xhat.ndim - self.count, xhat.ndim))
        g = gy.astype(xp.float64)
        ghat = g if scale is None else g * scale
        grads = [None]
        if needs_grad[0]:
            gx = rstd * (ghat - ghat.mean(axis=axes, keepdims=True)
                         - xhat * (ghat * xhat).mean(axis=axes, keepdims=True))
            grads[0] = gx.astype(gy.dtype)
        if scale is not None:
            grads.append(unbroadcast(xp, g * xhat, scale.shape).reshape(scale.shape)
                         .astype(scale.dtype) if needs_grad[1] else None)
        if has_bias:
            shape = self.inputs[-1].shape
            grads.append(unbroadcast(xp, g, shape).reshape(shape).astype(gy.dtype)
                         if needs_grad[-1] else None)
        return tuple(grads)


def layer_norm(x, count, scale=None, bias=None, epsilon=1e-5):
    """Normalise ``x`` over its last ``count`` axes (then ``* scale + bias``)."""
    inputs = [x] + [v for v in (scale, bias) if v is not None]
    if scale is None and bias is not None:
        raise ValueError("layer_norm: a bias without a scale")
    return LayerNorm(count, epsilon).apply(*inputs)
