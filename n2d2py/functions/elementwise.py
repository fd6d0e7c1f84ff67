"""Several inputs into one: N2D2 ``ElemWise`` operations, channel concatenation, ``Scaling``.

``elemwise`` follows N2D2's ``ElemWiseCell_Frame`` (keys ``Operation``, ``Weights``, ``Shifts``),
per input k with weight wₖ and shift sₖ:

    Sum           y = Σ (wₖ·xₖ + sₖ)                gₖ = wₖ·gy
    AbsSum        y = Σ wₖ·|xₖ|                     gₖ = wₖ·sign(xₖ)·gy   (sign(0) = +1)
    EuclideanSum  y = sqrt(Σ (wₖ²·xₖ² + sₖ²))       gₖ = wₖ²·xₖ/y·gy      (0 where y = 0)
    Prod          y = Π xₖ                          gₖ = Π_{j≠k} xⱼ·gy
    Max           y = max xₖ                        gₖ = gy at the first argmax, else 0

N2D2's code computes EuclideanSum as sqrt(Σ wₖ²xₖ² + sₖ²), not sqrt(Σ(wₖxₖ+sₖ)²);
both agree when the shifts are 0 (every shipped INI), and this file follows the code. Prod and
Max ignore weights and shifts, AbsSum ignores shifts, as in N2D2.

``relu_clipping`` (None: none) fuses N2D2's Rectifier after the operation (a residual sum and
its ReLU): the numbers of ``relu(elemwise(...), clipping=relu_clipping)``, one pass fewer. A
Sum with unit weights and no shifts (a residual) adds its inputs in one pass and hands the
output gradient to each input unchanged.

A weight or shift is a scalar (``CoeffMode=PerInput``; ``PerLayer`` is the same value for every
input) or a (C,) array broadcast over the channel axis (``PerChannel``; N2D2 applies channel c's
coefficient to every input, so the cell passes the same array for each).
"""
from ..autograd.function import Function
from ..errors import N2D2Error, expect
from ..parallel import elementwise
from .activation import rectified_gradient_all, rectify, rectify_all, relu_top

__all__ = ["elemwise", "concat", "scaling", "ELEMWISE_OPERATIONS"]

ELEMWISE_OPERATIONS = ("Sum", "AbsSum", "EuclideanSum", "Prod", "Max")


def _coefficient(xp, value, like):
    """A scalar stays a Python float; a (C,) sequence becomes a (1, C, 1, ...) array."""
    if isinstance(value, (int, float)) or getattr(value, "ndim", 1) == 0:
        return float(value)
    a = xp.asarray(value, dtype=like.dtype)
    expect(a.ndim == 1 and len(a) == like.shape[1],
           f"elemwise: a per-channel coefficient must have {like.shape[1]} values, "
           f"got shape {a.shape}")
    return a.reshape((1, -1) + (1,) * (like.ndim - 2))


