"""What every QAT quantizer shares: the registries, the contract (``Quantizer``, its two kinds,
``Grid``, ``LazyParameter``, the ``ClipActQuantizer`` family), and N2D2's state files.

A weight quantizer (``QWeight=``) is owned by a Conv/Fc/Deconv cell and called once per forward
with the cell's weight tensors (one per parent); an activation quantizer (``QAct=``) is owned by
any cell with an activation and called on the activation's output. Keys come from
``QWeight.<Key>`` / ``QAct.<Key>`` lines of the cell section, as in N2D2 (the quantizer's own
solver from ``QWeightSolver``/``QActSolver``).

Gradient convention: our autograd hands a quantizer the ordinary gradient of the **batch-mean**
loss, and solvers do ``θ -= lr·grad``. N2D2 hands it the negative gradient summed over the batch
and does ``θ += lr/B·Σdiff``. Every backward formula of N2D2's quantizers is linear in the
incoming gradient, so the formulas are implemented as written with ``gy`` in place of N2D2's
diff; the 1/B is already inside ``gy``.

State files (α, step sizes, masks) are written with 10 significant digits, as N2D2 does
for every cell that has a quantizer (``std::setprecision(10)``).
"""
import functools
import os
from typing import NamedTuple

import numpy  # only to create host-side Parameters, never on data

from ..autograd import Parameter, Variable
from ..backend import DTYPE, asnumpy, device_of, get_xp, to_device
from ..errors import WeightsError
from ..ini.convert import to_float, to_uint
from ..io import syntxt
from ..io.names import cell_file
from ..params import Key, Parameterizable, Registry, at_least, check_key_rules
from ..stats.cost import range_bits

WEIGHT_QUANTIZERS = Registry("weight quantizer")
ACT_QUANTIZERS = Registry("activation quantizer")

SYNTXT_PRECISION = 10  # significant digits N2D2 uses for cells with a quantizer


# -- .syntxt text: the one implementation lives in n2d2py/io/syntxt.py ------------------------
def format_syntxt_value(value, precision=SYNTXT_PRECISION):
    """One number as C++ ``ostream << setprecision(p) << v`` prints it (``%g`` style)."""
    return syntxt.format_number(value, precision)


def write_syntxt_rows(path, rows, precision=SYNTXT_PRECISION):
    syntxt.write_rows(path, rows, precision)


def write_syntxt_scalar(path, value, trailing="", precision=SYNTXT_PRECISION):
    syntxt.write_scalar(path, value, precision, trailing)


def read_syntxt_values(path, convert=float):
    """All numbers of a ``.syntxt`` file as a list; ``WeightsError`` naming the file if it is
    missing or holds something that is not a number."""
    return [convert(v) for v in syntxt.read_numbers(path).tolist()]


def read_syntxt_scalar(path):
    """Exactly one number (α and step-size files); ``WeightsError`` otherwise."""
    return float(syntxt.read_numbers(path, expected=1, what="value")[0])


def quant_weights_file(folder, cell_name, cell_type):
    """N2D2's name for the quantized-weights file:
    ``<cell>_quant_weights.syntxt`` for Conv/Deconv, ``<cell>_quant_weights_quant.syntxt`` for Fc."""
    suffix = "_weights_quant" if cell_type == "Fc" else "_weights"
    return cell_file(folder, cell_name, f"_quant{suffix}.syntxt")


def export_quant_weights(folder, cell_name, cell_type, weights, connections=None):
    """Write the quantized weights as N2D2's ``exportQuantFreeParameters`` does.

    ``weights`` are the arrays (one per parent) returned by the weight quantizer's last forward:
    Conv ``(O, C_k, kH, kW)`` or Fc ``(O, I_k)``. Row ``o`` holds, for every parent k in order,
    ``W_k[o]`` flattened (channel, ky, kx; kx fastest). ``connections`` (optional ``(O, ΣC_k)``
    booleans, a Conv ``Mapping``) drops unconnected kernels as N2D2 does. Returns the path.
    """
    path = quant_weights_file(folder, cell_name, cell_type)
    arrays = [asnumpy(w.data if isinstance(w, Variable) else w) for w in weights]
    arrays = [a.reshape(a.shape[0], a.shape[1], -1) if a.ndim > 2 else a.reshape(a.shape[0], -1, 1)
              for a in arrays]
    rows = []
    for o in range(arrays[0].shape[0]):
        row, channel = [], 0
        for a in arrays:
            for c in range(a.shape[1]):
                if connections is None or connections[o][channel]:
                    row.extend(a[o, c].tolist())
                channel += 1
        rows.append(row)
    os.makedirs(folder, exist_ok=True)
    write_syntxt_rows(path, rows)
    return path


