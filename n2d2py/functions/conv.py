"""Convolution (N2D2 ``Type=Conv``) and transposed convolution (``Type=Deconv``), NCHW.

conv2d:   y[n, o, i, j] = b[o] + sum_{c in group(o), kh, kw}
                          W[o, c, kh, kw] * xpad[n, c, i*sh + kh*dh, j*sw + kw*dw]
          out = floor((in + p0 + p1 - (d(k-1)+1)) / s) + 1          (N2D2's Conv)
deconv2d: the adjoint of conv2d in x; W is (C_in, O/groups, kH, kW) like PyTorch,
          out = (in-1)*s + d(k-1)+1 - p0 - p1                       (N2D2's Deconv)

Float32 NumPy convolutions run oneDNN's direct kernels (``_onednn.py``); when oneDNN is not
installed or declines (CuPy, float64, negative pads, zero-upsampling), three GEMM kernels carry
everything, each looping over chunks of the batch (_im2col.py):
``_correlate`` (forward), ``_grad_weight`` and ``_grad_input``; the last picks by cost
between a correlation of the zero-upsampled output gradient with the flipped, transposed
kernels and a col2im (a GEMM, then one add per kernel offset). Large images use one GEMM
per batch item (a single ``matmul`` call) so results land in NCHW without transposed copies;
the unrolled matrices and GEMM outputs are reused work arrays (``_im2col.scratch``).
Groups are a batch dimension of the GEMM (one ``matmul`` call, no Python loop over groups);
depthwise layers (one input channel per group) run ``_depthwise.py``'s kernels instead:
one element-wise pass per kernel offset, no unrolled matrix.
A Mapping (docs/INI.md) is applied by the cell as ``W * mask``; nothing special here.
"""
import numpy

from ..autograd.function import Function
from ..errors import expect
from . import _depthwise, _onednn
from ..parallel import added, split
from ._im2col import (chunk_size, crop, crop_target, im2col, out_size, pads4,
                      padded_chunks, padded_shape, pair, scratch, use_wide, window)

__all__ = ["conv2d", "deconv2d", "conv_output_size", "deconv_output_size"]


def conv_output_size(in_hw, kernel, stride=1, padding=0, dilation=1):
    """(OH, OW) of conv2d for an input (H, W)."""
    (kH, kW), (sh, sw), (dh, dw) = pair(kernel, "kernel"), pair(stride, "stride"), \
        pair(dilation, "dilation")
    t, b, l, r = pads4(padding)
    return (out_size(in_hw[0], kH, sh, dh, t, b), out_size(in_hw[1], kW, sw, dw, l, r))


def deconv_output_size(in_hw, kernel, stride=1, padding=0, dilation=1):
    """(OH, OW) of deconv2d: ``(in-1)*s + d(k-1)+1 - p0 - p1`` (N2D2 Deconv, no output padding)."""
    (kH, kW), (sh, sw), (dh, dw) = pair(kernel, "kernel"), pair(stride, "stride"), \
        pair(dilation, "dilation")
    t, b, l, r = pads4(padding)
    return ((in_hw[0] - 1) * sh + dh * (kH - 1) + 1 - t - b,
            (in_hw[1] - 1) * sw + dw * (kW - 1) + 1 - l - r)


# -- GEMM kernels (raw arrays) -------------------------------------------------------------

# Per-item GEMMs (``(O, K) @ (K, P)`` for each batch item, one ``matmul`` call) write NCHW
# directly and need no transposed copy of gy; they pay off once an item has enough pixels P
# (CPU time on the tools/bench/conv_micro.py shapes, batch 128, one thread: LeNet conv1/conv2
# forward 2.0 -> 0.8 ms and 2.4 -> 1.6 ms; ResNet-20 layers equal). For the weight gradient
# they only win when K = C*kH*kW is tiny (LeNet conv1: 3.3 -> 1.0 ms; conv2 and ResNet lose).
PER_ITEM_MIN_PIXELS = 16
PER_ITEM_GRAD_WEIGHT_MAX_K = 32
WIDE_COL2IM_CHUNK_FACTOR = 4


