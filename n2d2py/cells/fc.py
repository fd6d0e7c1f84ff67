"""``Type=Fc``: fully connected, as N2D2's Fc cell (inputs and fillers: docs/INI.md §6, §8).

Each parent is flattened in N2D2's order (x fastest, then y, then channel = NumPy C-order of
(C, H, W)) and has its own weight tensor ``W_k`` (O, C_k·H_k·W_k); ``y = Σ_k W_k x_k + b``.
The output is (O, 1, 1).
"""
import os

import numpy

from .. import functions as F
from ..backend import asnumpy
from ..ini.convert import enum, to_bool, to_float
from ..io import syntxt
from ..params import Key
from .base import CELLS, WeightedCell


@CELLS.register("Fc")
class FcCell(WeightedCell):
    weights_export_format = Key("WeightsExportFormat", enum("OC", "CO"), "OC", config=True)
    normalize = Key("Normalize", to_bool, False, config=True,
                    doc="divide each output's weight row by its L2 norm (AM-Softmax)")
    drop_connect = Key("DropConnect", to_float, 1.0, config=True)
    unsupported_keys = ("WeightsSharing", "BiasesSharing", "InputOffsetX", "InputOffsetY",
                        "InputWidth", "InputHeight")

    def compute_out_shape(self, in_shapes):
        return (self.nb_outputs, 1, 1)

    def create_weights(self, rng):
        if self.drop_connect != 1.0:
            raise self.error("DropConnect is not supported", key="DropConnect")
        self.weights, self.weight_masks = [], []
        for k, shape in enumerate(self.in_shapes):
            size = int(numpy.prod(shape))
            W = self.fill("Weights", (self.nb_outputs, size), size, self.nb_outputs, rng)
            self.weights.append(self.new_parameter(W, "Weights", f"weights[{k}]"))
            self.weight_masks.append(None)

    def forward(self, xs, training=False):
        y = None
        for k, (x, W) in enumerate(zip(self.inputs(xs), self.quantized_weights())):
            if self.normalize:   # row-wise L2 normalisation of the weights (N2D2 Fc Normalize)
                W = F.reshape(F.normalize(F.reshape(W, (W.shape[0], W.shape[1], 1, 1)), "L2"),
                              W.shape)
            part = F.linear(x, W, self.bias if k == 0 else None)
            y = part if y is None else y + part
        return self.activate(F.reshape(y, (y.shape[0], self.nb_outputs, 1, 1)), training)

    # ---------------------------------------------------------------- traits (cells/base.py)
    def macs_per_weight(self):
        return 1

    def export_onnx(self, onnx, xs):
        """``Flatten`` + ``Gemm`` (transB) + ``Reshape`` to (N, O, 1, 1)."""
        if self.normalize:
            raise onnx.error(self, "Normalize=1 has no ONNX export")
        n = self.name
        flat = [onnx.node("Flatten", [x], f"{n}/flatten", axis=1) for x in xs]
        x = flat[0] if len(flat) == 1 else onnx.node("Concat", flat, f"{n}/concat", axis=1)
        wq = onnx.fake_quantized(self)
        if self.qweight is not None and len(wq) > 1:
            raise onnx.error(self, "several inputs with a weight quantizer")
        W = numpy.concatenate([asnumpy(w.data) for w in self.weights], axis=1)
        inputs = [x, onnx.weight_input(self, W, numpy.concatenate(wq, axis=1), f"{n}/W")]
        if self.bias is not None:
            inputs.append(onnx.const(f"{n}/b", asnumpy(self.bias.data)))
        y = onnx.node("Gemm", inputs, f"{n}/gemm", transB=1)
        shape = onnx.const(f"{n}/shape", [0, self.nb_outputs, 1, 1], numpy.int64)
        return onnx.node("Reshape", [y, shape], f"{n}/reshape")

    def fuse(self, fuser):
        return fuser.fc(self)

    n2d2_neurons = True

    def count_n2d2(self, counter):
        return counter.fc(self)

    # ---------------------------------------------------------------- weights I/O
    def matrix(self):
        """(O, ΣI) host array: parents concatenated in order."""
        return numpy.concatenate([asnumpy(W.data) for W in self.weights], axis=1)

    def set_matrix(self, matrix):
        start = 0
        for W in self.weights:
            size = W.shape[1]
            W.data[...] = W.xp.asarray(numpy.ascontiguousarray(matrix[:, start:start + size]))
            start += size

    def export_weights(self, folder, precision=None):
        super().export_weights(folder, precision)
        precision = precision or self.export_precision
        matrix = self.matrix()
        rows = matrix if self.weights_export_format == "OC" else matrix.T
        syntxt.write_rows(syntxt.weights_path(folder, self.name, "weights", create=True), rows,
                          precision)
        self.export_bias_and_quantizer(folder, precision, "Fc")

    def import_weights(self, folder, ignore_missing=False):
        super().import_weights(folder, ignore_missing)
        nb_inputs = sum(W.shape[1] for W in self.weights)
        legacy = syntxt.weights_path(folder, self.name, "")
        if os.path.isfile(legacy):   # per output: its weights, then its bias
            width = nb_inputs + (self.bias is not None)
            values = syntxt.read_numbers(legacy, self.nb_outputs * width, what="numbers")
            table = values.reshape(self.nb_outputs, width)
            self.set_matrix(table[:, :nb_inputs])
            if self.bias is not None:
                self.bias.data[...] = self.bias.xp.asarray(numpy.ascontiguousarray(table[:, -1]))
            return
        path = syntxt.weights_path(folder, self.name, "weights")
        values = self.read_weight_file(path, self.nb_outputs * nb_inputs, ignore_missing,
                                       f"weights ({self.nb_outputs} outputs x {nb_inputs} inputs)")
        if values is not None:
            if self.weights_export_format == "OC":
                self.set_matrix(values.reshape(self.nb_outputs, nb_inputs))
            else:
                self.set_matrix(values.reshape(nb_inputs, self.nb_outputs).T)
        self.import_bias_and_quantizer(folder, ignore_missing)


__all__ = ["FcCell"]
