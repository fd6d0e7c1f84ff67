"""Private array helpers for convolution and pooling (not differentiable, written against ``xp``).

* ``pair`` / ``pads4``: normalise ``stride``/``dilation``/``kernel`` and ``padding`` arguments;
* ``out_size``: N2D2's output size ``floor((in + p0 + p1 - (d(k-1)+1)) / s) + 1`` (spec/ini.md §2.8.1);
* ``padded_chunks``: the batch cut into chunks, each zero-padded (and optionally zero-upsampled,
  for transposed convolution) in one buffer that is reused from chunk to chunk;
* ``im2col``: a padded chunk unrolled into a ``(C*kH*kW, n*OH*OW)`` matrix, one GEMM operand;
* ``window``: the strided slice of a padded array seen by kernel offset ``(kh, kw)``.

Chunking keeps the unrolled matrix in cache (a ResNet-20 layer at batch 128 would otherwise
unroll into 75 MB and the GEMMs would run from DRAM); ``CHUNK_BYTES`` bounds its size.
"""
from ..errors import ShapeError

CHUNK_BYTES = 4 << 20  # per im2col chunk: fits the L2+L3 of a small server core pair


def pair(value, name):
    """``3`` -> ``(3, 3)``; ``(2, 1)`` -> ``(2, 1)`` (Python order: height, width)."""
    if isinstance(value, int) or hasattr(value, "__index__"):
        return (int(value), int(value))
    value = tuple(int(v) for v in value)
    if len(value) != 2:
        raise ShapeError(f"{name} must be an int or a (height, width) pair, got {value}")
    return value


def pads4(padding):
    """``p`` | ``(ph, pw)`` | ``(top, bottom, left, right)`` -> ``(top, bottom, left, right)``."""
    if isinstance(padding, int) or hasattr(padding, "__index__"):
        return (int(padding),) * 4
    padding = tuple(int(p) for p in padding)
    if len(padding) == 2:
        return (padding[0], padding[0], padding[1], padding[1])
    if len(padding) != 4:
        raise ShapeError(f"padding must be an int, a (height, width) pair or a (top, bottom, "
                         f"left, right) 4-tuple, got {padding}")
    return padding


def out_size(size, kernel, stride, dilation, pad0, pad1):
    """Output extent of a sliding window: ``floor((in + p0 + p1 - (d(k-1)+1)) / s) + 1``."""
    return (size + pad0 + pad1 - (dilation * (kernel - 1) + 1)) // stride + 1


def chunk_size(n, bytes_per_item):
    """How many batch items to unroll at once (at least one) within ``CHUNK_BYTES``."""
    return max(1, min(n, CHUNK_BYTES // max(1, bytes_per_item)))


def _placement(size, up, pad0, padded):
    """Source slice of an axis and its destination slice in the padded, upsampled buffer.

    Source index i lands at ``pad0 + i*up``; negative pads crop (N2D2 allows negative Conv
    padding and ONNX import produces it), so only indices that land inside are kept.
    """
    first = (max(0, -pad0) + up - 1) // up
    last = min(size - 1, (padded - 1 - pad0) // up)
    if last < first:
        return slice(0, 0), slice(0, 0)
    return slice(first, last + 1), slice(pad0 + first * up, pad0 + last * up + 1, up)


def padded_shape(shape, pads, upsample=(1, 1)):
    """(H, W) after zero-upsampling by ``upsample`` and padding by ``pads`` (t, b, l, r)."""
    H, W = shape
    return ((H - 1) * upsample[0] + 1 + pads[0] + pads[1],
            (W - 1) * upsample[1] + 1 + pads[2] + pads[3])


def padded_chunks(xp, x, pads, chunk, upsample=(1, 1), fill=0, spare_row=False):
    """Yield ``(start, xpad)`` for batch chunks of ``x`` (N, C, H, W), padded with ``fill``.

    ``upsample=(sh, sw)`` inserts ``s-1`` zeros between input pixels (transposed convolution).
    ``spare_row`` adds one more bottom row of ``fill`` for ``im2col(..., wide=True)`` to read
    past the last row. One buffer serves every chunk: its border is written once, only the
    interior is copied, so the consumer must be done with a chunk before asking for the next.
    """
    N, C, H, W = x.shape
    if pads == (0, 0, 0, 0) and upsample == (1, 1) and not spare_row:
        for start in range(0, N, chunk):
            yield start, x[start:start + chunk]
        return
    Hp, Wp = padded_shape((H, W), pads, upsample)
    src_h, dst_h = _placement(H, upsample[0], pads[0], Hp)
    src_w, dst_w = _placement(W, upsample[1], pads[2], Wp)
    buf = xp.full((min(chunk, N), C, Hp + int(spare_row), Wp), fill, dtype=x.dtype)
    for start in range(0, N, chunk):
        m = min(chunk, N - start)
        buf[:m, :, dst_h, dst_w] = x[start:start + m, :, src_h, src_w]
        yield start, buf[:m]


def use_wide(kernel, stride):
    """Whether ``im2col`` should unroll full padded rows (see there)."""
    return stride[1] == 1 and kernel[1] > 1


def im2col(xp, xpad, kernel, stride, dilation, out_hw, wide=False):
    """Unroll ``xpad`` (n, C, Hp, Wp) into ``cols`` (C*kH*kW, n*OH*OW), C-contiguous.

    ``cols[(c, kh, kw), (i, oh, ow)] = xpad[i, c, oh*sh + kh*dh, ow*sw + kw*dw]``: a strided
    view, then one copy. Rows follow W's (C, kH, kW) order so that ``W.reshape(O, -1) @ cols``
    is the convolution.

    ``wide=True`` (width stride 1 only) unrolls ``Wp`` columns per output row instead of
    ``OW``: the last ``Wp-OW`` are junk the caller drops, but each copied run is a whole
    contiguous row span (``OH*Wp`` long) instead of ``OW`` pixels, which is what makes the copy
    fast on small images (the junk reads run into the spare row of ``padded_chunks``).
    """
    n, C = xpad.shape[:2]
    sn, sc, sh, sw = xpad.strides
    (kH, kW), (OH, OW) = kernel, out_hw
    cols_w, col_step = (xpad.shape[3], sw) if wide else (OW, stride[1] * sw)
    view = xp.lib.stride_tricks.as_strided(
        xpad, shape=(C, kH, kW, n, OH, cols_w),
        strides=(sc, dilation[0] * sh, dilation[1] * sw, sn, stride[0] * sh, col_step))
    return view.reshape(C * kH * kW, n * OH * cols_w)


def window(xpad, kh, kw, stride, out_hw, dilation=(1, 1)):
    """The (N, C, OH, OW) slice of ``xpad`` that kernel offset (kh, kw) sees (a writable view)."""
    h0, w0 = kh * dilation[0], kw * dilation[1]
    return xpad[:, :, h0:h0 + stride[0] * (out_hw[0] - 1) + 1:stride[0],
                w0:w0 + stride[1] * (out_hw[1] - 1) + 1:stride[1]]
