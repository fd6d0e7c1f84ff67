"""The ``-qat-sat`` pass (N2D2's DeepNetQAT; docs/FUSION.md): a SAT fake-quantized DeepNet ->
a NEW integer ``FusedNet`` (the DeepNet is left untouched).

Traversal in build order; each cell names its rule (``Cell.fuse(fuser)``, beside its code) or
says why it cannot be fused (``fusion_refusal``): Conv→BatchNorm(QAct) pairs become one
``IntegerConv`` (``conv_with_batchnorm``), so does a Conv with its own QAct
(``conv_own_qact``); Fc cells ``IntegerFc`` (``fc``), ElemWise Sums ``IntegerElemWise``
(``elemwise``); Pool and Softmax are kept (``pool``, ``softmax``), Dropout is removed
(``identity``: identity at test time); cells that only move codes (Padding, Reshape, Transpose,
ChannelShuffle) run their own forward on the codes (``move``, an n2d2py extension). Weights
must be SAT-quantized (N2D2's formulas below are SAT's); an activation quantizer is read
through its ``grid()``: any unsigned grid [0, R] with top value α (SAT, PACT;
LSQ's α = R·step) gives codes the integer engine reproduces. Each node's output codes carry
(R, α): the input of the first layer is (255, 1.0), the env pixel ×255. Per output
channel the constants are N2D2's, in float64, stored as float32::

    f = γ/sqrt(eps + σ²) (0 if σ² ≤ 1e-12),  sgn = sign(f)
    W = sgn·RND_w(w_q·wsf)
    S = sgn·(α_in/R_in)(R_out/α_out)·f/wsf·corr
    B = sgn·((β + (b − μ)f)/f)·(R_in/α_in)·wsf/corr
    C = sgn·(α_out·R_in)/(f·α_in)·wsf/corr
    wsf = floor(R_w/2) under RINTF (1 if R_w ≤ 1), else 1;  corr = 1 except the 4-bit hack

Lowering to integers: the engine needs integer weights. Under ``-wt-round-mode NONE`` the fused W
are SAT grid values (k/R for Default, k/floor(R/2) for Symmetric, divided by the SAT scale s for
FCs with ApplyScaling), so ``W_int = W·D`` is exact with the layer's weight denominator D and the
engine computes ``t = acc/D + B``: the same real numbers as N2D2's NONE simulation, with an exact
int32 accumulator instead of a float32 sum. An Average pool feeding a layer multiplies its D by
the window size (the pool outputs sums).

Where the default (mathematically right) behaviour differs from N2D2, ``n2d2_compat=True`` gives
N2D2's (bit for bit on the formulas; the float32-vs-float64 order of operations is not emulated):

1. **FC output saturation.** Default: unsigned ``[0, R_out]`` (the codes' range). N2D2: signed
   ``[−2^(n−1), 2^(n−1)−1]``, n = rintf(log2 R_out), so an 8-bit FC saturates at 127.
2. **Last FC without QAct.** Default: outputs the exact logits ``t`` (float64, no rounding: argmax
   is that of the fake-quant logits). N2D2: ``round(α_in·t)`` saturated to signed 32 bits
   (``out = R_in`` as coded), which rounds logits to 1/R_in and can create argmax ties.
3. **Conv/ElemWise saturation.** Default: ``[0, R_out]``. N2D2: ``[0, 2^n − 1]``, n =
   rintf(log2 R_out), falling back to the weights' bit count when n = 0 (R_out = 1).
4. **Single-shift clip.** Default: the clip C applies before the shift. N2D2's CPU kernel
   ignores it.
5. **4-bit Default hack.** Both use wsf = 15 for a Default R_w = 15 grid under RINTF (exact odd
   integers). Default: the true R_in in S, B, C. N2D2: R_in := 31 and corr = 31/15, right only
   when the true input range is 15.
6. **α sign.** Default: |α| as the SAT kernels use it. N2D2: α as stored.
7. **ElemWise.** Default and N2D2-compat alike: operands are brought to the reference operand's
   units by Q16 integer multipliers inside the sum (N2D2 inserts a float ScalingCell
   ``<bn>_rescale_act`` instead), then the node rescales with S = (R_out/α_out)/(R_ref/α_ref)
   and C = α_out·R_ref/α_ref in the chosen mode.

8. **Integer modes** (Fixed-point16/32, Single-shift, Double-shift). Default: every layer, Fc
   included, rescales with integers only (``scaling.IntegerRescaling``: bias and clip in
   accumulator units, one rounding at the shift, the most fractional bits the multiplier width
   allows, N2D2's power-of-two approximations for the shifts): what the integer C export
   computes. N2D2: Fc layers always rescale in floating point, Conv layers round the
   pre-activation acc/D + B to an integer first and both fixed-point modes use 16 fractional
   bits. ``Double-shift`` (N2D2's ``DoubleShiftScaling``: y = (z + z·2^a +
   2^(b−1)) >> b) exists without --n2d2-compat only: N2D2's -qat-sat silently leaves such layers
   unscaled.

Conv cells need a BatchNorm child with a SAT QAct, ``ApplyScaling=0`` and a Linear/absent
activation, as N2D2 does (its Conv fusion ignores the SAT scale). n2d2py extension: a Conv
without BatchNorm that carries the activation quantizer itself (after a Linear or plain ReLU
activation) is fused alone (``conv_own_qact``): the rule above with f = 1, β = μ = 0 and, as
for an Fc, SAT's scale s folded in (W·s and S/s, B·s, C·s under RINTF; D·s under NONE). N2D2's
pass starts Conv fusion from a BatchNorm only and leaves such a Conv fake-quantized.
"""
import copy

