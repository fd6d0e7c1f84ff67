"""Targets: what a cell's output is trained towards, and how it is scored
(docs/INI.md §6, "Targets").

A ``[<cell>.Target*]`` section attaches a Target to a cell. ``Type=Target`` supplies dense target
tensors and the loss; ``Type=TargetScore`` (the default) also keeps a confusion matrix and the
per-batch success rates that N2D2 prints (its recognition rate is their mean; its metrics are
per-class confusion-table metrics averaged over the classes).

Loss choice (N2D2 feeds back ``target - output``), from the cell's ``loss_kind``:
  * ``"softmax"`` (a ``Softmax`` with ``WithLoss=1``): softmax cross-entropy on the cell's
    pre-softmax logits (``cell.last_logits``); its gradient, softmax − target, is exactly what
    N2D2 passes straight through;
  * ``"sigmoid"`` (a ``LogisticWithLoss`` activation): sigmoid cross-entropy on the logits, whose
    gradient is sigmoid − target (N2D2 skips the sigmoid derivative);
  * otherwise ``F.mse(output, target)``, whose gradient is N2D2's ``output − target`` diff.
"""
import importlib

import numpy

from . import functions as F
from .backend import asnumpy, get_xp
from .errors import IniError
from .ini.convert import to_bool, to_float, to_int, to_str, to_uint, to_word
from .params import Key, Parameterizable

#: Per-class confusion-table metrics accepted by ``-valid-metric`` (N2D2's list).
METRICS = ("Sensitivity", "Specificity", "Precision", "NegativePredictiveValue", "MissRate",
           "FallOut", "FalseDiscoveryRate", "FalseOmissionRate", "IU", "Accuracy", "F1Score",
           "Informedness", "Markedness")

#: Target types N2D2 has but n2d2py does not implement (detection/segmentation).
OUT_OF_SCOPE_TARGETS = ("TargetROIs", "TargetBBox", "TargetRP", "TargetMatching",
                        "TargetCompare", "TargetAggregate")


class Target(Parameterizable):
    """N2D2 ``Type=Target``: dense targets (TargetValue for the label, DefaultValue elsewhere)
    and the loss of its cell; no scoring."""

    target_value = Key("TargetValue", to_float, 1.0)
    default_value = Key("DefaultValue", to_float, 0.0)
    top_n = Key("TopN", to_uint, 1)
    labels_mapping = Key("LabelsMapping", to_str, "")
    create_missing_labels = Key("CreateMissingLabels", to_bool, False)
    data_as_target = Key("DataAsTarget", to_bool, False)
    # Display and detection parameters N2D2 accepts on every target; kept so the shipped INIs
    # load, unused by classification scoring.
    no_display_label = Key("NoDisplayLabel", to_int, -1)
    labels_hue_offset = Key("LabelsHueOffset", to_int, 0)
    estimated_labels_value_display = Key("EstimatedLabelsValueDisplay", to_bool, True)
    masked_label = Key("MaskedLabel", to_int, -1)
    masked_label_value = Key("MaskedLabelValue", to_bool, False)
    binary_threshold = Key("BinaryThreshold", to_float, 0.5)
    value_threshold = Key("ValueThreshold", to_float, 0.0)
    image_log_format = Key("ImageLogFormat", to_word, "jpg")
    weak_target = Key("WeakTarget", to_int, -2)

    scored = False

    def __init__(self, name="", cell=None, **values):
        super().__init__(**values)
        self.name, self.cell = name, cell  # cell: its name (str)
        self.loss_kind = None              # set by DeepNet from the cell: "softmax", "sigmoid", None

    @classmethod
    def from_section(cls, section, cell_name):
        """Build from ``[<cell>.Target*]``; every key except ``Type`` must be a target key
        (N2D2: leftovers go to ``Target::setParameters`` and are fatal)."""
        target = cls(name=section.name, cell=cell_name)
        for key in section.keys():
            if key == "Type" or key.startswith("$") or key.startswith("_"):
                continue
            target.set_parameter(key, section.get(key), section)
        if target.labels_mapping:
            raise section.error("LabelsMapping is not supported by n2d2py: the database labels "
                                "are used as output indices", key="LabelsMapping")
        return target

    def describe(self):
        return f"target [{self.name}]"

    # -- target tensor and loss ------------------------------------------------------------
    def dense(self, labels, shape, xp):
        """Target tensor of ``shape`` (N, C, H, W): TargetValue at each sample's label channel,
        DefaultValue elsewhere. A single-output cell is binary: TargetValue where label == 1."""
        labels = numpy.asarray(asnumpy(labels)).reshape(-1)
        n, c = shape[0], shape[1]
        t = numpy.full(shape, self.default_value, dtype=numpy.float32)
        if c == 1:
            t[labels == 1] = self.target_value
        else:
            if labels.size and (labels.min() < 0 or labels.max() >= c):
                raise IniError(f"label {int(labels.max())} does not fit the {c} outputs of "
                               f"cell '{self.cell}'", section=self.name)
            t[numpy.arange(n), labels] = self.target_value
        return xp.asarray(t)

    def loss(self, y, labels, logits=None, x=None):
        """Scalar loss Variable for this target (mean over the batch, docs/ARCHITECTURE.md)."""
        xp = get_xp((y if logits is None else logits).data)
        if self.data_as_target:  # regression against the input (models/mnist-autoencoder.ini)
            t = x.data if hasattr(x, "data") else x
            return F.mse(y, xp.asarray(t).reshape(y.shape))
        if self.loss_kind == "softmax" and logits is not None:
            return F.softmax_cross_entropy(logits, self.dense(labels, logits.shape, xp))
        if self.loss_kind == "sigmoid" and logits is not None:
            return F.sigmoid_cross_entropy(logits, self.dense(labels, logits.shape, xp))
        return F.mse(y, self.dense(labels, y.shape, xp))

    # -- scoring hooks (no-ops for a plain Target) -----------------------------------------
    def reset(self):
        pass

    def score(self, y, labels):
        return None

    def summary(self):
        return (f"Target: {self.cell} (target value: {fmt(self.target_value)} / default value: "
                f"{fmt(self.default_value)} / top-n value: {self.top_n})")


