"""Pooling with dilated windows (ONNX ``MaxPool``/``AveragePool`` ``dilations``; **n2d2py
extension, not in N2D2**, whose pools have no dilation), NCHW.

The window of output (i, j) reads xpad[i·sh + kh·dh, j·sw + kw·dw] for the kH·kW offsets; the
output size is ``pool_output_size`` with the dilated extent (k - 1)·d + 1 as kernel, ``ceil_mode``
as ONNX/PyTorch (the last window starts inside the input or the leading padding). Max: padding
never wins, the gradient goes to the first maximum in (kh, kw) order. Average: divided by the
counted part of each window: its input pixels, plus the declared padding with
``count_include_pad`` (never the ceil-mode overhang). Loops run over kernel offsets only.
"""
from ..autograd.function import Function
from ..errors import expect
from ._im2col import pads4, pair, window
from .pool import _axis_geometry, lowest

__all__ = ["dilated_pool2d", "DilatedPool2d"]


class DilatedPool2d(Function):
    def __init__(self, kind, kernel, stride, dilation, padding=(0, 0, 0, 0), ceil_mode=False,
                 count_include_pad=False):
        self.kind = kind
        self.kernel, self.stride = pair(kernel, "kernel"), pair(stride, "stride")
        self.dilation, self.pads = pair(dilation, "dilation"), pads4(padding)
        self.ceil_mode, self.count_include_pad = bool(ceil_mode), bool(count_include_pad)

    def geometry(self, h, w):
        """((OH, OW), (t, b, l, r) with the ceil-mode overhang added at the ends)."""
        t, b, l, r = self.pads
        spans = [(k - 1) * d + 1 for k, d in zip(self.kernel, self.dilation)]
        oh, extra_h = _axis_geometry(h, spans[0], self.stride[0], t, b, self.ceil_mode)
        ow, extra_w = _axis_geometry(w, spans[1], self.stride[1], l, r, self.ceil_mode)
        return (oh, ow), (t, b + extra_h, l, r + extra_w)

    def check_inputs(self, x):
        expect(x.ndim == 4, f"dilated_pool2d: x must be (N, C, H, W), got {tuple(x.shape)}")
        expect(self.kind in ("Max", "Average"), f"dilated_pool2d: kind {self.kind!r}")
        (oh, ow), _ = self.geometry(x.shape[2], x.shape[3])
        expect(oh >= 1 and ow >= 1, f"dilated_pool2d: input {tuple(x.shape)} too small")

    def views(self, a, out_hw):
        return [window(a, kh, kw, self.stride, out_hw, self.dilation)
                for kh in range(self.kernel[0]) for kw in range(self.kernel[1])]

    def padded(self, xp, x, pads, fill):
        n, c, h, w = x.shape
        t, b, l, r = pads
        a = xp.full((n, c, h + t + b, w + l + r), fill, dtype=x.dtype)
        a[:, :, t:t + h, l:l + w] = x
        return a

    def divisor(self, xp, h, w, out_hw, pads, dtype):
        t, b, l, r = pads
        mask = xp.zeros((1, 1, h + t + b, w + l + r), dtype=dtype)
        if self.count_include_pad:   # the declared padding counts, the overhang does not
            pt, pb, pl, pr = self.pads
            mask[:, :, t - pt:t + h + pb, l - pl:l + w + pr] = 1
        else:
            mask[:, :, t:t + h, l:l + w] = 1
        return sum(self.views(mask, out_hw))

    def forward(self, xp, x):
        out_hw, pads = self.geometry(x.shape[2], x.shape[3])
        fill = lowest(xp, x.dtype) if self.kind == "Max" else 0
        views = self.views(self.padded(xp, x, pads, fill), out_hw)
        if self.kind == "Max":
            y = views[0].copy()
            for v in views[1:]:
                xp.maximum(y, v, out=y)
            if self.needs_backward:   # the first offset reaching the maximum takes the gradient
                first = xp.full(y.shape, len(views), dtype=xp.int32)
                for k in range(len(views) - 1, -1, -1):
                    first[views[k] == y] = k
                self.saved = (x.shape, out_hw, pads, first)
            return y
        div = self.divisor(xp, x.shape[2], x.shape[3], out_hw, pads, x.dtype)
        if self.needs_backward:
            self.saved = (x.shape, out_hw, pads, div)
        return (sum(views) / div).astype(x.dtype, copy=False)

    def backward(self, xp, gy, needs_grad):
        x_shape, out_hw, pads, extra = self.saved
        n, c, h, w = x_shape
        t, b, l, r = pads
        gpad = xp.zeros((n, c, h + t + b, w + l + r), dtype=gy.dtype)
        for k, v in enumerate(self.views(gpad, out_hw)):
            v += gy * (extra == k) if self.kind == "Max" else gy / extra
        return (xp.ascontiguousarray(gpad[:, :, t:t + h, l:l + w]),)


def dilated_pool2d(x, kind, kernel, stride, dilation, padding=(0, 0, 0, 0), ceil_mode=False,
                   count_include_pad=False):
    """``kind`` "Max" or "Average"; ``padding`` (top, bottom, left, right)."""
    return DilatedPool2d(kind, kernel, stride, dilation, padding, ceil_mode,
                         count_include_pad).apply(x)
