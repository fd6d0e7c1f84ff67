"""``Type=Pool`` (spec/ini.md §2.3, §2.7, §2.8.1, §8 item 2).

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
    pooling = Key("Pooling", enum("Max", "Average"))   # no default in N2D2 (spec §8 item 2)
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


__all__ = ["PoolCell"]