import numpy

from ..autograd import no_grad
from ..backend import asnumpy
from ..cells.batchnorm import BatchNormCell
from ..cells.dropout import DropoutCell
from ..cells.softmax import SoftmaxCell
from ..errors import N2D2Error
from ..quantizers import ClipActQuantizer, SATActQuantizer, SATWeightQuantizer
from . import engine
from .scaling import (INTEGER_MODES, ActivationRescaling, IntegerRescaling, parse_act_scaling_mode,
                      parse_round_mode, rintf)

__all__ = ["fuse_qat", "QATOptions"]

F32 = numpy.float32
INPUT_RANGE, INPUT_ALPHA = 255, 1.0   # N2D2: the [0, 1] input ×255, α_in = 1
ELEMWISE_BITS = 16                    # Q16 operand multipliers of IntegerElemWise


class QATOptions:
    """The four ``-qat-sat`` modes (N2D2 spellings after parsing) and ``n2d2_compat``."""

    def __init__(self, act_scaling_mode="Floating-point", w_mode="NONE", b_mode="NONE",
                 c_mode="NONE", n2d2_compat=False):
        self.act_scaling_mode = parse_act_scaling_mode(act_scaling_mode)
        self.w_mode, self.b_mode, self.c_mode = (parse_round_mode(m) for m in (w_mode, b_mode, c_mode))
        self.n2d2_compat = bool(n2d2_compat)
        if self.act_scaling_mode == "Double-shift" and self.n2d2_compat:
            raise N2D2Error("act rescaling mode Double-shift cannot be combined with "
                            "--n2d2-compat: N2D2's -qat-sat leaves such layers unscaled; "
                            "without --n2d2-compat n2d2py applies N2D2's double-shift scaling")

    @property
    def integer(self):
        """Whether the layers rescale with integers only (``scaling.IntegerRescaling``): an
        integer mode without --n2d2-compat."""
        return self.act_scaling_mode in INTEGER_MODES and not self.n2d2_compat

    def as_dict(self):
        return {"act_scaling_mode": self.act_scaling_mode, "w_mode": self.w_mode,
                "b_mode": self.b_mode, "c_mode": self.c_mode, "n2d2_compat": self.n2d2_compat}


def fuse_qat(net, act_scaling_mode="Floating-point", w_mode="NONE", b_mode="NONE",
             c_mode="NONE", n2d2_compat=False):
    """Fuse a SAT-trained DeepNet (weights imported) into a new ``engine.FusedNet``."""
    options = QATOptions(act_scaling_mode, w_mode, b_mode, c_mode, n2d2_compat)
    check_fusion_inputs(net)
    with numpy.errstate(all="ignore"):   # every value is checked (check_fused_constants)
        fused = Fuser(net, options).run()
    fused.source = getattr(getattr(net, "document", None), "path", None)   # named by errors
    return fused


# -- constants checked before and after fusing ----------------------------------------------------
#: bound of the fused integer domain: clips, biases and rescaled codes must fit int32 (the C
#: export's accumulators), scales must be finite float32
INT32_BOUND = 2.0 ** 31
ALPHA_RANGE = (1e-8, 1e8)     # a SAT clipping level outside it is no trained value


def _weights_file(net, cell, suffix):
    """The file a cell's value was read from (``-w DIR``, or the reloaded best weights), or the
    INI when the values come from this run's own training."""
    from ..io.names import cell_file
    folder = getattr(net, "weights_source", None)
    if folder is None:
        return getattr(getattr(net, "document", None), "path", None)
    return cell_file(folder, cell.name, suffix) if suffix else folder


