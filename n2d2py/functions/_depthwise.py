"""Depthwise convolution kernels (``groups == C == O``: one input and one output channel per
group), for conv.py; a channel multiplier > 1 stays on the grouped GEMMs.

As grouped GEMMs a depthwise layer is C tiny ``(1, kH*kW) @ (kH*kW, P)`` products per item,
bound by call overhead and by the unrolled copy. Here each kernel offset is one element-wise
pass over a batch chunk instead (kH*kW multiply-adds, no unrolled matrix, no loop over channels
or items), with the chunk held channels-last: (m, H, W, C). In that layout a window row of
stride-1 offsets is ``OW*C`` contiguous floats and each offset's weights are tiled once to an
``(OW, C)`` row, so NumPy's inner loops run ``OW*C`` long (in NCHW they would be ``OW``, 4 to
32 pixels, and the loop overhead would dominate). The chunk is transposed in and out once; a
chunk (``_im2col.CHUNK_BYTES``) keeps the passes in cache.

* ``correlate``: y[n, c] = sum_k W[c, 0, k] * window_k(xpad)[n, c]
* ``grad_weight``: gW[c, 0, k] = sum_{n, pixels} gy[n, c] * window_k(xpad)[n, c]
* ``grad_input``: the adjoint of ``correlate``: each offset adds ``W[c, 0, k] * gy`` into its
  window of a padded accumulator (any stride, dilation, padding; negative pads crop).
"""
from ..parallel import added, split
from ._im2col import _placement, chunk_size, crop_target, out_size, padded_shape, scratch

__all__ = ["is_depthwise", "correlate", "grad_weight", "grad_input"]


def is_depthwise(w_shape, groups):
    """One input channel (``Cg == 1``) and one output channel per group, several groups."""
    return groups > 1 and w_shape[1] == 1 and w_shape[0] == groups


def _tiled_weights(xp, W, OW, dtype):
    """(kH*kW, OW, C): offset k's per-channel weights repeated along an output row."""
    C, _, kH, kW = W.shape
    Wk = W.reshape(C, kH * kW).T.astype(dtype)
    return xp.ascontiguousarray(xp.broadcast_to(Wk[:, None, :], (kH * kW, OW, C)))


