"""``Type=Dropout``, as N2D2's Dropout cell.

``Dropout`` (drop probability, 0.5) is a cell *parameter*: N2D2 reads it only from a
ConfigSection, so ``Dropout=0.2`` in the cell section is ignored (with a warning here). N2D2's
CPU ``Frame`` zeroes dropped values without rescaling; ``Frame_CUDA`` (cuDNN) does inverted
dropout. The cell follows its ``Model`` (or ``DefaultModel``) the same way; ``inverted=True/False``
from Python overrides it. Identity at inference.
"""
from .. import functions as F
from ..ini.convert import to_float
from ..params import Key
from .base import CELLS, Cell, concat_inputs, same_hw


@CELLS.register("Dropout")
class DropoutCell(Cell):
    dropout = Key("Dropout", to_float, 0.5, config=True)
    unsupported_keys = ("InputOffsetX", "InputOffsetY", "InputWidth", "InputHeight")

    def __init__(self, name="", parents=("env",), inverted=None, **values):
        super().__init__(name, parents, **values)
        self.inverted = inverted

    @property
    def rescale(self):
        return ("CUDA" in self.model) if self.inverted is None else bool(self.inverted)

    def compute_out_shape(self, in_shapes):
        if not 0.0 <= self.dropout < 1.0:
            raise self.error(f"Dropout={self.dropout} must be in [0, 1)", key="Dropout")
        return same_hw(self, in_shapes)

    def forward(self, xs, training=False):
        x = concat_inputs(self, xs)
        if training and self.dropout > 0.0:
            if self.rng is None:
                raise self.error("Dropout needs the rng given to build()")
            x = F.dropout(x, self.dropout, training, self.rng, self.rescale)
        return self.activate(x, training)

    # ---------------------------------------------------------------- traits (cells/base.py)
    keeps_precision = True
    n2d2_neurons = True

    def export_onnx(self, onnx, xs):
        return onnx.concat(self, xs)      # inference: the identity, omitted

    def fuse(self, fuser):
        return fuser.identity(self)       # inference: the identity, removed


__all__ = ["DropoutCell"]
