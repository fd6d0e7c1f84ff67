"""Functions that move values without arithmetic, and resizing (N2D2 cells ``Padding``,
``Reshape``, ``Transpose``, ``Resize``).

All take NCHW arrays and NumPy axis order; the cells convert N2D2's X-first ``Dims``/``Perm``.

Resize modes, and what they equal elsewhere (out index o, input size n, output size m):

===============  ===========================================  =====================================
``mode``          source coordinate                           equals
===============  ===========================================  =====================================
"nearest"        floor(o·n/m)                                N2D2 ``NearestNeighbor``; torch
                                                              ``F.interpolate(mode="nearest")``;
                                                              ONNX Resize nearest, asymmetric+floor
"nearest_onnx"   round_prefer_floor(o·n/m)                   ONNX Resize defaults (nearest,
                                                              asymmetric, round_prefer_floor)
"bilinear"       align_corners: o·(n-1)/(m-1)                torch ``mode="bilinear"`` with the
                 else: max((o+0.5)·n/m - 0.5, 0)              same ``align_corners``; ONNX linear
                                                              ``align_corners`` / ``half_pixel``
"bilinear_tf"    align_corners: o·(n-1)/(m-1)                N2D2 ``BilinearTF`` (TF1 legacy);
                 else: o·n/m                                  ONNX linear ``asymmetric``
===============  ===========================================  =====================================
Each is separable, so it is computed as y = Rᵧ·x·Rₓᵀ with two small (m, n) interpolation
matrices; the backward is gx = Rᵧᵀ·gy·Rₓ, exact for every mode.
"""
import math

from ..autograd.function import Function
from ..errors import N2D2Error, expect

__all__ = ["pad2d", "reshape", "flatten", "transpose", "resize", "RESIZE_MODES"]

RESIZE_MODES = ("nearest", "nearest_onnx", "bilinear", "bilinear_tf")


# -- Padding ----------------------------------------------------------------------------------
def _overlap(size, before, after):
    """Slices (source, destination) of the values kept along one axis padded by before/after
    (negative = crop)."""
    src = slice(max(0, -before), size - max(0, -after))
    dst_start = max(0, before)
    return src, slice(dst_start, dst_start + src.stop - src.start)


class Pad2d(Function):
    """N2D2 ``Padding``: pad H by (top, bottom) and W by (left, right) with ``value``; a negative
    amount crops that side. The gradient is gy on the kept region, 0 on the cropped one."""

    def __init__(self, top, bottom, left, right, value=0.0):
        self.pads = (int(top), int(bottom), int(left), int(right))
        self.value = float(value)

    def check_inputs(self, x):
        top, bottom, left, right = self.pads
        expect(x.ndim == 4, f"pad2d: x must be (N, C, H, W), got shape {x.shape}")
        expect(x.shape[2] + top + bottom > 0 and x.shape[3] + left + right > 0,
               f"pad2d: padding {self.pads} (top, bottom, left, right) leaves nothing of "
               f"an input of shape {x.shape}")

    def forward(self, xp, x):
        top, bottom, left, right = self.pads
        n, c, h, w = x.shape
        y = xp.full((n, c, h + top + bottom, w + left + right), self.value, dtype=x.dtype)
        (sy, dy), (sx, dx) = _overlap(h, top, bottom), _overlap(w, left, right)
        self.slices = (sy, dy, sx, dx)
        self.in_shape = x.shape
        y[:, :, dy, dx] = x[:, :, sy, sx]
        return y

    def backward(self, xp, gy, needs_grad):
        sy, dy, sx, dx = self.slices
        gx = xp.zeros(self.in_shape, dtype=gy.dtype)
        gx[:, :, sy, sx] = gy[:, :, dy, dx]
        return (gx,)


# -- Reshape, flatten, transpose --------------------------------------------------------------
class Reshape(Function):
    """y = x.reshape(shape) (C order, so N2D2's x-fastest memory layout is kept)."""

    def __init__(self, shape):
        self.shape = tuple(int(d) for d in shape)

    def check_inputs(self, x):
        known = math.prod(d for d in self.shape if d != -1)
        ok = (self.shape.count(-1) <= 1 and known > 0 and
              (x.size % known == 0 if -1 in self.shape else known == x.size))
        expect(ok, f"reshape: cannot reshape an input of shape {x.shape} to {self.shape}")

    def forward(self, xp, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, xp, gy, needs_grad):
        return (gy.reshape(self.in_shape),)


