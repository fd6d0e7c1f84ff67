"""Element-wise arithmetic with NumPy broadcasting: add, sub, mul, div, neg, sum_all.

Gradients of broadcast operands are summed back to the operand's shape (``_unbroadcast``).
Used by ``Variable.__add__`` and friends and by quantizer formulas.
"""
from ..autograd.function import Function
from ..parallel import sum_of

__all__ = ["add", "sub", "mul", "div", "neg", "sum_all", "unbroadcast"]


def unbroadcast(xp, g, shape):
    """Sum ``g`` over the axes that broadcasting added or stretched to reach ``shape``."""
    if g.shape == tuple(shape):
        return g
    extra = g.ndim - len(shape)
    if extra:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


class Add(Function):
    def forward(self, xp, a, b):
        self.shapes = (a.shape, b.shape)
        return sum_of(xp, a, b)   # same shapes (residual sums): threads (parallel.py)

    def backward(self, xp, gy, needs_grad):
        sa, sb = self.shapes
        return (unbroadcast(xp, gy, sa) if needs_grad[0] else None,
                unbroadcast(xp, gy, sb) if needs_grad[1] else None)


class Sub(Function):
    def forward(self, xp, a, b):
        self.shapes = (a.shape, b.shape)
        return a - b

    def backward(self, xp, gy, needs_grad):
        sa, sb = self.shapes
        return (unbroadcast(xp, gy, sa) if needs_grad[0] else None,
                unbroadcast(xp, -gy, sb) if needs_grad[1] else None)


class Mul(Function):
    def forward(self, xp, a, b):
        if self.needs_backward:
            self.saved = (a, b)
        return a * b

    def backward(self, xp, gy, needs_grad):
        a, b = self.saved
        return (unbroadcast(xp, gy * b, a.shape) if needs_grad[0] else None,
                unbroadcast(xp, gy * a, b.shape) if needs_grad[1] else None)


class Div(Function):
    def forward(self, xp, a, b):
        if self.needs_backward:
            self.saved = (a, b)
        return a / b

    def backward(self, xp, gy, needs_grad):
        a, b = self.saved
        ga = unbroadcast(xp, gy / b, a.shape) if needs_grad[0] else None
        gb = unbroadcast(xp, -gy * a / (b * b), b.shape) if needs_grad[1] else None
        return ga, gb


class Neg(Function):
    def forward(self, xp, x):
        return -x

    def backward(self, xp, gy, needs_grad):
        return (-gy,)


class SumAll(Function):
    def forward(self, xp, x):
        self.shape = x.shape
        return x.sum(dtype=x.dtype).reshape(())

    def backward(self, xp, gy, needs_grad):
        return (xp.broadcast_to(gy, self.shape).copy(),)


def add(a, b):
    return Add().apply(a, b)


def sub(a, b):
    return Sub().apply(a, b)


def mul(a, b):
    return Mul().apply(a, b)


def div(a, b):
    return Div().apply(a, b)


def neg(x):
    return Neg().apply(x)


def sum_all(x):
    """Sum of every element, as a 0-d Variable."""
    return SumAll().apply(x)
