"""Pooling (N2D2 ``Type=Pool``, ``Pooling=Max|Average``), NCHW.

max:     y[n, c, i, j] = max_{kh, kw} xpad[n, c, i*sh + kh, j*sw + kw], padding = -inf (never
         wins); the gradient goes to the argmax, ties to the first in (kh, kw) order.
average: y = sum_{kh, kw} xpad[...] / count, padding = 0. N2D2 always counts the padding:
         count = kH*kW. ``count_include_pad=False`` (ONNX's default) counts only input
         pixels.
size:    out = floor((in + p0 + p1 - k) / s) + 1; ``ceil_mode`` rounds up, as ONNX/PyTorch: the
         last window must start inside the input or the leading padding. Its extra end cells
         are emulated, as N2D2's ONNX import does, by extra end padding that never wins a max
         and is never counted in an average, with either count_include_pad (PyTorch's rule: an
         average with count_include_pad counts the declared padding but not the ceil_mode
         overhang).
channel_pool2d: N2D2 Pool with a Mapping that is not one-to-one (docs/INI.md §6): output o
         pools over the window and every channel c with mask[o, c]; an average divides by
         kH*kW*count_o. Channel ties go to the first channel. An output with no connected
         channel is 0 (no gradient).
Every loop below runs over the kH*kW kernel offsets only, never over pixels or the batch.
"""
from ..autograd.function import Function
from ..errors import ShapeError, expect
from ..parallel import elementwise
from ._im2col import pads4, padded_chunks, pair, window

__all__ = ["max_pool2d", "avg_pool2d", "global_avg_pool2d", "global_max_pool2d",
           "channel_pool2d", "pool_output_size"]


def _axis_geometry(size, k, s, p0, p1, ceil_mode):
    """(out, extra end padding) of one axis."""
    span = size + p0 + p1 - k
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p0:
        out -= 1  # a window starting in the trailing padding would see no input
    return out, max(0, (out - 1) * s + k - (size + p0 + p1))


def pool_output_size(in_hw, kernel, stride=None, padding=0, ceil_mode=False):
    """(OH, OW) of max_pool2d/avg_pool2d for an input (H, W)."""
    (kH, kW) = pair(kernel, "kernel")
    (sh, sw) = pair(kernel if stride is None else stride, "stride")
    t, b, l, r = pads4(padding)
    return (_axis_geometry(in_hw[0], kH, sh, t, b, ceil_mode)[0],
            _axis_geometry(in_hw[1], kW, sw, l, r, ceil_mode)[0])


