"""Cross-layer equalization (CLE), the first step of N2D2's ``-calib`` (on by default;
``--no-cle`` turns it off): before any statistics are collected, consecutive layers trade
per-channel scales so that each channel's weight range is the same on both sides.

Why: a layer's weights are quantized with one scale (per layer), set by its largest weight. A
channel whose weights are all small then uses only a few of the 2^(B-1) - 1 levels. A ReLU
commutes with a positive per-channel scale (relu(s·x) = s·relu(x)), so output channel o of a
layer P can be multiplied by s_o if input channel o of the next layer C is divided by it: the
float network computes the same function, and the quantized one loses less.

**Pairs.** (P, C) where C is a Conv or Fc with one input, read from P, a Conv or Fc whose output
feeds only C, and P's activation is none, Linear or Rectifier (piecewise linear through 0). The
graph is the one N2D2 equalizes: Dropout cells removed, a BatchNorm after a Conv/Fc folded into
it (a BatchNorm with another single parent counts as a depthwise 1x1 Conv: N2D2 inserts one
before it), and a Padding whose children are all Conv/Pool cells with one input folded into
them, so that Conv -> Padding -> Conv is a pair. Nothing else is crossed: a Pool, an ElemWise,
a Concat, an activation cell, a second reader of P or a target on P ends the chain. Pairs with a
weight or activation quantizer (QAT) are left alone (a quantizer's grid does not commute with
the scales).

**Scales.** For each output channel o of P, on the weights as they will be quantized (BatchNorm
folded): r1 = max|W_P[o]|, r2 = max|W_C[:, o]| (all of C's weights that read channel o), and
s = sqrt(r1·r2). When r1 > 0, or when P's bias of channel o is 0, row o of P (weights and bias)
is multiplied by s/r1 and input channel o of C by s/r2 (a factor 0 when r1 or r2 is 0: the
channel is unused). Both sides then have the range sqrt(r1·r2). A channel with r1 = 0 and a bias
is left as it is (its output is a constant that C still reads).

**Sweeps.** The pairs are visited in network order, each on the current weights; a sweep is
repeated while the largest |r1 - r2| seen in it (before its rescale) exceeds 1.0, N2D2's
tolerance in weight units; with usual weights one sweep runs. At most ``MAX_SWEEPS``.

**Clipping.** A clipped Rectifier (ReLU6) or a clipped Linear on P would clip each channel at
a different real value once the channels are scaled: its clipping is removed (N2D2 removes a
Rectifier's), so the calibrated network has a plain ReLU there; the activation's threshold still
saturates its codes.

The changes are made in place on the float network's parameters (a folded BatchNorm's scale
and bias carry P's factors) for the statistics and the integer network to be built from them;
``Equalization.restore()`` puts back every array and clipping exactly.
"""
import time

import numpy

from ..backend import asnumpy
from ..cells.activation_functions import Linear, Rectifier
from ..cells.batchnorm import BatchNormCell
from ..cells.conv import ConvCell
from ..cells.dropout import DropoutCell
from ..cells.fc import FcCell
from ..cells.misc import PaddingCell
from ..cells.pool import PoolCell
from .build import fold_batchnorm

__all__ = ["Equalization", "equalize", "equalization_pairs", "MAX_RANGE_DELTA", "MAX_SWEEPS"]

#: N2D2's stop rule: sweep again while some |r1 - r2| exceeds this (weight units)
MAX_RANGE_DELTA = 1.0
#: a bound N2D2 does not have (it loops while the rule holds; a channel with r1 = 0, a bias and
#: r2 > 1 would hold it forever)
MAX_SWEEPS = 100


