"""Target-size / target-BitOps penalties and per-method regularisers, shared by the mixed-precision
quantizers (DQ, FracBits, DFP/Po2, DQA; docs/QUANTIZERS.md).

Cost model (docs/METHODS.md, "Size" and "BitOps"): a Conv/Fc/Deconv cell l costs

    size_l   = N_l^w · b_l^w / 8 bytes
    BitOps_l = MAC_l · b_l^w · b_l^a,   b^a = bits of the activation entering the cell

with N_l^w and MAC_l from ``cell.cost()``, b^w from the cell's weight quantizer
(``bits_variable()`` where it has a differentiable one: DQ's ceil-STE bits, FracBits' fractional
b, DQA's Σ a_k·n_k; ``bits()`` otherwise; 32 for float cells) and b^a from the quantizer
``stats.cost.input_quantizer`` finds (the nearest ``QAct`` upstream through cells that keep
their input's precision: the report's rule), 8 for the network input (image data), 32 for a
float activation. Biases are not counted.

The penalty pulls the network cost C toward the target C* given by ``QWeight.TargetSize`` (bytes)
or ``QWeight.TargetBitOps`` (the same value on every quantized cell, usually through a
ConfigSection), with r = C/C* − 1 (relative, so λ does not depend on the units):

    ConstraintMode=Relu2   λ·relu(r)²   (DQ, Uhlich et al.: a one-sided quadratic penalty)
    ConstraintMode=L1      λ·|r|        (FracBits, NNCF's L1 on the compression ratio)

``constraint_loss(cells)`` adds every quantizer's own ``penalty(S)`` (QR/WQR for DFP/Po2, the DQA
attention regulariser, S = number of weights of the network) to the size/BitOps penalties: the
training step (``DeepNet.learn_batch``) adds it to the task loss before ``backward()``.
"""
from ..autograd import Function, Variable
from ..backend import DTYPE
from ..errors import IniError
from ..ini.convert import enum, to_float
from ..params import Key
from ..stats.cost import ENV, FLOAT_BITS, IMAGE_BITS, input_quantizer
from .base import Quantizer

F32 = DTYPE
INPUT_BITS = IMAGE_BITS     # the network input is 8-bit image data

__all__ = ["ConstraintKeys", "constraint_loss", "cost_terms", "cost_summary", "weighted_cells",
           "weight_count"]


class ConstraintKeys:
    """INI keys of the network-level constraint, declared on each mixed-precision quantizer."""

    target_size = Key("TargetSize", to_float, default=0.0, doc="target weight memory in bytes")
    target_bitops = Key("TargetBitOps", to_float, default=0.0, doc="target BitOps")
    constraint_weight = Key("ConstraintWeight", to_float, default=10.0, doc="penalty weight λ")
    constraint_mode = Key("ConstraintMode", enum("Relu2", "L1"), default="Relu2")


class ConstraintPenalty(Function):
    """λ·relu(r)² or λ·|r| of a 1-element r (see the module docstring)."""

    def __init__(self, mode, lam):
        self.mode, self.lam = mode, lam

    def forward(self, xp, r):
        if self.needs_backward:
            self.saved = r
        if self.mode == "L1":
            return (F32(self.lam) * xp.abs(r)).astype(r.dtype)
        return (F32(self.lam) * xp.maximum(r, F32(0)) ** 2).astype(r.dtype)

    def backward(self, xp, gy, needs_grad):
        r = self.saved
        if self.mode == "L1":
            return (gy * F32(self.lam) * xp.sign(r),)
        return (gy * F32(2 * self.lam) * xp.maximum(r, F32(0)),)


# -- what costs what ------------------------------------------------------------------------
def weighted_cells(cells):
    """The cells with weights (Conv, Deconv, Fc: ``cost().weights``), in build order."""
    return [c for c in _values(cells) if c.cost().weights]


def _values(cells):
    return list(cells.values()) if isinstance(cells, dict) else list(cells)


