"""``Type=ElemWise``: element-wise ``Operation`` over the inputs, each of exactly ``NbOutputs``
channels. Sum = Σ(wᵢ·xᵢ + sᵢ); AbsSum = Σ wᵢ·|xᵢ|; EuclideanSum = sqrt(Σ(wᵢxᵢ+sᵢ)²); Prod; Max.
``Operation`` has no default (N2D2's docs say Sum; its code has none).
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
        relu = self.fused_relu(training)
        y = F.elemwise(list(xs), self.operation, self.coefficients(self.weights, 1.0),
                       self.coefficients(self.shifts, 0.0), relu_clipping=relu)
        return self.activate(y, training, activated=relu is not None)

    # ---------------------------------------------------------------- traits (cells/base.py)
    keeps_precision = False

    def export_onnx(self, onnx, xs):
        """Sum (with Weights: Mul, then Sum, then Add of the shifts), Prod (Mul), Max."""
        n, op = self.name, self.operation
        if op in ("Prod", "Max"):
            if self.weights or self.shifts:
                raise onnx.error(self, f"Operation={op} with Weights/Shifts")
            if len(xs) == 1:
                return xs[0]
            if op == "Max" or len(xs) == 2:
                return onnx.node("Mul" if op == "Prod" else "Max", xs, f"{n}/{op}")
            y = xs[0]
            for k, x in enumerate(xs[1:]):
                y = onnx.node("Mul", [y, x], f"{n}/mul{k}")
            return y
        if op != "Sum":
            raise onnx.error(self, f"Operation={op} has no ONNX export")
        w, s = self.coefficients(self.weights, 1.0), self.coefficients(self.shifts, 0.0)
        terms = [x if w[k] == 1.0 else
                 onnx.node("Mul", [x, onnx.const(f"{n}/w{k}", w[k])], f"{n}/mul{k}")
                 for k, x in enumerate(xs)]
        y = terms[0] if len(terms) == 1 else onnx.node("Sum", terms, f"{n}/sum")
        if sum(s):
            y = onnx.node("Add", [y, onnx.const(f"{n}/shift", sum(s))], f"{n}/shift")
        return y

    def fuse(self, fuser):
        return fuser.elemwise(self)


__all__ = ["ElemWiseCell"]
