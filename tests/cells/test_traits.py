"""Every registered cell, activation function and quantizer answers the traits the report, the
exports and the fusion ask (docs/ARCHITECTURE.md "add a cell", "add a quantizer"): declared on
the class (a missing one is a failure here, not a type-name table to edit elsewhere), and, for
the cells of the samples below, answered on a built cell without a NotImplementedError."""
import math

import numpy
import pytest

from n2d2py.autograd import Variable
from n2d2py.build import build_cells_from
from n2d2py.cells import ACTIVATIONS, CELLS, Cell, WeightedCell
from n2d2py.cells.activation_functions import ActivationFunction
from n2d2py.cells.base import Cost
from n2d2py.errors import N2D2Error, OnnxError
from n2d2py.ini import parse_ini_text
from n2d2py.onnx import cells as onnx_cells
from n2d2py.onnx import tensor_cells as onnx_tensor_cells
from n2d2py.onnx.export import Exporter
from n2d2py.params import Key
from n2d2py.quantizers import ACT_QUANTIZERS, WEIGHT_QUANTIZERS, Grid, Quantizer


def all_cell_classes():
    """Registered cell classes and their subclasses (the ONNX importer's cells included)."""
    assert onnx_cells.OnnxTensorCell and onnx_tensor_cells.OnnxGatherCell
    found, todo = [], list(Cell.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted({c for c in found if not c.__name__.startswith("_") and c is not WeightedCell},
                  key=lambda c: c.__name__)


CELL_CLASSES = all_cell_classes()


def test_every_registered_cell_class_is_checked():
    assert set(CELLS.classes.values()) <= set(CELL_CLASSES)


@pytest.mark.parametrize("cls", CELL_CLASSES, ids=lambda c: c.__name__)
def test_cell_declares_every_trait(cls):
    assert cls.keeps_precision is not None, "keeps_precision"
    assert cls.export_onnx is not Cell.export_onnx or cls.onnx_refusal, "export_onnx or onnx_refusal"
    assert cls.fuse is not Cell.fuse or cls.fusion_refusal, "fuse or fusion_refusal"
    # post-training quantization: the fusion rule, or a PTQ-only rule beside the cell's code
    assert cls.ptq is not Cell.ptq or cls.fuse is not Cell.fuse or cls.fusion_refusal, "ptq"
    if issubclass(cls, WeightedCell):
        assert cls.macs_per_weight is not WeightedCell.macs_per_weight, "macs_per_weight"
    for flag in ("n2d2_neurons", "n2d2_nodes", "n2d2_shared_synapses"):
        assert isinstance(getattr(cls, flag), bool), flag


#: One section per cell type (built on an input of 4 channels, 6x6), to ask each trait of a
#: built cell. A type without a sample is checked on its class only (above).
SAMPLES = {
    "Conv": "KernelDims=3 3\nNbOutputs=4\nQWeight=SAT\nQWeight.Range=15\n",
    "Deconv": "KernelDims=2 2\nNbOutputs=4\nStride=2\n",
    "Fc": "NbOutputs=3\n",
    "Pool": "PoolDims=2 2\nNbOutputs=4\nStride=2\nPooling=Max\nMapping.Size=1\n",
    "BatchNorm": "NbOutputs=4\nActivationFunction=Linear\nQAct=SAT\nQAct.Range=15\n",
    "Dropout": "NbOutputs=4\n",
    "ElemWise": "NbOutputs=4\nOperation=Sum\n",
    "Softmax": "NbOutputs=4\n",
    "Activation": "NbOutputs=4\nActivationFunction=Rectifier\n",
    "Padding": "NbOutputs=4\nTopPadding=1\nBottomPadding=1\nLeftPadding=0\nRightPadding=-1\n",
    "Resize": "NbOutputs=4\nOutputWidth=3\nOutputHeight=3\nMode=Bilinear\n",
    "Reshape": "NbOutputs=4\nDims=36 1 4\n",
    "Transpose": "NbOutputs=4\nPerm=1 0 2 3\n",
    "Scaling": "NbOutputs=4\nFactor=0.5\n",
    "LRN": "NbOutputs=4\n",
    "Normalize": "NbOutputs=4\nNorm=L2\n",
    "TargetBias": "NbOutputs=4\nBias=0.5\n",
    "Threshold": "NbOutputs=4\nThreshold=0.5\n",
    "ChannelShuffle": "NbOutputs=4\nNbGroups=2\n",
}


class Recorder:
    """Stands for the fuser and N2D2's stats counter: records which rule a cell asks for."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        def rule(*args, **kwargs):
            self.calls.append(name)
            return name
        return rule

    def error(self, cell, message):
        return OnnxError(f"[{cell.name}] {message}")


@pytest.mark.parametrize("type_name", sorted(SAMPLES))
def test_built_cell_answers_every_trait(type_name):
    text = f"[c]\nInput=sp\nType={type_name}\n{SAMPLES[type_name]}"
    cell = build_cells_from(parse_ini_text(text, "net.ini"), (4, 6, 6)).cells["c"]
    assert isinstance(cell.keeps_precision, bool)
    cost = cell.cost()
    assert isinstance(cost, Cost) and min(cost) >= 0
    stored = sum(math.prod(p.shape) for p in cell.own_parameters())
    assert cost.other_parameters + sum(math.prod(W.shape) for W in getattr(cell, "weights", [])
                                       if isinstance(cell, WeightedCell)) == stored
    assert (cost.weights > 0) == isinstance(cell, WeightedCell)
    exporter = Exporter(None, qdq=True)
    answers = []
    ptq = Recorder()
    for rule, helper in ((cell.export_onnx, lambda: rule(exporter, ["x"])),
                         (cell.fuse, lambda: rule(Recorder())), (cell.ptq, lambda: rule(ptq))):
        try:
            answers.append(helper())
        except N2D2Error as refusal:   # a declared refusal names the cell and says why
            assert "[c]" in str(refusal) and len(str(refusal)) > 30, str(refusal)
            answers.append(refusal)
    assert isinstance(answers[0], (str, OnnxError))
    assert isinstance(answers[2], OnnxError) or len(ptq.calls) == 1   # one PTQ rule, or why not
    if isinstance(answers[0], str):   # a node's output, or the input itself (identities)
        assert answers[0] in [o for n in exporter.nodes for o in n.output] + ["x"]
    assert cell.count_n2d2(Recorder()) in ("outputs", "conv", "fc", "pool")


@pytest.mark.parametrize("name", ACTIVATIONS.names())
def test_activation_declares_its_onnx_export_and_identity(name):
    cls = ACTIVATIONS.get(name)
    assert cls.export_onnx is not ActivationFunction.export_onnx or cls.onnx_refusal
    assert isinstance(cls().is_identity, bool)
    assert cls().ptq_sign in ("unsigned", "signed", None)   # what --calib makes of its outputs


QUANTIZERS = [(kind, registry, name) for kind, registry in (("QWeight", WEIGHT_QUANTIZERS),
                                                            ("QAct", ACT_QUANTIZERS))
              for name in registry.names()]
DEFAULT_KEYS = {"DQA": {"TemperatureSteps": "10"}}


@pytest.mark.parametrize("kind, registry, name", QUANTIZERS,
                         ids=[f"{k}={n}" for k, _, n in QUANTIZERS])
def test_quantizer_answers_the_contract(kind, registry, name, rng):
    q = registry.get(name)()
    q.set_parameters(DEFAULT_KEYS.get(name, {}))
    assert q.check_keys() is None
    x = Variable(rng.standard_normal((4, 3, 3, 3)).astype(numpy.float32))
    y = q([x])[0] if kind == "QWeight" else q(x, training=True)
    assert y.shape == x.shape
    bits = q.bits()
    assert bits is None or bits > 0
    grid = q.grid()
    assert grid is None or isinstance(grid, Grid)
    if grid is not None:   # the outputs are on the grid it declares
        codes = y.data.astype(numpy.float64) / grid.scale
        assert numpy.abs(codes - numpy.rint(codes)).max() < 1e-3
        assert grid.lo <= numpy.rint(codes).min() and numpy.rint(codes).max() <= grid.hi
    keys = {key.attr for key in type(q).keys().values()}
    assert not set(q.state_names) & keys, "state_dict() holds INI values"
    assert set(q.state_dict()) == set(q.state_names)
    q.load_state_dict(q.state_dict())
    for hook in (lambda: q.begin_training(10), lambda: q.on_epoch(1), lambda: q.on_step(4),
                 lambda: q.freeze()):
        assert hook() is None
    penalty = q.penalty(100)
    assert penalty is None or isinstance(penalty, Variable)
    assert all(p.group == "quantizer" for p in q.parameters())


def test_quantizer_hooks_are_declared_on_the_base_class():
    for hook in ("bits", "bits_variable", "grid", "state_dict", "load_state_dict",
                 "begin_training", "on_epoch", "on_step", "penalty", "freeze", "check_keys",
                 "state_file", "export_state", "import_state", "parameters", "to"):
        assert callable(getattr(Quantizer, hook)), hook
    assert isinstance(Quantizer.__dict__.get("state_names"), tuple)
    assert not any(isinstance(v, Key) for v in vars(Quantizer).values())
