"""From a float DeepNet and its calibration statistics to integer nodes (docs/PTQ.md).

Every tensor of the integer network carries a ``Format``: codes a in [lo, hi] standing for the
real values a·step. The input's step is R/Q_env (R = max|x| over the calibration stimuli, Q_env
= 2^B − 1 for unsigned inputs, 2^(B−1) − 1 for signed ones; codes trunc(x·Q_env/R) as N2D2).
A layer producing codes gets step T/Q_out from its threshold T (``thresholds.py``), Q_out =
2^B − 1 (unsigned output: ReLU) or 2^(B−1) − 1 (signed), and saturates to [0, 2^B − 1] or
[−2^(B−1), 2^(B−1) − 1].

Conv/Fc (a BatchNorm child folded in first, N2D2's fuseBatchNorm with its zero-variance fix),
per output channel o, with weight scale w_o (max|W| of the layer, or of the channel with
``--act-rescale-per-output``, at least min(max|W|, 0.1) as N2D2)::

    W_int = round(W·S/w_o),   b_int = round(b/(step_in·w_o/S)),   S = 2^(B−1) − 1
    acc = Σ W_int·a + b_int  ≈  z/(step_in·w_o/S)          z: the real pre-activation
    a_out = saturate(rescale(acc, f_o)),   f_o = step_in·(w_o/S)/step_out

which is N2D2's two-pass bookkeeping (bias scaling s, activation scaling A, ``A_prev/A/q``)
written per tensor. ``rescale.py`` turns f_o into the chosen mode. A BatchNorm N2D2 cannot fold
(its parent is not a Conv/Fc alone) is a depthwise 1×1 convolution.

ElemWise Sum: a_out = saturate(round(Σ_i M_i·a_i·2^−k + B)) with integer multipliers
M_i = round(w_i·step_i/step_out·2^k) (|M_i| < 2^15, accumulator < 2^31): the branches are added
exactly at any scales (N2D2 rescales and rounds each branch first); its threshold is the
maximum (N2D2: no clipping for ElemWise). Pool: Max on codes; Average outputs the window sum
(step/K, not N2D2's truncated average); max pools imported from ONNX keep their geometry
(asymmetric pads, ceil mode, dilation) in the same integer node. Padding, Reshape, Transpose,
ChannelShuffle move codes; Dropout is removed; Softmax runs in float on the codes (the argmax
is that of the logits).

Several inputs (a Conv, Fc or Pool with several parents, ``Type=Activation`` concatenations):
the inputs are brought to one format, the coarsest step (signed if any is), by the producing
layer itself when it feeds nothing else (N2D2 fuses its ``_rescale_branch`` scaling the same
way), else by an inserted requantizing node ``<parent>_rescale_branch``; then concatenated.

The builder runs twice: first without statistics (``Builder(net, options)``): every cell is
asked its rule (``Cell.ptq``), so a cell that cannot be quantized fails before any stimulus is
read, and ``needs`` lists the cells whose outputs calibration must observe (and their sign);
then with the statistics, to build the nodes.
"""
import math

import numpy

from ..autograd import no_grad
from ..backend import asnumpy
from ..cells.batchnorm import BatchNormCell
from ..cells.pool import PoolCell
from ..errors import N2D2Error
from ..qat import engine
from ..qat.scaling import ActivationRescaling, IntegerRescaling
from ..quantizers.rounding import round_half_away
from . import nodes
from .rescale import approximate
from .thresholds import threshold as find_threshold
from .thresholds import kl_threshold, mse_threshold, weight_histogram

__all__ = ["Format", "Builder"]

F32 = numpy.float32
#: the multipliers of a sum or requantization: int16, and an accumulator within int32
MULTIPLIER_LIMIT, ACCUMULATOR_LIMIT, MAX_SHIFT = 2 ** 15 - 1, 2 ** 31, 24
#: N2D2's per-output weight scale floor: max(min(max|W|, 0.1), max|W[o]|)
PER_OUTPUT_FLOOR = 0.1


