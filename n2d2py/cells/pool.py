"""``Type=Pool``, as N2D2's Pool cell (maps: docs/INI.md §6, "Connection maps").

Output size per axis ``floor((in + 2p - k + s) / s)``; average pooling counts the padding.
Each parent has its own map; the maps are concatenated along the channels. **No Mapping means
full connectivity**: every output pools over every channel. When the concatenated map is the
identity (``Mapping.Size=1`` or ``Mapping.ChannelsPerGroup=1``, what every model uses) the usual
per-channel ``F.max_pool2d``/``F.avg_pool2d`` runs; any other map uses ``F.channel_pool2d``.
"""
import numpy

from .. import functions as F
from ..ini.convert import enum, to_uint
from ..params import Key
from .base import CELLS, Cell, concat_inputs, dims_key
from .mapping import MappingSpec


@CELLS.register("Pool")
class PoolCell(Cell):
    pool_dims = dims_key("Pool")
    stride_dims = dims_key("Stride", (1, 1))
    padding_dims = dims_key("Padding", (0, 0), convert=to_uint)
    pooling = Key("Pooling", enum("Max", "Average"))   # no default in N2D2 (its docs say Max)
    uses_mapping = True
    unsupported_keys = ("PoolDepth", "StrideZ", "PaddingZ")

    def __init__(self, name="", parents=("env",), mapping=None, **values):
        super().__init__(name, parents, **values)
        self.mapping = mapping if isinstance(mapping, MappingSpec) else MappingSpec(mapping)
        self.mask = None   # concatenated (O, ΣC) map; None when it is the identity

    @classmethod
    def from_section(cls, section, parents):
        cell = super().from_section(section, parents)
        cell.mapping = MappingSpec.from_section(section, cell.parents)
        return cell

    @staticmethod
    def hw(dims):
        return (int(dims[1]), int(dims[0]))

    def compute_out_shape(self, in_shapes):
        hw = {tuple(s[1:]) for s in in_shapes}
        if len(hw) != 1:
            raise self.error(f"inputs {', '.join(self.parents)} have different sizes {in_shapes}")
        (h, w), = hw
        if h == 1 and w == 1:
            raise self.error("2D input expected (the input is 1x1)")
        (kh, kw), (sh, sw), (ph, pw) = (self.hw(self.pool_dims), self.hw(self.stride_dims),
                                        self.hw(self.padding_dims))
        return (self.nb_outputs, (h + 2 * ph - kh + sh) // sh, (w + 2 * pw - kw + sw) // sw)

    def create_parameters(self, rng):
        masks = []
        for parent, shape in zip(self.parents, self.in_shapes):
            mask = self.mapping.resolve(parent, self.nb_outputs, shape[0])
            masks.append(numpy.ones((self.nb_outputs, shape[0]), bool) if mask is None else mask)
        mask = numpy.concatenate(masks, axis=1)
        identity = mask.shape[0] == mask.shape[1] and numpy.array_equal(mask, numpy.eye(len(mask)))
        self.mask = None if identity else mask

    def forward(self, xs, training=False):
        x = concat_inputs(self, xs)
        kernel, stride, padding = (self.hw(self.pool_dims), self.hw(self.stride_dims),
                                   self.hw(self.padding_dims))
        if self.mask is not None:
            kind = "max" if self.pooling == "Max" else "average"
            mask = x.xp.asarray(self.mask)
            y = F.channel_pool2d(x, mask, kind, kernel, stride, padding)
        elif self.pooling == "Max":
            y = F.max_pool2d(x, kernel, stride, padding)
        else:
            y = F.avg_pool2d(x, kernel, stride, padding)
        return self.activate(y, training)

    # ---------------------------------------------------------------- traits (cells/base.py)
    keeps_precision = True   # the report counts pooling as free and on its input's codes

    def onnx_geometry(self):
        """(pads [top, left, bottom, right], ceil_mode, count_include_pad) of the ONNX pool."""
        (t, l) = self.hw(self.padding_dims)
        return [t, l, t, l], 0, 1   # N2D2 counts the padding in averages

    def export_onnx(self, onnx, xs):
        """``MaxPool``/``AveragePool``; N2D2's channel-wise pools (a Mapping that is not
        one-to-one, e.g. the default all-to-all): average → a 1x1 Conv of weights mask/count
        after the pool, max → Gather + ReduceMax per output, then Concat."""
        n = self.name
        pads, ceil, include = self.onnx_geometry()
        attrs = dict(kernel_shape=list(self.hw(self.pool_dims)),
                     strides=list(self.hw(self.stride_dims)), pads=pads, ceil_mode=ceil)
        x = onnx.concat(self, xs)
        if self.pooling == "Max":
            y = onnx.node("MaxPool", [x], f"{n}/pool", **attrs)
            return y if self.mask is None else self.onnx_channel_max(onnx, y)
        y = onnx.node("AveragePool", [x], f"{n}/pool", count_include_pad=include, **attrs)
        if self.mask is None:
            return y
        # out o = mean over the connected channels of the per-channel averages: a 1x1 conv
        W = self.mask.astype(numpy.float32) / \
            numpy.maximum(self.mask.sum(axis=1), 1)[:, None].astype(numpy.float32)
        return onnx.node("Conv", [y, onnx.const(f"{n}/channel_mean", W[:, :, None, None])],
                         f"{n}/channel_pool", kernel_shape=[1, 1])

    def onnx_channel_max(self, onnx, y):
        """Out o = max over the connected channels: one Gather + ReduceMax per output."""
        n, outs = self.name, []
        for o, row in enumerate(self.mask):
            channels = numpy.flatnonzero(row)
            if len(channels) == 0:
                raise onnx.error(self, f"output {o} of the Pool Mapping pools no channel")
            g = onnx.node("Gather", [y, onnx.const(f"{n}/ch{o}", channels, numpy.int64)],
                          f"{n}/gather{o}", axis=1)
            axes = onnx.const(f"{n}/axes{o}", [1], numpy.int64)     # opset 18+: an input
            outs.append(onnx.node("ReduceMax", [g, axes], f"{n}/max{o}", keepdims=1))
        return outs[0] if len(outs) == 1 else onnx.node("Concat", outs, f"{n}/channel_pool", axis=1)

    def fuse(self, fuser):
        return fuser.pool(self)

    def count_n2d2(self, counter):
        return counter.pool(self)


__all__ = ["PoolCell"]
