"""Cells for the ONNX operators of PyTorch's exports that N2D2 has no cell for (**n2d2py
extension, not in N2D2**): they compute on the ONNX tensor shapes, the cells' (N, C, H, W) data
being the ONNX tensor in the same element order (``graph.cell_shape``).

* ``OnnxGatherCell`` (``Type=OnnxGather``): elements picked within each sample, what the layout
  operators Slice, Split, Gather, GatherND, Expand, Tile, DepthToSpace, and Transposes across
  the batch axis compose into (``ops_layout.py``); no parameter, it only moves values.
* ``OnnxLayerNormCell`` (``Type=LayerNorm``): ONNX LayerNormalization over the trailing axes,
  learnable ``scales``/``biases`` (solver roles Scale and Bias, as BatchNorm).
* ``OnnxMatMulCell`` (``Type=Fc``): MatMul of an N-D tensor by a constant (K, O) matrix — a Fc
  applied to every row of the last axis (ConvNeXt's Linear layers on NHWC tensors). A
  ``FcCell``: its weights (O, K), bias, fillers, solvers and ``QWeight`` are the Fc's, and the
  ``[onnx:Fc_def]`` override applies to it.
"""
import math
import os

import numpy

from .. import functions as F
from ..backend import DTYPE, asnumpy, to_device
from ..cells.base import Cell
from ..cells.fc import FcCell
from ..ini.convert import to_float
from ..io import syntxt
from ..params import Key
from .graph import cell_shape


def onnx_view(onnx, cell, x, dims, what="in"):
    """``x`` (N, C, H, W) viewed as the ONNX shape (N,) + ``dims``."""
    shape = onnx.const(f"{cell.name}/{what}_shape", [0, *dims], numpy.int64)
    return onnx.node("Reshape", [x, shape], f"{cell.name}/{what}_view")


def physical_view(onnx, cell, y):
    """``y`` reshaped to the cell's (N, C, H, W)."""
    shape = onnx.const(f"{cell.name}/shape", [0, *cell.out_shape], numpy.int64)
    return onnx.node("Reshape", [y, shape], f"{cell.name}/reshape")