class Format:
    """Integer codes in [lo, hi] standing for code·step."""
    __slots__ = ("step", "lo", "hi")

    def __init__(self, step, lo, hi):
        self.step, self.lo, self.hi = float(step), int(lo), int(hi)

    @property
    def signed(self):
        return self.lo < 0

    @property
    def max_code(self):
        return max(abs(self.lo), abs(self.hi))

    @property
    def top(self):
        """The real value of the largest code."""
        return self.step * self.hi

    def __eq__(self, other):
        return isinstance(other, Format) and (self.step, self.lo, self.hi) == \
            (other.step, other.lo, other.hi)

    def __repr__(self):
        return f"Format(step={self.step:.6g}, [{self.lo}, {self.hi}])"


def fold_batchnorm(bn, W, b):
    """Conv/Fc weights and bias with ``bn`` folded in (N2D2's fuseBatchNorm): per output
    f = γ/sqrt(ε + σ²), a variance ≤ 1e-12 replaced by the mean of the others."""
    gamma, beta, mu, var = (numpy.asarray(asnumpy(a), numpy.float64) for a in bn.arrays())
    live = var > 1e-12
    if live.any():
        var = numpy.where(live, var, var[live].mean())
    f = gamma / numpy.sqrt(float(bn.epsilon) + var)
    return W * f.reshape((-1,) + (1,) * (W.ndim - 1)), beta + (b - mu) * f