def _correlate(xp, x, W, stride, pads, dilation, groups, upsample=(1, 1)):
    """y = W (*) pad(upsample(x)), no bias: per chunk, one ``(g, O/g, K) @ (g, K, n*P)`` GEMM,
    or per item ``(g, O/g, K) @ (n, g, K, P)`` when P is large enough (written into y)."""
    if xp is numpy:
        Hp, Wp = padded_shape(x.shape[2:], pads, upsample)
        y = _onednn.forward(x, W, (out_size(Hp, W.shape[2], stride[0], dilation[0], 0, 0),
                                   out_size(Wp, W.shape[3], stride[1], dilation[1], 0, 0)),
                            stride, pads, dilation, groups, upsample)
        if y is not None:
            return y
    if _depthwise.is_depthwise(W.shape, groups):
        return _depthwise.correlate(xp, x, W, stride, pads, dilation, upsample)
    N, C = x.shape[:2]
    O, Cg, kH, kW = W.shape
    Hp, Wp = padded_shape(x.shape[2:], pads, upsample)
    OH = out_size(Hp, kH, stride[0], dilation[0], 0, 0)
    OW = out_size(Wp, kW, stride[1], dilation[1], 0, 0)
    wide = use_wide((kH, kW), stride, Wp, OW)
    cols_w = Wp if wide else OW
    K, P, Og = Cg * kH * kW, OH * cols_w, O // groups
    per_item = OH * OW >= PER_ITEM_MIN_PIXELS
    dtype = xp.result_type(x.dtype, W.dtype)
    W3 = W.reshape(groups, Og, K).astype(dtype, copy=False)
    y = xp.empty((N, O, OH, OW), dtype=dtype)
    x = x.astype(dtype, copy=False)

    def part(lo, hi):
        chunk = chunk_size(hi - lo, C * kH * kW * P * y.itemsize)
        for start, xpad in padded_chunks(xp, x[lo:hi], pads, chunk, upsample, spare_row=wide):
            m, start = len(xpad), start + lo
            cols = im2col(xp, xpad, (kH, kW), stride, dilation, (OH, OW), wide, per_item)
            if per_item and not wide:
                out = y[start:start + m].reshape(m, groups, Og, P)  # a view: y is contiguous
                xp.matmul(W3, cols.reshape(m, groups, K, P), out=out)
            elif per_item:
                out = scratch(xp, "gemm", (m, groups, Og, P), dtype)
                xp.matmul(W3, cols.reshape(m, groups, K, P), out=out)
                y[start:start + m] = out.reshape(m, O, OH, cols_w)[..., :OW]
            else:
                out = scratch(xp, "gemm", (groups, Og, m * P), dtype)
                xp.matmul(W3, cols.reshape(groups, K, m * P), out=out)
                y[start:start + m] = \
                    out.reshape(O, m, OH, cols_w)[..., :OW].transpose(1, 0, 2, 3)
    split(xp, N, part)
    return y


def _grad_weight(xp, x, gy, w_shape, stride, pads, dilation, groups):
    """gW[o, c, kh, kw] = sum_{n,i,j} gy[n, o, i, j] * xpad[n, c, i*sh + kh*dh, j*sw + kw*dw].

    Computed transposed, ``cols (g, K, nP) @ gy^T (g, nP, O/g)``, the faster BLAS shape here;
    with wide columns, gy gets zeros in the junk columns so they add nothing. For a tiny K,
    per item instead: ``gy[i] (g, O/g, P) @ cols[i]^T (g, P, K)``, summed over the items.
    """
    if xp is numpy:
        gW = _onednn.backward_weights(x, gy, w_shape, stride, pads, dilation, groups)
        if gW is not None:
            return gW
    if _depthwise.is_depthwise(w_shape, groups):
        return _depthwise.grad_weight(xp, x, gy, w_shape, stride, pads, dilation)
    N, C = x.shape[:2]
    O, Cg, kH, kW = w_shape
    OH, OW = gy.shape[2:]
    K, Og = Cg * kH * kW, O // groups
    if K <= PER_ITEM_GRAD_WEIGHT_MAX_K and OH * OW >= PER_ITEM_MIN_PIXELS:
        return _grad_weight_per_item(xp, x, gy, w_shape, stride, pads, dilation, groups)
    wide = use_wide((kH, kW), stride, padded_shape(x.shape[2:], pads)[1], OW)
    cols_w = padded_shape(x.shape[2:], pads)[1] if wide else OW
    x = x.astype(gy.dtype, copy=False)

    def part(lo, hi):
        gWt = xp.zeros((groups, K, Og), dtype=gy.dtype)
        chunk = chunk_size(hi - lo, C * kH * kW * OH * cols_w * gy.itemsize)
        gyw = scratch(xp, "gy", (groups, chunk, OH, cols_w, Og), gy.dtype)
        gyw.fill(0)  # the junk columns stay zero
        for start, xpad in padded_chunks(xp, x[lo:hi], pads, chunk, spare_row=wide):
            m, start = len(xpad), start + lo
            cols = im2col(xp, xpad, (kH, kW), stride, dilation, (OH, OW), wide)
            gyc = gyw[:, :m]
            gyc[..., :OW, :] = \
                gy[start:start + m].reshape(m, groups, Og, OH, OW).transpose(1, 0, 3, 4, 2)
            gWt += xp.matmul(cols.reshape(groups, K, m * OH * cols_w), gyc.reshape(groups, -1, Og))
        return gWt
    gWt = added(split(xp, N, part))
    return gWt.transpose(0, 2, 1).reshape(w_shape)


