"""Per-layer cost of a built network: weights, MACs, bits, model size and BitOps.

The counting conventions (docs/METHODS.md, "Size" and "BitOps") are these; each cell
answers them (``Cell.cost()``, ``Cell.keeps_precision``, beside its code):

* only cells with weights (Conv, Deconv, Fc) cost anything. BatchNorm, pooling, residual adds
  (ElemWise), padding and activations cost nothing (the qonnx convention, which reproduces the
  published ResNet-20 baseline of 41.52 GBitOps at 32/32 bits);
* weights = connected kernel taps (a sparse ``Mapping`` counts only its connected kernels);
  biases, BatchNorm parameters and quantizer parameters are kept apart (``other_parameters``);
* MACs = weights x output positions (Conv; padding positions included, as every paper counts
  them), weights x input positions (Deconv), weights (Fc);
* BitOps = MACs x weight bits x input-activation bits; size = weights x weight bits / 8 bytes,
  MB = 10^6 bytes and KiB = 1024 bytes (both printed).

Bits are decided in four steps, each overriding the previous one (``cost_table``):
configured (quantizers' ``bits()``; a cell's input is at the bits of ``input_quantizer``: the
nearest QAct upstream through cells that keep their input's precision) -> uniform
``weight_bits``/``act_bits`` -> the first/last layer rule -> per-layer ``overrides``.
"""
import math
from dataclasses import dataclass, field

FLOAT_BITS = 32
#: Bits of 8-bit image data, what a quantized network reads.
IMAGE_BITS = 8
FIRST_LAST_RULES = ("as-configured", "8bit", "fp32", "quantized")
ENV = "env"   # input_quantizer's answer for the network input


def range_bits(R):
    """Bits to store the R+1 levels of a quantizer of ``Range=R``: ceil(log2(R+1)) (R=255 -> 8,
    R=15 -> 4, R=1 -> 1)."""
    return max(1, math.ceil(math.log2(int(R) + 1)))


def quantizer_bits(quantizer):
    """Integer bits of a QWeight/QAct quantizer (``bits()``, a searching FracBits rounded); None
    for none or Prune (pruned weights stay floating point)."""
    bits = None if quantizer is None else quantizer.bits()
    return None if bits is None else round(bits)


def input_quantizer(cells, cell, env_bits=IMAGE_BITS):
    """The activation quantizer whose codes ``cell`` reads: the nearest QAct upstream through
    cells that keep their input's precision (``keeps_precision``); ``ENV`` for the network
    input, None for a float value. Of several inputs, the widest (a float one is 32 bits).
    One rule for the report and the size/BitOps penalties (quantizers/constraints.py)."""
    by_name = cells if isinstance(cells, dict) else {c.name: c for c in cells}

    def bits(source):
        return env_bits if source == ENV else quantizer_bits(source) or FLOAT_BITS

    found = [_output_source(by_name, p, env_bits) for p in cell.parents]
    return max(found, key=bits) if found else None


def _output_source(cells, name, env_bits):
    while name != ENV:
        cell = cells.get(name)
        if cell is None:
            return None
        if cell.qact is not None:
            return cell.qact
        if not cell.keeps_precision:
            return None
        if len(cell.parents) != 1:
            return input_quantizer(cells, cell, env_bits)
        name = cell.parents[0]
    return ENV


@dataclass
class LayerCost:
    """One row of the report. ``w_bits``/``a_bits`` are None for cells that cost nothing;
    ``out_bits`` is the precision of the cell's output tensor (activation memory)."""
    name: str
    type: str
    out_shape: tuple
    weights: int = 0
    macs: int = 0
    w_bits: int = None
    a_bits: int = None
    out_bits: int = FLOAT_BITS
    other_parameters: int = 0

    @property
    def weighted(self):
        return self.w_bits is not None

    @property
    def size_bytes(self):
        return self.weights * self.w_bits / 8 if self.weighted else 0.0

    @property
    def bitops(self):
        return self.macs * self.w_bits * self.a_bits if self.weighted else 0

    @property
    def out_bytes(self):
        return math.prod(self.out_shape) * self.out_bits / 8


@dataclass
class CostTable:
    """Rows in build order plus the conventions used, for ``table.py`` to print."""
    rows: list
    first_last: str
    input_bits: int
    input_shape: tuple
    conventions: list = field(default_factory=list)

    def weighted_rows(self):
        return [r for r in self.rows if r.weighted]

    @property
    def parameters(self):
        return sum(r.weights for r in self.rows)

    @property
    def other_parameters(self):
        return sum(r.other_parameters for r in self.rows)

    @property
    def macs(self):
        return sum(r.macs for r in self.rows)

    @property
    def size_bytes(self):
        return sum(r.size_bytes for r in self.rows)

    @property
    def size_mb(self):
        return self.size_bytes / 1e6

    @property
    def size_kib(self):
        return self.size_bytes / 1024

    @property
    def bitops(self):
        return sum(r.bitops for r in self.rows)

    @property
    def gbitops(self):
        return self.bitops / 1e9

    @property
    def activation_max_bytes(self):
        return max((r.out_bytes for r in self.rows), default=0.0)

    @property
    def activation_sum_bytes(self):
        return sum(r.out_bytes for r in self.rows)


def cells_of(source):
    """``{name: cell}`` in build order from a DeepNet, a dict of cells or a list of cells;
    also returns the network input (C, H, W)."""
    if hasattr(source, "cells") and hasattr(source, "input_shape"):
        return dict(source.cells), tuple(source.input_shape)
    cells = dict(source) if isinstance(source, dict) else {c.name: c for c in source}
    first = next(iter(cells.values()))
    in_shape = first.in_shapes[first.parents.index("env")] if "env" in first.parents else None
    return cells, in_shape