def weight_count(cell):
    """Stored weights of a cell (a Conv ``Mapping`` drops its unconnected kernels)."""
    return cell.cost().weights


def quantizer_bits(q):
    """b of a quantizer as a number: ``bits()``; 32 for none or a float one (Prune)."""
    bits = None if q is None else q.bits()
    return FLOAT_BITS if bits is None else bits


def bits_value(q, differentiable):
    """b as a Variable (differentiable where the quantizer provides one) or a float."""
    if differentiable and q is not None:
        v = q.bits_variable()
        if v is not None:
            return v
    return float(quantizer_bits(q))


def act_bits_value(q, differentiable):
    if q == ENV:
        return float(INPUT_BITS)
    return bits_value(q, differentiable) if q is not None else float(FLOAT_BITS)


def cost_terms(cells, differentiable=True):
    """(size in bytes, BitOps), each a Variable when a term is differentiable, else a float."""
    size, bitops = 0.0, 0.0
    for cell in weighted_cells(cells):
        weights, macs, _ = cell.cost()
        bw = bits_value(cell.qweight, differentiable)
        ba = act_bits_value(input_quantizer(cells, cell), differentiable)
        size = size + bw * (weights / 8.0)
        bitops = bitops + (bw * ba) * float(macs)
    return size, bitops


def cost_summary(cells):
    """Per-layer rows {cell, weights, macs, wbits, abits, bytes, bitops} (floats) and the
    totals, for reports when ``n2d2py.stats`` is not there (first and last layers are counted
    at their real bit-widths)."""
    rows = []
    for cell in weighted_cells(cells):
        bw = float(quantizer_bits(cell.qweight))
        qa = input_quantizer(cells, cell)
        ba = float(INPUT_BITS if qa == ENV else quantizer_bits(qa))
        n, macs, _ = cell.cost()
        rows.append({"cell": cell.name, "weights": n, "macs": macs, "wbits": bw, "abits": ba,
                     "bytes": n * bw / 8.0, "bitops": macs * bw * ba})
    total = {"bytes": sum(r["bytes"] for r in rows), "bitops": sum(r["bitops"] for r in rows)}
    return rows, total


# -- the loss ---------------------------------------------------------------------------------
def _targets(cells):
    """(kind, target, λ, mode) agreed by every quantizer that sets a target, or None."""
    found = {}
    for cell in weighted_cells(cells):
        q = cell.qweight
        if not isinstance(q, ConstraintKeys):
            continue
        for kind, attr in (("size", "target_size"), ("bitops", "target_bitops")):
            value = getattr(q, attr)
            if value:
                setting = (value, q.constraint_weight, q.constraint_mode)
                if kind in found and found[kind][0] != setting:
                    raise IniError(f"QWeight target {attr} differs between cells "
                                   f"({found[kind][1]} and {cell.name}): the constraint is "
                                   "network-wide", section=cell.name)
                found.setdefault(kind, (setting, cell.name))
    return {kind: v[0] for kind, v in found.items()}


def _add(total, term):
    if term is None:
        return total
    return term if total is None else total + term


def constraint_loss(cells):
    """Σ quantizers' own penalties + size/BitOps penalties, a Variable, or None when no
    quantizer adds anything."""
    quantizers = [q for cell in _values(cells) for q in cell.quantizers()]
    if not any(isinstance(q, ConstraintKeys) or type(q).penalty is not Quantizer.penalty
               for q in quantizers):
        return None   # no target and only the base class's penalty (None): every step, fast
    wcells = weighted_cells(cells)
    total_weights = sum(weight_count(c) for c in wcells) or 1
    total = None
    for q in quantizers:
        total = _add(total, q.penalty(total_weights))
    targets = _targets(cells)
    if targets:
        size, bitops = cost_terms(cells, differentiable=True)
        for kind, (target, lam, mode) in targets.items():
            cost = size if kind == "size" else bitops
            if isinstance(cost, Variable):
                r = cost * (1.0 / target) - 1.0
                total = _add(total, ConstraintPenalty(mode, lam).apply(r))
    return total