def _grad_weight_per_item(xp, x, gy, w_shape, stride, pads, dilation, groups):
    N, C = x.shape[:2]
    O, Cg, kH, kW = w_shape
    OH, OW = gy.shape[2:]
    K, Og, P = Cg * kH * kW, O // groups, OH * OW
    x = x.astype(gy.dtype, copy=False)

    def part(lo, hi):
        gW = xp.zeros((groups, Og, K), dtype=gy.dtype)
        chunk = chunk_size(hi - lo, C * kH * kW * P * gy.itemsize)
        for start, xpad in padded_chunks(xp, x[lo:hi], pads, chunk):
            m, start = len(xpad), start + lo
            cols = im2col(xp, xpad, (kH, kW), stride, dilation, (OH, OW), batch_first=True)
            out = scratch(xp, "gemm", (m, groups, Og, K), gy.dtype)
            xp.matmul(gy[start:start + m].reshape(m, groups, Og, P),
                      cols.reshape(m, groups, K, P).transpose(0, 1, 3, 2), out=out)
            gW += out.sum(axis=0)
        return gW
    return added(split(xp, N, part)).reshape(w_shape)


def _grad_input(xp, gy, W, in_hw, stride, pads, dilation, groups):
    """gx = the adjoint of ``_correlate`` in x, by the cheaper of two routes (costs measured
    with tools/bench/conv_micro.py): col2im for strides > 1 and for outputs much smaller than
    the input, else a correlation of gy with the flipped kernels."""
    if xp is numpy:
        gx = _onednn.backward_data(gy, W, in_hw, stride, pads, dilation, groups)
        if gx is not None:
            return gx
    if _depthwise.is_depthwise(W.shape, groups):
        return _depthwise.grad_input(xp, gy, W, in_hw, stride, pads, dilation)
    O, Cg, kH, kW = W.shape
    unrolled_by_correlation = O * in_hw[0] * (in_hw[1] + pads[2] + pads[3])
    unrolled_by_col2im = Cg * groups * gy.shape[2] * gy.shape[3]
    if stride != (1, 1) or 3 * unrolled_by_col2im < unrolled_by_correlation:
        return _grad_input_col2im(xp, gy, W, in_hw, stride, pads, dilation, groups)
    return _grad_input_correlate(xp, gy, W, in_hw, stride, pads, dilation, groups)


