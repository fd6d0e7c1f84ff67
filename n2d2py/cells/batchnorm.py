"""``Type=BatchNorm``, as N2D2's BatchNorm cell.

``y = scale * (x - mean) / sqrt(var + Epsilon) + bias`` per channel; training uses the batch
statistics and updates the running ones with ``new = m*batch + (1-m)*old`` (unbiased batch
variance). Initial scale 1, bias 0, mean 0, **variance 0**. ``MovingAverageMomentum=0`` freezes
the statistics *and* makes training use them (N2D2's transfer-learning trick).
Files: ``<cell>_scales/_biases/_means/_variances.syntxt``, one value per line.
"""
import os

import numpy

from .. import functions as F
from ..backend import DTYPE, asnumpy
from ..errors import WeightsError
from ..ini.convert import to_bool, to_float
from ..io import syntxt
from ..params import Key
from .base import CELLS, Cell, concat_inputs, same_hw

FILES = ("scales", "biases", "means", "variances")


@CELLS.register("BatchNorm")
class BatchNormCell(Cell):
    epsilon = Key("Epsilon", to_float, 1e-5, config=True)
    moving_average_momentum = Key("MovingAverageMomentum", to_float, 0.1, config=True)
    back_propagate = Key("BackPropagate", to_bool, True, config=True)
    solver_roles = ("Scale", "Bias")
    strict_unknown_keys = True
    state_names = ("mean", "variance")
    unsupported_keys = ("ScalesSharing", "BiasesSharing", "MeansSharing", "VariancesSharing")

    def __init__(self, name="", parents=("env",), **values):
        super().__init__(name, parents, **values)
        self.scale = self.bias = self.mean = self.variance = None
        # data-parallel training: None, each replica normalises with its own part of the batch;
        # a distributed.SyncBatchNormGroup: with the global batch's statistics
        self.statistics_group = None

    def compute_out_shape(self, in_shapes):
        return same_hw(self, in_shapes)

    def create_parameters(self, rng):
        c = self.out_shape[0]
        self.scale = self.new_parameter(numpy.ones(c, DTYPE), "Scale", "scales")
        self.bias = self.new_parameter(numpy.zeros(c, DTYPE), "Bias", "biases")
        self.mean = numpy.zeros(c, DTYPE)
        self.variance = numpy.zeros(c, DTYPE)

    def own_parameters(self):
        return [self.scale, self.bias]

    def forward(self, xs, training=False):
        x = concat_inputs(self, xs)
        if not self.back_propagate:
            x = x.detach()
        if self.statistics_group is not None:
            y = self.statistics_group(x, self.scale, self.bias, self.mean, self.variance,
                                      self.epsilon, training, self.moving_average_momentum)
            return self.activate(y, training)
        relu = self.fused_relu(training)
        y = F.batch_norm(x, self.scale, self.bias, self.mean, self.variance, self.epsilon,
                         training, self.moving_average_momentum, relu_clipping=relu)
        return self.activate(y, training, activated=relu is not None)

    # ---------------------------------------------------------------- traits (cells/base.py)
    keeps_precision = False

    def export_onnx(self, onnx, xs):
        """``BatchNormalization`` with the inference statistics."""
        n = self.name
        inputs = [onnx.concat(self, xs)] + [onnx.const(f"{n}/{k}", asnumpy(v)) for k, v in (
            ("scale", self.scale.data), ("bias", self.bias.data), ("mean", self.mean),
            ("var", self.variance))]
        return onnx.node("BatchNormalization", inputs, f"{n}/bn", epsilon=float(self.epsilon))

    def fuse(self, fuser):
        return fuser.batchnorm(self)

    # ---------------------------------------------------------------- weights I/O
    def arrays(self):
        return (self.scale.data, self.bias.data, self.mean, self.variance)

    def export_weights(self, folder, precision=None):
        super().export_weights(folder, precision)
        precision = precision or 6   # N2D2 writes BN files with 6 digits even with a QAct
        os.makedirs(folder, exist_ok=True)
        for suffix, values in zip(FILES, self.arrays()):
            path = syntxt.weights_path(folder, self.name, suffix, create=True)
            syntxt.write_column(path, asnumpy(values), precision)

    def import_weights(self, folder, ignore_missing=False):
        super().import_weights(folder, ignore_missing)
        c = self.out_shape[0]
        legacy = syntxt.weights_path(folder, self.name, "")
        if os.path.isfile(legacy):   # per channel: scale bias mean variance
            table = syntxt.read_numbers(legacy, 4 * c, what="numbers (scale bias mean variance)")
            values = list(table.reshape(c, 4).T)
        else:
            values = [self.read_weight_file(syntxt.weights_path(folder, self.name, suffix), c,
                                            ignore_missing, suffix) for suffix in FILES]
        if values[3] is not None and (values[3] < 0).any():
            raise WeightsError(f"negative variance in channel {int(numpy.argmax(values[3] < 0))}",
                               file=syntxt.weights_path(folder, self.name, "variances"))
        for target, value in zip(self.arrays(), values):
            if value is not None:
                target[...] = numpy.ascontiguousarray(value) if isinstance(target, numpy.ndarray) \
                    else self.scale.xp.asarray(value)


__all__ = ["BatchNormCell"]