class Builder:
    """One walk over the cells in build order (see the module docstring). ``alias`` maps a cell
    to the node producing its output; ``formats`` a node (or "env") to its Format (None: float
    probabilities); ``rows`` the per-layer table; ``needs`` {cell: unsigned} for calibration."""

    def __init__(self, net, options, stats=None, input_format=None):
        self.net, self.o, self.stats = net, options, stats
        self.planning = stats is None
        self.children = {name: [] for name in ["env", *net.cells]}
        for name, cell in net.cells.items():
            for parent in cell.parents:
                self.children[parent].append(name)
        fmt = input_format or Format(1.0 / options.unsigned_max, 0, options.unsigned_max)
        self.input = engine.Node("env", [], net.input_shape, fmt.hi, fmt.top)
        self.input.max_code, self.input.min_code = fmt.max_code, fmt.lo
        self.alias, self.formats = {"env": "env"}, {"env": fmt}
        self.nodes, self.remake, self.rows, self.constants = {}, {}, {}, {}
        self.needs, self.notices = {}, []

    def run(self):
        with no_grad():
            for cell in self.net.cells.values():
                cell.ptq(self)
        return self

    # -- errors, names, formats -------------------------------------------------------------
    def error(self, cell, message):
        return N2D2Error(f"[{cell.name}] Type={cell.type_name} cannot be quantized by --calib "
                         f"(post-training quantization): {message}")

    def fresh(self, base):
        name, k = base, 0
        while name in self.net.cells or name in self.nodes:
            k += 1
            name = f"{base}_{k}"
        return name

    def node(self, name):
        return self.input if name == "env" else self.nodes[name]

    def grid(self, unsigned):
        if unsigned:
            return 0, self.o.unsigned_max
        return -self.o.signed_max - 1, self.o.signed_max

    def add(self, cell, node, fmt, absorbed=None):
        self.nodes[node.name] = node
        self.formats[node.name] = fmt
        if cell is not None:
            self.alias[cell.name] = node.name
        if absorbed is not None:
            self.alias[absorbed.name] = node.name
        return node

    def source(self, cell, index=0):
        name = self.alias[cell.parents[index]]
        if self.formats[name] is None:
            raise self.error(cell, f"its input [{cell.parents[index]}] is float probabilities "
                                   f"(a Softmax), not integer codes")
        return name, self.formats[name]

    def single_parent(self, cell):
        if len(cell.parents) != 1:
            raise self.error(cell, f"{len(cell.parents)} inputs: this cell takes one")

    # -- thresholds -------------------------------------------------------------------------
    def output_sign(self, cell, default="signed"):
        """"unsigned" or "signed" codes for ``cell``'s activation (``ptq_sign``); ``default``
        without one. A QAct whose grid is unsigned makes the output unsigned."""
        act = cell.activation
        if act is None or (act.is_identity and default == "unsigned"):
            sign = default
        else:
            sign = act.ptq_sign
            if sign is None:
                raise self.error(cell, f"{act.describe()} has no integer form: post-training "
                                       f"quantization takes Rectifier (ReLU, clipped ReLU, no "
                                       f"LeakSlope), Linear and Saturation outputs")
        grid = cell.qact.grid() if cell.qact is not None else None
        if grid is not None and grid.lo >= 0:
            sign = "unsigned"
        return sign if self.o.unsigned else "signed"

    def statistics_cell(self, cell):
        """(cell whose outputs give the threshold, clipped?): N2D2 clips cells with more than
        two outputs, with the statistics of their Max pool when that is their only child."""
        clip = cell.out_shape[0] > 2
        kids = self.children[cell.name]
        if clip and len(kids) == 1:
            child = self.net.cells[kids[0]]
            if isinstance(child, PoolCell) and child.pooling == "Max":
                return child.name, clip
        return cell.name, clip

    def output_format(self, cell, sign, stat, clip):
        """The Format of a layer's codes; records the threshold for the table."""
        unsigned = sign == "unsigned"
        self.needs[stat] = self.needs.get(stat, True) and unsigned
        lo, hi = self.grid(unsigned)
        q = self.o.unsigned_max if unsigned else self.o.signed_max
        mode = self.o.act_clipping_mode if clip else "None"
        if self.planning:
            return Format(1.0 / q, lo, hi), {"stat": stat, "mode": mode, "T": 1.0}
        ranges, hist = self.stats.ranges.get(stat), self.stats.histograms.get(stat)
        if ranges is None:
            raise self.error(cell, f"no calibration statistics for [{stat}] (statistics of "
                                   f"another network reloaded?): calibrate without "
                                   f"--calib-reload")
        if mode != "None" and hist is None:
            raise self.error(cell, f"no histogram of [{stat}] in the reloaded statistics, and "
                                   f"--act-clipping-mode {mode} needs one: calibrate without "
                                   f"--calib-reload (or use --act-clipping-mode None)")
        T = find_threshold(mode, ranges, hist, self.o.bits, self.o.quantile)
        info = {"stat": stat, "mode": mode, "T": T, "range": (ranges.min, ranges.max),
                "dead": T <= 0.0}
        return Format((T if T > 0.0 else 1.0) / q, lo, hi), info

    # -- weighted layers ----------------------------------------------------------------------
    def folded_batchnorm(self, cell):
        """The BatchNorm child N2D2 folds into ``cell``: its only child, one input, and
        ``cell`` without activation (or Linear) or quantizer."""
        kids = self.children[cell.name]
        bn = self.net.cells[kids[0]] if len(kids) == 1 else None
        if not isinstance(bn, BatchNormCell) or len(bn.parents) != 1:
            return None
        if (cell.activation is not None and not cell.activation.is_identity) \
                or cell.qact is not None:
            return None
        return bn

    def clip_weights(self, W):
        mode = self.o.wt_clipping_mode
        if mode == "None" or not numpy.abs(W).max() > 0:
            return W
        hist = weight_histogram(W, self.o.bits, mode)
        t = mse_threshold(hist, self.o.bits) if mode == "MSE" else kl_threshold(hist, self.o.bits)
        return numpy.clip(W, -t, t)

    def conv_batchnorm(self, cell):
        """A Conv (and the BatchNorm N2D2 folds into it)."""
        if getattr(cell, "transposed", False):
            raise self.error(cell, "a transposed convolution has no integer form here")
        padding = cell.hw(cell.padding_dims)
        if min(padding) < 0:
            raise self.error(cell, "a negative padding (a crop) has no integer form here")
        bn = self.folded_batchnorm(cell)
        src, fin = self.inputs(cell)
        ws = [asnumpy(w.data) for w in cell.quantized_weights()]
        if len(ws) == 1:
            W, groups = ws[0], cell.groups[0]
        else:
            W, groups = numpy.concatenate([cell.expand(w, k) for k, w in enumerate(ws)], 1), 1
        geometry = {"stride": cell.stride_hw, "padding": padding,
                    "dilation": cell.hw(cell.dilation_dims), "groups": int(groups)}
        self.weighted(cell, bn or cell, bn, src, fin, W, cell.bias, geometry)

    def fc(self, cell):
        if getattr(cell, "normalize", False):
            raise self.error(cell, "Normalize=1 (weights divided by their norm at run time)")
        bn = self.folded_batchnorm(cell)
        src, fin = self.inputs(cell)
        W = numpy.concatenate([asnumpy(w.data) for w in cell.quantized_weights()], axis=1)
        self.weighted(cell, bn or cell, bn, src, fin, W, cell.bias, None)

    def batchnorm(self, cell):
        """A BatchNorm not folded into its parent: a depthwise 1×1 convolution (N2D2 inserts
        an identity Conv before it and folds it there)."""
        if cell.name in self.alias:
            return
        src, fin = self.inputs(cell)
        C = cell.out_shape[0]
        W, b = fold_batchnorm(cell, numpy.ones((C, 1, 1, 1)), numpy.zeros(C))
        geometry = {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": C}
        self.weighted(cell, cell, None, src, fin, W, b, geometry, folded=False)

    def weighted(self, cell, owner, bn, src, fin, W, bias, geometry, folded=True):
        """One integer Conv (``geometry``) or Fc (None) node for ``cell``; ``owner`` gives
        the activation and the statistics (the folded BatchNorm when there is one)."""
        W = numpy.asarray(W, numpy.float64)
        b = numpy.zeros(W.shape[0]) if bias is None else \
            numpy.asarray(asnumpy(getattr(bias, "data", bias)), numpy.float64)
        if bn is not None and folded:
            W, b = fold_batchnorm(bn, W, b)
        W = self.clip_weights(W)
        sign = self.output_sign(owner)
        stat, clip = self.statistics_cell(owner)
        fmt, info = self.output_format(owner, sign, stat, clip)
        has_bias = bias is not None or bn is not None

        def make(fmt):
            return self.make_weighted(cell, owner, src, fin, W, b if has_bias else None,
                                      geometry, fmt, info)
        self.remake[cell.name] = make
        self.add(cell, make(fmt), fmt, absorbed=bn)

    def weight_scales(self, W):
        O = W.shape[0]
        rows = numpy.abs(W).reshape(O, -1).max(axis=1) if W.size else numpy.zeros(O)
        L = float(rows.max()) if O else 0.0
        if L == 0.0:
            return numpy.ones(O)
        if self.o.per_output:
            return numpy.maximum(min(L, PER_OUTPUT_FLOOR), rows)
        return numpy.full(O, L)

    def make_weighted(self, cell, owner, src, fin, W, b, geometry, fmt, info):
        S = self.o.signed_max
        w = self.weight_scales(W)
        f = fin.step * (w / S) / fmt.step
        fan = float(numpy.abs(W).reshape(len(W), -1).sum(axis=1).max()) if W.size else 0.0
        acc_bound = fin.max_code * S * fan / float(w.min()) + \
            (0.0 if b is None else float(numpy.abs(b / (fin.step * w / S)).max()))
        approx = approximate(cell.name, f, self.o.act_scaling_mode, acc_bound)
        if approx.notice and not self.planning:
            self.notices.append(approx.notice)
        shape = (-1,) + (1,) * (W.ndim - 1)
        Wn = F32(W * (S / w).reshape(shape))
        Bn = None if b is None else F32(b / (fin.step * w / S))
        if approx.p is not None:
            inverse = F32(1.0 / approx.p)
            Wn = F32(Wn * inverse.reshape(shape))
            Bn = None if Bn is None else F32(Bn * inverse)
        W_int = round_half_away(numpy, Wn).astype(numpy.int64)
        B_int = None if Bn is None else round_half_away(numpy, Bn).astype(numpy.float64)
        lo, hi = fmt.lo, fmt.hi
        rescaling = self.rescaling(cell.name, B_int, approx, lo, hi, acc_bound)
        engine.check_exact(cell.name, W_int, fin.max_code, engine.fan_abs_max(W_int))
        if geometry is None:
            node = nodes.Fc(cell.name, [src], cell.out_shape, hi, fmt.top, W_int, rescaling,
                            W_fused=F32(W_int))
        else:
            node = nodes.Conv(cell.name, [src], cell.out_shape, hi, fmt.top, W_int,
                              geometry["stride"], geometry["padding"], geometry["dilation"],
                              geometry["groups"], rescaling, W_fused=F32(W_int))
        node.max_code, node.source = fmt.max_code, owner.name
        node.weight_range = 2 * S   # B-bit symmetric weights, as --report counts them
        self.record(cell, node, fin, fmt, info, f, approx, w)
        return node

    @staticmethod
    def rescaling(name, B, approx, lo, hi, acc_bound):
        """The node's rescaling: the engine's ``ActivationRescaling`` (integer bias, the
        factors ``approx.S`` as ``approx.mode`` applies them), or for Double-shift the
        integer-only ``IntegerRescaling`` (the engine's only form of it)."""
        if approx.mode == "Double-shift":
            return IntegerRescaling(name, 1.0, B, None, approx.S, approx.mode, lo, hi,
                                    int(math.ceil(acc_bound)))
        return ActivationRescaling(1.0, B, None, approx.S, approx.mode, lo, hi,
                                   fractional_bits=approx.fractional_bits)

    def record(self, cell, node, fin, fmt, info, f, approx, w=None):
        applied = approx.applied()
        error = float(numpy.abs(applied / f - 1.0).max()) if len(f) else 0.0
        self.rows[node.name] = dict(
            info, node=node.name, type=node.type_name, sign="signed" if fmt.signed else
            "unsigned", step_in=fin.step, step=fmt.step, f=(float(f.min()), float(f.max())),
            rescale=approx.describe(), error=error,
            p=None if approx.p is None else float(approx.p.max()),
            w=None if w is None else (float(w.min()), float(w.max())))
        self.constants[node.name] = {"f": f, "S": approx.S, "p": approx.p, "w": w,
                                     "fractional_bits": approx.fractional_bits,
                                     "step_in": fin.step, "step": fmt.step,
                                     "T": info.get("T"), "mode": approx.mode}

    # -- sums, requantization -------------------------------------------------------------
    def multipliers(self, cell_name, ratios, max_codes, shift):
        """(k, M, B): integer multipliers M_i ≈ ratio_i·2^k and bias B ≈ shift·2^k, k the
        largest (≤ 24) keeping |M_i| < 2^15 and the accumulator within int32."""
        ratios = numpy.asarray(ratios, numpy.float64)
        for k in range(MAX_SHIFT, -1, -1):
            M = round_half_away(numpy, ratios * 2.0 ** k).astype(numpy.int64)
            B = int(round_half_away(numpy, numpy.float64(shift * 2.0 ** k)))
            bound = float(numpy.abs(M) @ numpy.asarray(max_codes, numpy.float64)) + abs(B)
            if bound < ACCUMULATOR_LIMIT and (numpy.abs(M).max() <= MULTIPLIER_LIMIT or k == 0):
                return k, M, B
        raise N2D2Error(f"[{cell_name}] its inputs' scales are {ratios.max():.3g} times its "
                        f"output's: the sum does not fit an int32 accumulator at {self.o.bits} "
                        f"bits; use fewer bits or --act-clipping-mode None")

    def make_sum(self, cell, name, srcs, fins, weights, shift, fmt, info, shape):
        """An integer sum (one input: a requantization) of ``srcs`` into ``fmt``; ``cell``:
        the cell it implements (its name for the statistics), ``shape`` its output."""
        ratios = [wi * fi.step / fmt.step for wi, fi in zip(weights, fins)]
        k, M, B = self.multipliers(name, ratios, [fi.max_code for fi in fins], shift / fmt.step)
        O = shape[0]
        approx = approximate(name, numpy.full(O, 2.0 ** -k), self.o.act_scaling_mode)
        acc_bound = float(numpy.abs(M) @ numpy.asarray([fi.max_code for fi in fins],
                                                       numpy.float64)) + abs(B)
        approx.fractional_bits = k
        rescaling = self.rescaling(name, None if B == 0 else numpy.full(O, B), approx, fmt.lo,
                                   fmt.hi, acc_bound)
        node = nodes.ElemWise(name, srcs, shape, fmt.hi, fmt.top, M, rescaling)
        node.max_code, node.source = fmt.max_code, cell.name
        exact = numpy.asarray(ratios) * 2.0 ** k
        error = numpy.abs(M / numpy.where(exact == 0, 1.0, exact) - 1.0)
        approx_row = dict(info, node=name, type=node.type_name,
                          sign="signed" if fmt.signed else "unsigned", step=fmt.step,
                          step_in=min(fi.step for fi in fins),
                          f=(float(min(ratios)), float(max(ratios))),
                          rescale=f"M / 2^{k}", error=float(error.max()), p=None, w=None)
        self.rows[name] = approx_row
        self.constants[name] = {"multipliers": M, "k": k, "bias": B, "step": fmt.step,
                                "T": info.get("T"), "ratios": ratios}
        return node

    def elemwise(self, cell):
        if cell.operation != "Sum":
            raise self.error(cell, f"Operation={cell.operation}: integer ElemWise cells sum "
                                   f"(Operation=Sum), as N2D2's")
        srcs, fins = zip(*[self.source(cell, i) for i in range(len(cell.parents))])
        weights = cell.coefficients(cell.weights, 1.0)
        shift = sum(cell.coefficients(cell.shifts, 0.0))
        positive = all(f.lo >= 0 for f in fins) and min(weights) >= 0 and \
            min(cell.coefficients(cell.shifts, 0.0)) >= 0
        sign = self.output_sign(cell, "unsigned" if positive else "signed")
        fmt, info = self.output_format(cell, sign, cell.name, False)

        def make(fmt):
            return self.make_sum(cell, cell.name, list(srcs), list(fins), weights, shift, fmt,
                                 info, cell.out_shape)
        self.remake[cell.name] = make
        self.add(cell, make(fmt), fmt)

    def requantize(self, cell, src, fin, fmt, name, info):
        shape = self.node(src).out_shape

        def make(fmt):
            return self.make_sum(cell, name, [src], [fin], [1.0], 0.0, fmt, info, shape)
        self.remake[name] = make
        return make(fmt)

    def activation(self, cell):
        """``Type=Activation``: a concatenation of its inputs (one format), then, unless the
        activation is the identity, a requantization (a ReLU saturates at 0)."""
        src, fin = self.inputs(cell)
        act = cell.activation
        if cell.qact is None and (act is None or act.is_identity):
            self.alias[cell.name] = src
            return
        sign = self.output_sign(cell)
        stat, clip = self.statistics_cell(cell)
        fmt, info = self.output_format(cell, sign, stat, clip)
        self.add(cell, self.requantize(cell, src, fin, fmt, cell.name, info), fmt)

    # -- several inputs ---------------------------------------------------------------------
    def common_format(self, fins):
        signed = any(f.signed for f in fins)
        lo, hi = self.grid(not signed)
        return Format(max(f.top for f in fins) / hi, lo, hi)

    def consumers(self, name):
        """Cells reading node ``name`` (through the cells it stands for)."""
        mine = {c for c, n in self.alias.items() if n == name}
        return {k for c in mine for k in self.children.get(c, ())} - mine

    def align(self, cell, src, fin, fmt):
        """``src`` (format ``fin``) in format ``fmt``: the producing layer retargeted when
        ``cell`` is its only reader, else a requantizing node."""
        if fin == fmt:
            return src
        if src in self.remake and self.consumers(src) == {cell.name}:
            self.nodes[src] = self.remake[src](fmt)
            self.formats[src] = fmt
            return src
        name = self.fresh(f"{src}_rescale_branch")
        info = {"stat": None, "mode": "branch", "T": fmt.top, "range": None, "dead": False}
        self.add(None, self.requantize(cell, src, fin, fmt, name, info), fmt)
        return name

    def inputs(self, cell):
        """(node name, Format) of ``cell``'s input: its parent's, or several parents brought
        to one format and concatenated along the channels."""
        if len(cell.parents) == 1:
            return self.source(cell)
        srcs, fins = zip(*[self.source(cell, i) for i in range(len(cell.parents))])
        shapes = [self.node(s).out_shape for s in srcs]
        if len({tuple(s[1:]) for s in shapes}) != 1:
            raise self.error(cell, f"inputs of different sizes {shapes} cannot be concatenated")
        fmt = self.common_format(fins)
        aligned = [self.align(cell, s, f, fmt) for s, f in zip(srcs, fins)]
        shape = (sum(s[0] for s in shapes),) + tuple(shapes[0][1:])
        name = self.fresh(f"{cell.name}_concat")
        self.add(None, nodes.Concat(name, aligned, shape, fmt.hi, fmt.top, fmt.max_code), fmt)
        return name, fmt

    # -- cells that keep or move codes ---------------------------------------------------------
    def check_no_activation(self, cell):
        if cell.qact is not None or not (cell.activation is None or cell.activation.is_identity):
            raise self.error(cell, "an activation or quantizer on a cell that moves values "
                                   "(put it on the layer before)")

    def pool(self, cell, pads=None, dilation=(1, 1), ceil_mode=False):
        """N2D2's pool (symmetric ``PaddingDims``); a max pool of ONNX geometry passes its
        ``pads`` (top, bottom, left, right), ``dilation`` and ``ceil_mode`` (the integer node
        reads the ceil mode from the cell's ``out_shape``; the float twin takes it)."""
        if cell.mask is not None:
            raise self.error(cell, "a Pool Mapping that is not one-to-one")
        self.check_no_activation(cell)
        src, fin = self.inputs(cell)
        kernel, stride = cell.hw(cell.pool_dims), cell.hw(cell.stride_dims)
        node = nodes.Pool(cell.name, [src], cell.out_shape, fin.hi, fin.top, cell.pooling,
                          kernel, stride, cell.hw(cell.padding_dims), fin.max_code, pads,
                          dilation, ceil_mode=ceil_mode)
        empty = node.empty_windows(self.node(src).out_shape) if cell.pooling == "Max" else 0
        if empty:
            raise self.error(cell, f"the windows of {empty} output positions read only padding "
                                   f"(a max over no input); reduce its pads or dilations")
        fmt = fin
        if cell.pooling != "Max":   # the window sum: step/K, codes up to K times larger
            K = kernel[0] * kernel[1]
            fmt = Format(fin.step / K, fin.lo * K, fin.hi * K)
        node.max_code, node.source = fmt.max_code, cell.name
        self.add(cell, node, fmt)

    def identity(self, cell):
        self.single_parent(cell)
        self.alias[cell.name] = self.alias[cell.parents[0]]

    def move(self, cell):
        self.single_parent(cell)
        self.check_no_activation(cell)
        src, fin = self.source(cell)
        node = nodes.Move(cell.name, self.node(src), cell)
        node.source = cell.name
        self.add(cell, node, fin)

    def softmax(self, cell):
        src, fin = self.inputs(cell)
        node = nodes.Softmax(cell.name, [src], cell.out_shape, fin.hi, fin.top)
        node.source = cell.name
        self.add(cell, node, None)