class TargetScore(Target):
    """N2D2 ``Type=TargetScore``: a Target with a confusion matrix and success rates."""

    confusion_range_min = Key("ConfusionRangeMin", to_float, 0.0)
    confusion_range_max = Key("ConfusionRangeMax", to_float, 1.0)
    confusion_quant_steps = Key("ConfusionQuantSteps", to_uint, 10)

    scored = True

    def __init__(self, name="", cell=None, **values):
        super().__init__(name, cell, **values)
        self.nb_classes = None
        self.reset()

    def reset(self):
        """Start a new pass (learning window, validation or test)."""
        self.confusion = None
        self.batch_success = []        # top-1 success ratio of each batch
        self.batch_success_top_n = []

    def score(self, y, labels):
        """Add one batch: y (N, C[, H, W]) output, labels (N,). Returns the batch success ratio."""
        out = asnumpy(y.data if hasattr(y, "data") else y)
        out = out.reshape(out.shape[0], out.shape[1], -1)            # (N, C, positions)
        labels = numpy.asarray(asnumpy(labels)).reshape(-1)
        n, c, positions = out.shape
        if c == 1:  # binary output: N2D2 thresholds it (BinaryThreshold)
            estimated = (out[:, 0] > self.binary_threshold).astype(numpy.int64)
            nb_classes, top_hit = 2, None
        else:
            estimated = out.argmax(axis=1)                          # (N, positions)
            nb_classes = c
            k = min(self.top_n, c)
            top = numpy.argsort(-out, axis=1, kind="stable")[:, :k]  # (N, k, positions)
            top_hit = (top == labels[:, None, None]).any(axis=1)
        truth = numpy.broadcast_to(labels[:, None], estimated.shape)
        if self.confusion is None:
            self.nb_classes = nb_classes
            self.confusion = numpy.zeros((nb_classes, nb_classes), dtype=numpy.int64)
        numpy.add.at(self.confusion, (truth.ravel(), estimated.ravel()), 1)
        success = float((estimated == truth).mean()) if n else 0.0
        self.batch_success.append(success)
        if top_hit is not None:
            self.batch_success_top_n.append(float(top_hit.mean()) if n else 0.0)
        return success

    # -- results -----------------------------------------------------------------------------
    @property
    def recognition_rate(self):
        """N2D2's "Final recognition rate": the mean of per-batch top-1 success."""
        return float(numpy.mean(self.batch_success)) if self.batch_success else 0.0

    @property
    def recognition_rate_top_n(self):
        s = self.batch_success_top_n
        return float(numpy.mean(s)) if s else 0.0

    @property
    def accuracy(self):
        """Plain accuracy: correctly classified samples over all samples."""
        if self.confusion is None or self.confusion.sum() == 0:
            return 0.0
        return float(numpy.trace(self.confusion) / self.confusion.sum())

    def metric(self, name):
        """``RecognitionRate`` (the headline: ``accuracy``) or a per-class ``class_metric``."""
        if name == "RecognitionRate":
            return self.accuracy
        return class_metric(self.confusion, name)

    def metrics(self):
        return {name: self.metric(name) for name in METRICS}