class Layer:
    """One Conv/Fc of the graph N2D2 equalizes: ``cell`` (a Conv, an Fc, or a BatchNorm that
    stands for an identity 1x1 Conv), ``bn`` (the BatchNorm folded into it, or the cell itself
    for a standalone one), ``owner``: the cell whose activation and children are the layer's."""

    def __init__(self, cell, bn):
        self.cell, self.bn = cell, bn
        self.owner = bn if bn is not None else cell

    @property
    def name(self):
        return self.cell.name

    @property
    def standalone_bn(self):
        return self.cell is self.bn

    def batchnorm_factors(self):
        """(f, shift) of the BatchNorm as folded: y = f·x + shift per channel."""
        C = self.bn.out_shape[0]
        return fold_batchnorm(self.bn, numpy.ones(C), numpy.zeros(C))

    def output_ranges(self):
        """(r1, |bias|) per output channel of the folded weights."""
        if self.standalone_bn:
            f, shift = self.batchnorm_factors()
            return numpy.abs(f), numpy.abs(shift)
        rows = [numpy.abs(w).reshape(len(w), -1).max(axis=1) for w in weights_of(self.cell)]
        r1 = numpy.max(rows, axis=0) if rows else numpy.zeros(self.cell.out_shape[0])
        b = numpy.zeros_like(r1) if self.cell.bias is None else \
            numpy.asarray(asnumpy(self.cell.bias.data), numpy.float64)
        if self.bn is None:
            return r1, numpy.abs(b)
        f, shift = self.batchnorm_factors()
        return r1 * numpy.abs(f), numpy.abs(shift + b * f)

    def scale_outputs(self, s):
        """Output channel o times s[o] (weights and bias, as folded)."""
        if self.bn is not None:   # the BatchNorm's scale and bias carry it
            multiply(self.bn.scale, s)
            multiply(self.bn.bias, s)
            return
        for w in self.cell.weights:
            multiply(w, s.reshape((-1,) + (1,) * (w.data.ndim - 1)))
        if self.cell.bias is not None:
            multiply(self.cell.bias, s)


def weights_of(cell):
    """The cell's weight arrays as the forward uses them (a sparse map's mask applied), in
    float64."""
    out = []
    for w, mask in zip(cell.weights, cell.weight_masks):
        W = numpy.asarray(asnumpy(w.data), numpy.float64)
        out.append(W if mask is None else W * asnumpy(mask))
    return out


def multiply(parameter, factors):
    """parameter *= factors, in place, in the parameter's dtype and array module."""
    data = parameter.data
    data[...] = parameter.xp.asarray(numpy.asarray(asnumpy(data), numpy.float64) * factors,
                                     dtype=data.dtype)


