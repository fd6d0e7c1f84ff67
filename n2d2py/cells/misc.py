"""Parameter-free cells of N2D2: Padding, Resize, Reshape, Transpose, Scaling, LRN,
Normalize, TargetBias, Threshold. Several inputs are concatenated along the channels, as in N2D2.
Dims lists (``Dims``, ``Perm``) use N2D2's (X, Y, Z, B) axis order, innermost first, not
NCHW.
"""
import numpy

from .. import functions as F
from ..autograd import Variable
from ..ini.convert import enum, list_of, to_float, to_int, to_uint, to_bool
from ..params import Key, at_least
from .base import CELLS, Cell, concat_inputs, same_hw


class _ConcatCell(Cell):
    """Inputs concatenated; the output shape from ``map_shape((C, H, W))``."""

    def compute_out_shape(self, in_shapes):
        return self.map_shape(same_hw(self, in_shapes, check_nb_outputs=False))

    def map_shape(self, shape):
        if shape[0] != self.nb_outputs:
            raise self.error(f"NbOutputs={self.nb_outputs} but the inputs have {shape[0]} "
                             f"channels", key="NbOutputs")
        return shape

    def forward(self, xs, training=False):
        return self.activate(self.apply(concat_inputs(self, xs), training), training)

    # traits (cells/base.py) that the cells below share
    keeps_precision = False
    fusion_refusal = "not part of N2D2's QAT fusion (Conv+BN, Fc, ElemWise, Pool, Dropout, Softmax)"


@CELLS.register("Padding")
class PaddingCell(_ConcatCell):
    """Constant zero padding; negative amounts crop."""
    top = Key("TopPadding", to_int)
    bottom = Key("BottomPadding", to_int)
    left = Key("LeftPadding", to_int)
    right = Key("RightPadding", to_int)

    def map_shape(self, shape):
        c, h, w = super().map_shape(shape)
        return (c, h + self.top + self.bottom, w + self.left + self.right)

    def apply(self, x, training):
        return F.pad2d(x, self.top, self.bottom, self.left, self.right)

    keeps_precision = True   # zero is code 0 of every activation grid

    def export_onnx(self, onnx, xs):
        """``Pad`` for the positive amounts, then ``Slice`` for the negative ones (crop): the
        reference evaluator refuses negative pads."""
        n, x = self.name, onnx.concat(self, xs)
        t, b, l, r = self.top, self.bottom, self.left, self.right
        if max(t, b, l, r) > 0:
            pads = [0, 0, max(t, 0), max(l, 0), 0, 0, max(b, 0), max(r, 0)]
            x = onnx.node("Pad", [x, onnx.const(f"{n}/pads", pads, numpy.int64)], f"{n}/pad",
                          mode="constant")
        if min(t, b, l, r) < 0:
            h = self.in_shapes[0][1] + max(t, 0) + max(b, 0)
            w = self.in_shapes[0][2] + max(l, 0) + max(r, 0)
            starts, ends = [max(-t, 0), max(-l, 0)], [h - max(-b, 0), w - max(-r, 0)]
            x = onnx.node("Slice", [x, onnx.const(f"{n}/starts", starts, numpy.int64),
                                    onnx.const(f"{n}/ends", ends, numpy.int64),
                                    onnx.const(f"{n}/axes", [2, 3], numpy.int64)], f"{n}/crop")
        return x

    def fuse(self, fuser):
        return fuser.move(self)


RESIZE_MODES = {"Bilinear": "bilinear", "BilinearTF": "bilinear_tf", "NearestNeighbor": "nearest"}


@CELLS.register("Resize")
class ResizeCell(_ConcatCell):
    output_width = Key("OutputWidth", to_uint)
    output_height = Key("OutputHeight", to_uint)
    mode = Key("Mode", enum(*RESIZE_MODES))
    align_corners = Key("AlignCorners", to_bool, True, config=True)

    def map_shape(self, shape):
        return (super().map_shape(shape)[0], self.output_height, self.output_width)

    def apply(self, x, training):
        return F.resize(x, self.output_height, self.output_width, RESIZE_MODES[self.mode],
                        self.align_corners)

    @property
    def keeps_precision(self):
        return self.mode == "NearestNeighbor"

    onnx_refusal = "Resize has no ONNX export yet (N2D2's NearestNeighbor and BilinearTF modes)"


