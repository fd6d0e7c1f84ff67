"""Pool geometry ONNX has and N2D2's ``Type=Pool`` cell cannot express (spec/ini.md §5.3).

N2D2 emulates ``ceil_mode=1`` and asymmetric ``pads`` with extra zero padding and always counts
the padding in averages (``count_include_pad`` is ignored with a warning). That changes the
numbers: zero padding can win a max over negative inputs, and ONNX's default
``count_include_pad=0`` divides by the number of real pixels. **n2d2py differs on purpose**: such
pools become an ``OnnxPoolCell``, a ``PoolCell`` (same ``Type=Pool``, same keys; ``PaddingDims``
holds the leading pads) with ``pads`` (top, bottom, left, right), ``ceil_mode`` and
``count_include_pad`` handed to ``F.max_pool2d``/``F.avg_pool2d``, which match ONNX exactly.
Pools N2D2 can express keep the plain ``PoolCell``.
"""
from .. import functions as F
from ..cells.base import concat_inputs
from ..cells.pool import PoolCell


class OnnxPoolCell(PoolCell):
    """``Type=Pool`` with ONNX's asymmetric padding, ceil mode and count_include_pad."""

    def __init__(self, name="", parents=("env",), pads=(0, 0, 0, 0), ceil_mode=False,
                 count_include_pad=True, **values):
        super().__init__(name, parents, **values)
        self.pads, self.ceil_mode = tuple(int(p) for p in pads), bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def compute_out_shape(self, in_shapes):
        hw = {tuple(s[1:]) for s in in_shapes}
        if len(hw) != 1:
            raise self.error(f"inputs {', '.join(self.parents)} have different sizes {in_shapes}")
        (h, w), = hw
        oh, ow = F.pool_output_size((h, w), self.hw(self.pool_dims), self.hw(self.stride_dims),
                                    self.pads, self.ceil_mode)
        return (self.nb_outputs, oh, ow)

    def forward(self, xs, training=False):
        x = concat_inputs(self, xs)
        kernel, stride = self.hw(self.pool_dims), self.hw(self.stride_dims)
        if self.pooling == "Max":
            y = F.max_pool2d(x, kernel, stride, self.pads, self.ceil_mode)
        else:
            y = F.avg_pool2d(x, kernel, stride, self.pads, self.ceil_mode, self.count_include_pad)
        return self.activate(y, training)


__all__ = ["OnnxPoolCell"]
