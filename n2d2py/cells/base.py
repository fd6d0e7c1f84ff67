"""Cell: the stateful, INI-facing layer (docs/ARCHITECTURE.md "Cells"; docs/INI.md §6).

Life of a cell, as the DeepNet drives it::

    cell = CELLS.get(section.get("Type"), section).from_section(section, parents)   # unbuilt
    cell.build(in_shapes, rng)           # Parameters (fillers, solver clones), out_shape, _Outputs*
    y = cell.forward([x0, x1, ...], training)                                     # Variables
    cell.parameters()                    # every Parameter, each with .solver
    cell.export_weights(folder) / cell.import_weights(folder, ignore_missing)     # .syntxt

``from_section`` (in ``cells/_ini.py``, the private INI half: ``SectionReader``) reads the
section in N2D2's order: Keys, activation, fillers, solvers, quantizers, then
the ConfigSection list and ``<section>.cfg``. A config key must be a solver, quantizer or cell
parameter (``Key(..., config=True)``): anything else is fatal, as in N2D2. Cell parameters written
in the cell section itself are ignored, as N2D2 does, and so are unknown keys where
N2D2 accepts them; both are recorded as readable sentences in ``cell.warnings`` for the
CLI to print.

Losses (for the DeepNet): ``cell.loss_kind`` is ``"softmax"`` for ``Softmax WithLoss=1``,
``"sigmoid"`` for a ``LogisticWithLoss`` activation, else ``None``. ``forward`` always returns
the probabilities (so scores and exports see what N2D2 outputs) and keeps the pre-activation in
``cell.last_logits`` (None where the cell ran a plain ReLU inside its function: ``fused_relu``); with a loss kind the DeepNet computes ``F.softmax_cross_entropy`` /
``F.sigmoid_cross_entropy`` on ``cell.last_logits`` (N2D2 skips the Jacobian),
otherwise ``F.mse`` on the output.

Traits: what the report, the exports and the fusion need to know, declared by each cell class
beside its code (docs/ARCHITECTURE.md "add a cell"; ``tests/cells/test_traits.py`` asks every
registered class):

* ``keeps_precision``: True when the output holds only values of the input (selection,
  movement, zero padding, dropout, max/average pooling by the qonnx convention), so it is on
  the input's quantization grid; the size/BitOps report and the constraints count the input's
  bits for the cell's consumers (``stats.cost.input_quantizer``).
* ``cost()``: ``Cost(weights, macs, other_parameters)`` of one forward for one stimulus.
* ``export_onnx(onnx, xs)``: the ONNX nodes of the cell before its activation (``onnx`` is the
  exporter: ``node``, ``const``, ``concat``, ``weight_input``), or ``onnx_refusal``: why not.
* ``fuse(fuser)``: the cell's rule in the ``--qat-sat`` fusion (it calls one of ``qat.fuse``'s
  rules), or ``fusion_refusal``: why it cannot be part of an integer network.
* ``ptq(quantizer)``: the cell's rule in post-training quantization (``--calib``, ``ptq/``);
  by default its fusion rule (the PTQ builder answers the same rule names), overridden by cells
  with a PTQ-only rule (``Type=Activation``: a concatenation or a stand-alone ReLU).
* N2D2's own counts (``stats/n2d2_stats.py``, the build log; defaults fit a new cell):
  ``n2d2_neurons`` (outputs counted as neurons), ``n2d2_nodes`` (as nodes),
  ``n2d2_shared_synapses`` (weights printed as shared) and ``count_n2d2(counter)``.
"""
import math
import os
from collections import namedtuple

from .. import functions as F
from ..autograd import Parameter
from ..backend import DTYPE, asnumpy, to_device
from ..errors import IniError
from ..ini.convert import to_bool, to_str, to_uint
from ..params import Key, Parameterizable, Registry
from ._ini import (COMMON_KEYS, SECTION_READERS, DimsKey, SectionReader,  # noqa: F401
                   _FilePlace, convert_value, dims_key, set_prefixed)
from ._ini import make as _make

CELLS = Registry("cell")

#: Weights (connected kernel taps), multiply-accumulates of one forward for one stimulus, and
#: the other learnable values (biases, BatchNorm scales), as the size/BitOps report counts them.
Cost = namedtuple("Cost", "weights macs other_parameters")