@CELLS.register("Reshape")
class ReshapeCell(_ConcatCell):
    """``Dims`` in (X, Y, Z) order, batch excluded: 0 copies the input dim, -1 is inferred."""
    n2d2_nodes = False   # N2D2's stats.log does not count its outputs
    dims = Key("Dims", list_of(to_int))

    def map_shape(self, shape):
        xyz = [shape[2], shape[1], shape[0]]
        dims = list(self.dims) + [1] * (3 - len(self.dims))
        if len(self.dims) > 3 or dims.count(-1) > 1:
            raise self.error(f"Dims={self.dims}: expected up to 3 dims (X Y Z), one -1 at most",
                             key="Dims")
        dims = [xyz[i] if d == 0 else d for i, d in enumerate(dims)]
        total = shape[0] * shape[1] * shape[2]
        if -1 in dims:
            known = -1 * dims[0] * dims[1] * dims[2]
            dims[dims.index(-1)] = total // known if known and total % known == 0 else -1
        if min(dims) <= 0 or dims[0] * dims[1] * dims[2] != total:
            raise self.error(f"Dims={self.dims} does not fit the input {shape} (C, H, W)", key="Dims")
        if dims[2] != self.nb_outputs:
            raise self.error(f"NbOutputs={self.nb_outputs} but Dims gives {dims[2]} channels",
                             key="NbOutputs")
        return (dims[2], dims[1], dims[0])

    def compute_out_shape(self, in_shapes):
        return self.map_shape(same_hw(self, in_shapes, check_nb_outputs=False))

    def apply(self, x, training):
        return F.reshape(x, (x.shape[0],) + tuple(self.out_shape))

    keeps_precision = True

    def export_onnx(self, onnx, xs):
        shape = onnx.const(f"{self.name}/shape", [0, *self.out_shape], numpy.int64)
        return onnx.node("Reshape", [onnx.concat(self, xs), shape], f"{self.name}/reshape")

    def fuse(self, fuser):
        return fuser.move(self)


@CELLS.register("Transpose")
class TransposeCell(_ConcatCell):
    """``Perm`` over (X, Y, Z, B): output dim d = input dim Perm[d]; B must stay 3."""
    n2d2_nodes = False   # N2D2's stats.log does not count its outputs
    perm = Key("Perm", list_of(to_uint, 4))

    def axes(self):
        # N2D2 axis d (0=X, 1=Y, 2=Z, 3=B) is NumPy axis 3 - d of (N, C, H, W)
        axes = [0] * 4
        for d, source in enumerate(self.perm):
            axes[3 - d] = 3 - source
        return tuple(axes)

    def map_shape(self, shape):
        if sorted(self.perm) != [0, 1, 2, 3] or self.perm[3] != 3:
            raise self.error(f"Perm={self.perm}: expected a permutation of 0 1 2 3 keeping B (3)",
                             key="Perm")
        full = (1,) + tuple(shape)
        out = tuple(full[a] for a in self.axes())[1:]
        if out[0] != self.nb_outputs:
            raise self.error(f"NbOutputs={self.nb_outputs} but Perm gives {out[0]} channels",
                             key="NbOutputs")
        return out

    def compute_out_shape(self, in_shapes):
        return self.map_shape(same_hw(self, in_shapes, check_nb_outputs=False))

    def apply(self, x, training):
        return F.transpose(x, self.axes())

    keeps_precision = True

    def export_onnx(self, onnx, xs):
        return onnx.node("Transpose", [onnx.concat(self, xs)], f"{self.name}/transpose",
                         perm=list(self.axes()))

    def fuse(self, fuser):
        return fuser.move(self)