class ElemWise(Function):
    """N2D2 ElemWise over k inputs of identical shape (see the module docstring)."""

    def __init__(self, operation, weights=None, shifts=None, relu_clipping=None):
        expect(operation in ELEMWISE_OPERATIONS,
               f"elemwise: unknown Operation {operation!r}, expected one of "
               f"{', '.join(ELEMWISE_OPERATIONS)}", N2D2Error)
        self.operation, self.weights, self.shifts = operation, weights, shifts
        self.top = relu_top(relu_clipping)

    def check_inputs(self, *xs):
        expect(len(xs) >= 1, "elemwise: needs at least one input")
        for k, x in enumerate(xs[1:], 1):
            expect(x.shape == xs[0].shape,
                   f"elemwise: input {k} has shape {x.shape}, input 0 has {xs[0].shape}")
        for name, values in (("weights", self.weights), ("shifts", self.shifts)):
            expect(values is None or len(values) == len(xs),
                   f"elemwise: {len(xs)} inputs but {len(values or ())} {name}")

    def forward(self, xp, *xs):
        n = len(xs)
        w = [_coefficient(xp, v, xs[0]) for v in (self.weights or [1.0] * n)]
        s = [_coefficient(xp, v, xs[0]) for v in (self.shifts or [0.0] * n)]
        op, arg = self.operation, None
        self.plain_sum = op == "Sum" and all(type(v) is float and v == 1.0 for v in w) and \
            all(type(v) is float and v == 0.0 for v in s) and xs[0].ndim > 0 and \
            all(xk.dtype == xs[0].dtype for xk in xs)
        if self.plain_sum:
            y = self._plain_sum(xp, xs)
            if self.needs_backward:
                self.saved = (xs, w, y, arg)
            return y
        if op == "Sum":
            y = sum(wk * xk + sk for wk, xk, sk in zip(w, xs, s))
        elif op == "AbsSum":
            y = sum(wk * xp.abs(xk) for wk, xk in zip(w, xs))
        elif op == "EuclideanSum":
            y = xp.sqrt(sum(wk * wk * xk * xk + sk * sk for wk, xk, sk in zip(w, xs, s)))
        elif op == "Prod":
            y = xs[0].copy()
            for xk in xs[1:]:
                y *= xk
        else:  # Max: first maximum wins, as N2D2's strict '>' scan
            stacked = xp.stack(xs)
            arg = xp.argmax(stacked, axis=0)
            y = xp.take_along_axis(stacked, arg[None], axis=0)[0]
        y = xp.asarray(y, dtype=xs[0].dtype)
        if self.needs_backward:
            self.saved = (xs, w, y, arg)
        if self.top is not None:  # EuclideanSum's backward needs the sum before the ReLU
            y = rectify_all(xp, y, self.top, xp.empty_like(y) if op == "EuclideanSum" else y)
            self.rectified = y
        return y

    def _plain_sum(self, xp, xs):
        """x0 + x1 + ... (and the fused ReLU) in one pass over cache-sized batch chunks: the
        values of Σ (1·xₖ + 0) (a -0.0 sum stays -0.0 where adding 0.0 made it +0.0)."""
        y = xp.empty_like(xs[0])

        def part(lo, hi):
            out = y[lo:hi]
            if len(xs) == 1:
                out[...] = xs[0][lo:hi]
            else:
                xp.add(xs[0][lo:hi], xs[1][lo:hi], out=out)
            for xk in xs[2:]:
                out += xk[lo:hi]
            if self.top is not None:
                rectify(xp, out, self.top, out)
        elementwise(xp, y, part)
        if self.top is not None:
            self.rectified = y
        return y

    def backward(self, xp, gy, needs_grad):
        xs, w, y, arg = self.saved
        op = self.operation
        if self.top is not None:
            gy = rectified_gradient_all(xp, self.rectified, gy, self.top)
        if self.plain_sum:  # every input's gradient is gy itself (as Add's)
            return tuple(gy if needed else None for needed in needs_grad)
        grads = []
        for k, xk in enumerate(xs):
            if not needs_grad[k]:
                grads.append(None)
                continue
            if op == "Sum":
                g = w[k] * gy
            elif op == "AbsSum":
                g = w[k] * xp.where(xk >= 0, gy, -gy)
            elif op == "EuclideanSum":
                safe = xp.where(y != 0, y, 1)
                g = xp.where(y != 0, w[k] * w[k] * xk / safe * gy, 0)
            elif op == "Prod":
                g = gy.copy()
                for j, xj in enumerate(xs):
                    if j != k:  # product of the others: no division, so zeros are safe
                        g *= xj
            else:
                g = xp.where(arg == k, gy, 0)
            grads.append(xp.asarray(g, dtype=xk.dtype))
        return tuple(grads)


class Concat(Function):
    """y = [x₀, x₁, ...] along ``axis``; the gradient is split back at the same offsets."""

    def __init__(self, axis=1):
        self.axis = axis

    def check_inputs(self, *xs):
        expect(len(xs) >= 1, "concat: needs at least one input")
        a = self.axis % xs[0].ndim
        for k, x in enumerate(xs[1:], 1):
            same = x.ndim == xs[0].ndim and all(
                x.shape[d] == xs[0].shape[d] for d in range(x.ndim) if d != a)
            expect(same, f"concat: input {k} has shape {x.shape}, incompatible with input 0 "
                         f"{xs[0].shape} outside axis {self.axis}")

    def forward(self, xp, *xs):
        self.sizes = [x.shape[self.axis] for x in xs]
        return xp.concatenate(xs, axis=self.axis)

    def backward(self, xp, gy, needs_grad):
        grads, start = [], 0
        for size, needed in zip(self.sizes, needs_grad):
            index = [slice(None)] * gy.ndim
            index[self.axis] = slice(start, start + size)
            grads.append(gy[tuple(index)].copy() if needed else None)
            start += size
        return tuple(grads)


class Scaling(Function):
    """N2D2 ``Scaling``: y = factor·x (a constant scalar, or a (C,) per-channel factor)."""

    def __init__(self, factor):
        self.factor = factor

    def forward(self, xp, x):
        self.f = _coefficient(xp, self.factor, x)
        return xp.asarray(x * self.f, dtype=x.dtype)

    def backward(self, xp, gy, needs_grad):
        return (xp.asarray(gy * self.f, dtype=gy.dtype),)


def elemwise(xs, operation, weights=None, shifts=None, relu_clipping=None):
    """N2D2 ElemWise (``Operation``, ``Weights``, ``Shifts``) over the list ``xs``;
    ``relu_clipping``: a ReLU fused after it (None: none; 0: no cap; 6: ReLU6)."""
    return ElemWise(operation, weights, shifts, relu_clipping).apply(*xs)


def concat(xs, axis=1):
    """Concatenation along ``axis`` (channels by default: docs/INI.md §6, Inputs)."""
    return Concat(axis).apply(*xs)


def scaling(x, factor):
    """N2D2 ``Scaling`` cell: multiply by a constant ``factor`` (scalar or per channel)."""
    return Scaling(factor).apply(x)