class Transpose(Function):
    """y = x.transpose(axes); the gradient transposes back with the inverse permutation."""

    def __init__(self, axes):
        self.axes = tuple(int(a) for a in axes)

    def check_inputs(self, x):
        expect(sorted(a % max(x.ndim, 1) for a in self.axes) == list(range(x.ndim))
               and len(self.axes) == x.ndim,
               f"transpose: axes {self.axes} are not a permutation of the {x.ndim} axes of "
               f"an input of shape {x.shape}")

    def forward(self, xp, x):
        return xp.ascontiguousarray(x.transpose(self.axes))

    def backward(self, xp, gy, needs_grad):
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a % len(self.axes)] = i
        return (xp.ascontiguousarray(gy.transpose(inverse)),)


# -- Resize -----------------------------------------------------------------------------------
def _source_index(xp, m, n, mode, align_corners):
    """Per output index: the low/high input indices and the weight of the high one."""
    if mode in ("nearest", "nearest_onnx"):
        # exact integer arithmetic: floor(o·n/m), or round_prefer_floor(o·n/m) (a tie x.5 goes
        # down) = ceil((2·o·n - m)/(2m)), so no float rounding can move an index
        on = xp.arange(m, dtype=xp.int64) * n
        low = on // m if mode == "nearest" else -((m - 2 * on) // (2 * m))
        low = xp.clip(low, 0, n - 1)
        return low, low, xp.zeros(m)
    o = xp.arange(m, dtype=xp.float64)
    if align_corners:
        src = o * ((n - 1) / (m - 1)) if m > 1 else xp.zeros(m)
    elif mode == "bilinear":
        src = xp.maximum((o + 0.5) * (n / m) - 0.5, 0)
    else:  # bilinear_tf without align_corners: TF1's asymmetric mapping
        src = o * (n / m)
    low = xp.minimum(xp.floor(src), n - 1)
    high = xp.minimum(low + 1, n - 1)
    return low.astype(xp.int64), high.astype(xp.int64), src - low


def _interpolation_matrix(xp, m, n, mode, align_corners, dtype):
    """(m, n) matrix R with y = R·x along one axis (one-hot rows for nearest)."""
    low, high, frac = _source_index(xp, m, n, mode, align_corners)
    columns = xp.arange(n)[None, :]
    R = ((1 - frac)[:, None] * (columns == low[:, None]) +
         frac[:, None] * (columns == high[:, None]))
    return R.astype(dtype)


class Resize(Function):
    """y = Rᵧ·x·Rₓᵀ on the (H, W) axes of an NCHW array (modes: module docstring)."""

    def __init__(self, out_h, out_w, mode="nearest", align_corners=False):
        expect(mode in RESIZE_MODES,
               f"resize: unknown mode {mode!r}, expected one of {', '.join(RESIZE_MODES)}",
               N2D2Error)
        self.out_hw = (int(out_h), int(out_w))
        self.mode, self.align_corners = mode, bool(align_corners)

    def check_inputs(self, x):
        expect(x.ndim == 4, f"resize: x must be (N, C, H, W), got shape {x.shape}")
        expect(min(self.out_hw) > 0, f"resize: output size {self.out_hw} must be positive")

    def forward(self, xp, x):
        (m_h, m_w), (n_h, n_w) = self.out_hw, x.shape[2:]
        self.Ry = _interpolation_matrix(xp, m_h, n_h, self.mode, self.align_corners, x.dtype)
        self.Rx = _interpolation_matrix(xp, m_w, n_w, self.mode, self.align_corners, x.dtype)
        return xp.matmul(xp.matmul(self.Ry, x), self.Rx.T)

    def backward(self, xp, gy, needs_grad):
        return (xp.matmul(xp.matmul(self.Ry.T, gy), self.Rx),)


# -- functional forms -------------------------------------------------------------------------
def pad2d(x, top, bottom, left, right, value=0.0):
    """N2D2 ``Padding`` cell (``TopPadding``...): constant padding, negative amounts crop."""
    return Pad2d(top, bottom, left, right, value).apply(x)


def reshape(x, shape):
    """Reshape to the full ``shape`` (batch included; one -1 may be inferred)."""
    return Reshape(shape).apply(x)


def flatten(x):
    """(N, ...) → (N, prod(...)) in C order (N2D2's ``c·H·W + y·W + x`` Fc input order)."""
    return Reshape((x.shape[0], -1)).apply(x)


def transpose(x, axes):
    """Permute axes, NumPy convention: output axis d is input axis ``axes[d]``."""
    return Transpose(axes).apply(x)


def resize(x, out_h, out_w, mode="nearest", align_corners=False):
    """N2D2 ``Resize`` / ONNX ``Resize`` on (H, W): ``mode`` in ``RESIZE_MODES``."""
    return Resize(out_h, out_w, mode, align_corners).apply(x)