class _Pool(Function):
    """Shared geometry: kernel, stride, padding (t, b, l, r) and the ceil_mode end padding."""
    name = "pool"

    def __init__(self, kernel, stride=None, padding=(0, 0), ceil_mode=False):
        self.kernel = pair(kernel, "kernel")
        self.stride = pair(self.kernel if stride is None else stride, "stride")
        self.pads, self.ceil_mode = pads4(padding), bool(ceil_mode)

    def check_inputs(self, x, *rest):
        expect(x.ndim == 4, f"{self.name}: x must be (N, C, H, W), got shape {tuple(x.shape)}")
        expect(min(self.pads) >= 0, f"{self.name}: padding must be >= 0, got {self.pads}")
        expect(min(self.kernel + self.stride) >= 1,
               f"{self.name}: kernel {self.kernel} and stride {self.stride} must be >= 1")
        oh, ow = self.geometry(x.shape)[0]
        expect(oh >= 1 and ow >= 1, f"{self.name}: input {tuple(x.shape)} too small for "
                                    f"kernel {self.kernel} with padding {self.pads}")

    def geometry(self, x_shape):
        """((OH, OW), padding extended by the ceil_mode overhang)."""
        t, b, l, r = self.pads
        oh, extra_h = _axis_geometry(x_shape[2], self.kernel[0], self.stride[0], t, b, self.ceil_mode)
        ow, extra_w = _axis_geometry(x_shape[3], self.kernel[1], self.stride[1], l, r, self.ceil_mode)
        return (oh, ow), (t, b + extra_h, l, r + extra_w)

    def padded(self, xp, x, fill):
        out_hw, pads = self.geometry(x.shape)
        return next(padded_chunks(xp, x, pads, len(x), fill=fill))[1], out_hw, pads

    def offsets(self):
        return [(kh, kw) for kh in range(self.kernel[0]) for kw in range(self.kernel[1])]

    def spread(self, xp, g, x_shape, out_hw, pads, weight_of=None):
        """The adjoint of reading windows: add ``g`` (or ``weight_of(k, lo, hi)``, its batch
        items lo:hi) into every window of a zero padded buffer, then crop the padding away."""
        N, C, H, W = x_shape
        t, b, l, r = pads
        Hp, Wp = H + t + b, W + l + r
        # disjoint windows (kernel <= stride, e.g. 2x2/2): each cell is written once, no add;
        # if they also tile the padded input, nothing is left to zero first
        disjoint = all(k <= s for k, s in zip(self.kernel, self.stride))
        tiled = disjoint and self.kernel == self.stride and \
            (out_hw[0] * self.kernel[0], out_hw[1] * self.kernel[1]) == (Hp, Wp)
        gxpad = (xp.empty if tiled else xp.zeros)((N, C, Hp, Wp), dtype=g.dtype)

        def body(lo, hi):   # a cache-sized batch range (parallel.elementwise)
            for k, (kh, kw) in enumerate(self.offsets()):
                part = g[lo:hi] if weight_of is None else weight_of(k, lo, hi)
                if disjoint:
                    window(gxpad[lo:hi], kh, kw, self.stride, out_hw)[...] = part
                else:
                    window(gxpad[lo:hi], kh, kw, self.stride, out_hw)[...] += part
        elementwise(xp, gxpad, body)
        return xp.ascontiguousarray(gxpad[:, :, t:t + H, l:l + W])


def lowest(xp, dtype):
    """The padding a max never picks: -inf, or the integer type's minimum (the integer engine
    runs ONNX max pools on codes, ``onnx/cells.py``)."""
    return xp.iinfo(dtype).min if xp.issubdtype(dtype, xp.integer) else -xp.inf


def _max_windows(xp, pool, x):
    """Running max over the kernel offsets: (y, index of the first maximum in (kh, kw) order).

    Arithmetic only, no ``where`` (a data-dependent select is several times slower on random
    data): y is a running ``maximum`` (a NaN propagates, as in PyTorch); the index counts the
    offsets before the first one equal to y (``notyet`` stays true until a window value hits).
    """
    xpad, out_hw, pads = pool.padded(xp, x, lowest(xp, x.dtype))
    offsets = pool.offsets()
    y = xp.empty(x.shape[:2] + tuple(out_hw), dtype=x.dtype)
    idx = xp.zeros(y.shape, dtype=xp.uint8 if len(offsets) <= 256 else xp.int32)

    def body(lo, hi):   # a cache-sized batch range (parallel.elementwise)
        views = [window(xpad[lo:hi], kh, kw, pool.stride, out_hw) for kh, kw in offsets]
        yc, ic = y[lo:hi], idx[lo:hi]
        yc[...] = views[0]
        for v in views[1:]:
            xp.maximum(yc, v, out=yc)
        if len(views) > 1:
            notyet = views[0] != yc
            for v in views[1:-1]:
                ic += notyet
                notyet &= v != yc
            ic += notyet
    elementwise(xp, y, body)
    return y, idx, out_hw, pads


def _sum_windows(xp, pool, x):
    xpad, out_hw, pads = pool.padded(xp, x, 0)
    s = None
    for kh, kw in pool.offsets():
        v = window(xpad, kh, kw, pool.stride, out_hw)
        s = v.copy() if s is None else s + v
    return s, out_hw, pads