def _grad_input_correlate(xp, gy, W, in_hw, stride, pads, dilation, groups):
    """gx = the adjoint of ``_correlate`` in x, as a correlation of upsample(gy) with the
    flipped kernels, transposed within each group: Wt[c, o] = W[o, c, ::-1, ::-1].

    Per axis, gy upsampled by s and padded by ``k_eff-1-p0`` before and ``k_eff-1-p1+r`` after
    (r: input rows no window reached) correlates back to exactly ``in`` rows.
    """
    O, Cg, kH, kW = W.shape
    Og = O // groups
    Wt = W.reshape(groups, Og, Cg, kH, kW).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
    Wt = Wt.reshape(groups * Cg, Og, kH, kW)
    t, b, l, r = pads
    new_pads = []
    for size, k, s, d, p0, p1, osz in ((in_hw[0], kH, stride[0], dilation[0], t, b, gy.shape[2]),
                                        (in_hw[1], kW, stride[1], dilation[1], l, r, gy.shape[3])):
        k_eff = d * (k - 1) + 1
        rest = size + p0 + p1 - ((osz - 1) * s + k_eff)
        new_pads += [k_eff - 1 - p0, k_eff - 1 - p1 + rest]
    return _correlate(xp, gy, Wt, (1, 1), tuple(new_pads), dilation, groups, upsample=stride)


def _grad_input_col2im(xp, gy, W, in_hw, stride, pads, dilation, groups):
    """gx by col2im: ``gcols = W^T @ gy`` (one GEMM per chunk), then each of the kH*kW kernel
    offsets adds its slice of ``gcols`` into the window it came from.

    Cheaper than ``_grad_input`` when stride > 1 (no zero-upsampled gy) or when the output is
    tiny (LeNet's 5x5 -> 1x1 layer); the accumulator is kept (C, N, Hp, Wp) so that every add
    reads ``gcols`` contiguously, and is transposed once at the end.
    """
    N, O, OH, OW = gy.shape
    _, Cg, kH, kW = W.shape
    C, Og = Cg * groups, O // groups
    Hp, Wp = padded_shape(in_hw, pads)
    W3t = W.reshape(groups, Og, Cg * kH * kW).transpose(0, 2, 1).astype(gy.dtype)
    if OH * OW >= PER_ITEM_MIN_PIXELS:
        return _col2im_per_item(xp, gy, W3t, (C, kH, kW), in_hw, stride, pads, dilation)
    gx = crop_target(xp, (N, C), in_hw, pads, gy.dtype)

    def part(lo, hi):
        gxpad = scratch(xp, "col2im", (C, hi - lo, Hp, Wp), gy.dtype)
        gxpad.fill(0)
        chunk = chunk_size(hi - lo, C * kH * kW * OH * OW * gy.itemsize)
        for start in range(0, hi - lo, chunk):
            m = min(chunk, hi - lo - start)
            gyc = scratch(xp, "gy", (groups, Og, m, OH * OW), gy.dtype)
            xp.copyto(gyc, gy[lo + start:lo + start + m].reshape(m, groups, Og, OH * OW)
                      .transpose(1, 2, 0, 3))
            gcols = scratch(xp, "gemm", (groups, Cg * kH * kW, m * OH * OW), gy.dtype)
            xp.matmul(W3t, gyc.reshape(groups, Og, m * OH * OW), out=gcols)
            gcols = gcols.reshape(C, kH, kW, m, OH, OW)
            acc = gxpad[:, start:start + m]
            for kh in range(kH):
                for kw in range(kW):
                    window(acc, kh, kw, stride, (OH, OW), dilation)[...] += gcols[:, kh, kw]
        crop(xp, gxpad.transpose(1, 0, 2, 3), in_hw, pads, out=gx[lo:hi])
    split(xp, N, part)
    return gx


