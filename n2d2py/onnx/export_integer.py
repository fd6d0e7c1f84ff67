"""FusedNet -> integer ONNX: ``export_integer_onnx(fused, path)`` (``--qat-sat --export ONNX``).

The graph computes what ``qat/engine.py`` computes, operation for operation, so its integer codes
equal the engine's exactly (checked with onnx's ReferenceEvaluator and onnxruntime). Input
``env``: uint8 codes x·255 (N, C, H, W) (``FusedNet.input_codes``; int8 for a PTQ network with
signed inputs). Each fused node's output is
the tensor named after the node: uint8 codes when its saturation range lies in [0, 255], int8 in
[−128, 127] (N2D2-compatible signed FC saturation), else int32; double for logits (last FC
without QAct) and Softmax probabilities.

* Conv / Fc: ``ConvInteger`` / ``MatMulInteger`` (int32 accumulators). ONNX takes 8-bit weights
  only, and the fused weights can be wider (``-wt-round-mode NONE``: codes up to ±R_w, e.g. ±255),
  so the integer weights are split into base-128 int8 digits ``W = Σ_j 128^j·d_j`` (low digits in
  [0, 127], the top one signed) and the partial accumulators are combined in int64:
  ``acc = Σ_j 128^j·ConvInteger(x, d_j)``. An operand wider than 8 bits (the window sums of an
  Average pool) is split the same way into uint8 digits ``x = Σ_i 256^i·x_i``. Every partial
  ConvInteger is proved to fit int32 (max|x_i|·max_o Σ|d_j[o]| < 2^31), else the export fails.
* Rescale (``qat/scaling.py``), per output channel, constants (1, O, 1, 1):
  Floating-point: ``t = double(acc) / D + B``, ``z = min(max(t, min(C, 0)), max(C, 0))``,
  ``y = round_half_away(z·S)``. ONNX ``Round`` is half to even, so the engine's rounding
  ``trunc(x) + copysign(|x − trunc(x)| ≥ 0.5, x)`` is written ``Sign(x)·(f + (|x| − f ≥ 0.5))``
  with ``f = Floor(|x|)`` (the same exact operations in double). Fixed-point16/32:
  ``z = llround(clip(t))`` in int64 (or ``acc + B`` clipped in int64 when D = 1 and B, C are
  integers), ``y = (z·S_fix + 2^(n−1)) >> n`` (n = 16 for ``--qat-sat``, per layer after PTQ);
  Single-shift ``y = (z + 2^(e−1)) >> e`` per channel.
  ``BitShift`` takes unsigned types only, so the arithmetic shift (a floor) is
  ``(v − Mod(v, 2^e)) / 2^e`` in int64 (Mod with fmod=0 has the divisor's sign, so the division
  is exact). Then ``Clip`` to the saturation range and ``Cast`` to the code type. The integer
  modes without ``--n2d2-compat`` (``qat.scaling.IntegerForm``): ``x = acc + bias``, the clip,
  ``z·M + 2^(n−1)``, ``z + 2^(e−1)`` or ``z·(1 + 2^a) + 2^(b−1)``, the same floor shift; their
  logits (a last Fc without quantizer) are int64 ``acc + bias``.
* Pool: Max → ``Pad`` with the lowest code (the node's pads, asymmetric or not, and the ceil-mode
  overhang: padding never wins a max) then ``MaxPool`` (dilations) on the codes; Average → the
  window **sum** (as the engine; the consumer's weight denominator holds the 1/K) as a depthwise
  ``ConvInteger`` with a ones kernel.
* ElemWise: ``Σ int64(code_i)·M_i`` (Q16 multipliers), then the node's rescale.
* Softmax: ``Softmax`` (axis 1) on the double codes: float, equal to the engine's to an ulp.
* Moved codes (Padding, Reshape, Transpose, ChannelShuffle): the cell's own ONNX nodes
  (``Cell.export_onnx``) on the code tensor, whose type and range they keep.

Each fused node names the rule below that exports it (``Node.export_onnx``).

Graph outputs: the nodes nothing reads (the target's), or every node with ``all_outputs=True``.
"""
import numpy
from onnx import TensorProto, helper

from ..errors import OnnxError
from .export import Exporter

__all__ = ["export_integer_onnx", "weight_digits"]

INT32_LIMIT = 2 ** 31
CODE_TYPES = ((0, 255, TensorProto.UINT8, numpy.uint8), (-128, 127, TensorProto.INT8, numpy.int8))


def code_type(lo, hi):
    """(ONNX type, numpy dtype) of codes in [lo, hi]: uint8, int8, else int32."""
    for a, b, onnx_type, dtype in CODE_TYPES:
        if a <= lo and hi <= b:
            return onnx_type, dtype
    return TensorProto.INT32, numpy.int32


