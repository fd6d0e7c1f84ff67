"""What every QAT quantizer shares: the registries, the two base classes, and N2D2's state files.

A weight quantizer (``QWeight=SAT|LSQ|Prune``) is owned by a Conv/Fc/Deconv cell and called once
per forward with the cell's weight tensors (one per parent); an activation quantizer
(``QAct=SAT|LSQ``) is owned by any cell with an activation and called on the activation's output.
Keys come from ``QWeight.<Key>`` / ``QAct.<Key>`` lines (spec/qat.md §0 "INI keys", style.md §6.5).

Gradient convention: our autograd hands a quantizer the ordinary gradient of the **batch-mean**
loss, and solvers do ``θ -= lr·grad``. N2D2 hands it the negative gradient summed over the batch
and does ``θ += lr/B·Σdiff``. Every backward formula in spec/qat.md is linear in the incoming
gradient, so the formulas are implemented as written with ``gy`` in place of N2D2's diff; the 1/B
is already inside ``gy`` (spec/qat.md §0 "Gradient sign").

State files (spec/qat.md §2, §3, §4, §6.6) are written with 10 significant digits, as N2D2 does
for every cell that has a quantizer (``std::setprecision(10)``).
"""
import os

import numpy  # only to create host-side scalar Parameters, never on data

from ..autograd import Variable
from ..backend import DTYPE, asnumpy, device_of, get_xp, to_device
from ..errors import ShapeError, WeightsError, expect
from ..io import syntxt
from ..params import Parameterizable, Registry

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
    """N2D2's name for the quantized-weights file (spec/qat.md §6.6, "The _quant names"):
    ``<cell>_quant_weights.syntxt`` for Conv/Deconv, ``<cell>_quant_weights_quant.syntxt`` for Fc."""
    suffix = "_weights_quant" if cell_type == "Fc" else "_weights"
    return os.path.join(folder, f"{cell_name}_quant{suffix}.syntxt")


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


# -- base classes -------------------------------------------------------------------------
class Quantizer(Parameterizable):
    """Common surface of weight and activation quantizers: learnable parameters and state I/O.

    ``parameters()`` lists the learnable Parameters (group ``"quantizer"``), to which the cell
    attaches ``QWeightSolver``/``QActSolver``. ``export_state(folder, cell_name)`` and
    ``import_state(folder, cell_name, ignore_missing=False)`` read and write N2D2's files; the
    default is no state (SAT weights, spec/qat.md §1.5).
    """

    def parameters(self):
        return []

    def export_state(self, folder, cell_name):
        """Write this quantizer's N2D2 state file(s) into ``folder`` (nothing by default)."""

    def import_state(self, folder, cell_name, ignore_missing=False):
        """Read the state written by ``export_state``; missing file -> ``WeightsError`` unless
        ``ignore_missing`` (N2D2 then prints a notice and keeps the current value)."""

    def update(self, batch_size):
        """Hook called once per solver update (Prune's Gradual schedule uses it)."""

    def describe(self):
        return f"{type(self).__name__} ({getattr(self, 'type_name', '?')})"


class WeightQuantizer(Quantizer):
    """``QWeight=``: ``q(weights) -> quantized weights``.

    ``weights`` is the cell's list of weight Variables (one per parent); the result is a list of
    the same length. A single Variable (or array) gives a single Variable back. The optional
    ``cell`` argument is accepted for the ARCHITECTURE.md call form ``q(W, cell)`` and unused.
    """

    def __call__(self, weights, cell=None):
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


def load_scalar_state(path, ignore_missing):
    """The single float stored in ``path``, or None when it is missing and ``ignore_missing``."""
    if ignore_missing and not os.path.exists(path):
        return None
    return read_syntxt_scalar(path)


def load_state_values(path, ignore_missing, count, what, error=ShapeError):
    """The ``count`` numbers stored in a state file (``what`` names them in the error), or None
    when it is missing and ``ignore_missing``."""
    if ignore_missing and not os.path.exists(path):
        return None
    values = read_syntxt_values(path)
    expect(len(values) == count, f"{path}: expected {count} value{'s' if count != 1 else ''} "
                                 f"({what}), got {len(values)}", error=error)
    return values


def scalar_param_data(value):
    """A 1-element float32 host array for a scalar Parameter (α, LSQ step); created on the CPU
    like every Parameter, ``DeepNet.to(device)`` moves it."""
    return numpy.asarray([value], dtype=DTYPE)


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
           "format_syntxt_value", "write_syntxt_rows", "write_syntxt_scalar", "read_syntxt_values",
           "read_syntxt_scalar", "quant_weights_file", "export_quant_weights"]