def check_fusion_inputs(net):
    """Refuse NaN, infinite or zero constants before any fusion arithmetic: every Parameter and
    state array of every cell (weights, biases, BatchNorm scales/biases/means/variances, SAT α),
    α ≠ 0, variances ≥ 0. The error names the cell and the file the value came from."""
    for name, cell in net.cells.items():
        arrays = [(p.name[len(name) + 1:].split("[")[0], p.data) for p in cell.own_parameters()
                  if p.name.startswith(name + ".")]      # a quantizer's α: checked below
        arrays += [(s + "s" if not s.endswith("s") else s, getattr(cell, s))
                   for s in getattr(cell, "state_names", ()) if getattr(cell, s, None) is not None]
        for suffix, data in arrays:
            values = numpy.asarray(asnumpy(data), numpy.float64)
            bad = ~numpy.isfinite(values)
            if bad.any():
                raise N2D2Error(f"[{name}] {suffix} hold {values.ravel()[bad.ravel()][0]} (value "
                                f"{int(numpy.flatnonzero(bad.ravel())[0])}): cannot fuse non-finite "
                                f"constants", file=_weights_file(net, cell, f"_{suffix}.syntxt"))
            if suffix == "variances" and (values < 0).any():
                raise N2D2Error(f"[{name}] negative variance: cannot fuse",
                                file=_weights_file(net, cell, "_variances.syntxt"))
        for q in (getattr(cell, "qweight", None), cell.qact):
            alpha = getattr(q, "alpha", None) if hasattr(q, "alpha_param") else None
            if alpha is None:
                continue
            alpha = float(numpy.asarray(asnumpy(getattr(alpha, "data", alpha))).ravel()[0])
            if not ALPHA_RANGE[0] <= abs(alpha) <= ALPHA_RANGE[1]:      # NaN fails too
                source = getattr(net, "weights_source", None)
                where = (source and q.state_file(source, name)) or _weights_file(net, cell, "")
                raise N2D2Error(f"[{name}] {q.type_name} alpha is {alpha:.6g}: cannot fuse (a "
                                f"clipping level from {ALPHA_RANGE[0]:g} to {ALPHA_RANGE[1]:g} in "
                                f"magnitude)", file=where)


def check_fused_constants(net, name, constants, source=None):
    """The fused per-channel constants of cell ``name`` (fused with its BatchNorm ``source``)
    must be finite and fit the integer domain (``INT32_BOUND``): a huge BatchNorm scale or
    mean, or a variance near 0, gives scales and clips no integer network can hold."""
    for key in ("S", "B", "C"):
        value = constants.get(key)
        if value is None:
            continue
        values = numpy.asarray(value, numpy.float64)
        if not numpy.isfinite(values).all() or (numpy.abs(values) >= INT32_BOUND).any():
            worst = values.ravel()[numpy.argmax(~numpy.isfinite(values.ravel()) |
                                                (numpy.abs(values.ravel()) >= INT32_BOUND))]
            fused = f"[{name}] fused with [{source}]" if source else f"[{name}]"
            raise N2D2Error(f"{fused}: constant {key} = {worst:.6g} is outside the integer "
                            f"range (|{key}| < 2^31): check the BatchNorm statistics, biases "
                            f"and SAT alphas of these cells and their inputs",
                            file=_weights_file(net, net.cells[name], ""))


def bits(R):
    """N2D2's bit count of a range: rintf(log2(R)) (255 -> 8, 15 -> 4, 3 -> 2, 1 -> 0)."""
    return int(rintf(numpy.log2(float(R))))


def weight_denominator(quantizer):
    """D with w_q·D an integer on the SAT grid (``grid().hi``): R (Default, FullRange:
    (2k−R)/R) or floor(R/2) (Symmetric, Asymmetric: k/r)."""
    return quantizer.grid().hi


def to_integers(cell, W, D):
    """W·D rounded; an N2D2Error when W is not on the grid (ApplyQuantization=0, ...)."""
    scaled = numpy.asarray(W, numpy.float64) * D
    W_int = numpy.rint(scaled)
    error = float(numpy.abs(scaled - W_int).max()) if W_int.size else 0.0
    if error > 1e-2:
        raise N2D2Error(f"[{cell.name}] fused weights are not integers on the SAT grid (off by "
                        f"{error:.3g} after ×{D:.6g}): the integer engine needs "
                        f"QWeight.ApplyQuantization=1")
    return W_int.astype(numpy.int64)