def weight_digits(W):
    """Integer weights -> [(128^j, int8 digit d_j)] with W = Σ 128^j·d_j (zero digits dropped)."""
    rest = numpy.asarray(W, numpy.int64)
    digits, factor = [], 1
    while rest.size and (rest.min() < -128 or rest.max() > 127):
        low = numpy.mod(rest, 128)
        digits.append((factor, low.astype(numpy.int8)))
        rest, factor = (rest - low) // 128, factor * 128
    digits.append((factor, rest.astype(numpy.int8)))
    return [(f, d) for f, d in digits if d.any()] or [(1, digits[-1][1])]


class Tensor:
    """An ONNX tensor of the graph: name, value range [lo, hi] (None for floats), ONNX type."""

    def __init__(self, name, lo, hi, onnx_type):
        self.name, self.lo, self.hi, self.type = name, lo, hi, onnx_type


class IntegerExporter(Exporter):
    def __init__(self, fused):
        super().__init__(fused, qdq=False)
        self.fused = fused

    def fail(self, node, message):
        return OnnxError(f"cannot export fused node [{node.name}] ({node.type_name}) as integer "
                         f"ONNX: {message}")

    def cast(self, t, onnx_type, base):
        return t.name if t.type == onnx_type else self.node("Cast", [t.name], base, to=onnx_type)

    def channel(self, base, values, dtype):
        return self.const(base, numpy.asarray(values, dtype).reshape(1, -1, 1, 1), dtype)

    # ------------------------------------------------------------ walk
    def run(self, path, all_outputs=False):
        fused = self.fused
        lo = int(getattr(fused.input, "min_code", 0))   # PTQ: signed inputs are int8 codes
        env_type, _ = code_type(lo, int(fused.input.max_code))
        env = Tensor("env", lo, int(fused.input.max_code), env_type)
        tensors = self.export_all(fused.nodes, env, lambda node, y: self.rename(y, node.name))
        c, h, w = fused.input_shape
        inputs = [helper.make_tensor_value_info("env", env_type, ["N", c, h, w])]
        read = {p for node in fused.nodes.values() for p in node.parents}
        outputs = [helper.make_tensor_value_info(n, tensors[n].type,
                                                 ["N", *[int(d) for d in node.out_shape]])
                   for n, node in fused.nodes.items() if all_outputs or n not in read]
        return self.save("n2d2py_integer", inputs, outputs, path)

    def rename(self, t, name):
        """The node's output tensor takes the node's name (an Identity when it is not the last
        ONNX node's output, e.g. a graph input passed through)."""
        last = self.nodes[-1] if self.nodes else None
        if last is None or last.output[0] != t.name or t.name == "env":
            out = self.node("Identity", [t.name], name, exact=True)
            return Tensor(out, t.lo, t.hi, t.type)
        self.names.discard(t.name)
        last.output[0], last.name = name, name
        self.names.add(name)
        return Tensor(name, t.lo, t.hi, t.type)

    # ------------------------------------------------------------ integer products
    def operand_digits(self, node, x):
        """[(256^i, 8-bit tensor name, max |x_i|)] with x = Σ 256^i·x_i."""
        onnx_type, _ = code_type(x.lo, x.hi)
        if onnx_type != TensorProto.INT32:
            return [(1, self.cast(x, onnx_type, f"{node.name}/x8"), max(abs(x.lo), abs(x.hi)))]
        if x.lo < 0:
            raise self.fail(node, f"signed operand codes in [{x.lo}, {x.hi}] wider than 8 bits")
        wide = self.cast(x, TensorProto.INT64, f"{node.name}/x64")
        pieces, factor, n = [], 1, 0
        while factor <= x.hi:
            v = wide if factor == 1 else self.node(
                "Div", [wide, self.const(f"{node.name}/x_radix{n}", factor, numpy.int64)],
                f"{node.name}/x_shift{n}")
            if factor * 256 <= x.hi:
                v = self.node("Mod", [v, self.const(f"{node.name}/x_256_{n}", 256, numpy.int64)],
                              f"{node.name}/x_digit{n}")
            name = self.node("Cast", [v], f"{node.name}/x_u8_{n}", to=TensorProto.UINT8)
            pieces.append((factor, name, min(255, x.hi // factor)))
            factor, n = factor * 256, n + 1
        return pieces

    def integer_product(self, node, x, W, op, reshape_w, **attrs):
        """acc = x ⊛ W (ConvInteger or MatMulInteger over digits) as int32 or int64 tensor."""
        terms = []
        for fx, xname, xmax in self.operand_digits(node, x):
            for fw, d in weight_digits(W):
                fan = numpy.abs(d.astype(numpy.int64)).reshape(len(d), -1).sum(axis=1).max()
                if xmax * int(fan) >= INT32_LIMIT:
                    raise self.fail(node, f"a partial accumulator bound {xmax * int(fan)} does "
                                          f"not fit int32")
                k = len(terms)
                w = self.const(f"{node.name}/W_int8_{k}", reshape_w(d), numpy.int8)
                y = self.node(op, [xname, w], f"{node.name}/acc{k}", **attrs)
                terms.append((fx * fw, y))
        if len(terms) == 1 and terms[0][0] == 1:
            return Tensor(terms[0][1], None, None, TensorProto.INT32)
        acc = None
        for k, (factor, y) in enumerate(terms):
            y = self.node("Cast", [y], f"{node.name}/acc{k}_64", to=TensorProto.INT64)
            if factor != 1:
                y = self.node("Mul", [y, self.const(f"{node.name}/radix{k}", factor, numpy.int64)],
                              f"{node.name}/acc{k}_scaled")
            acc = y if acc is None else self.node("Add", [acc, y], f"{node.name}/acc_sum{k}")
        return Tensor(acc, None, None, TensorProto.INT64)

    # ------------------------------------------------------------ nodes
    def conv(self, node, xs):
        (ph, pw), kernel = node.padding, list(node.W_int.shape[2:])
        acc = self.integer_product(node, xs[0], node.W_int, "ConvInteger", lambda d: d,
                                   kernel_shape=kernel, strides=list(node.stride),
                                   pads=[ph, pw, ph, pw], dilations=list(node.dilation),
                                   group=int(node.groups))
        return self.rescale(node, acc)

    def fc(self, node, xs):
        flat = self.node("Flatten", [xs[0].name], f"{node.name}/flatten", axis=1)
        x = Tensor(flat, xs[0].lo, xs[0].hi, xs[0].type)
        acc = self.integer_product(node, x, node.W_int, "MatMulInteger", lambda d: d.T)
        shape = self.const(f"{node.name}/shape", [0, len(node.W_int), 1, 1], numpy.int64)
        acc = Tensor(self.node("Reshape", [acc.name, shape], f"{node.name}/acc_nchw"),
                     None, None, acc.type)
        return self.rescale(node, acc)

    def pool(self, node, xs):
        x, (kh, kw), stride = xs[0], node.kernel, list(node.stride)
        top, bottom, left, right = node.pads
        if node.pooling == "Max":
            # the node's pads and ceil-mode overhang as an explicit Pad with the lowest code
            # (it never wins: every window holds an input), then MaxPool without padding
            (_, H, W), (_, OH, OW) = self.in_shape(node), node.out_shape
            (dh, dw), (sh, sw) = node.dilation, node.stride
            bottom = (OH - 1) * sh + (kh - 1) * dh + 1 - H - top
            right = (OW - 1) * sw + (kw - 1) * dw + 1 - W - left
            wide = x.type not in (TensorProto.UINT8, TensorProto.INT8)   # MaxPool: 8-bit or float
            name = self.cast(x, TensorProto.DOUBLE, f"{node.name}/double") if wide else x.name
            dtype = numpy.float64 if wide else \
                (numpy.uint8 if x.type == TensorProto.UINT8 else numpy.int8)
            pads = [0, 0, top, left, 0, 0, max(bottom, 0), max(right, 0)]
            if any(pads):
                name = self.node("Pad", [name, self.const(f"{node.name}/pads", pads, numpy.int64),
                                         self.const(f"{node.name}/lowest", x.lo, dtype)],
                                 f"{node.name}/pad", mode="constant")
            y = self.node("MaxPool", [name], f"{node.name}/maxpool", kernel_shape=[kh, kw],
                          strides=stride, dilations=list(node.dilation))
            if wide:
                y = self.node("Cast", [y], f"{node.name}/codes", to=x.type)
            return Tensor(y, x.lo, x.hi, x.type)
        C = node.out_shape[0]
        acc = self.integer_product(node, x, numpy.ones((C, 1, kh, kw), numpy.int64),
                                   "ConvInteger", lambda d: d, kernel_shape=[kh, kw],
                                   strides=stride, pads=[top, left, bottom, right],
                                   dilations=list(node.dilation), group=C)
        K = kh * kw
        return Tensor(acc.name, K * x.lo, K * x.hi, acc.type)

    def in_shape(self, node):
        """(C, H, W) of ``node``'s first input."""
        parent = node.parents[0]
        return self.fused.input_shape if parent == "env" else self.fused.nodes[parent].out_shape

    def elemwise(self, node, xs):
        acc = None
        for k, (x, m) in enumerate(zip(xs, node.multipliers)):
            y = self.cast(x, TensorProto.INT64, f"{node.name}/x{k}_64")
            y = self.node("Mul", [y, self.const(f"{node.name}/m{k}", m, numpy.int64)],
                          f"{node.name}/term{k}")
            acc = y if acc is None else self.node("Add", [acc, y], f"{node.name}/sum{k}")
        return self.rescale(node, Tensor(acc, None, None, TensorProto.INT64))

    def softmax(self, node, xs):
        x = self.cast(xs[0], TensorProto.DOUBLE, f"{node.name}/double")
        return Tensor(self.node("Softmax", [x], f"{node.name}/softmax", axis=1), None, None,
                      TensorProto.DOUBLE)

    def move(self, node, xs):
        x, = xs
        return Tensor(node.cell.export_onnx(self, [x.name]), x.lo, x.hi, x.type)

    # ------------------------------------------------------------ rescaling (qat/scaling.py)
    def rescale(self, node, acc):
        r, n = node.rescaling, node.name
        form = r.integer_form()
        if form is not None:
            return self.integer_rescale(n, form, acc)
        if r.S is None:                       # exact logits t (float64)
            return Tensor(self.pre_activation(n, r, acc), None, None, TensorProto.DOUBLE)
        if r.mode == "Floating-point":
            z = self.clip_c(n, r, self.pre_activation(n, r, acc), numpy.float64)
            y = self.node("Mul", [z, self.channel(f"{n}/S", r.S.astype(numpy.float64),
                                                  numpy.float64)], f"{n}/scaled")
            y, dtype = self.round_half_away(n, y), numpy.float64
        else:
            z = self.integer_input(n, r, acc)
            if r.mult is not None:
                y = self.node("Mul", [z, self.channel(f"{n}/S_fix", r.mult, numpy.int64)],
                              f"{n}/scaled")
                bits = r.fractional_bits
                if bits > 0:
                    y = self.node("Add", [y, self.const(f"{n}/half", 1 << (bits - 1),
                                                        numpy.int64)], f"{n}/rounded")
                y = self.shift_right(n, y, numpy.full(len(r.mult), bits))
            else:
                half = numpy.where(r.shift > 0,
                                   numpy.left_shift(1, numpy.maximum(r.shift - 1, 0)), 0)
                y = self.node("Add", [z, self.channel(f"{n}/half", half, numpy.int64)],
                              f"{n}/rounded")
                y = self.shift_right(n, y, r.shift)
            dtype = numpy.int64
        y = self.node("Clip", [y, self.const(f"{n}/lo", r.lo, dtype),
                               self.const(f"{n}/hi", r.hi, dtype)], f"{n}/saturated")
        onnx_type, _ = code_type(r.lo, r.hi)
        return Tensor(self.node("Cast", [y], f"{n}/codes", to=onnx_type), r.lo, r.hi, onnx_type)

    def integer_rescale(self, n, form, acc):
        """``qat.scaling.IntegerForm`` in int64: x = acc + bias, z = clip, the mode's multiply
        or shifts with the rounding term, an exact floor shift; logits stay int64."""
        x = self.node("Cast", [acc.name], f"{n}/x", to=TensorProto.INT64)
        if form.bias is not None:
            x = self.node("Add", [x, self.channel(f"{n}/bias", form.bias, numpy.int64)],
                          f"{n}/x_bias")
        if form.op == "logits":
            return Tensor(x, None, None, TensorProto.INT64)
        z = x
        if form.clip is not None:
            low, high = numpy.minimum(form.clip, 0), numpy.maximum(form.clip, 0)
            z = self.node("Max", [z, self.channel(f"{n}/clip_lo", low, numpy.int64)],
                          f"{n}/clip_lo")
            z = self.node("Min", [z, self.channel(f"{n}/clip_hi", high, numpy.int64)],
                          f"{n}/clipped")
        if form.op == "fixed":
            bits = form.fractional_bits
            y = self.node("Mul", [z, self.channel(f"{n}/M", form.mult, numpy.int64)],
                          f"{n}/scaled")
            shifts, half = numpy.full(form.channels, bits), (1 << (bits - 1)) if bits else 0
            half = numpy.full(form.channels, half)
        elif form.op == "single":
            y, shifts = z, form.shift
            half = numpy.where(shifts > 0, numpy.left_shift(1, numpy.maximum(shifts - 1, 0)), 0)
        else:
            y = self.node("Mul", [z, self.channel(f"{n}/one_plus_2^a",
                                                  1 + numpy.left_shift(1, form.shift_a),
                                                  numpy.int64)], f"{n}/doubled")
            shifts = form.shift_b
            half = numpy.where(shifts > 0, numpy.left_shift(1, numpy.maximum(shifts - 1, 0)), 0)
        y = self.node("Add", [y, self.channel(f"{n}/half", half, numpy.int64)], f"{n}/rounded")
        y = self.shift_right(n, y, shifts)
        y = self.node("Clip", [y, self.const(f"{n}/lo", form.lo, numpy.int64),
                               self.const(f"{n}/hi", form.hi, numpy.int64)], f"{n}/saturated")
        onnx_type, _ = code_type(form.lo, form.hi)
        return Tensor(self.node("Cast", [y], f"{n}/codes", to=onnx_type), form.lo, form.hi,
                      onnx_type)

    def pre_activation(self, n, r, acc):
        t = self.node("Cast", [acc.name], f"{n}/t", to=TensorProto.DOUBLE)
        if r.D != 1.0:
            t = self.node("Div", [t, self.const(f"{n}/D", r.D, numpy.float64)], f"{n}/t_den")
        if r.B is not None:
            t = self.node("Add", [t, self.channel(f"{n}/B", r.B.astype(numpy.float64),
                                                  numpy.float64)], f"{n}/t_bias")
        return t

    def clip_c(self, n, r, t, dtype):
        """min(max(t, min(C, 0)), max(C, 0)) per channel (N2D2's CPU clip, pitfall 10)."""
        if r.C is None:
            return t
        C = r.C.astype(numpy.float64)
        low, high = numpy.minimum(C, 0), numpy.maximum(C, 0)
        if dtype == numpy.int64:
            low, high = low.astype(numpy.int64), high.astype(numpy.int64)
        t = self.node("Max", [t, self.channel(f"{n}/clip_lo", low, dtype)], f"{n}/clip_lo")
        return self.node("Min", [t, self.channel(f"{n}/clip_hi", high, dtype)], f"{n}/clipped")

    def round_half_away(self, n, x):
        """Sign(x)·(f + (|x| − f ≥ 0.5)), f = Floor(|x|): the engine's trunc/copysign rounding."""
        a = self.node("Abs", [x], f"{n}/abs")
        f = self.node("Floor", [a], f"{n}/floor")
        frac = self.node("Sub", [a, f], f"{n}/frac")
        up = self.node("GreaterOrEqual", [frac, self.const(f"{n}/0.5", 0.5, numpy.float64)],
                       f"{n}/up")
        up = self.node("Cast", [up], f"{n}/up_double", to=TensorProto.DOUBLE)
        r = self.node("Add", [f, up], f"{n}/abs_rounded")
        return self.node("Mul", [self.node("Sign", [x], f"{n}/sign"), r], f"{n}/rounded")

    def integer_input(self, n, r, acc):
        """llround(clip(t, C)) as int64 (no clip for N2D2's CPU single-shift)."""
        clip = r.mode != "Single-shift" or r.clip_in_shift
        if r.integral:
            z = self.node("Cast", [acc.name], f"{n}/z", to=TensorProto.INT64)
            if r.B is not None:
                z = self.node("Add", [z, self.channel(f"{n}/B", r.B, numpy.int64)], f"{n}/z_bias")
            return self.clip_c(n, r, z, numpy.int64) if clip else z
        t = self.pre_activation(n, r, acc)
        t = self.clip_c(n, r, t, numpy.float64) if clip else t
        return self.node("Cast", [self.round_half_away(n, t)], f"{n}/z", to=TensorProto.INT64)

    def shift_right(self, n, v, shifts):
        """Arithmetic v >> e per channel, exactly: (v − Mod(v, 2^e)) / 2^e in int64."""
        p = self.channel(f"{n}/pow2", numpy.left_shift(1, numpy.asarray(shifts, numpy.int64)),
                         numpy.int64)
        rem = self.node("Mod", [v, p], f"{n}/rem")
        return self.node("Div", [self.node("Sub", [v, rem], f"{n}/floored"), p], f"{n}/shifted")


def export_integer_onnx(fused, path=None, all_outputs=False):
    """Write the fused integer network (``qat.fuse_qat``'s FusedNet) as an integer ONNX model at
    ``path`` (None: only return it). Input ``env``: uint8 codes (``FusedNet.input_codes``).
    ``all_outputs``: every fused node's output is a graph output (layer-by-layer checks)."""
    return IntegerExporter(fused).run(path, all_outputs)