def concat_inputs(cell, xs):
    """Channel concatenation of several inputs, as N2D2; one input passes through."""
    return xs[0] if len(xs) == 1 else F.concat(list(xs), axis=1)


def same_hw(cell, in_shapes, check_nb_outputs=True):
    """``(sum of channels, H, W)`` for cells that concatenate inputs of equal size."""
    hw = {tuple(s[1:]) for s in in_shapes}
    if len(hw) != 1:
        raise cell.error(f"inputs {', '.join(cell.parents)} have different sizes "
                         f"{[tuple(s) for s in in_shapes]}")
    channels = sum(s[0] for s in in_shapes)
    if check_nb_outputs and cell.nb_outputs != channels:
        raise cell.error(f"NbOutputs={cell.nb_outputs} but the inputs have {channels} channels",
                         key="NbOutputs")
    return (channels, *in_shapes[0][1:])


class Cell(SectionReader, Parameterizable):
    """Base of every ``Type=`` cell. Subclasses declare Keys, ``compute_out_shape``,
    ``create_parameters`` (optional) and ``forward``."""
    type_name = None
    nb_outputs = Key("NbOutputs", to_uint)
    solver_roles = ()          # INI prefixes of this cell's solvers: ("Weights", "Bias")
    filler_roles = ()          # ("Weights", "Bias") for Conv/Deconv/Fc
    uses_mapping = False
    has_qweight = False
    strict_unknown_keys = False  # Conv/Deconv/BatchNorm: N2D2 checks unknown keys after build
    default_activation = None
    state_names = ()           # non-Parameter arrays moved by to() (BatchNorm mean/variance)
    unsupported_keys = ()      # N2D2 keys accepted here with a "not supported" warning
    # -- traits (module docstring): None means "not declared", which tests/cells refuse
    keeps_precision = None
    onnx_refusal = None        # a sentence: why this cell has no ONNX export
    fusion_refusal = None      # a sentence: why this cell cannot be fused by --qat-sat
    n2d2_neurons, n2d2_nodes, n2d2_shared_synapses = False, True, False

    def __init__(self, name="", parents=("env",), **values):
        super().__init__(**values)
        self.name, self.parents = name, list(parents)
        self.in_shapes, self.out_shape = None, None
        self.activation, self.qact = None, None
        self.qweight, self.qweight_solver, self.qact_solver = None, None, None
        self.solvers, self.fillers = {}, {}
        self.section, self.model = None, "Frame"
        self.warnings, self.rng, self.last_logits = [], None, None
        self.import_notices = []   # N2D2's notices for files missing at import_weights
        self._solved = set()

    def describe(self):
        return f"cell [{self.name}] (Type={self.type_name})"

    def error(self, message, key=None):
        if self.section is not None:
            return self.section.error(message, key=key)
        return IniError(message, section=self.name, key=key)


    # ------------------------------------------------------------------ build
    def check_positive_dims(self):
        """Kernel, stride, sub-sampling and dilation dims must be at least 1 (a 0 would divide
        by zero in the output size); padding may be 0 or negative (cropping)."""
        for key in type(self).keys().values():
            if not isinstance(key, DimsKey) or key.prefix == "Padding":
                continue
            try:
                dims = tuple(int(d) for d in getattr(self, key.attr))
            except (AttributeError, TypeError, ValueError):
                continue
            if dims and min(dims) < 1:
                spelling = next((n for n in (key.ini, *key.aliases) if self.section is not None
                                 and n in self.section), key.ini)
                raise self.error(f"{spelling} must be at least 1 in each dimension, got "
                                 f"{' '.join(map(str, dims))} (X Y)", key=spelling)

    def build(self, in_shapes, rng=None):
        self.rng = rng
        self.set_input_shapes(in_shapes)
        self.create_parameters(rng)
        self.write_build_keys()
        return self

    def set_input_shapes(self, in_shapes):
        """``in_shapes`` and the ``out_shape`` they give (checked). Also re-aims a built cell at
        inputs of another height and width (its Parameters depend on the channels only): the
        Python API builds Conv/Fc/BatchNorm cells before their first call, as N2D2 does."""
        self.in_shapes = [tuple(int(d) for d in s) for s in in_shapes]
        if len(self.in_shapes) != len(self.parents):
            raise self.error(f"{len(self.parents)} parents but {len(self.in_shapes)} input shapes")
        self.check_positive_dims()
        self.out_shape = tuple(int(d) for d in self.compute_out_shape(self.in_shapes))
        if min(self.out_shape) <= 0:
            raise self.error(f"output size {self.out_shape} (C, H, W) from inputs "
                             f"{self.in_shapes} is empty")

    def compute_out_shape(self, in_shapes):
        raise NotImplementedError

    def create_parameters(self, rng):
        """Override in cells that own Parameters."""

    def write_build_keys(self):
        """``_NbChannels`` ... ``_OutputsHeight`` into the section, as N2D2's build
        writes them."""
        if self.section is None:
            return
        c, h, w = self.out_shape
        first = self.in_shapes[0]
        for key, value in (("_NbChannels", sum(s[0] for s in self.in_shapes)),
                           ("_ChannelsWidth", first[2]), ("_ChannelsHeight", first[1]),
                           ("_NbOutputs", c), ("_OutputsWidth", w), ("_OutputsHeight", h)):
            self.section.set(key, value)

    def solver_for(self, role):
        """A fresh copy of the role's solver for one Parameter (state is per Parameter)."""
        template = self.solvers.get(role)
        if template is None:
            template = self.solvers[role] = _make("solver", "SGD", None, "Solvers")
        return template.clone()

    def new_parameter(self, data, role, name):
        param = Parameter(data.astype(DTYPE, copy=False), name=f"{self.name}.{name}",
                          group=name.split("[")[0])
        param.solver = self.solver_for(role)
        return param

    def fill(self, role, shape, fan_in, fan_out, rng):
        import numpy
        filler = self.fillers.get(role)
        if filler is None:
            from ..fillers import default_filler
            filler = self.fillers[role] = default_filler()
        return numpy.asarray(filler.fill(tuple(shape), fan_in, fan_out, rng, numpy), dtype=DTYPE)

    # ------------------------------------------------------------------ run
    def forward(self, xs, training=False):
        raise NotImplementedError

    def fused_relu(self, training):
        """The clipping of a plain ReLU activation that this cell's function may run itself
        (``relu_clipping=``: the same numbers, one pass over memory fewer), else None. Only
        while training: a fused cell has no pre-activation array (``last_logits`` is None),
        inference keeps it."""
        return getattr(self.activation, "fused_relu_clipping", None) if training else None

    def activate(self, y, training=False, activated=False):
        """Activation then activation quantizer (in N2D2 too, QAct runs on the
        activation's output); keeps the pre-activation for losses that skip the Jacobian.
        ``activated``: the cell's function already applied the activation (fused)."""
        self.last_logits = None if activated else y
        if self.activation is not None and not activated:
            y = self.activation(y)
        if self.qact is not None:
            y = self.qact(y, training)
        return y

    @property
    def loss_kind(self):
        return "sigmoid" if getattr(self.activation, "with_loss", False) else None

    def own_parameters(self):
        return []

    def parameters(self):
        """The cell's Parameters, then its quantizers' (solvers from QWeightSolver/QActSolver)."""
        params = list(self.own_parameters())
        for quantizer, template in ((self.qweight, self.qweight_solver),
                                    (self.qact, self.qact_solver)):
            if quantizer is None:
                continue
            for p in quantizer.parameters():
                if id(p) not in self._solved:
                    if template is not None or p.solver is None:
                        p.solver = (template or _make("solver", "SGD", None, "Solvers")).clone()
                    self._solved.add(id(p))
                params.append(p)
        return params

    def to(self, device):
        for p in self.own_parameters():
            p.data = to_device(p.data, device)
            p.grad = None if p.grad is None else to_device(p.grad, device)
        for name in self.state_names:
            setattr(self, name, to_device(getattr(self, name), device))
        for quantizer in self.quantizers():
            quantizer.to(device)
        return self

    # ------------------------------------------------------------------ weights I/O
    def export_weights(self, folder, precision=None):
        """Write this cell's ``.syntxt`` files; cells without Parameters write only
        their activation quantizer's state."""
        if self.qact is not None:
            os.makedirs(folder, exist_ok=True)
            self.qact.export_state(folder, self.name)

    def import_weights(self, folder, ignore_missing=False):
        if self.qact is not None:
            self.import_quantizer_state(self.qact, folder, ignore_missing)

    def read_weight_file(self, path, expected=None, ignore_missing=False, what="values"):
        """``syntxt.read_numbers``; a file missing under ``ignore_missing`` gives None and N2D2's
        notice in ``import_notices`` (N2D2's ``-w`` treats missing files as notices)."""
        from ..io import syntxt
        values = syntxt.read_numbers(path, expected, ignore_missing, what)
        if values is None:
            self.import_notices.append(f"Notice: Could not open synaptic file: {path}")
        return values

    def import_quantizer_state(self, quantizer, folder, ignore_missing=False):
        """A quantizer's ``import_state``, with the notice for a state file (α, LSQ step, masks)
        missing under ``ignore_missing``."""
        path = quantizer.state_file(folder, self.name)
        if ignore_missing and path is not None:
            if not os.path.exists(path):
                self.import_notices.append(f"Notice: Could not open synaptic file: {path}")
                return
        quantizer.import_state(folder, self.name, ignore_missing)

    def summary(self):
        return f"{self.name:16s} {self.type_name:10s} {self.in_shapes} -> {self.out_shape}"

    # ------------------------------------------------------------------ traits
    def quantizers(self):
        """The cell's quantizers (QWeight, then QAct), those it has."""
        return [q for q in (self.qweight, self.qact) if q is not None]

    def cost(self):
        """Parameter-free and normalising cells do no multiply-accumulate worth counting
        (BatchNorm, pooling, residual adds, activations: the qonnx convention); their
        Parameters are ``other_parameters``."""
        return Cost(0, 0, sum(math.prod(p.shape) for p in self.own_parameters()))

    def export_onnx(self, onnx, xs):
        """The ONNX tensor computing this cell's output before its activation from the input
        tensors ``xs``; the exporter adds the activation and QAct (``onnx/export.py``)."""
        raise self.undeclared("export_onnx", "onnx_refusal") if self.onnx_refusal is None \
            else onnx.error(self, self.onnx_refusal)

    def fuse(self, fuser):
        """This cell's rule in the ``--qat-sat`` fusion (``qat/fuse.py``)."""
        raise self.undeclared("fuse", "fusion_refusal") if self.fusion_refusal is None \
            else fuser.error(self, self.fusion_refusal)

    def ptq(self, quantizer):
        """This cell's rule in post-training quantization (``ptq/build.py``): by default the
        ``--qat-sat`` fusion rule of the same name (or its refusal)."""
        return self.fuse(quantizer)

    def count_n2d2(self, counter):
        """N2D2's stats.log counters of this cell (``stats.n2d2_stats.Counter``)."""
        return counter.outputs(self)

    def undeclared(self, method, refusal):
        return NotImplementedError(f"{type(self).__name__} (Type={self.type_name}) declares "
                                   f"neither {method}() nor {refusal}")