class Fuser:
    """One pass over the DeepNet's cells, in build order. ``alias`` maps an original cell to the
    fused node that now produces its output (BN -> its Conv, Dropout -> its parent's node)."""

    def __init__(self, net, options):
        self.net, self.options = net, options
        self.compat = options.n2d2_compat
        self.children = {name: [] for name in ["env", *net.cells]}
        for name, cell in net.cells.items():
            for parent in cell.parents:
                self.children[parent].append(name)
        self.alias = {"env": "env"}
        self.nodes = {}
        self.constants = {}   # node -> N2D2's W, S, B, C, wsf, corr (for tests and export)
        self.input = engine.Node("env", [], net.input_shape, INPUT_RANGE, INPUT_ALPHA)

    def node(self, name):
        return self.input if name == "env" else self.nodes[name]

    def parent_node(self, cell, index=0):
        return self.node(self.alias[cell.parents[index]])

    def error(self, cell, message):
        return N2D2Error(f"[{cell.name}] Type={cell.type_name} cannot be part of a fused integer "
                         f"network: {message}")

    def act_codes(self, cell, q, where=""):
        """(R, α) of the codes an activation quantizer outputs: its grid must be unsigned
        [0, R]; α its top value (|α| for SAT/PACT; α as stored in N2D2 mode, pitfall 7)."""
        grid = q.grid()
        if grid is None or grid.lo != 0:
            raise N2D2Error(f"[{cell.name}] {where}QAct={q.type_name}: -qat-sat needs activation "
                            f"codes 0..R (an unsigned grid: SAT, PACT, LSQ)")
        alpha = float(F32(q.alpha)) if self.compat and isinstance(q, ClipActQuantizer) else grid.top
        return int(grid.hi), alpha

    def run(self):
        self.check_has_sat()
        with no_grad():
            for cell in self.net.cells.values():
                try:
                    cell.fuse(self)
                except (OverflowError, ZeroDivisionError, FloatingPointError) as exc:
                    raise N2D2Error(f"[{cell.name}] cannot fuse its constants ({exc})",
                                    file=_weights_file(self.net, cell, "")) from None
                if cell.name in self.constants:
                    check_fused_constants(self.net, cell.name, self.constants[cell.name],
                                          getattr(self.nodes.get(cell.name), "source", None))
        targets = []
        for target in self.net.targets:
            fused = copy.deepcopy(target)
            fused.cell = self.alias[target.cell]
            targets.append(fused)
        return engine.FusedNet(self.nodes, self.input, targets, self.net.sp, self.options,
                               self.constants, self.alias)

    def check_has_sat(self):
        """A network without any SAT quantizer: say so at its first cell, before anything."""
        if any(isinstance(c.qweight, SATWeightQuantizer) or isinstance(c.qact, SATActQuantizer)
               for c in self.net.cells.values()):
            return
        for c in self.net.cells.values():
            for key, q in (("QWeight", c.qweight), ("QAct", c.qact)):
                if q is not None:
                    raise N2D2Error(f"[{c.name}] {key}={q.type_name}: -qat-sat fuses SAT "
                                    f"quantizers only, and this network has none")
        first = next(iter(self.net.cells), "env")
        raise N2D2Error(f"[{first}] no cell of this network has a SAT quantizer (QWeight=SAT, "
                        f"QAct=SAT): -qat-sat fuses a SAT-trained network only")

    # -- helpers --------------------------------------------------------------------------------
    def single_parent(self, cell):
        if len(cell.parents) != 1:
            raise N2D2Error(f"[{cell.name}] has {len(cell.parents)} parents: the QAT fusion "
                            f"handles one input per {cell.type_name} cell")

    def only_child(self, name):
        """The only cell reading ``name``'s output, looking through Dropouts (the identity at
        inference: N2D2's LeNet puts one between conv3 and its BatchNorm); None if several."""
        kids = self.children[name]
        while len(kids) == 1 and isinstance(self.net.cells[kids[0]], DropoutCell):
            kids = self.children[kids[0]]
        return self.net.cells[kids[0]] if len(kids) == 1 else None

    def feeds_layers(self, name):
        """Whether ``name``'s output reaches a cell other than a Softmax (Dropouts looked
        through): an Fc without QAct that does is not the network's last layer."""
        todo = list(self.children[name])
        while todo:
            child = self.net.cells[todo.pop()]
            if isinstance(child, DropoutCell):
                todo.extend(self.children[child.name])
            elif not isinstance(child, SoftmaxCell):
                return True
        return False

    def check_sat_weights(self, cell):
        q = cell.qweight
        if q is None:
            raise N2D2Error(f"[{cell.name}] has no weight quantizer: -qat-sat fuses SAT-quantized "
                            f"Conv/Fc cells only (QWeight=SAT)")
        if not isinstance(q, SATWeightQuantizer):
            raise N2D2Error(f"[{cell.name}] QWeight={q.type_name}: -qat-sat fuses SAT "
                            f"quantizers only (QWeight=SAT)")

    def sat_weights(self, cell):
        self.check_sat_weights(cell)
        q = cell.qweight
        if not q.apply_quantization:
            raise N2D2Error(f"[{cell.name}] QWeight.ApplyQuantization=0: the weights are not "
                            f"quantized, cannot fuse into integers")
        wq = [asnumpy(w.data) for w in cell.quantized_weights()]   # runs the quantizer
        return q, wq[0].astype(numpy.float64)

    def check_linear(self, cell):
        act = cell.activation
        if act is not None and not act.is_identity:
            raise N2D2Error(f"[{cell.name}] has ActivationFunction={act.type_name}: the QAT fusion "
                            f"needs a Linear (or no) activation before the quantizer")

    def wsf(self, R_w):
        if self.options.w_mode != "RINTF":
            return 1
        return R_w // 2 if R_w > 1 else 1

    def round_w(self, values):
        return rintf(values) if self.options.w_mode == "RINTF" else F32(values)

    def saturation(self, R_out, R_w, signed=False):
        if not self.compat:
            return 0, int(R_out)
        n = bits(R_out) or bits(max(R_w, 2))   # 0 bits: the cell's weight bit count, as N2D2
        return (-(1 << (n - 1)), (1 << (n - 1)) - 1) if signed else (0, (1 << n) - 1)

    # -- Conv (+ BatchNorm) ---------------------------------------------------------------------
    def conv_batchnorm(self, cell):
        """A Conv (``ConvCell.fuse``; the name is the rule post-training quantization shares)
        is fused with its BatchNorm child (N2D2's rule, ``conv_with_batchnorm``) or, when it
        carries the activation quantizer itself and no BatchNorm follows, alone
        (``conv_own_qact``, an n2d2py extension: N2D2's pass skips such a Conv)."""
        self.check_sat_weights(cell)
        child = self.only_child(cell.name)
        bn = child if isinstance(child, BatchNormCell) else None
        if bn is not None and cell.qact is not None:
            raise N2D2Error(f"[{cell.name}] has QAct={cell.qact.type_name} and a BatchNorm child "
                            f"[{bn.name}]: cannot fuse (expected the activation quantizer on the "
                            f"BatchNorm only)")
        if bn is not None and bn.qact is not None:
            return self.conv_with_batchnorm(cell, bn)
        if bn is None and cell.qact is not None:
            return self.conv_own_qact(cell)
        raise N2D2Error(f"[{cell.name}] has no BatchNorm child with a SAT activation quantizer "
                        f"and no QAct of its own: cannot fuse (expected QAct=SAT on its only "
                        f"child, a BatchNorm, Dropouts between them aside, or on the Conv itself)")

    def conv_with_batchnorm(self, cell, bn):
        R_out, a_out = self.act_codes(cell, bn.qact, f"its BatchNorm [{bn.name}] has ")
        self.check_linear(cell)
        if cell.qweight.apply_scaling:
            raise N2D2Error(f"[{cell.name}] QWeight.ApplyScaling=1: N2D2's Conv+BN fusion ignores "
                            f"the SAT scale (use ApplyScaling=0 on Convs)")
        gamma, beta, mu, var = (numpy.asarray(asnumpy(a), numpy.float64) for a in bn.arrays())
        f = numpy.where(var > 1e-12, gamma / numpy.sqrt(float(bn.epsilon) + var), 0.0)
        self.conv_layer(cell, R_out, a_out, f, beta, mu, False, absorbed=bn)

    def conv_own_qact(self, cell):
        """Conv → (Linear or ReLU) → its own activation quantizer: the Conv+BN rule with f = 1,
        β = μ = 0 (no BatchNorm scaling; the Conv's bias enters B as in the Fc rule) and, as for
        an Fc, SAT's scale adjustment s folded in (ApplyScaling=1 is SAT's advice for layers
        without BatchNorm). The quantizer's clip at 0 is the ReLU."""
        R_out, a_out = self.act_codes(cell, cell.qact)
        act = cell.activation
        # a plain ReLU declares no clipping of its own (``fused_relu_clipping`` 0); SAT's clip
        # at 0 then is the ReLU
        if not (act is None or act.is_identity or act.fused_relu_clipping == 0):
            raise N2D2Error(f"[{cell.name}] has ActivationFunction={act.type_name}: the QAT fusion "
                            f"of a Conv with its own QAct needs a Linear or plain Rectifier "
                            f"activation (no LeakSlope, no Clipping) before the quantizer")
        O = cell.nb_outputs
        ones, zeros = numpy.ones(O), numpy.zeros(O)
        self.conv_layer(cell, R_out, a_out, ones, zeros, zeros, cell.qweight.apply_scaling)

    def conv_layer(self, cell, R_out, a_out, f, beta, mu, scaled, absorbed=None):
        """The fused IntegerConv of ``cell`` (docs/FUSION.md): per output channel slope f,
        shift β, mean μ (a BatchNorm's, or 1, 0, 0); ``scaled``: fold SAT's weight scale s
        (never with a BatchNorm)."""
        self.single_parent(cell)
        if min(cell.hw(cell.padding_dims)) < 0:
            raise N2D2Error(f"[{cell.name}] negative padding is not supported by the integer engine")
        q, wq = self.sat_weights(cell)      # runs the quantizer: s is this forward's
        s = float(q.scaling[0]) if scaled else 1.0
        src = self.parent_node(cell)
        R_in, a_in = float(src.R), float(src.alpha)
        R_w = int(q.range)
        wsf, corr = self.wsf(R_w), 1.0
        if q.quant_mode == "Default" and wsf == 7:        # the 4-bit Default hack (pitfall 8)
            wsf = 15
            if self.compat:
                corr, R_in = 31.0 / 15.0, 31.0
        rintf_w = self.options.w_mode == "RINTF"
        sat_s = s if rintf_w else 1.0     # NONE: w_q/s stays in W, s goes into D (as for an Fc)
        sgn = numpy.where(f < 0, -1.0, 1.0)
        b = numpy.zeros_like(f) if cell.bias is None else asnumpy(cell.bias.data).astype(numpy.float64)
        W = sgn[:, None, None, None] * self.round_w(wq * wsf * sat_s)
        live = f != 0
        fs = numpy.where(live, f, 1.0)
        wsf_s = wsf * sat_s
        S = numpy.where(live, sgn * (a_in / R_in) * (R_out / a_out) * fs / wsf_s * corr, 0.0)
        B = numpy.where(live, sgn * ((beta + (b - mu) * fs) / fs) * (R_in / a_in) * wsf_s / corr,
                        0.0)
        C = numpy.where(live, sgn * (a_out * R_in) / (fs * a_in) * wsf_s / corr, 0.0)
        S, B, C = self.round_constants(S, B, C)
        D_w = 1.0 if rintf_w else float(weight_denominator(q)) * s
        W_int = to_integers(cell, W.astype(F32), D_w)
        lo, hi = self.saturation(R_out, R_w)
        fan = numpy.abs(W_int).reshape(len(W_int), -1).sum(axis=1).max()
        engine.check_exact(cell.name, W_int, src.max_code, fan)
        bound = int(src.max_code) * int(fan)
        rescaling = self.rescaling(cell, D_w * src.den, B, C, S, lo, hi, bound)
        node = engine.IntegerConv(cell.name, [src.name], cell.out_shape, R_out, a_out, W_int,
                                  cell.stride_hw, cell.hw(cell.padding_dims),
                                  cell.hw(cell.dilation_dims), cell.groups[0], rescaling,
                                  W_fused=W.astype(F32))
        node.max_code = hi
        node.source = cell.name if absorbed is None else absorbed.name
        node.weight_range = R_w
        self.add(cell, node, absorbed=absorbed)
        self.constants[cell.name] = {"W": W.astype(F32), "S": S, "B": B, "C": C, "wsf": wsf,
                                     "corr": corr, "sat_scaling": sat_s, "R_in": R_in,
                                     "alpha_in": a_in, "R_out": R_out, "alpha_out": a_out,
                                     "D": D_w * src.den}

    def rescaling(self, cell, D, B, C, S, lo, hi, acc_bound, fc=False):
        """The layer's rescaling: integers only in an integer mode (``IntegerRescaling``, Fc
        layers included); with --n2d2-compat N2D2's simulation (``ActivationRescaling``, whose
        Fc layers always rescale in floating point)."""
        if self.options.integer:
            return IntegerRescaling(cell.name, D, B, C, S, self.options.act_scaling_mode, lo, hi,
                                    acc_bound)
        mode = "Floating-point" if fc else self.options.act_scaling_mode
        try:
            return ActivationRescaling(D, B, C, S, mode, lo, hi, clip_in_shift=not self.compat)
        except N2D2Error as exc:        # N2D2's shifts cannot write a scale above 1: name the cell
            raise N2D2Error(f"[{cell.name}] {exc.message}") from None

    def round_constants(self, S, B, C):
        S, B, C = F32(S), F32(B), F32(C)
        if self.options.c_mode == "RINTF":
            C = rintf(C)
        if self.options.b_mode == "RINTF":
            B = rintf(B)
        return S, B, C

    def batchnorm(self, cell):
        if cell.name not in self.alias:
            raise N2D2Error(f"[{cell.name}] BatchNorm whose parent is not a Conv: cannot fuse "
                            f"(N2D2 fuses a BatchNorm only into its Conv parent)")

    # -- Fc ------------------------------------------------------------------------------------
    def fc(self, cell):
        self.single_parent(cell)
        self.check_linear(cell)
        if cell.qact is not None:
            R_out, a_out = self.act_codes(cell, cell.qact)
        q, wq = self.sat_weights(cell)
        src = self.parent_node(cell)
        R_in, a_in = float(src.R), float(src.alpha)
        R_w = int(q.range)
        s = float(q.scaling[0]) if q.apply_scaling else 1.0
        rintf_w = self.options.w_mode == "RINTF"
        wsf = self.wsf(R_w)
        sat_s = s if rintf_w else 1.0
        scale_in = R_in / a_in
        W = self.round_w(wq * wsf * sat_s)
        has_q = cell.qact is not None
        # an Fc without QAct inside the network (N2D2's LeNet: fc1 -> Dropout -> fc2) outputs
        # signed codes round(t·R_in) in both modes, as N2D2 does: the next layer reads them
        # with (R_in, α = 1); only the last layer may output exact logits
        middle = not has_q and self.feeds_layers(cell.name)
        if has_q:
            out = R_out / a_out
        else:
            R_out, a_out, out = None, None, R_in       # as N2D2 codes it
        S = (out / scale_in) / (sat_s * wsf)
        C = max(a_out * scale_in * wsf * sat_s, 0.0) if has_q else None
        B = None if cell.bias is None else \
            asnumpy(cell.bias.data).astype(numpy.float64) * scale_in * wsf * sat_s
        O = W.shape[0]
        S = numpy.full(O, S)
        C = None if C is None else numpy.full(O, C)
        S, B, C = self._fc_round(S, B, C)
        D_w = 1.0 if rintf_w else weight_denominator(q) * s
        W_int = to_integers(cell, W.astype(F32), D_w)
        fan = numpy.abs(W_int).sum(axis=1).max()
        engine.check_exact(cell.name, W_int, src.max_code, fan)
        bound = int(src.max_code) * int(fan)
        if has_q:
            lo, hi = self.saturation(R_out, R_w, signed=True)
            rescaling = self.rescaling(cell, D_w * src.den, B, C, S, lo, hi, bound, fc=True)
        elif self.compat or middle:
            lo, hi = -(1 << 31), (1 << 31) - 1          # Linear, 32 bits, signed (N2D2)
            rescaling = self.rescaling(cell, D_w * src.den, B, None, S, lo, hi, bound, fc=True)
            if middle:
                R_out, a_out = int(R_in), 1.0
        else:
            lo, hi = None, None         # exact logits t (module docstring, 2); acc + round(B·D)
            rescaling = self.rescaling(cell, D_w * src.den, B, None, None, lo, hi, bound, fc=True)
        node = engine.IntegerFc(cell.name, [src.name], cell.out_shape, R_out or 0,
                                a_out or 1.0, W_int, rescaling, W_fused=W.astype(F32))
        node.max_code, node.source = (-lo if middle else hi), cell.name
        node.logits = not has_q and not middle
        node.weight_range = R_w
        self.add(cell, node)
        self.constants[cell.name] = {"W": W.astype(F32), "S": S, "B": B, "C": C, "wsf": wsf,
                                     "sat_scaling": sat_s, "R_in": R_in, "alpha_in": a_in,
                                     "R_out": R_out, "alpha_out": a_out, "D": D_w * src.den}

    def _fc_round(self, S, B, C):
        S = F32(S)
        B = None if B is None else F32(B)
        C = None if C is None else F32(C)
        if C is not None and self.options.c_mode == "RINTF":
            C = rintf(C)
        if B is not None and self.options.b_mode == "RINTF":
            B = rintf(B)
        return S, B, C

    # -- ElemWise ------------------------------------------------------------------------------
    def elemwise(self, cell):
        n = len(cell.parents)
        if cell.operation != "Sum" or any(w != 1.0 for w in cell.coefficients(cell.weights, 1.0)) \
                or any(s != 0.0 for s in cell.coefficients(cell.shifts, 0.0)):
            raise N2D2Error(f"[{cell.name}] ElemWise: only Operation=Sum with unit Weights and no "
                            f"Shifts can be fused")
        if cell.qact is None:
            raise N2D2Error(f"[{cell.name}] ElemWise without a SAT activation quantizer: its "
                            f"output would not be activation codes, cannot fuse")
        R_out, a_out = self.act_codes(cell, cell.qact)
        self.check_linear(cell)
        srcs = [self.parent_node(cell, i) for i in range(n)]
        if any(s.den != 1 for s in srcs):
            raise N2D2Error(f"[{cell.name}] ElemWise fed by an Average pool cannot be fused")
        # reference = N2D2's "parent 0": the operand whose producer also feeds other cells
        ref = next((i for i, p in enumerate(cell.parents) if len(self.children[p]) > 1), 0)
        unit = [float(s.alpha) / float(s.R) for s in srcs]
        from .scaling import round_half_away
        mult = [int(round_half_away(numpy, numpy.float64(u / unit[ref] * 2 ** ELEMWISE_BITS)))
                for u in unit]
        R_ref, a_ref = float(srcs[ref].R), float(srcs[ref].alpha)
        O = cell.out_shape[0]
        S = F32(numpy.full(O, (R_out / a_out) / (R_ref / a_ref)))
        C = F32(numpy.full(O, a_out * R_ref / a_ref))
        lo, hi = self.saturation(R_out, 255)
        bound = sum(int(s.max_code) * abs(m) for s, m in zip(srcs, mult))
        rescaling = self.rescaling(cell, 2 ** ELEMWISE_BITS, None, C, S, lo, hi, bound)
        node = engine.IntegerElemWise(cell.name, [s.name for s in srcs], cell.out_shape, R_out,
                                      a_out, mult, rescaling)
        node.max_code, node.source = hi, cell.name
        self.add(cell, node)
        self.constants[cell.name] = {"S": S, "C": C, "multipliers": mult, "reference": ref}

    # -- kept and removed cells ---------------------------------------------------------------------
    def pool(self, cell, pads=None, dilation=(1, 1)):
        """N2D2's pool (symmetric ``PaddingDims``); a cell with ONNX geometry passes its
        ``pads`` (top, bottom, left, right) and ``dilation``, and its ``out_shape`` holds the
        ceil mode."""
        self.single_parent(cell)
        if cell.mask is not None:
            raise N2D2Error(f"[{cell.name}] Pool with a non one-to-one Mapping cannot be fused")
        if cell.qact is not None or not (cell.activation is None or cell.activation.is_identity):
            raise N2D2Error(f"[{cell.name}] Pool with an activation cannot be fused")
        src = self.parent_node(cell)
        if src.den != 1:
            raise N2D2Error(f"[{cell.name}] Pool fed by an Average pool cannot be fused")
        node = engine.IntegerPool(cell.name, [src.name], cell.out_shape, src.R, src.alpha,
                                  cell.pooling, cell.hw(cell.pool_dims), cell.hw(cell.stride_dims),
                                  cell.hw(cell.padding_dims), src.max_code, pads, dilation)
        empty = node.empty_windows(src.out_shape) if cell.pooling == "Max" else 0
        if empty:
            raise N2D2Error(f"[{cell.name}] Pool: the windows of {empty} output positions read "
                            f"only padding (a max over no input); reduce its pads or dilations")
        node.source = cell.name
        self.add(cell, node)

    def identity(self, cell):
        self.single_parent(cell)
        self.alias[cell.name] = self.alias[cell.parents[0]]

    def move(self, cell):
        """A cell that only moves codes (no arithmetic) runs its own forward on them."""
        self.single_parent(cell)
        if cell.qact is not None or not (cell.activation is None or cell.activation.is_identity):
            raise N2D2Error(f"[{cell.name}] {cell.type_name} with an activation or a quantizer "
                            f"cannot be fused")
        node = engine.MoveNode(cell.name, self.parent_node(cell), cell)
        node.source = cell.name
        self.add(cell, node)

    def softmax(self, cell):
        self.single_parent(cell)
        src = self.parent_node(cell)
        node = engine.SoftmaxNode(cell.name, [src.name], cell.out_shape, src.R, src.alpha)
        node.source = cell.name
        self.add(cell, node)

    def add(self, cell, node, absorbed=None):
        """``node`` now produces ``cell``'s output, and ``absorbed``'s (the BatchNorm a Conv
        took in: N2D2's removeCell)."""
        self.nodes[node.name] = node
        self.alias[cell.name] = node.name
        if absorbed is not None:
            self.alias[absorbed.name] = node.name