class Pair:
    """P -> C (``Layer``s); ``scales``: the product of the factors applied to P's outputs,
    ``delta``: the largest |r1 - r2| before the last sweep."""

    def __init__(self, parent, child):
        self.parent, self.child = parent, child
        self.sweeps, self.delta, self.scales = 0, 0.0, None

    @property
    def names(self):
        return self.parent.name, self.child.name

    def input_ranges(self):
        """r2 per input channel of C: over every weight of C that reads channel o."""
        C, W = self.child.cell, weights_of(self.child.cell)[0]
        if isinstance(C, FcCell):   # the flattened (C, H, W) input: channel o is a block of H·W
            channels = self.parent.cell.out_shape[0]
            return numpy.abs(W).reshape(len(W), channels, -1).max(axis=(0, 2))
        G = int(C.groups[0])
        O, Cg = W.shape[0], W.shape[1]
        blocks = numpy.abs(W).reshape(G, O // G, Cg, -1)
        return blocks.max(axis=(1, 3)).reshape(G * Cg)

    def scale_inputs(self, s):
        C, w = self.child.cell, self.child.cell.weights[0]
        if isinstance(C, FcCell):
            channels = self.parent.cell.out_shape[0]
            per_column = numpy.repeat(s, w.data.shape[1] // channels)
            multiply(w, per_column.reshape(1, -1))
            return
        G = int(C.groups[0])
        O, Cg = w.data.shape[:2]
        factors = numpy.broadcast_to(s.reshape(G, 1, Cg, 1, 1), (G, O // G, Cg, 1, 1))
        multiply(w, factors.reshape(O, Cg, 1, 1))

    def sweep(self):
        """One rescale of every channel; returns max |r1 - r2| before it."""
        r1, bias1 = self.parent.output_ranges()
        r2 = self.input_ranges()
        s = numpy.sqrt(r1 * r2)
        with numpy.errstate(divide="ignore", invalid="ignore"):
            s1 = numpy.where(r1 > 0, s / numpy.where(r1 > 0, r1, 1.0), 0.0)
            s2 = numpy.where(r2 > 0, s / numpy.where(r2 > 0, r2, 1.0), 0.0)
        moved = (r1 > 0) | (bias1 == 0)
        s1, s2 = numpy.where(moved, s1, 1.0), numpy.where(moved, s2, 1.0)
        self.parent.scale_outputs(s1)
        self.scale_inputs(s2)
        self.scales = s1 if self.scales is None else self.scales * s1
        self.sweeps += 1
        self.delta = float(numpy.abs(r1 - r2).max()) if len(r1) else 0.0
        return self.delta


class Graph:
    """The cells as N2D2 sees them when it equalizes (see the module docstring)."""

    def __init__(self, net):
        self.net, self.cells = net, net.cells
        self.children = {name: [] for name in ["env", *net.cells]}
        for name, cell in net.cells.items():
            for parent in cell.parents:
                self.children[parent].append(name)
        self.targets = {getattr(t, "cell", None) for t in getattr(net, "targets", ())}

    def cell(self, name):
        return self.cells.get(name)

    def kids(self, name):
        """Children of ``name`` with Dropout cells removed (N2D2 removes them first)."""
        out = []
        for kid in self.children.get(name, ()):
            if isinstance(self.cells[kid], DropoutCell):
                out += self.kids(kid)
            else:
                out.append(kid)
        return out

    def up(self, name):
        """The parent of ``name`` through Dropout cells (None: several parents or env)."""
        cell = self.cell(name)
        while isinstance(cell, DropoutCell) and len(cell.parents) == 1:
            cell = self.cell(cell.parents[0])
        return cell

    @staticmethod
    def weighted(cell):
        return isinstance(cell, (ConvCell, FcCell)) and not getattr(cell, "transposed", False)

    def folded_batchnorm(self, cell):
        """The BatchNorm N2D2 folds into Conv/Fc ``cell``: its only child, with one input, and
        ``cell`` without activation or with a Linear one."""
        kids = self.kids(cell.name)
        if len(kids) != 1 or not isinstance(self.cells[kids[0]], BatchNormCell):
            return None
        bn = self.cells[kids[0]]
        if len(bn.parents) != 1 or not (cell.activation is None or
                                        isinstance(cell.activation, Linear)):
            return None
        return bn

    def layer_ending_at(self, cell):
        """The Layer whose output is ``cell``'s (None: ``cell`` is not the end of one)."""
        if cell is None:
            return None
        if isinstance(cell, BatchNormCell):
            if len(cell.parents) != 1:
                return None
            parent = self.up(cell.parents[0])
            if self.weighted(parent):   # folded into it, or not folded at all (then no layer)
                return Layer(parent, cell) if self.folded_batchnorm(parent) is cell else None
            return Layer(cell, cell)    # N2D2's identity Conv before it, folded
        if self.weighted(cell) and self.folded_batchnorm(cell) is None:
            return Layer(cell, None)
        return None

    def takes_padding(self, kid):
        """A child N2D2 folds a Padding into: a Conv (or a BatchNorm that becomes one) or a
        Pool, with one input."""
        cell = self.cells[kid]
        reads = isinstance(cell, (ConvCell, PoolCell, BatchNormCell)) and \
            not getattr(cell, "transposed", False)
        return reads and len(cell.parents) == 1

    def fused_padding(self, cell):
        return isinstance(cell, PaddingCell) and len(cell.parents) == 1 and \
            cell.activation is None and cell.qact is None and \
            all(self.takes_padding(k) for k in self.kids(cell.name))

    def readers(self, layer):
        """The cells reading ``layer``'s output, through Dropout and folded Padding, and the
        cells crossed to reach them."""
        out, crossed, todo = [], [], list(self.kids(layer.owner.name))
        while todo:
            kid = todo.pop(0)
            if self.fused_padding(self.cells[kid]):
                crossed.append(kid)
                todo += self.kids(kid)
            else:
                out.append(kid)
        return out, crossed

    def source(self, cell):
        """The Layer ``cell`` reads, through Dropout and folded Padding (None: not a Layer)."""
        if len(cell.parents) != 1:
            return None
        parent = self.up(cell.parents[0])
        while parent is not None and self.fused_padding(parent):
            parent = self.up(parent.parents[0])
        return self.layer_ending_at(parent)

    @staticmethod
    def quantized(*cells):
        return any(c is not None and (getattr(c, "qweight", None) is not None or
                                      c.qact is not None) for c in cells)

    def pairs(self):
        """The pairs (P, C) in network order."""
        out = []
        for cell in self.cells.values():
            if not self.weighted(cell) or len(cell.parents) != 1:
                continue
            parent = self.source(cell)
            if parent is None:
                continue
            readers, crossed = self.readers(parent)
            act = parent.owner.activation
            if readers != [cell.name] or not (act is None or isinstance(act, (Linear, Rectifier))):
                continue
            child = Layer(cell, self.folded_batchnorm(cell))
            if self.quantized(parent.cell, parent.bn, cell) or \
                    {parent.owner.name, *crossed} & self.targets:
                continue
            out.append(Pair(parent, child))
        return out


def equalization_pairs(net):
    """[(P name, C name)] that ``equalize`` would equalize, in network order."""
    return [pair.names for pair in Graph(net).pairs()]


class Equalization:
    """What ``equalize`` did: ``pairs`` (each with its total per-channel factor of P's outputs,
    ``scales``), ``sweeps``, ``delta`` (the last sweep's largest |r1 - r2|), ``unclipped``
    ({cell: clipping removed}), ``seconds``; ``restore()`` undoes it."""

    def __init__(self, pairs, saved, unclipped, sweeps, delta, seconds):
        self.pairs, self._saved, self.unclipped = pairs, saved, unclipped
        self.sweeps, self.delta, self.seconds = sweeps, delta, seconds

    def restore(self):
        """Every array and clipping back as it was (bit for bit); once."""
        for parameter, values in self._saved:
            parameter.data[...] = values
        for clipping, act in self.unclipped.values():
            act.clipping = clipping
        self._saved = []

    def summary(self):
        """One line for the run's log."""
        if not self.pairs:
            return "Cross-layer equalization: no pair of layers to equalize"
        names = ", ".join(f"{p}->{c}" for p, c in (pair.names for pair in self.pairs))
        return (f"Cross-layer equalization (N2D2's default; --no-cle turns it off): "
                f"{len(self.pairs)} pairs in {self.sweeps} sweep{'s' * (self.sweeps != 1)} "
                f"({names}), {1e3 * self.seconds:.1f} ms")

    def notices(self):
        lines = [f"Notice: cross-layer equalization removed the Clipping={c:g} of "
                 f"[{name}]'s {type(act).__name__} activation (its channels are scaled "
                 f"differently; N2D2 does the same for a Rectifier)"
                 for name, (c, act) in self.unclipped.items()]
        if self.sweeps >= MAX_SWEEPS and self.delta > MAX_RANGE_DELTA:
            lines.append(f"Notice: cross-layer equalization stopped after {MAX_SWEEPS} sweeps "
                         f"(largest range difference {self.delta:.3g} > {MAX_RANGE_DELTA:g})")
        return lines

    def as_dict(self):
        return {"pairs": [list(p.names) for p in self.pairs], "sweeps": self.sweeps,
                "range_delta": self.delta,
                "clipping_removed": {k: float(v) for k, (v, _) in self.unclipped.items()}}


def equalize(net, max_range_delta=MAX_RANGE_DELTA, max_sweeps=MAX_SWEEPS):
    """Cross-layer equalization of ``net`` in place (module docstring); returns the
    ``Equalization`` (``restore()`` gives the network back as it was)."""
    start = time.perf_counter()
    pairs = Graph(net).pairs()
    saved, seen, unclipped = [], set(), {}
    for pair in pairs:
        parent, child = pair.parent, pair.child
        params = [parent.bn.scale, parent.bn.bias] if parent.bn is not None else \
            list(parent.cell.weights) + ([parent.cell.bias] if parent.cell.bias is not None
                                         else [])
        for p in params + [child.cell.weights[0]]:
            if id(p) not in seen:
                seen.add(id(p))
                saved.append((p, p.data.copy()))
        act = parent.owner.activation
        if act is not None and act.clipping:
            unclipped[parent.owner.name] = (act.clipping, act)
            act.clipping = 0.0
    done = Equalization(pairs, saved, unclipped, 0, 0.0, 0.0)
    try:
        while pairs and done.sweeps < max_sweeps:
            done.delta = max(pair.sweep() for pair in pairs)
            done.sweeps += 1
            if not done.delta > max_range_delta:
                break
    except BaseException:   # never leave a half-equalized network behind
        done.restore()
        raise
    done.seconds = time.perf_counter() - start
    return done
