"""``n2d2.target.Score``: the target of N2D2's Python API over our ``target.TargetScore``.

Called on the network's output tensor, it computes the step's loss with the DeepNet's own
``training_loss`` (the cell's loss kind: a ``Softmax(with_loss=True)`` gives the cross-entropy
on its input, as an INI ``[softmax.Target]`` does; the quantizers' penalties are added while
learning), scores the batch, and returns the loss as a one-value tensor whose
``back_propagate()``/``update()`` run the step. Success rates and confusion matrices are kept
per partition (``Learn``, ``Validation``, ``Test``), as N2D2's are.
"""
import numpy

from ..autograd import no_grad
from ..build import target_loss_kind
from ..target import METRICS, TargetScore, class_metric
from .errors import WrongInputType, WrongValue, check_type
from .globals import generate_name
from .options import python_keys, set_options
from .tensor import Tensor


class Target:
    """Base of the targets."""

    def get_name(self):
        return self._name

    def get_deepnet(self):
        return self._deepnet

    def __str__(self):
        return self._name


class Score(Target):
    """``Score(provider, target_value=1.0, default_value=0.0, top_n=1, ...)``."""

    def __init__(self, provider, name=None, **config_parameters):
        from .provider import Provider
        self._name = name or generate_name(self)
        check_type(self._name, "provider", provider, Provider, "an n2d2.provider.DataProvider")
        self._provider, self._options = provider, dict(config_parameters)
        set_options(self._name, TargetScore(), self._options, python_keys(TargetScore))
        self._core, self._deepnet = None, None
        self._passes = {}       # partition -> TargetScore holding its success and confusion
        self._losses = []

    def N2D2(self):
        if self._core is None:
            raise WrongValue(f"{self._name}: not called on a network output yet")
        return self._core

    def _new_score(self, cell_name):
        score = TargetScore(name=self._name, cell=cell_name)
        set_options(self._name, score, self._options, python_keys(TargetScore))
        return score

    def _pass(self):
        partition = self._provider.get_partition()
        if partition not in self._passes:
            self._passes[partition] = self._new_score(self._core.cell if self._core else "")
        return self._passes[partition]

    def __call__(self, inputs):
        from .nn import NeuralNetworkCell
        if not isinstance(inputs, Tensor) or not isinstance(inputs.cell, NeuralNetworkCell):
            raise WrongInputType(f"{self._name}: expected the output tensor of a cell, got "
                                 f"{type(inputs).__name__}")
        deepnet = inputs.get_deepnet()
        labels = getattr(deepnet, "_labels", None)
        if labels is None or deepnet.get_provider() is not self._provider:
            raise WrongValue(f"{self._name}: the tensor does not come from a batch of this "
                             f"target's provider ({self._provider.get_name()})")
        cell = inputs.cell.N2D2()
        outputs = int(cell.out_shape[0])
        top = int(labels.max(initial=0))
        if (outputs == 1 and top > 1) or (outputs > 1 and top >= outputs):
            raise WrongValue(f"{self._name}: cell '{cell.name}' has {outputs} output(s), too few "
                             f"for label {top} of the {self._provider.get_partition()} batch")
        if self._core is None or self._core.cell != cell.name:
            self._core = self._new_score(cell.name)
            self._core.loss_kind = target_loss_kind(cell)
        deepnet._target = self
        deepnet._built = None
        net = deepnet.N2D2()
        outputs = {cell.name: inputs.N2D2()}
        if inputs.N2D2().requires_grad:       # a learning pass: the step's loss
            loss = net.training_loss(outputs, labels, deepnet._input)
        else:
            with no_grad():
                loss = net.loss(outputs, labels, deepnet._input)
        deepnet._loss, deepnet._batch_size = loss, len(labels)
        self._pass().score(inputs.N2D2().data, labels)
        value = float(numpy.asarray(loss.data).sum())
        self._losses.append(value)
        self._deepnet = deepnet
        result = Tensor([1], value=value, cell=self)
        result._deepnet, result._leaf = deepnet, True
        return result

    # -- results ---------------------------------------------------------------------------------
    def get_loss(self):
        return list(self._losses)

    def loss(self):
        return self._losses[-1] if self._losses else None

    def get_current_loss(self):
        return self.loss()

    def get_average_success(self, window=0):
        """Mean success of the current partition's batches since ``clear_success`` (the last
        ``window`` batches when > 0), in [0, 1]."""
        success = self._pass().batch_success
        if window:
            success = success[-int(window):]
        return float(numpy.mean(success)) if success else 0.0

    def get_average_top_n_success(self, window=0):
        success = self._pass().batch_success_top_n
        if window:
            success = success[-int(window):]
        return float(numpy.mean(success)) if success else 0.0

    def get_average_score(self, metric):
        """A confusion-table metric of the current partition (``Precision``, ...), in [0, 1]."""
        if metric not in METRICS:
            raise WrongValue(f"{self._name}: metric={metric!r}: expected one of "
                             f"{', '.join(METRICS)}")
        return class_metric(self._pass().confusion, metric)

    def clear_success(self):
        self._pass().reset()

    clear_score = clear_success

    def log_confusion_matrix(self, file_name):
        """``<name>.Target/ConfusionMatrix_<file_name>_score.{dat,png}`` of the current pass."""
        from ..io.names import cell_file, makedirs_for
        from ..report.plots import confusion_matrix_png
        from ..report.text import write_confusion
        confusion = self._pass().confusion
        if confusion is None:
            raise WrongValue(f"{self._name}: nothing scored in this partition yet")
        folder = cell_file(".", self._name, ".Target")     # names stay inside their folders
        stem = cell_file(folder, f"ConfusionMatrix_{file_name}_score", "")
        makedirs_for(stem)
        write_confusion(stem + ".dat", confusion)
        confusion_matrix_png(confusion, stem + ".png", file_name)

    def log_stats(self, path):
        if self._deepnet is None:
            raise WrongValue(f"{self._name}: no network to log yet")
        self._deepnet.log_stats(path)


__all__ = ["Target", "Score"]
