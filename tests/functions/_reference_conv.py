"""Naive-loop oracles for conv2d, deconv2d, pooling (tests only, float64, written for clarity).

Each loops over output (or input) pixels and writes the textbook definition directly, sharing
no code with n2d2py.functions.
"""
import numpy


def pad_crop(x, pads, value=0.0):
    """Pad (t, b, l, r) with ``value``; negative entries crop."""
    t, b, l, r = pads
    x = numpy.pad(x, ((0, 0), (0, 0), (max(t, 0), max(b, 0)), (max(l, 0), max(r, 0))),
                  constant_values=value)
    H, W = x.shape[2:]
    return x[:, :, max(-t, 0):H - max(-b, 0), max(-l, 0):W - max(-r, 0)]


def conv2d(x, W, b, stride, pads, dilation, groups):
    (sh, sw), (dh, dw) = stride, dilation
    xp_ = pad_crop(x, pads)
    N, C, Hp, Wp = xp_.shape
    O, Cg, kH, kW = W.shape
    OH = (Hp - dh * (kH - 1) - 1) // sh + 1
    OW = (Wp - dw * (kW - 1) - 1) // sw + 1
    Og = O // groups
    y = numpy.zeros((N, O, OH, OW))
    for i in range(OH):
        for j in range(OW):
            patch = xp_[:, :, i * sh:i * sh + dh * (kH - 1) + 1:dh, j * sw:j * sw + dw * (kW - 1) + 1:dw]
            for g in range(groups):
                y[:, g * Og:(g + 1) * Og, i, j] = numpy.einsum(
                    "nckl,ockl->no", patch[:, g * Cg:(g + 1) * Cg], W[g * Og:(g + 1) * Og])
    if b is not None:
        y += b[None, :, None, None]
    return y


def deconv2d(x, W, b, stride, pads, dilation, groups):
    """Scatter form: every input pixel adds x * kernel into the (uncropped) output."""
    (sh, sw), (dh, dw) = stride, dilation
    N, C, H, Wd = x.shape
    _, Og, kH, kW = W.shape
    Cg = C // groups
    full = numpy.zeros((N, Og * groups, (H - 1) * sh + dh * (kH - 1) + 1,
                        (Wd - 1) * sw + dw * (kW - 1) + 1))
    for i in range(H):
        for j in range(Wd):
            for g in range(groups):
                contrib = numpy.einsum("nc,cokl->nokl", x[:, g * Cg:(g + 1) * Cg, i, j],
                                       W[g * Cg:(g + 1) * Cg])
                full[:, g * Og:(g + 1) * Og, i * sh:i * sh + dh * (kH - 1) + 1:dh,
                     j * sw:j * sw + dw * (kW - 1) + 1:dw] += contrib
    y = pad_crop(full, tuple(-p for p in pads))
    if b is not None:
        y = y + b[None, :, None, None]
    return y


def _pool_size(size, k, s, p0, p1, ceil_mode):
    span = size + p0 + p1 - k
    out = (int(numpy.ceil(span / s)) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p0:
        out -= 1
    return out


def pool2d(x, kind, kernel, stride, pads, ceil_mode=False, count_include_pad=True):
    """kind 'max' or 'avg'. The divisor counts input cells, plus the declared padding when
    count_include_pad, never the ceil_mode overhang."""
    (kH, kW), (sh, sw), (t, b, l, r) = kernel, stride, pads
    N, C, H, W = x.shape
    OH = _pool_size(H, kH, sh, t, b, ceil_mode)
    OW = _pool_size(W, kW, sw, l, r, ceil_mode)
    big = 2 * (max(kH, kW) + max(sh, sw))
    canvas = numpy.full((N, C, H + t + big, W + l + big), -numpy.inf if kind == "max" else 0.0)
    canvas[:, :, t:t + H, l:l + W] = x
    counted = numpy.zeros(canvas.shape[2:])
    if count_include_pad:
        counted[:H + t + b, :W + l + r] = 1
    else:
        counted[t:t + H, l:l + W] = 1
    y = numpy.zeros((N, C, OH, OW))
    for i in range(OH):
        for j in range(OW):
            win = canvas[:, :, i * sh:i * sh + kH, j * sw:j * sw + kW]
            if kind == "max":
                y[:, :, i, j] = win.max(axis=(2, 3))
            else:
                y[:, :, i, j] = win.sum(axis=(2, 3)) / counted[i * sh:i * sh + kH, j * sw:j * sw + kW].sum()
    return y


def channel_pool2d(x, mask, kind, kernel, stride, pads):
    (kH, kW), (sh, sw), (t, b, l, r) = kernel, stride, pads
    N, C, H, W = x.shape
    canvas = numpy.pad(x, ((0, 0), (0, 0), (t, b), (l, r)),
                       constant_values=-numpy.inf if kind == "max" else 0.0)
    OH, OW = (H + t + b - kH) // sh + 1, (W + l + r - kW) // sw + 1
    y = numpy.zeros((N, len(mask), OH, OW))
    for o in range(len(mask)):
        chans = numpy.flatnonzero(mask[o])
        if len(chans) == 0:
            continue
        for i in range(OH):
            for j in range(OW):
                win = canvas[:, chans, i * sh:i * sh + kH, j * sw:j * sw + kW]
                y[:, o, i, j] = win.max(axis=(1, 2, 3)) if kind == "max" else \
                    win.sum(axis=(1, 2, 3)) / (kH * kW * len(chans))
    return y