def has_quantizer(cells):
    return any(c.quantizers() for c in cells.values())


# -- the table ---------------------------------------------------------------------------------
def configured_rows(cells, input_bits):
    """Rows with the bits the cells' quantizers give (step 1)."""
    rows = []
    for name, cell in cells.items():
        source = input_quantizer(cells, cell, input_bits)
        in_bits = input_bits if source == ENV else quantizer_bits(source) or FLOAT_BITS
        weights, macs, others = cell.cost()
        row = LayerCost(name, cell.type_name, tuple(cell.out_shape), other_parameters=others)
        if weights:
            row.weights, row.macs = weights, macs
            row.w_bits = quantizer_bits(cell.qweight) or FLOAT_BITS
            row.a_bits = in_bits
        row.out_bits = quantizer_bits(cell.qact) or (in_bits if cell.keeps_precision else FLOAT_BITS)
        rows.append(row)
    return rows


def most_common_bits(rows):
    pairs = [(r.w_bits, r.a_bits) for r in rows]
    return max(pairs, key=pairs.count) if pairs else None


def cost_table(source, weight_bits=None, act_bits=None, first_last="as-configured",
               overrides=None, input_bits=None):
    """Per-layer cost (the conventions above) of a built DeepNet or of its cells.

    ``weight_bits``/``act_bits``: the same bits for every weighted layer's weights / input
    activations (and every tensor) instead of the quantizers' ``Range``. ``first_last``: the
    first and last weighted layers (build order) are ``"as-configured"`` (no special rule),
    ``"8bit"`` (8/8), ``"fp32"`` (32/32) or ``"quantized"`` (the most common bits of the other
    weighted layers). ``overrides``: ``{cell_name: (w_bits, a_bits)}`` for mixed precision,
    applied last. ``input_bits``: bits of the network input; by default ``act_bits`` when
    given, else 8 (image data) for a network with a quantizer, else 32 (a float network).
    """
    if first_last not in FIRST_LAST_RULES:
        raise ValueError(f"first_last must be one of {', '.join(FIRST_LAST_RULES)}, "
                         f"got {first_last!r}")
    cells, in_shape = cells_of(source)
    unknown = sorted(set(overrides or {}) - set(cells))
    if unknown:
        from ..errors import N2D2Error
        raise N2D2Error(f"bit overrides name unknown cells: {', '.join(unknown)}")
    if input_bits is None:
        input_bits = act_bits or (IMAGE_BITS if has_quantizer(cells) else FLOAT_BITS)
    rows = configured_rows(cells, input_bits)
    weighted = [r for r in rows if r.weighted]
    for r in weighted:                          # step 2: uniform bits
        r.w_bits = weight_bits or r.w_bits
        r.a_bits = act_bits or r.a_bits
    if act_bits:
        for r in rows:
            r.out_bits = act_bits
    ends = [weighted[0], weighted[-1]] if weighted else []
    if first_last == "quantized":               # step 3: first/last layers
        rule = most_common_bits(weighted[1:-1]) or most_common_bits(weighted)
    else:
        rule = {"8bit": (8, 8), "fp32": (32, 32)}.get(first_last)
    for r in ends if rule else ():
        r.w_bits, r.a_bits = rule
    by_name = {r.name: r for r in rows}
    for name, (w, a) in (overrides or {}).items():   # step 4: per-layer mixed precision
        if not by_name[name].weighted:
            from ..errors import N2D2Error
            raise N2D2Error(f"bit override for [{name}]: a {by_name[name].type} cell has no "
                            f"weights to count")
        by_name[name].w_bits, by_name[name].a_bits = int(w), int(a)
    table = CostTable(rows, first_last, input_bits, in_shape)
    table.conventions = conventions(table, weight_bits, act_bits, overrides)
    return table


def conventions(table, weight_bits, act_bits, overrides):
    """The sentences printed above the table: what is counted and which bits were used."""
    if weight_bits or act_bits:
        source = (f"uniform {weight_bits or 'configured'} / {act_bits or 'configured'} bits "
                  f"(weights / activations)")
    else:
        source = ("each cell's QWeight/QAct bits (ceil(log2(Range+1)) for a Range; a cell reads "
                  "the codes of the nearest QAct upstream through cells that keep precision), "
                  "32 (float) where there is no quantizer")
    first_last = {"as-configured": "no special rule (as the bits above give them)",
                  "8bit": "kept at 8/8 bits", "fp32": "kept at full precision (32/32 bits)",
                  "quantized": "quantized like the other layers"}[table.first_last]
    lines = [
        "Counted: Conv/Deconv/Fc weights and MACs (padding positions included); BitOps = MACs x "
        "weight bits x input-activation bits; BatchNorm, pooling, residual adds and activations "
        "cost nothing (docs/METHODS.md).",
        f"Size = weights x weight bits / 8; MB = 10^6 bytes, KiB = 1024 bytes; biases, "
        f"BatchNorm and quantizer parameters ({table.other_parameters} values) are not counted.",
        f"Bits: {source}; network input {table.input_bits} bits; first and last weighted "
        f"layers: {first_last}.",
    ]
    if overrides:
        lines.append("Per-layer overrides (w/a): "
                     + ", ".join(f"{n} {w}/{a}" for n, (w, a) in overrides.items()) + ".")
    lines.append("Activation memory: each cell's output tensor (1 stimulus, BatchNorm not fused) "
                 "at its output bits.")
    return lines


__all__ = ["cost_table", "CostTable", "LayerCost", "range_bits", "quantizer_bits", "input_quantizer", "ENV",
           "FIRST_LAST_RULES"]
