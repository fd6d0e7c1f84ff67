"""Private array helpers for convolution and pooling (not differentiable, written against ``xp``).

* ``pair`` / ``pads4``: normalise ``stride``/``dilation``/``kernel`` and ``padding`` arguments;
* ``out_size``: N2D2's output size ``floor((in + p0 + p1 - (d(k-1)+1)) / s) + 1``;
* ``padded_chunks``: the batch cut into chunks, each zero-padded (and optionally zero-upsampled,
  for transposed convolution) in one buffer that is reused from chunk to chunk;
* ``im2col``: a padded chunk unrolled into a ``(C*kH*kW, n*OH*OW)`` matrix, one GEMM operand;
* ``window``: the strided slice of a padded array seen by kernel offset ``(kh, kw)``;
* ``scratch``: work arrays reused from call to call (one per tag and dtype).

Chunking keeps the unrolled matrix in cache (a ResNet-20 layer at batch 128 would otherwise
unroll into 75 MB and the GEMMs would run from DRAM); ``CHUNK_BYTES`` bounds its size.

Scratch buffers: a fresh multi-megabyte NumPy array is fresh pages from the kernel, and the
page faults cost more than the copy that fills them (LeNet's conv1 forward: 7.5 ms of CPU
time, 2269 minor faults, against 1.8 ms with its buffers reused). The padded input, the
unrolled matrix and the GEMM outputs are therefore work arrays kept per thread, per tag and
dtype, grown to the largest size asked (bounded by ``CHUNK_BYTES`` for the unrolled matrix).
They never leave the functions here: whatever is returned or saved for backward is a fresh
array. CuPy has its own memory pool, so on CuPy ``scratch`` is just ``empty``.
"""
import math
import threading

from ..errors import ShapeError

#: per im2col chunk: with the GEMM's packed panels and its output, within one core's L2 (2 MiB
#: on the Xeon of tools/bench/README.md; 4 MiB chunks were 1.2-1.6x slower there)
CHUNK_BYTES = 1 << 20

_scratch = threading.local()


def scratch(xp, tag, shape, dtype):
    """An uninitialised (``shape``) work array reused by every call with the same ``tag``.

    The caller must be done with it before anything else asks for the same tag (tags are
    per use site: ``"pad"``, ``"cols"``, ...), and must not return it or keep it.
    """
    if xp.__name__ != "numpy":
        return xp.empty(shape, dtype=dtype)
    size = math.prod(shape)
    key = (tag, xp.dtype(dtype).str)
    store = _scratch.__dict__
    buf = store.get(key)
    if buf is None or buf.size < size:
        buf = store[key] = xp.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


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
    buf = scratch(xp, "pad", (min(chunk, N), C, Hp + int(spare_row), Wp), x.dtype)
    buf.fill(fill)
    for start in range(0, N, chunk):
        m = min(chunk, N - start)
        buf[:m, :, dst_h, dst_w] = x[start:start + m, :, src_h, src_w]
        yield start, buf[:m]


def use_wide(kernel, stride, padded_w, out_w):
    """Whether ``im2col`` should unroll full padded rows (see there): width stride 1 only, and
    only when the junk columns are at most half the useful ones (LeNet's 5x5 -> 1x1 layer
    would otherwise unroll 5 columns for 1)."""
    return stride[1] == 1 and kernel[1] > 1 and 2 * (padded_w - out_w) <= out_w


def im2col(xp, xpad, kernel, stride, dilation, out_hw, wide=False, batch_first=False):
    """Unroll ``xpad`` (n, C, Hp, Wp) into ``cols`` (C*kH*kW, n*OH*OW), C-contiguous.

    ``cols[(c, kh, kw), (i, oh, ow)] = xpad[i, c, oh*sh + kh*dh, ow*sw + kw*dw]``: a strided
    view, then one copy into the ``scratch`` "cols" array (valid until the next ``im2col``).
    Rows follow W's (C, kH, kW) order so that ``W.reshape(O, -1) @ cols`` is the convolution.
    ``batch_first=True`` gives ``(n, C*kH*kW, OH*OW)`` instead: one GEMM operand per item, for
    ``W @ cols`` to land in NCHW order without a transpose.

    ``wide=True`` (width stride 1 only) unrolls ``Wp`` columns per output row instead of
    ``OW``: the last ``Wp-OW`` are junk the caller drops, but each copied run is a whole
    contiguous row span (``OH*Wp`` long) instead of ``OW`` pixels, which is what makes the copy
    fast on small images (the junk reads run into the spare row of ``padded_chunks``).
    """
    n, C = xpad.shape[:2]
    sn, sc, sh, sw = xpad.strides
    (kH, kW), (OH, OW) = kernel, out_hw
    cols_w, col_step = (xpad.shape[3], sw) if wide else (OW, stride[1] * sw)
    inner, inner_strides = (C, kH, kW), (sc, dilation[0] * sh, dilation[1] * sw)
    outer, outer_strides = (n, OH, cols_w), (sn, stride[0] * sh, col_step)
    if batch_first:
        shape = (n,) + inner + outer[1:]
        strides = (sn,) + inner_strides + outer_strides[1:]
    else:
        shape, strides = inner + outer, inner_strides + outer_strides
    view = xp.lib.stride_tricks.as_strided(xpad, shape=shape, strides=strides)
    cols = scratch(xp, "cols", shape, xpad.dtype)
    xp.copyto(cols, view)
    if batch_first:
        return cols.reshape(n, C * kH * kW, OH * cols_w)
    return cols.reshape(C * kH * kW, n * OH * cols_w)


def window(xpad, kh, kw, stride, out_hw, dilation=(1, 1)):
    """The (N, C, OH, OW) slice of ``xpad`` that kernel offset (kh, kw) sees (a writable view)."""
    h0, w0 = kh * dilation[0], kw * dilation[1]
    return xpad[:, :, h0:h0 + stride[0] * (out_hw[0] - 1) + 1:stride[0],
                w0:w0 + stride[1] * (out_hw[1] - 1) + 1:stride[1]]


def crop_target(xp, n_c, in_hw, pads, dtype):
    """The (N, C, H, W) array ``crop`` fills: zeros where a negative pad cuts input pixels
    (no window reaches them), else uninitialised (every pixel is written)."""
    src_h, _ = _placement(in_hw[0], 1, pads[0], in_hw[0] + pads[0] + pads[1])
    src_w, _ = _placement(in_hw[1], 1, pads[2], in_hw[1] + pads[2] + pads[3])
    cropped = (src_h.stop - src_h.start, src_w.stop - src_w.start) != tuple(in_hw)
    return (xp.zeros if cropped else xp.empty)(tuple(n_c) + tuple(in_hw), dtype=dtype)


def crop(xp, gxpad, in_hw, pads, out=None):
    """gx (N, C, H, W) from the padded accumulator: into ``out`` (from ``crop_target``), or a
    fresh array."""
    N, C, Hp, Wp = gxpad.shape
    if out is None:
        out = crop_target(xp, (N, C), in_hw, pads, gxpad.dtype)
    src_h, dst_h = _placement(in_hw[0], 1, pads[0], Hp)
    src_w, dst_w = _placement(in_hw[1], 1, pads[2], Wp)
    out[:, :, src_h, src_w] = gxpad[:, :, dst_h, dst_w]
    return out