# -- the contract ------------------------------------------------------------------------------
class Grid(NamedTuple):
    """The integer grid a quantizer maps to (what the ONNX export and the QAT fusion read):
    every output is ``scale · code`` with an integer ``code`` in [lo, hi]; ``top`` is the largest
    value as the quantizer itself computes it (SAT/PACT activations: |α|, so fused constants
    use the exact float the forward used, not ``scale · hi``)."""
    scale: float
    lo: int
    hi: int
    top: float


class LazyParameter:
    """A learnable quantizer value (α, LSQ's step, DQ's d and q_max, FracBits' b, DQA's α),
    declared on the class and created on first use from ``initial(quantizer)`` (a number or a
    list), as N2D2 creates them lazily: a float32 Parameter of group "quantizer", created on the
    host like every Parameter (``DeepNet.to`` and ``follow_device`` move it).

        alpha_param = LazyParameter("alpha", lambda q: q.alpha_init)

    ``Quantizer.parameters()`` lists a class's LazyParameters in declaration order."""

    def __init__(self, name, initial):
        self.name, self.initial = name, initial
        self.slot = None

    def __set_name__(self, owner, attr):
        self.slot = "_" + attr

    def __get__(self, quantizer, owner=None):
        if quantizer is None:
            return self
        param = quantizer.__dict__.get(self.slot)
        if param is None:
            data = numpy.atleast_1d(numpy.asarray(self.initial(quantizer), dtype=DTYPE))
            param = quantizer.__dict__[self.slot] = Parameter(data, name=self.name,
                                                              group="quantizer")
        return param

    def __set__(self, quantizer, param):
        quantizer.__dict__[self.slot] = param


class Quantizer(Parameterizable):
    """What every QWeight/QAct quantizer answers (docs/ARCHITECTURE.md "add a quantizer"):

    * INI keys: ``Key(..., check=...)`` per key (checked where the value is read: file:line);
      ``check_keys()`` for rules between keys (``Parameterizable``; called at build time, after
      the ConfigSections);
    * ``parameters()``: learnable Parameters (group "quantizer": the cell gives them
      QWeightSolver/QActSolver); by default every ``LazyParameter`` of the class;
    * ``bits()``: bits of the codes (None: not a fixed-point quantizer, Prune; FracBits'
      fractional b while it searches); ``bits_variable()``: a differentiable b for the
      size/BitOps penalties, or None;
    * ``grid()``: the ``Grid`` its outputs lie on, or None (not a uniform integer grid: no QDQ
      export, no fusion);
    * ``state_dict()`` / ``load_state_dict()``: run-time state for ``-l`` (``state_names``:
      counters, masks, flags), never a value read from the INI (the INI read again wins) and
      never a Parameter (saved with every Parameter);
    * hooks, no-ops here: ``begin_training(total_batches)``, ``on_epoch(epoch)`` (1-based),
      ``on_step(batch_size)`` after each update, ``penalty(total_weights)`` (a Variable added
      to the loss, or None), ``freeze()`` (end of a search phase);
    * N2D2's files: ``state_file(folder, cell_name)`` (None: no state file),
      ``export_state``, ``import_state``.
    """
    state_names = ()

    def __init__(self, **values):
        super().__init__(**values)
        if values:
            check_key_rules(self)

    # -- learning -------------------------------------------------------------------------------
    def parameters(self):
        return [getattr(self, attr) for attr in _lazy_parameter_names(type(self))]

    def bits(self):
        return None

    def bits_variable(self):
        return None

    def grid(self):
        return None

    def begin_training(self, total_batches):
        """Before the first step of a learning run of ``total_batches`` batches."""

    def on_epoch(self, epoch):
        """Start of epoch ``epoch`` (1-based)."""

    def on_step(self, batch_size):
        """After every solver update (one training step on ``batch_size`` stimuli)."""

    def penalty(self, total_weights):
        """A term added to the loss (``total_weights``: weights of the whole network), or None."""
        return None

    def freeze(self):
        """End of a search phase (FracBits rounds its b)."""

    def to(self, device):
        """Move run-time arrays (Parameters follow ``follow_device``)."""

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self):
        """``{name: value}`` of ``state_names``: numbers, arrays, lists of arrays."""
        return {name: getattr(self, name) for name in self.state_names}

    def load_state_dict(self, state):
        """Restore ``state_dict()``; names this class does not keep are ignored (a state saved
        by an older n2d2py may hold INI values: those never come back)."""
        for name in self.state_names:
            if name in state:
                setattr(self, name, state[name])

    @staticmethod
    def state_file(folder, cell_name):
        return None

    def export_state(self, folder, cell_name):
        """Write this quantizer's N2D2 state file(s) into ``folder`` (nothing by default)."""

    def import_state(self, folder, cell_name, ignore_missing=False):
        """Read the state written by ``export_state``; missing file -> ``WeightsError`` unless
        ``ignore_missing`` (N2D2 then prints a notice and keeps the current value)."""

    def describe(self):
        return f"{type(self).__name__} ({getattr(self, 'type_name', '?')})"


