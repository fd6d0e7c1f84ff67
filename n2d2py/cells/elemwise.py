"""``Type=ElemWise`` (spec/ini.md §2.3, §2.8.1): element-wise ``Operation`` over the inputs, each of
exactly ``NbOutputs`` channels. Sum = Σ(wᵢ·xᵢ + sᵢ); AbsSum = Σ wᵢ·|xᵢ|; EuclideanSum =
sqrt(Σ(wᵢxᵢ+sᵢ)²); Prod; Max. ``Operation`` has no default (spec §8 item 2).
"""
from .. import functions as F
from ..ini.convert import enum, list_of, to_float
from ..params import Key
from .base import CELLS, Cell


@CELLS.register("ElemWise")
class ElemWiseCell(Cell):
    operation = Key("Operation", enum("Sum", "AbsSum", "EuclideanSum", "Prod", "Max"))
    weights = Key("Weights", list_of(to_float), ())
    shifts = Key("Shifts", list_of(to_float), ())
    coeff_mode = Key("CoeffMode", enum("PerLayer", "PerInput", "PerChannel"), "PerInput")

    def compute_out_shape(self, in_shapes):
        for parent, shape in zip(self.parents, in_shapes):
            if tuple(shape) != tuple(in_shapes[0]) or shape[0] != self.nb_outputs:
                raise self.error(f"every input must be ({self.nb_outputs}, H, W) (NbOutputs); "
                                 f"got {parent} {tuple(shape)}", key="NbOutputs")
        n = len(in_shapes)
        for key, values in (("Weights", self.weights), ("Shifts", self.shifts)):
            if len(values) not in (0, 1, n):
                raise self.error(f"{key} has {len(values)} values for {n} inputs", key=key)
        return tuple(in_shapes[0])

    def coefficients(self, values, default):
        n = len(self.parents)
        if not values:
            return [default] * n
        return list(values) * n if len(values) == 1 else list(values)

    def forward(self, xs, training=False):
        y = F.elemwise(list(xs), self.operation, self.coefficients(self.weights, 1.0),
                       self.coefficients(self.shifts, 0.0))
        return self.activate(y, training)


__all__ = ["ElemWiseCell"]