class MaxPool2d(_Pool):
    name = "max_pool2d"

    def forward(self, xp, x):
        y, idx, out_hw, pads = _max_windows(xp, self, x)
        if self.needs_backward:
            self.saved = (x.shape, idx, out_hw, pads)
        return y

    def backward(self, xp, gy, needs_grad):
        x_shape, idx, out_hw, pads = self.saved
        if self.kernel == (1, 1):  # a subsampling (ResNet shortcuts): every gy is its own max
            return (self.spread(xp, gy, x_shape, out_hw, pads),)
        return (self.spread(xp, gy, x_shape, out_hw, pads,
                            lambda k, lo, hi: gy[lo:hi] * (idx[lo:hi] == k)),)


class AvgPool2d(_Pool):
    name = "avg_pool2d"

    def __init__(self, kernel, stride=None, padding=(0, 0), ceil_mode=False,
                 count_include_pad=True):
        super().__init__(kernel, stride, padding, ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def divisor(self, xp, x_shape, out_hw, dtype):
        """kH*kW (N2D2), or per output cell the counted part of its window (separable in h, w)."""
        if self.count_include_pad and not self.ceil_mode:
            return self.kernel[0] * self.kernel[1]
        t, b, l, r = self.pads
        counts = []
        for size, k, s, p0, p1, n in ((x_shape[2], self.kernel[0], self.stride[0], t, b, out_hw[0]),
                                      (x_shape[3], self.kernel[1], self.stride[1], l, r, out_hw[1])):
            start = xp.arange(n) * s - p0
            lo, hi = (-p0, size + p1) if self.count_include_pad else (0, size)
            counts.append(xp.minimum(start + k, hi) - xp.maximum(start, lo))
        return (counts[0][:, None] * counts[1][None, :]).astype(dtype)

    def forward(self, xp, x):
        s, out_hw, pads = _sum_windows(xp, self, x)
        div = self.divisor(xp, x.shape, out_hw, x.dtype)
        if self.needs_backward:
            self.saved = (x.shape, div, out_hw, pads)
        return s / div

    def backward(self, xp, gy, needs_grad):
        x_shape, div, out_hw, pads = self.saved
        return (self.spread(xp, gy / div, x_shape, out_hw, pads),)


class GlobalAvgPool2d(Function):
    def check_inputs(self, x):
        expect(x.ndim == 4, f"global_avg_pool2d: x must be (N, C, H, W), got {tuple(x.shape)}")

    def forward(self, xp, x):
        self.shape = x.shape
        return x.mean(axis=(2, 3), keepdims=True)

    def backward(self, xp, gy, needs_grad):
        H, W = self.shape[2:]
        return (xp.broadcast_to(gy / (H * W), self.shape).copy(),)


class GlobalMaxPool2d(Function):
    def check_inputs(self, x):
        expect(x.ndim == 4, f"global_max_pool2d: x must be (N, C, H, W), got {tuple(x.shape)}")

    def forward(self, xp, x):
        N, C, H, W = x.shape
        flat = x.reshape(N, C, H * W)
        idx = flat.argmax(axis=2)  # first maximum in row-major order
        if self.needs_backward:
            self.saved = (x.shape, idx)
        return xp.take_along_axis(flat, idx[:, :, None], axis=2).reshape(N, C, 1, 1)

    def backward(self, xp, gy, needs_grad):
        (N, C, H, W), idx = self.saved
        hit = xp.arange(H * W)[None, None, :] == idx[:, :, None]
        return ((hit * gy.reshape(N, C, 1)).reshape(N, C, H, W),)


class ChannelPool2d(_Pool):
    """Pool whose output o covers the window and every channel c with mask[o, c]."""
    name = "channel_pool2d"

    def __init__(self, mask, kind, kernel, stride=None, padding=(0, 0)):
        super().__init__(kernel, stride, padding, False)
        self.mask = mask
        kinds = {"max": "max", "average": "average", "avg": "average"}
        if str(kind).lower() not in kinds:
            raise ShapeError(f"channel_pool2d: kind must be 'Max' or 'Average', got {kind!r}")
        self.kind = kinds[str(kind).lower()]

    def check_inputs(self, x):
        super().check_inputs(x)
        shape = tuple(self.mask.shape)
        expect(len(shape) == 2 and shape[1] == x.shape[1],
               f"channel_pool2d: mask must be (O, C={x.shape[1]}) for x {tuple(x.shape)}, "
               f"got {shape}")

    def forward(self, xp, x):
        mask = xp.asarray(self.mask).astype(bool)
        count = mask.sum(axis=1)
        if self.kind == "average":
            s, out_hw, pads = _sum_windows(xp, self, x)
            N, C = s.shape[:2]
            div = (self.kernel[0] * self.kernel[1] * xp.maximum(count, 1)).astype(x.dtype)
            y = xp.matmul(mask.astype(x.dtype), s.reshape(N, C, -1)) / div[:, None]
            if self.needs_backward:
                self.saved = (x.shape, mask, div, out_hw, pads)
            return y.reshape(N, len(mask), *out_hw)
        ym, idx, out_hw, pads = _max_windows(xp, self, x)
        z = xp.where(mask[None, :, :, None, None], ym[:, None], -xp.inf)  # (N, O, C, OH, OW)
        channel = z.argmax(axis=2)  # first connected channel holding the maximum
        y = xp.take_along_axis(z, channel[:, :, None], axis=2)[:, :, 0]
        connected = (count > 0)[None, :, None, None]
        if self.needs_backward:
            self.saved = (x.shape, idx, channel, connected, out_hw, pads)
        return xp.where(connected, y, xp.zeros((), dtype=y.dtype))

    def backward(self, xp, gy, needs_grad):
        if self.kind == "average":
            x_shape, mask, div, out_hw, pads = self.saved
            N, O = gy.shape[:2]
            g = xp.matmul(mask.T.astype(gy.dtype), (gy.reshape(N, O, -1) / div[:, None]))
            return (self.spread(xp, g.reshape(N, x_shape[1], *out_hw), x_shape, out_hw, pads),)
        x_shape, idx, channel, connected, out_hw, pads = self.saved
        C = x_shape[1]
        hit = channel[:, :, None] == xp.arange(C)[None, None, :, None, None]  # (N, O, C, OH, OW)
        gc = (hit * (gy * connected)[:, :, None]).sum(axis=1)                  # (N, C, OH, OW)
        return (self.spread(xp, gc, x_shape, out_hw, pads,
                            lambda k, lo, hi: gc[lo:hi] * (idx[lo:hi] == k)),)


def max_pool2d(x, kernel, stride=None, padding=(0, 0), ceil_mode=False):
    """Max pooling; ``stride`` defaults to ``kernel``; padding (h, w) or (t, b, l, r)."""
    return MaxPool2d(kernel, stride, padding, ceil_mode).apply(x)


def avg_pool2d(x, kernel, stride=None, padding=(0, 0), ceil_mode=False, count_include_pad=True):
    """Average pooling; N2D2 divides by kH*kW always (``count_include_pad=True``)."""
    return AvgPool2d(kernel, stride, padding, ceil_mode, count_include_pad).apply(x)


def global_avg_pool2d(x):
    """(N, C, H, W) -> (N, C, 1, 1) mean over the image."""
    return GlobalAvgPool2d().apply(x)


def global_max_pool2d(x):
    """(N, C, H, W) -> (N, C, 1, 1) max over the image (gradient to the first maximum)."""
    return GlobalMaxPool2d().apply(x)


def channel_pool2d(x, mask, kind, kernel, stride=None, padding=(0, 0)):
    """N2D2 Pool with a general Mapping: ``mask`` (O, C) bool, ``kind`` 'Max' or 'Average'."""
    return ChannelPool2d(mask, kind, kernel, stride, padding).apply(x)
