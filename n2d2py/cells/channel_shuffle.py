"""``Type=ChannelShuffle``: ShuffleNet's channel shuffle (Zhang et al., CVPR 2018). **n2d2py
extension, not in N2D2** (N2D2 has no such cell; its keys follow N2D2's words: ``NbOutputs``,
and ``NbGroups`` as in ``Mapping.NbGroups``).

The C input channels, seen as ``NbGroups`` = G groups of C/G, are interleaved: output channel
``k·G + g`` is input channel ``g·(C/G) + k`` (PyTorch's ``nn.ChannelShuffle(G)``: a reshape to
(G, C/G), a transpose, a reshape back). Several inputs are concatenated first (as N2D2's cells do).
No parameter; the gradient is the inverse permutation.

    [shuffle]
    Input=conv1
    Type=ChannelShuffle
    NbOutputs=16
    NbGroups=4
"""
import numpy

from .. import functions as F
from ..ini.convert import to_uint
from ..params import Key, at_least
from .base import CELLS, Cell, concat_inputs, same_hw


@CELLS.register("ChannelShuffle")
class ChannelShuffleCell(Cell):
    nb_groups = Key("NbGroups", to_uint, check=at_least(1))

    def compute_out_shape(self, in_shapes):
        shape = same_hw(self, in_shapes)
        if shape[0] % self.nb_groups:
            raise self.error(f"NbGroups={self.nb_groups} does not divide the {shape[0]} input "
                             f"channels", key="NbGroups")
        return shape

    def grouped_shape(self):
        """(G, C/G, H, W): the channels as groups, batch excluded."""
        c, h, w = self.out_shape
        return (self.nb_groups, c // self.nb_groups, h, w)

    def forward(self, xs, training=False):
        x = concat_inputs(self, xs)
        y = F.reshape(x, (x.shape[0],) + self.grouped_shape())
        y = F.transpose(y, (0, 2, 1, 3, 4))
        return self.activate(F.reshape(y, (x.shape[0],) + tuple(self.out_shape)), training)

    def permutation(self):
        """``perm`` with output channel o = input channel ``perm[o]``."""
        g, per_group = self.grouped_shape()[:2]
        return numpy.arange(g * per_group).reshape(g, per_group).T.ravel()

    # ---------------------------------------------------------------- traits (cells/base.py)
    keeps_precision = True   # a permutation: every output is an input value

    def export_onnx(self, onnx, xs):
        """``Reshape`` to (N, G, C/G, H, W), ``Transpose`` (0 2 1 3 4), ``Reshape`` back."""
        n = self.name
        grouped = onnx.const(f"{n}/groups", [0, *self.grouped_shape()], numpy.int64)
        y = onnx.node("Reshape", [onnx.concat(self, xs), grouped], f"{n}/grouped")
        y = onnx.node("Transpose", [y], f"{n}/transpose", perm=[0, 2, 1, 3, 4])
        shape = onnx.const(f"{n}/shape", [0, *self.out_shape], numpy.int64)
        return onnx.node("Reshape", [y, shape], f"{n}/shuffle")

    def fuse(self, fuser):
        return fuser.move(self)   # the integer codes are moved, exactly


__all__ = ["ChannelShuffleCell"]