def _window(a, k, kW, stride, out_hw, dilation):
    """The (m, OH, OW, C) slice of a channels-last padded chunk that offset k sees."""
    h0, w0 = (k // kW) * dilation[0], (k % kW) * dilation[1]
    return a[:, h0:h0 + stride[0] * (out_hw[0] - 1) + 1:stride[0],
             w0:w0 + stride[1] * (out_hw[1] - 1) + 1:stride[1]]


def _padded_chunks(xp, x, pads, chunk, upsample=(1, 1)):
    """Yield ``(start, xpad)``: batch chunks of ``x`` (N, C, H, W) zero-padded (and
    zero-upsampled), channels-last (m, Hp, Wp, C), in one reused buffer."""
    N, C, H, W = x.shape
    Hp, Wp = padded_shape((H, W), pads, upsample)
    src_h, dst_h = _placement(H, upsample[0], pads[0], Hp)
    src_w, dst_w = _placement(W, upsample[1], pads[2], Wp)
    buf = scratch(xp, "dw_pad", (min(chunk, N), Hp, Wp, C), x.dtype)
    buf.fill(0)
    for start in range(0, N, chunk):
        m = min(chunk, N - start)
        buf[:m, dst_h, dst_w] = x[start:start + m, :, src_h, src_w].transpose(0, 2, 3, 1)
        yield start, buf[:m]


def _geometry(x_shape, w_shape, pads, stride, dilation, upsample=(1, 1)):
    kH, kW = w_shape[2:]
    Hp, Wp = padded_shape(x_shape[2:], pads, upsample)
    return (kH, kW, Hp, Wp, out_size(Hp, kH, stride[0], dilation[0], 0, 0),
            out_size(Wp, kW, stride[1], dilation[1], 0, 0))


def correlate(xp, x, W, stride, pads, dilation, upsample=(1, 1)):
    N, C = x.shape[:2]
    kH, kW, Hp, Wp, OH, OW = _geometry(x.shape, W.shape, pads, stride, dilation, upsample)
    dtype = xp.result_type(x.dtype, W.dtype)
    Wt = _tiled_weights(xp, W, OW, dtype)
    y = xp.empty((N, C, OH, OW), dtype=dtype)
    x = x.astype(dtype, copy=False)

    def part(lo, hi):
        chunk = chunk_size(hi - lo, 4 * C * (Hp * Wp + 2 * OH * OW))
        for start, xpad in _padded_chunks(xp, x[lo:hi], pads, chunk, upsample):
            m, start = len(xpad), start + lo
            acc = scratch(xp, "dw_acc", (m, OH, OW, C), dtype)
            tmp = scratch(xp, "dw_tmp", (m, OH, OW, C), dtype)
            for k in range(kH * kW):
                win = _window(xpad, k, kW, stride, (OH, OW), dilation)
                xp.multiply(win, Wt[k], out=acc if k == 0 else tmp)
                if k:
                    acc += tmp
            y[start:start + m] = acc.transpose(0, 3, 1, 2)
    split(xp, N, part)
    return y


def grad_weight(xp, x, gy, w_shape, stride, pads, dilation):
    N, C = x.shape[:2]
    kH, kW, Hp, Wp, OH, OW = _geometry(x.shape, w_shape, pads, stride, dilation)
    x = x.astype(gy.dtype, copy=False)

    def part(lo, hi):
        gW = xp.zeros((kH * kW, C), dtype=gy.dtype)
        chunk = chunk_size(hi - lo, 4 * C * (Hp * Wp + 2 * OH * OW))
        for start, xpad in _padded_chunks(xp, x[lo:hi], pads, chunk):
            m, start = len(xpad), start + lo
            g = scratch(xp, "dw_acc", (m, OH, OW, C), gy.dtype)
            g[...] = gy[start:start + m].transpose(0, 2, 3, 1)
            tmp = scratch(xp, "dw_tmp", (m, OH, OW, C), gy.dtype)
            for k in range(kH * kW):
                xp.multiply(g, _window(xpad, k, kW, stride, (OH, OW), dilation), out=tmp)
                gW[k] += tmp.reshape(m * OH, OW, C).sum(axis=0).sum(axis=0)
        return gW
    gW = added(split(xp, N, part))
    return xp.ascontiguousarray(gW.T).reshape(w_shape)


def grad_input(xp, gy, W, in_hw, stride, pads, dilation):
    N, C, OH, OW = gy.shape
    kH, kW = W.shape[2:]
    Hp, Wp = padded_shape(in_hw, pads)
    Wt = _tiled_weights(xp, W, OW, gy.dtype)
    src_h, dst_h = _placement(in_hw[0], 1, pads[0], Hp)
    src_w, dst_w = _placement(in_hw[1], 1, pads[2], Wp)
    gx = crop_target(xp, (N, C), in_hw, pads, gy.dtype)

    def part(lo, hi):
        chunk = chunk_size(hi - lo, 4 * C * (Hp * Wp + 2 * OH * OW))
        for start in range(lo, hi, chunk):
            m = min(chunk, hi - start)
            g = scratch(xp, "dw_acc", (m, OH, OW, C), gy.dtype)
            g[...] = gy[start:start + m].transpose(0, 2, 3, 1)
            tmp = scratch(xp, "dw_tmp", (m, OH, OW, C), gy.dtype)
            gxpad = scratch(xp, "dw_pad", (m, Hp, Wp, C), gy.dtype)
            gxpad.fill(0)
            for k in range(kH * kW):
                xp.multiply(g, Wt[k], out=tmp)
                _window(gxpad, k, kW, stride, (OH, OW), dilation)[...] += tmp
            gx[start:start + m, :, src_h, src_w] = gxpad[:, dst_h, dst_w].transpose(0, 3, 1, 2)
    split(xp, N, part)
    return gx