def _col2im_per_item(xp, gy, W3t, c_k, in_hw, stride, pads, dilation):
    """col2im with per-item GEMMs ``W^T (g, K, O/g) @ gy[i] (g, O/g, P)``: the accumulator is
    NCHW, so nothing is transposed.

    Width stride 1: gy is first widened to the padded width Wp with zero columns, so that the
    window of kernel offset (kh, kw) is whole accumulator rows (``OH`` runs of ``Wp``, shifted
    by ``kw*dw``) instead of ``OH*OW`` short runs; the zero columns spill into the next row
    (or the spare rows) and add nothing.
    """
    N, O, OH, OW = gy.shape
    C, kH, kW = c_k
    groups, K = W3t.shape[0], W3t.shape[1]
    Hp, Wp = padded_shape(in_hw, pads)
    wide = stride[1] == 1
    cols_w = Wp if wide else OW
    gx = crop_target(xp, (N, C), in_hw, pads, gy.dtype)

    def part(lo, hi):
        gxpad = scratch(xp, "col2im", (hi - lo, C, Hp + stride[0], Wp), gy.dtype)
        gxpad.fill(0)
        # whole-row adds (wide) are cheap per element, so the per-call cost of the kH*kW adds
        # per chunk dominates: 4x larger chunks (LeNet conv2: 3.1 -> 2.5 ms); strided adds
        # are bound by the cache and lose with them (ResNet-20 stride 2: 11.2 -> 12.2 ms)
        chunk = chunk_size(hi - lo, C * kH * kW * OH * cols_w * gy.itemsize
                           // (WIDE_COL2IM_CHUNK_FACTOR if wide else 1))
        if wide:
            gyw = scratch(xp, "gy", (min(chunk, hi - lo), O, OH, Wp), gy.dtype)
            gyw[..., OW:] = 0
        for start in range(0, hi - lo, chunk):
            m = min(chunk, hi - lo - start)
            if wide:
                gyw[:m, ..., :OW] = gy[lo + start:lo + start + m]
                gyc = gyw[:m]
            else:
                gyc = gy[lo + start:lo + start + m]
            gcols = scratch(xp, "gemm", (m, groups, K, OH * cols_w), gy.dtype)
            xp.matmul(W3t, gyc.reshape(m, groups, O // groups, OH * cols_w), out=gcols)
            _scatter_add(xp, gxpad[start:start + m], gcols.reshape(m, C, kH, kW, OH, cols_w),
                         stride, dilation, (OH, OW), wide)
        crop(xp, gxpad[:, :, :Hp], in_hw, pads, out=gx[lo:hi])
    split(xp, N, part)
    return gx


def _scatter_add(xp, part, gcols, stride, dilation, out_hw, wide):
    """Add each kernel offset's columns ``gcols[:, :, kh, kw]`` (m, C, OH, cols) into its window
    of the padded accumulator ``part`` (m, C, Hp + sH, Wp); ``wide``: whole rows (see above)."""
    m, C, kH, kW = gcols.shape[:4]
    Wp = part.shape[3]
    for kh in range(kH):
        for kw in range(kW):
            if wide:
                flat = part.reshape(m, C, -1)[:, :, kh * dilation[0] * Wp + kw * dilation[1]:]
                isz = flat.itemsize
                view = xp.lib.stride_tricks.as_strided(
                    flat, shape=(m, C, out_hw[0], Wp),
                    strides=flat.strides[:2] + (stride[0] * Wp * isz, isz))
            else:
                view = window(part, kh, kw, stride, out_hw, dilation)
            view += gcols[:, :, kh, kw]


def _bias_grad(gy):
    return gy.sum(axis=(0, 2, 3))


# -- Functions -----------------------------------------------------------------------------

def _check_common(name, x, W, b, groups):
    expect(x.ndim == 4, f"{name}: x must be (N, C, H, W), got shape {tuple(x.shape)}")
    expect(W.ndim == 4, f"{name}: W must be 4-D (kernels), got shape {tuple(W.shape)}")
    expect(groups >= 1, f"{name}: groups must be >= 1, got {groups}")


class _Convolution(Function):
    """What Conv2d and Deconv2d share: options, the bias add and the gradients' tuple."""

    def __init__(self, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        self.stride, self.dilation = pair(stride, "stride"), pair(dilation, "dilation")
        self.pads, self.groups = pads4(padding), int(groups)

    @property
    def opts(self):
        return (self.stride, self.pads, self.dilation, self.groups)

    def finish(self, y, x, W, b):
        """y + b (per output channel); (x, W) kept for backward."""
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
        if self.needs_backward:
            self.saved = (x, W)
        return y

    def gradients(self, gx, gW, gy, needs_grad):
        """(gx, gW) or (gx, gW, gb) as ``apply`` was given (x, W) or (x, W, b)."""
        if len(needs_grad) == 2:
            return gx, gW
        return gx, gW, _bias_grad(gy) if needs_grad[2] else None


class Conv2d(_Convolution):
    """2-D convolution (cross-correlation, as N2D2 and PyTorch), see the module docstring."""

    def check_inputs(self, x, W, b=None):
        g = self.groups
        _check_common("conv2d", x, W, b, g)
        expect(W.shape[0] % g == 0 and x.shape[1] == W.shape[1] * g,
               f"conv2d: x {tuple(x.shape)} has {x.shape[1]} channels but W {tuple(W.shape)} "
               f"with groups={g} expects {W.shape[1] * g} (and O={W.shape[0]} divisible by {g})")
        expect(b is None or tuple(b.shape) == (W.shape[0],),
               f"conv2d: bias must be ({W.shape[0]},), got {None if b is None else tuple(b.shape)}")
        oh, ow = conv_output_size(x.shape[2:], W.shape[2:], self.stride, self.pads, self.dilation)
        expect(oh >= 1 and ow >= 1,
               f"conv2d: input {tuple(x.shape)} too small for kernel {tuple(W.shape[2:])}, "
               f"padding {self.pads}, dilation {self.dilation} (output {oh}x{ow})")

    def forward(self, xp, x, W, b=None):
        return self.finish(_correlate(xp, x, W, *self.opts), x, W, b)

    def backward(self, xp, gy, needs_grad):
        x, W = self.saved
        if xp is numpy and needs_grad[0] and needs_grad[1]:
            both = _onednn.backward(x, gy, W, *self.opts)   # one pass over the batch
            if both is not None:
                return self.gradients(*both, gy, needs_grad)
        gx = _grad_input(xp, gy, W, x.shape[2:], *self.opts) if needs_grad[0] else None
        gW = _grad_weight(xp, x, gy, W.shape, *self.opts) if needs_grad[1] else None
        return self.gradients(gx, gW, gy, needs_grad)


class Deconv2d(_Convolution):
    """Transposed convolution: y = conv2d's input gradient applied to x, plus bias."""

    def check_inputs(self, x, W, b=None):
        g = self.groups
        _check_common("deconv2d", x, W, b, g)
        expect(x.shape[1] == W.shape[0] and W.shape[0] % g == 0,
               f"deconv2d: x {tuple(x.shape)} has {x.shape[1]} channels but W {tuple(W.shape)} "
               f"expects {W.shape[0]} (C_in, O/groups, kH, kW), C_in divisible by groups={g}")
        expect(b is None or tuple(b.shape) == (W.shape[1] * g,),
               f"deconv2d: bias must be ({W.shape[1] * g},), got "
               f"{None if b is None else tuple(b.shape)}")
        oh, ow = self.out_hw(x, W)
        expect(oh >= 1 and ow >= 1, f"deconv2d: padding {self.pads} leaves no output for "
                                    f"input {tuple(x.shape)} and kernel {tuple(W.shape[2:])}")

    def out_hw(self, x, W):
        return deconv_output_size(x.shape[2:], W.shape[2:], self.stride, self.pads, self.dilation)

    def forward(self, xp, x, W, b=None):
        return self.finish(_grad_input(xp, x, W, self.out_hw(x, W), *self.opts), x, W, b)

    def backward(self, xp, gy, needs_grad):
        x, W = self.saved
        gx = _correlate(xp, gy, W, *self.opts) if needs_grad[0] else None
        # conv2d's weight gradient with the roles swapped: gy is the conv input, x its output
        gW = _grad_weight(xp, gy, x, W.shape, *self.opts) if needs_grad[1] else None
        return self.gradients(gx, gW, gy, needs_grad)


def conv2d(x, W, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """Convolution of x (N, C, H, W) by W (O, C/groups, kH, kW), optional bias b (O,).

    ``stride``/``dilation``: int or (h, w); ``padding``: int, (h, w) symmetric, or
    (top, bottom, left, right); negative padding crops (N2D2 Conv allows it).
    """
    fn = Conv2d(stride, padding, dilation, groups)
    return fn.apply(x, W) if b is None else fn.apply(x, W, b)


def deconv2d(x, W, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """Transposed convolution of x (N, C_in, H, W) by W (C_in, O/groups, kH, kW), bias (O,).

    Output (N, O, (H-1)*s + d(k-1)+1 - p0 - p1, ...): PyTorch's conv_transpose2d with
    output_padding 0, which is N2D2's Deconv size ``in*s + d(k-1)+1 - 2p - s``.
    """
    fn = Deconv2d(stride, padding, dilation, groups)
    return fn.apply(x, W) if b is None else fn.apply(x, W, b)