class WeightedCell(Cell):
    """Conv, Deconv, Fc: ``weights`` (one Parameter per parent), ``bias``, ``qweight``.

    The weight quantizer is applied at one point, ``quantized_weights()``."""
    no_bias = Key("NoBias", to_bool, False, config=True)
    back_propagate = Key("BackPropagate", to_bool, True, config=True)
    outputs_remap = Key("OutputsRemap", to_str, "", config=True)
    solver_roles = ("Weights", "Bias")
    filler_roles = ("Weights", "Bias")
    has_qweight = True
    unsupported_keys = ("WeightsSharing", "BiasesSharing")

    def __init__(self, name="", parents=("env",), **values):
        super().__init__(name, parents, **values)
        self.weights, self.bias, self.weight_masks = [], None, []

    def create_parameters(self, rng):
        if self.outputs_remap:
            raise self.error("OutputsRemap is not supported", key="OutputsRemap")
        self.create_weights(rng)
        if not self.no_bias:
            self.bias = self.new_parameter(self.bias_values(rng), "Bias", "biases")

    def bias_values(self, rng):
        """Values from the bias filler; N2D2's bias tensor is (1, 1, O, 1): fan-in O, fan-out 1
        [unverified]."""
        shape = (self.out_shape[0],)
        return self.fill("Bias", shape, shape[0], 1, rng)

    def own_parameters(self):
        return list(self.weights) + ([] if self.bias is None else [self.bias])

    def refill_weights(self, rng):
        """New weight values from the cell's weights filler, in place (N2D2's resetWeights):
        the Parameters, their solvers and the connection maps stay."""
        weights, masks = self.weights, self.weight_masks
        self.create_weights(rng)   # the same fans, shapes and maps as the first fill
        for old, new in zip(weights, self.weights):
            old.data[...] = old.xp.asarray(new.data)
        self.weights, self.weight_masks = weights, masks

    def refill_bias(self, rng):
        """New bias values from the bias filler, in place (N2D2's resetBias); none: nothing."""
        if self.bias is not None:
            self.bias.data[...] = self.bias.xp.asarray(self.bias_values(rng))

    keeps_precision = False

    def weight_count(self):
        """Connected weights: a sparse Mapping's mask drops its unconnected kernels."""
        total = 0
        for W, mask in zip(self.weights, self.weight_masks):
            if mask is None:
                total += int(W.data.size)
            else:
                mask = asnumpy(mask)
                total += int((mask != 0).sum()) * int(W.data.size) // int(mask.size)
        return total

    def macs_per_weight(self):
        """How many times one forward of one stimulus uses each weight."""
        raise NotImplementedError

    def cost(self):
        weights = self.weight_count()
        stored = sum(math.prod(p.shape) for p in self.own_parameters())
        stored -= sum(math.prod(W.shape) for W in self.weights)
        return Cost(weights, weights * self.macs_per_weight(), stored)

    def quantized_weights(self):
        """The weight Variables the forward uses: quantized (``QWeight``), then the sparse
        Mapping masks applied (after quantizing: a quantized 0 need not be 0)."""
        ws = list(self.weights)
        if self.qweight is not None:
            ws = list(self.qweight(ws))
        return [w if m is None else w * m for w, m in zip(ws, self.weight_masks)]

    def inputs(self, xs):
        """``BackPropagate=0``: no gradient flows to the parents."""
        return list(xs) if self.back_propagate else [x.detach() for x in xs]

    def to(self, device):
        super().to(device)
        self.weight_masks = [to_device(m, device) for m in self.weight_masks]
        return self

    def quant_weight_arrays(self):
        """The quantized weights as NumPy arrays, one per parent (no graph recorded)."""
        from ..autograd import no_grad
        with no_grad():
            return [asnumpy(w.data) for w in self.qweight(list(self.weights))]

    def export_bias_and_quantizer(self, folder, precision, cell_type, connections=None):
        """``<cell>_biases.syntxt``, then the weight quantizer's ``*_quant_weights*`` files (of
        ``quant_weight_arrays()``) and state, for the parts the cell has."""
        from ..io import syntxt
        from ..quantizers import export_quant_weights
        if self.bias is not None:
            syntxt.write_column(syntxt.weights_path(folder, self.name, "biases", create=True),
                                asnumpy(self.bias.data), precision)
        if self.qweight is not None:
            export_quant_weights(folder, self.name, cell_type, self.quant_weight_arrays(),
                                 connections)
            self.qweight.export_state(folder, self.name)

    def import_bias_and_quantizer(self, folder, ignore_missing=False):
        """``<cell>_biases.syntxt`` and the weight quantizer's state, for the parts the cell has."""
        from ..io import syntxt
        if self.bias is not None:
            b = self.read_weight_file(syntxt.weights_path(folder, self.name, "biases"),
                                      self.nb_outputs, ignore_missing, "biases")
            if b is not None:
                self.bias.data[...] = self.bias.xp.asarray(b)
        if self.qweight is not None:
            self.import_quantizer_state(self.qweight, folder, ignore_missing)

    @property
    def export_precision(self):
        """N2D2 writes 6 significant digits, 10 when the cell has a weight quantizer."""
        return 10 if self.qweight is not None else 6