class WeightQuantizer(Quantizer):
    """``QWeight=``: ``q(weights) -> quantized weights``.

    ``weights`` is the cell's list of weight Variables (one per parent); the result is a list of
    the same length. A single Variable (or array) gives a single Variable back.
    """

    def __call__(self, weights):
        single = not isinstance(weights, (list, tuple))
        ws = [weights] if single else list(weights)
        if not ws:
            raise WeightsError(f"{self.describe()}: no weight tensor to quantize")
        out = self.quantize(ws)
        return out[0] if single else out

    def quantize(self, weights):
        raise NotImplementedError


class ActQuantizer(Quantizer):
    """``QAct=``: ``q(x, training) -> quantized x`` on the activation's output."""

    def __call__(self, x, training=True):
        raise NotImplementedError


class RangeBits:
    """``bits()`` of a quantizer with N2D2's ``Range`` key R: ceil(log2(R + 1)) bits hold its
    R + 1 levels (R=255 -> 8, R=15 -> 4, R=1 -> 1)."""

    def bits(self):
        return range_bits(self.range)


class ClipActQuantizer(RangeBits, ActQuantizer):
    """Activations clipped to [0, |α|] on R+1 unsigned levels with a learnable α (SAT's CG-PACT,
    PACT): ``Range``, ``Alpha`` (initial α), the Parameter α, the grid (|α|/R, 0..R), and the
    state file ``<cell>_QAct_<Type>_Alpha.syntxt`` (one float, no newline). Subclasses write
    ``__call__``."""

    range = Key("Range", to_uint, default=255, doc="number of steps R", check=at_least(1))
    alpha_init = Key("Alpha", to_float, default=1.0, doc="initial clipping value α")
    alpha_param = LazyParameter("alpha", lambda q: q.alpha_init)

    @property
    def alpha(self):
        """α as stored (signed; N2D2's fusion uses it as is, not |α|: a
        negative α flips the signs of its scale and clip)."""
        return param_value(self.alpha_param)

    def grid(self):
        a = abs(self.alpha)
        return Grid(a / int(self.range), 0, int(self.range), a)

    def state_file(self, folder, cell_name):
        return cell_file(folder, cell_name, f"_QAct_{self.type_name}_Alpha.syntxt")

    def export_state(self, folder, cell_name):
        write_syntxt_scalar(self.state_file(folder, cell_name), self.alpha)

    def import_state(self, folder, cell_name, ignore_missing=False):
        value = load_scalar_state(self.state_file(folder, cell_name), ignore_missing)
        if value is not None:
            self.alpha_param.data[...] = DTYPE(value)


@functools.lru_cache(maxsize=None)
def _lazy_parameter_names(klass):
    """A quantizer class's ``LazyParameter`` attributes, base classes first: asked for every
    training step (``parameters()``), so walked once per class."""
    return tuple(attr for base in reversed(klass.__mro__)
                 for attr, value in vars(base).items() if isinstance(value, LazyParameter))


def load_scalar_state(path, ignore_missing):
    """The single float stored in ``path``, or None when it is missing and ``ignore_missing``."""
    if ignore_missing and not os.path.exists(path):
        return None
    return read_syntxt_scalar(path)


def load_state_values(path, ignore_missing, count, what):
    """The ``count`` numbers stored in a state file (``what`` names them in the error), or None
    when it is missing and ``ignore_missing``."""
    if ignore_missing and not os.path.exists(path):
        return None
    values = read_syntxt_values(path)
    if len(values) != count:
        raise WeightsError(f"expected {count} value{'s' if count != 1 else ''} ({what}), got "
                           f"{len(values)}", file=path)
    return values


def follow_device(param, x):
    """Move a quantizer Parameter created on the host to ``x``'s device if they differ (a
    quantizer used before ``DeepNet.to`` saw its lazily created α/step)."""
    data = x.data if isinstance(x, Variable) else x
    if get_xp(param.data) is not get_xp(data):
        param.data = to_device(param.data, device_of(data))
    return param


def param_value(param):
    """The float value of a 1-element Parameter (exact float32 value, as a Python float)."""
    return float(asnumpy(param.data).reshape(-1)[0])


__all__ = ["WEIGHT_QUANTIZERS", "ACT_QUANTIZERS", "Quantizer", "WeightQuantizer", "ActQuantizer",
           "Grid", "LazyParameter", "RangeBits", "ClipActQuantizer",
           "format_syntxt_value", "write_syntxt_rows", "write_syntxt_scalar", "read_syntxt_values",
           "read_syntxt_scalar", "quant_weights_file", "export_quant_weights"]