@CELLS.register("Scaling")
class ScalingCell(_ConcatCell):
    n2d2_nodes = False   # N2D2's stats.log does not count its outputs
    factor = Key("Factor", to_float)

    def apply(self, x, training):
        return F.scaling(x, self.factor)

    def export_onnx(self, onnx, xs):
        return onnx.node("Mul", [onnx.concat(self, xs), onnx.const(f"{self.name}/factor",
                                                                    self.factor)],
                         f"{self.name}/scaling")


@CELLS.register("LRN")
class LRNCell(_ConcatCell):
    """Across-channel local response normalisation."""
    n = Key("N", to_uint, 5, config=True, check=at_least(1))
    alpha = Key("Alpha", to_float, 1e-4, config=True)
    beta = Key("Beta", to_float, 0.75, config=True)
    k = Key("K", to_float, 2.0, config=True)

    def apply(self, x, training):
        return F.lrn(x, self.n, self.alpha, self.beta, self.k)

    def export_onnx(self, onnx, xs):
        return onnx.node("LRN", [onnx.concat(self, xs)], f"{self.name}/lrn", size=int(self.n),
                         alpha=float(self.alpha), beta=float(self.beta), bias=float(self.k))


@CELLS.register("Normalize")
class NormalizeCell(_ConcatCell):
    n2d2_nodes = False   # N2D2's stats.log does not count its outputs
    norm = Key("Norm", enum("L1", "L2"))

    def apply(self, x, training):
        return F.normalize(x, self.norm)

    onnx_refusal = "Normalize has no ONNX export yet"


@CELLS.register("TargetBias")
class TargetBiasCell(_ConcatCell):
    """Adds ``Bias`` to the target class only (AM-Softmax margin). The DeepNet sets
    ``cell.target`` (an (N, C, H, W) 0/1 array of the batch's classes) before a training forward;
    without it (inference) the cell is the identity."""
    n2d2_nodes = False   # N2D2's stats.log does not count its outputs
    bias = Key("Bias", to_float)

    def __init__(self, name="", parents=("env",), **values):
        super().__init__(name, parents, **values)
        self.target = None

    def apply(self, x, training):
        if not training or self.target is None:
            return x
        return x + Variable(x.xp.asarray(self.target, dtype=x.dtype) * x.dtype.type(self.bias))

    def export_onnx(self, onnx, xs):
        return onnx.concat(self, xs)      # inference: the identity


@CELLS.register("Threshold")
class ThresholdCell(_ConcatCell):
    """OpenCV-style thresholding (no gradient): Binary ``x > T ? MaxValue : 0``,
    BinaryInverted, Truncate ``min(x, T)``, ToZero ``x > T ? x : 0``, ToZeroInverted."""
    threshold = Key("Threshold", to_float)
    operation = Key("Operation", enum("Binary", "BinaryInverted", "Truncate", "ToZero",
                                      "ToZeroInverted"), "Binary", config=True)
    max_value = Key("MaxValue", to_float, 1.0, config=True)

    def apply(self, x, training):
        xp, data = x.xp, x.data
        above = data > data.dtype.type(self.threshold)
        zero, top = data.dtype.type(0), data.dtype.type(self.max_value)
        out = {"Binary": lambda: xp.where(above, top, zero),
               "BinaryInverted": lambda: xp.where(above, zero, top),
               "Truncate": lambda: xp.minimum(data, data.dtype.type(self.threshold)),
               "ToZero": lambda: xp.where(above, data, zero),
               "ToZeroInverted": lambda: xp.where(above, zero, data)}[self.operation]()
        return Variable(out.astype(data.dtype, copy=False))

    onnx_refusal = "Threshold has no ONNX export yet"


__all__ = ["PaddingCell", "ResizeCell", "ReshapeCell", "TransposeCell", "ScalingCell", "LRNCell",
           "NormalizeCell", "TargetBiasCell", "ThresholdCell"]
