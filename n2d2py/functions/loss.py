"""Losses as N2D2's targets drive them (docs/INI.md §6 Targets; docs/ARCHITECTURE.md "Functions").

N2D2 feeds back ``target - output`` (a negative gradient, summed over the batch, the solver then
divides by B). Here each loss is a scalar **summed over the batch and divided by N** and its
gradient is the ordinary dL/d(input), so that SGD on it is N2D2's step. ``t`` is a dense target
array of the output's shape (``TargetValue`` on the correct class, ``DefaultValue`` elsewhere).

======================  ===================================  ==================================
N2D2 output cell         loss L                               dL/dx
======================  ===================================  ==================================
Softmax ``WithLoss=1``   -Σ t·log softmax(x) / N              (softmax(x) - t) / N
any cell without loss    0.5·Σ (y - t)² / N                   (y - t) / N
``LogisticWithLoss``     Σ [softplus(x) - t·x] / N            (sigmoid(x) - t) / N
======================  ===================================  ==================================
The softmax gradient is N2D2's pass-through rule; it is the exact derivative of the loss when
each position's targets sum to 1 (TargetValue=1, DefaultValue=0), and N2D2's rule otherwise.
Softmax is over axis 1 (channels) at every (y, x); N is the batch size (axis 0).
"""
from ..autograd.function import Function
from ..errors import expect
from .activation import sigmoid_array
from .softmax import log_softmax_array

__all__ = ["softmax_cross_entropy", "mse", "sigmoid_cross_entropy"]


class _Loss(Function):
    name = "loss"

    def check_inputs(self, x, t):
        expect(x.ndim >= 2, f"{self.name}: output must be (N, C, ...), got shape {x.shape}")
        expect(tuple(t.shape) == tuple(x.shape),
               f"{self.name}: target shape {tuple(t.shape)} != output shape {tuple(x.shape)}")

    def backward(self, xp, gy, needs_grad):
        gx, gt = self.grads(xp)
        # gy is the 0-d upstream gradient (1 for the loss itself)
        return (gx * gy if needs_grad[0] else None,
                gt * gy if needs_grad[1] else None)


class SoftmaxCrossEntropy(_Loss):
    """L = -Σ t·log softmax(x) / N, gradient (softmax(x) - t)/N (N2D2 Softmax WithLoss=1)."""
    name = "softmax_cross_entropy"

    def forward(self, xp, x, t):
        log_y = log_softmax_array(xp, x, 1)
        if self.needs_backward:
            self.saved = (log_y, t)
        return xp.asarray(-(t * log_y).sum() / len(x), dtype=x.dtype)

    def grads(self, xp):
        log_y, t = self.saved
        n = len(log_y)
        return (xp.exp(log_y) - t) / n, -log_y / n


class MSE(_Loss):
    """L = 0.5·Σ(y - t)²/N, gradient (y - t)/N (N2D2's ``target - output`` error, negated)."""
    name = "mse"

    def forward(self, xp, y, t):
        diff = y - t
        if self.needs_backward:
            self.saved = diff
        return xp.asarray(0.5 * (diff * diff).sum() / len(y), dtype=y.dtype)

    def grads(self, xp):
        diff = self.saved
        return diff / len(diff), -diff / len(diff)


class SigmoidCrossEntropy(_Loss):
    """L = Σ[softplus(x) - t·x]/N = -Σ[t·log σ(x) + (1-t)·log(1-σ(x))]/N; gradient (σ(x)-t)/N."""
    name = "sigmoid_cross_entropy"

    def forward(self, xp, x, t):
        softplus = xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))
        if self.needs_backward:
            self.saved = (x, t)
        return xp.asarray((softplus - t * x).sum() / len(x), dtype=x.dtype)

    def grads(self, xp):
        x, t = self.saved
        return (sigmoid_array(xp, x) - t) / len(x), -x / len(x)


def softmax_cross_entropy(x, t):
    """Cross-entropy of softmax over channels of logits ``x`` against dense targets ``t``."""
    return SoftmaxCrossEntropy().apply(x, t)


def mse(y, t):
    """0.5·Σ(y - t)²/N: the loss of an output cell with no softmax/logistic loss."""
    return MSE().apply(y, t)


def sigmoid_cross_entropy(x, t):
    """Binary cross-entropy on logits ``x`` (N2D2 ``LogisticWithLoss``), overflow-free."""
    return SigmoidCrossEntropy().apply(x, t)
