"""Fully connected layer (N2D2 ``Type=Fc``): y = flatten(x) @ W^T + b.

x (N, ...) is flattened in C order, which is N2D2's x-fastest Fc input order
``c*H*W + y*W + x`` (also ONNX/PyTorch ``Flatten`` of NCHW); W is (O, I) with I the flattened size.
Backward: gx = gy @ W (reshaped to x), gW = gy^T @ flatten(x), gb = sum_n gy.
"""
from ..autograd.function import Function
from ..errors import expect

__all__ = ["linear"]


class Linear(Function):
    def check_inputs(self, x, W, b=None):
        expect(x.ndim >= 1 and W.ndim == 2,
               f"linear: x must be (N, ...) and W (O, I), got x {tuple(x.shape)}, W {tuple(W.shape)}")
        features = 1
        for n in x.shape[1:]:
            features *= n
        expect(features == W.shape[1],
               f"linear: x {tuple(x.shape)} flattens to {features} inputs per item but W "
               f"{tuple(W.shape)} expects {W.shape[1]}")
        expect(b is None or tuple(b.shape) == (W.shape[0],),
               f"linear: bias must be ({W.shape[0]},), got {None if b is None else tuple(b.shape)}")

    def forward(self, xp, x, W, b=None):
        x2 = x.reshape(len(x), -1)
        y = xp.matmul(x2, W.T)
        if b is not None:
            y += b
        if self.needs_backward:
            self.saved = (x2, W, x.shape)
        return y

    def backward(self, xp, gy, needs_grad):
        x2, W, x_shape = self.saved
        gx = xp.matmul(gy, W).reshape(x_shape) if needs_grad[0] else None
        gW = xp.matmul(gy.T, x2) if needs_grad[1] else None
        if len(needs_grad) == 2:
            return gx, gW
        return gx, gW, gy.sum(axis=0) if needs_grad[2] else None


def linear(x, W, b=None):
    """y (N, O) = x.reshape(N, -1) @ W.T + b."""
    return Linear().apply(x, W) if b is None else Linear().apply(x, W, b)