class OnnxGatherCell(Cell):
    """y[n] = x[n].ravel()[index], seen as the ONNX shape (N,) + ``out_dims``."""
    type_name = "OnnxGather"

    def __init__(self, name="", parents=("env",), index=(), out_dims=(), **values):
        super().__init__(name, parents, **values)
        self.index = numpy.asarray(index, numpy.int64).ravel()
        self.out_dims = tuple(int(d) for d in out_dims)
        self.unique = numpy.unique(self.index).size == self.index.size
        self.device_index = self.index

    def describe(self):
        return f"cell [{self.name}] (n2d2py ONNX Gather)"

    def compute_out_shape(self, in_shapes):
        if len(in_shapes) != 1:
            raise self.error(f"one input expected, got {len(in_shapes)}")
        size = math.prod(in_shapes[0])
        if self.index.size != math.prod(self.out_dims) or \
                (self.index.size and (self.index.min() < 0 or self.index.max() >= size)):
            raise self.error(f"{self.index.size} positions in [{self.index.min()}, "
                             f"{self.index.max()}] for an output {self.out_dims} from an input of "
                             f"{size} values")
        shape = cell_shape((1,) + self.out_dims)
        self.nb_outputs = shape[0]
        return shape

    def channel_range(self):
        """(first, last + 1) when the cell picks whole contiguous channels of its input, else
        None (what a report can say of ShuffleNet's channel split)."""
        c, h, w = self.in_shapes[0]
        plane = h * w
        if self.index.size % plane or self.index.size == 0:
            return None
        first = int(self.index[0]) // plane
        expected = numpy.arange(first * plane, first * plane + self.index.size)
        return (first, first + self.index.size // plane) \
            if numpy.array_equal(self.index, expected) and self.index[0] % plane == 0 else None

    def to(self, device):
        super().to(device)
        self.device_index = to_device(self.index, device)
        return self

    def forward(self, xs, training=False):
        y = F.gather_samples(xs[0], self.device_index, self.out_shape, self.unique)
        return self.activate(y, training)

    # ---------------------------------------------------------------- traits (cells/base.py)
    keeps_precision = True     # every output is an input value

    def export_onnx(self, onnx, xs):
        """``Reshape`` (N, -1), ``Gather`` on axis 1, ``Reshape`` to (N, C, H, W)."""
        n = self.name
        flat = onnx.node("Reshape", [xs[0], onnx.const(f"{n}/flat", [0, -1], numpy.int64)],
                         f"{n}/flatten")
        picked = onnx.node("Gather", [flat, onnx.const(f"{n}/index", self.index, numpy.int64)],
                           f"{n}/gather", axis=1)
        return physical_view(onnx, self, picked)

    def fuse(self, fuser):
        return fuser.move(self)    # the integer codes are moved, exactly


class OnnxLayerNormCell(Cell):
    """ONNX LayerNormalization: the input seen as (N,) + ``in_dims`` is normalised over its
    last ``count`` axes, then ``* scales + biases`` (of the normalised shape)."""
    type_name = "LayerNorm"
    epsilon = Key("Epsilon", to_float, 1e-5, config=True)
    solver_roles = ("Scale", "Bias")

    def __init__(self, name="", parents=("env",), in_dims=(), count=1, scale=None, bias=None,
                 **values):
        super().__init__(name, parents, **values)
        self.in_dims, self.count = tuple(int(d) for d in in_dims), int(count)
        self.initial = (scale, bias)
        self.scale = self.bias = None

    def norm_shape(self):
        return self.in_dims[len(self.in_dims) - self.count:]

    def compute_out_shape(self, in_shapes):
        if len(in_shapes) != 1 or math.prod(in_shapes[0]) != math.prod(self.in_dims):
            raise self.error(f"input {in_shapes} (C, H, W) is not the ONNX shape {self.in_dims}")
        if not 1 <= self.count <= len(self.in_dims):
            raise self.error(f"cannot normalise {self.count} axes of {self.in_dims}")
        shape = cell_shape((1,) + self.in_dims)
        self.nb_outputs = shape[0]
        return shape

    def create_parameters(self, rng):
        shape = self.norm_shape()
        scale, bias = self.initial
        scale = numpy.ones(shape, DTYPE) if scale is None else scale
        self.scale = self.new_parameter(numpy.array(numpy.broadcast_to(scale, shape), DTYPE),
                                        "Scale", "scales")
        if bias is not None:
            self.bias = self.new_parameter(numpy.array(numpy.broadcast_to(bias, shape), DTYPE),
                                           "Bias", "biases")

    def own_parameters(self):
        return [self.scale] + ([] if self.bias is None else [self.bias])

    def forward(self, xs, training=False):
        x = F.reshape(xs[0], (xs[0].shape[0],) + self.in_dims)
        y = F.layer_norm(x, self.count, self.scale, self.bias, self.epsilon)
        return self.activate(F.reshape(y, (y.shape[0],) + tuple(self.out_shape)), training)

    # ---------------------------------------------------------------- traits (cells/base.py)
    keeps_precision = False

    def export_onnx(self, onnx, xs):
        n = self.name
        x = onnx_view(onnx, self, xs[0], self.in_dims)
        inputs = [x, onnx.const(f"{n}/scale", asnumpy(self.scale.data))]
        if self.bias is not None:
            inputs.append(onnx.const(f"{n}/bias", asnumpy(self.bias.data)))
        y = onnx.node("LayerNormalization", inputs, f"{n}/layernorm",
                      axis=len(self.in_dims) + 1 - self.count, epsilon=float(self.epsilon))
        return physical_view(onnx, self, y)

    fusion_refusal = "LayerNorm (n2d2py extension) is not part of N2D2's integer engine"

    # ---------------------------------------------------------------- weights I/O
    def export_weights(self, folder, precision=None):
        """``<cell>_scales.syntxt`` and ``<cell>_biases.syntxt``, one value per line (C order
        of the normalised shape), as BatchNorm writes its scales and biases."""
        super().export_weights(folder, precision)
        os.makedirs(folder, exist_ok=True)
        for suffix, param in (("scales", self.scale), ("biases", self.bias)):
            if param is not None:
                syntxt.write_column(syntxt.weights_path(folder, self.name, suffix, create=True),
                                    asnumpy(param.data).ravel(), precision or 6)

    def import_weights(self, folder, ignore_missing=False):
        super().import_weights(folder, ignore_missing)
        size = math.prod(self.norm_shape())
        for suffix, param in (("scales", self.scale), ("biases", self.bias)):
            if param is None:
                continue
            values = self.read_weight_file(syntxt.weights_path(folder, self.name, suffix), size,
                                           ignore_missing, suffix)
            if values is not None:
                param.data[...] = param.xp.asarray(values.reshape(param.shape))


class OnnxMatMulCell(FcCell):
    """``y = x @ W.T + b`` on the last axis of the input seen as (N,) + ``in_dims``: the Fc's
    (O, K) weights applied to each of the M = prod(in_dims[:-1]) rows of every sample."""

    def __init__(self, name="", parents=("env",), in_dims=(), **values):
        super().__init__(name, parents, **values)
        self.in_dims = tuple(int(d) for d in in_dims)

    def describe(self):
        return f"cell [{self.name}] (Type=Fc on the last axis of {self.in_dims}, n2d2py ONNX MatMul)"

    def out_dims(self):
        return self.in_dims[:-1] + (self.nb_outputs,)

    def compute_out_shape(self, in_shapes):
        if len(in_shapes) != 1 or math.prod(in_shapes[0]) != math.prod(self.in_dims):
            raise self.error(f"input {in_shapes} (C, H, W) is not the ONNX shape {self.in_dims}")
        return cell_shape((1,) + self.out_dims())

    def create_weights(self, rng):
        k, o = self.in_dims[-1], self.nb_outputs
        self.weights = [self.new_parameter(self.fill("Weights", (o, k), k, o, rng), "Weights",
                                           "weights[0]")]
        self.weight_masks = [None]

    def bias_values(self, rng):
        return self.fill("Bias", (self.nb_outputs,), self.nb_outputs, 1, rng)

    def forward(self, xs, training=False):
        x = self.inputs(xs)[0]
        (W,) = self.quantized_weights()
        rows = F.reshape(x, (-1, self.in_dims[-1]))
        y = F.linear(rows, W, self.bias)
        return self.activate(F.reshape(y, (x.shape[0],) + tuple(self.out_shape)), training)

    # ---------------------------------------------------------------- traits (cells/base.py)
    def macs_per_weight(self):
        return math.prod(self.in_dims[:-1])

    def export_onnx(self, onnx, xs):
        """``Reshape`` to the ONNX shape, ``MatMul`` by Wᵀ, ``Add`` the bias, ``Reshape``."""
        n = self.name
        x = onnx_view(onnx, self, xs[0], self.in_dims)
        (wq,) = onnx.fake_quantized(self)
        W = onnx.weight_input(self, asnumpy(self.weights[0].data), wq, f"{n}/W")
        y = onnx.node("MatMul", [x, onnx.node("Transpose", [W], f"{n}/Wt", perm=[1, 0])],
                      f"{n}/matmul")
        if self.bias is not None:
            y = onnx.node("Add", [y, onnx.const(f"{n}/b", asnumpy(self.bias.data))], f"{n}/add")
        return physical_view(onnx, self, y)

    fusion_refusal = ("a MatMul on an N-D tensor (n2d2py extension) is not part of N2D2's "
                      "integer engine")
    fuse = Cell.fuse


__all__ = ["OnnxGatherCell", "OnnxLayerNormCell", "OnnxMatMulCell"]
