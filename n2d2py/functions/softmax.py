"""Softmax over channels (N2D2 ``Type=Softmax``).

    y_c = exp(x_c - max_j x_j) / Σ_j exp(x_j - max_j x_j)        at each (n, y, x), over ``axis``

``group_size`` = G > 0 (N2D2 ``GroupSize``) splits the axis into consecutive groups of G channels
and normalises within each group. Backward: gx = y·(gy - Σ_j gy_j·y_j) over the same group.
``WithLoss=1`` (the Jacobian skipped) is ``loss.softmax_cross_entropy``, not this function.
"""
from ..autograd.function import Function
from ..errors import expect

__all__ = ["softmax", "log_softmax"]


def _grouped(x, axis, group_size):
    """View x with ``axis`` split into (C/G, G); returns the view and the axis of a group."""
    if not group_size:
        return x, axis
    shape = x.shape[:axis] + (x.shape[axis] // group_size, group_size) + x.shape[axis + 1:]
    return x.reshape(shape), axis + 1


def log_softmax_array(xp, x, axis):
    """log softmax(x) along ``axis`` with the max subtracted (log-sum-exp), on raw arrays."""
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


def softmax_array(xp, x, axis):
    """softmax(x) along ``axis``, overflow-free, on raw arrays (shared with loss.py)."""
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


class _GroupedFunction(Function):
    """Softmax-like along ``axis`` within groups: subclasses give ``array`` (the forward on the
    grouped view) and ``gradient`` (gx from y and gy on that view)."""

    def __init__(self, axis=1, group_size=0):
        self.axis, self.group_size = axis, int(group_size)

    def check_inputs(self, x):
        expect(-x.ndim <= self.axis < x.ndim,
               f"{self.name}: axis {self.axis} out of range for shape {x.shape}")
        c = x.shape[self.axis]
        expect(self.group_size >= 0 and (not self.group_size or c % self.group_size == 0),
               f"{self.name}: GroupSize {self.group_size} must divide the {c} channels")

    def forward(self, xp, x):
        xg, a = _grouped(x, self.axis % x.ndim, self.group_size)
        y = self.array(xp, xg, a)
        if self.needs_backward:
            self.saved = (y, a)
        return y.reshape(x.shape)

    def backward(self, xp, gy, needs_grad):
        y, a = self.saved
        gx = self.gradient(xp, y, gy.reshape(y.shape), a)
        return (gx.reshape(gy.shape),)


class Softmax(_GroupedFunction):
    """y = softmax(x) along ``axis`` (within groups of ``group_size`` when > 0)."""
    name = "softmax"

    def array(self, xp, x, axis):
        return softmax_array(xp, x, axis)

    def gradient(self, xp, y, gy, axis):
        return y * (gy - (gy * y).sum(axis=axis, keepdims=True))


class LogSoftmax(_GroupedFunction):
    """y = log softmax(x); gx = gy - softmax(x)·Σ gy (same grouping as ``Softmax``)."""
    name = "log_softmax"

    def array(self, xp, x, axis):
        return log_softmax_array(xp, x, axis)

    def gradient(self, xp, y, gy, axis):
        return gy - xp.exp(y) * gy.sum(axis=axis, keepdims=True)


def softmax(x, axis=1, group_size=0):
    """N2D2 ``Softmax`` (``GroupSize``) over ``axis`` (channels of NCHW by default)."""
    return Softmax(axis, group_size).apply(x)


def log_softmax(x, axis=1, group_size=0):
    """log of ``softmax``, computed stably (used by losses and AM-Softmax style heads)."""
    return LogSoftmax(axis, group_size).apply(x)
