"""``Type=Softmax``: softmax over the channels at each (y, x), or over
groups of ``GroupSize`` channels. ``WithLoss=1``: the DeepNet uses the softmax cross-entropy on
``cell.last_logits`` (N2D2 passes ``target - softmax`` straight through); see ``cells/base.py``.
"""
from .. import functions as F
from ..ini.convert import to_bool, to_uint
from ..params import Key
from .base import CELLS, Cell, concat_inputs, same_hw


@CELLS.register("Softmax")
class SoftmaxCell(Cell):
    with_loss = Key("WithLoss", to_bool, False)
    group_size = Key("GroupSize", to_uint, 0)
    unsupported_keys = ("InputOffsetX", "InputOffsetY", "InputWidth", "InputHeight")

    def compute_out_shape(self, in_shapes):
        shape = same_hw(self, in_shapes)
        if self.group_size and shape[0] % self.group_size:
            raise self.error(f"GroupSize={self.group_size} does not divide NbOutputs={shape[0]}",
                             key="GroupSize")
        return shape

    @property
    def loss_kind(self):
        return "softmax" if self.with_loss else super().loss_kind

    def forward(self, xs, training=False):
        x = concat_inputs(self, xs)
        self.last_logits = x
        y = F.softmax(x, axis=1, group_size=self.group_size)
        if self.activation is not None:
            y = self.activation(y)
        if self.qact is not None:
            y = self.qact(y, training)
        return y

    # ---------------------------------------------------------------- traits (cells/base.py)
    keeps_precision = False
    n2d2_neurons = True

    def export_onnx(self, onnx, xs):
        if self.group_size:
            raise onnx.error(self, "GroupSize has no ONNX export")
        return onnx.node("Softmax", [onnx.concat(self, xs)], f"{self.name}/softmax", axis=1)

    def fuse(self, fuser):
        return fuser.softmax(self)


__all__ = ["SoftmaxCell"]