def confusion_table(confusion):
    """Per-class (TP, FN, FP, TN) from a confusion matrix (rows: target, columns: estimated)."""
    m = numpy.asarray(confusion, dtype=numpy.float64)
    tp = numpy.diag(m)
    fn = m.sum(axis=1) - tp
    fp = m.sum(axis=0) - tp
    tn = m.sum() - tp - fn - fp
    return tp, fn, fp, tn


def _ratio(a, b):
    return numpy.divide(a, b, out=numpy.zeros_like(a), where=b != 0)


def class_metric(confusion, name):
    """Mean over the classes that have samples of one per-class confusion-table metric
    (N2D2's ``-valid-metric`` score: macro-averaged, so Sensitivity is not accuracy); 0 for an
    empty matrix."""
    if name not in METRICS:
        raise IniError(f"unknown metric '{name}'; known: {', '.join(METRICS)}")
    if confusion is None:
        return 0.0
    tp, fn, fp, tn = confusion_table(confusion)
    values = {
        "Sensitivity": lambda: _ratio(tp, tp + fn),
        "Specificity": lambda: _ratio(tn, tn + fp),
        "Precision": lambda: _ratio(tp, tp + fp),
        "NegativePredictiveValue": lambda: _ratio(tn, tn + fn),
        "MissRate": lambda: _ratio(fn, fn + tp),
        "FallOut": lambda: _ratio(fp, fp + tn),
        "FalseDiscoveryRate": lambda: _ratio(fp, fp + tp),
        "FalseOmissionRate": lambda: _ratio(fn, fn + tn),
        "IU": lambda: _ratio(tp, tp + fp + fn),
        "Accuracy": lambda: _ratio(tp + tn, tp + tn + fp + fn),
        "F1Score": lambda: _ratio(2 * tp, 2 * tp + fp + fn),
        "Informedness": lambda: _ratio(tp, tp + fn) + _ratio(tn, tn + fp) - 1.0,
        "Markedness": lambda: _ratio(tp, tp + fp) + _ratio(tn, tn + fn) - 1.0,
    }[name]()
    present = (tp + fn) > 0
    return float(values[present].mean()) if present.any() else 0.0


def fmt(value):
    """C++ default stream format: 6 significant digits, no trailing zeros (``98.53``, ``1``)."""
    return f"{value:.6g}"


TARGETS = {"Target": Target, "TargetScore": TargetScore}


def target_from_section(section, cell_name):
    """The Target of a ``[<cell>.Target*]`` section (``Type`` defaults to TargetScore)."""
    kind = section.get("Type", "TargetScore").strip()
    if kind in OUT_OF_SCOPE_TARGETS:
        raise section.error(f"target type '{kind}' (detection/segmentation) is out of scope "
                            f"for n2d2py", key="Type")
    if kind not in TARGETS:
        from .errors import close_matches
        raise section.error(f"unknown target type '{kind}'{close_matches(kind, TARGETS)}; "
                            f"known: {', '.join(TARGETS)}", key="Type")
    return TARGETS[kind].from_section(section, cell_name)


def __getattr__(name):
    """N2D2's ``n2d2.target.Score`` (the Python API's, ``api/target.py``), loaded on first use."""
    if name == "Score":
        return importlib.import_module("n2d2py.api.target").Score
    raise AttributeError(f"module 'n2d2py.target' has no attribute {name!r}")
