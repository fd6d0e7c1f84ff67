"""C99 export of a fused network (``--qat-sat --export C``): ``export_c(fused, folder)``.

``CProgram(fused, pack_weights)`` checks that the C code can compute what the integer engine
computes, then writes (``files()``) a self-contained program, static memory only:

* ``weights.h``: each layer's integer weights (int8/int16, or ``--pack-weights``: the weights'
  grid indices at their bit width, LSB first, decoded ``W = w0 + step·k`` in the kernels) and its
  rescaling constants at their widths: bias, clip (int16/int32), multiplier (int16 for
  Fixed-point16, int32 for Fixed-point32), shifts (uint8);
* ``network.c``: one kernel per fused node, activations in typed arenas (uint8/int8 codes in one
  byte arena, 16- and 32-bit values in theirs: a buffer is reused once its last reader ran),
  int32 accumulators, the rescaling of ``scaling.IntegerForm`` operation for operation;
  ``network_run()`` returns the index of the largest output;
* ``network.h`` (API and the flash/RAM figures), ``main.c`` (scores a stimuli file, prints
  each input's class and the accuracy), ``Makefile`` (``make``, ``make run``, ``make check``).

In the integer modes (Fixed-point16/32, Single-shift, Double-shift) the code has no floating
point: ``gcc -mgeneral-regs-only`` compiles it, and for a Cortex-M0 it links no soft-float
helper. Fixed-point32's product z·M is the only int64 operation (none in the other modes).
``Floating-point`` keeps the engine's double arithmetic (its header says so). A network the
C code cannot express is refused before any file is written, naming the cell: a layer that
rescales in floating point in an integer mode (``--n2d2-compat``), a node without a C kernel,
a Softmax inside the network, values that would not fit the C integer types.

With ``-DNETWORK_TRACE`` the program also writes every layer's output codes (``main.c``'s
second argument): the tests compare them with the engine's, layer by layer.

Stimuli (``write_stimuli``): per input a little-endian uint16 label (65535: none) then its
C·H·W codes (uint8, C, H, W order), as ``main.c`` reads them.
"""
import math
import os

import numpy

from ..errors import N2D2Error
from ..io import names
from .scaling import INTEGER_MODES

__all__ = ["CProgram", "export_c", "export_c_command", "test_stimuli", "write_stimuli",
           "read_run_output", "run_output", "weight_memory", "weight_memory_line", "c_int_type",
           "NO_LABEL"]

INT32_MAX = 2 ** 31 - 1
NO_LABEL = 65535
#: what the export appends to a layer's identifier (``L_conv1_W``, ``L_conv1_run``...)
C_SUFFIXES = ("_W", "_B", "_C", "_E", "_A", "_M", "_S", "_I", "_out", "_run", "_rescale")
#: integer C types by range, narrowest first: (type, lo, hi, bytes, NumPy dtype)
C_TYPES = [("uint8_t", 0, 255, 1, "u1"), ("int8_t", -128, 127, 1, "i1"),
           ("uint16_t", 0, 65535, 2, "u2"), ("int16_t", -32768, 32767, 2, "i2"),
           ("int32_t", -2 ** 31, INT32_MAX, 4, "i4")]
DOUBLE = ("double", None, None, 8, "f8")


def c_type(lo, hi):
    """The narrowest C integer type holding [lo, hi] (a ``C_TYPES`` row)."""
    for row in C_TYPES:
        if row[1] <= lo and hi <= row[2]:
            return row
    raise N2D2Error(f"values from {lo} to {hi} do not fit a 32-bit integer")


def c_int_type(values):
    """The narrowest signed C type of int8/int16/int32 holding ``values``."""
    m = int(numpy.abs(values).max()) if numpy.size(values) else 0
    return "int8_t" if m <= 127 else ("int16_t" if m <= 32767 else "int32_t")


C_BITS = {"int8_t": 8, "int16_t": 16, "int32_t": 32}


def write_stimuli(path, codes, labels=None):
    """``main.c``'s stimuli file: per input a uint16 label (LE; ``NO_LABEL`` without labels),
    then its codes as bytes (uint8, or int8 two's complement for signed inputs)."""
    codes = numpy.asarray(codes)
    n = len(codes)
    flat = codes.reshape(n, -1)
    if flat.size and (flat.min() < -128 or flat.max() > 255):
        raise N2D2Error("stimuli codes must lie in 0..255 (or -128..127)")
    labels = numpy.full(n, NO_LABEL) if labels is None else numpy.asarray(labels).reshape(-1)
    if len(labels) != n or (labels.size and (labels.min() < 0 or labels.max() > NO_LABEL)):
        raise N2D2Error(f"stimuli labels must be {n} integers in 0..{NO_LABEL - 1}")
    records = numpy.empty((n, 2 + flat.shape[1]), numpy.uint8)
    records[:, 0] = labels & 0xFF
    records[:, 1] = labels >> 8
    records[:, 2:] = flat.astype(numpy.int64) & 0xFF
    records.tofile(os.fspath(path))


def accuracy_line(correct, labelled):
    """``main.c``'s last line, in the same integer arithmetic (percent with two decimals)."""
    if not labelled:
        return "accuracy: no labelled stimuli"
    hundredths = (correct * 10000 + labelled // 2) // labelled
    return f"accuracy: {hundredths // 100}.{hundredths % 100:02d} % ({correct}/{labelled})"


def run_output(classes, labels=None):
    """What ``main.c`` prints for these classes: one ``index class label`` line per input
    (label -1: none), then the accuracy line."""
    classes = numpy.asarray(classes).reshape(-1)
    labels = numpy.full(len(classes), -1) if labels is None else numpy.asarray(labels).reshape(-1)
    lines = [f"{k} {int(c)} {int(l)}" for k, (c, l) in enumerate(zip(classes, labels))]
    known = labels >= 0
    lines.append(accuracy_line(int((classes[known] == labels[known]).sum()), int(known.sum())))
    return "\n".join(lines) + "\n"


def read_run_output(text):
    """(classes, labels, accuracy line) from ``main.c``'s output."""
    rows = [line.split() for line in text.splitlines() if line and line[0].isdigit()]
    classes = numpy.array([int(r[1]) for r in rows], numpy.int64)
    labels = numpy.array([int(r[2]) for r in rows], numpy.int64)
    last = [line for line in text.splitlines() if line.startswith("accuracy")]
    return classes, labels, (last[-1] if last else None)


# -- weight memory (the report's comparison) --------------------------------------------------
def weight_memory(fused):
    """Weight memory of the unpacked C export, per fused Conv/Fc node (build order): dicts with
    ``name``, ``weights`` (the integer array's size: the C export stores every connected
    weight), ``ctype`` and ``c_bits`` (the array's integer type, the smallest of
    int8/int16/int32 holding max|W_int|), ``c_bytes`` = weights · c_bits / 8, and
    ``range_bits`` = ceil(log2(R_w + 1)), the bits ``n2d2py --report`` (``stats.cost_table``)
    gives a SAT weight quantizer of Range R_w, with ``range_bytes`` = weights · range_bits / 8.

    The two differ by design: the report counts the information of the quantizer's R_w + 1
    levels (a 4-bit layer is 0.5 byte per weight), unpacked C arrays use a whole C integer type
    per weight (int8_t), and under ``-wt-round-mode NONE`` a Default-mode R_w = 255 grid lowers to
    the odd integers −255..255 (W_int = w_q·R_w), which need int16_t. ``--pack-weights`` stores
    the grid indices at their bits instead (``CProgram.memory``): the report's figure."""
    from ..stats.cost import range_bits
    rows = []
    for node in fused.nodes.values():
        if node.W_int is None:
            continue
        ctype = c_int_type(node.W_int)
        n, bits = int(node.W_int.size), C_BITS[ctype]
        R = getattr(node, "weight_range", None)
        rbits = range_bits(R) if R else None
        rows.append({"name": node.name, "weights": n, "ctype": ctype, "c_bits": bits,
                     "c_bytes": n * bits / 8, "range_bits": rbits,
                     "range_bytes": None if rbits is None else n * rbits / 8})
    return rows


def weight_memory_line(fused):
    """One line for the user: the C arrays' weight bytes, and the report's at the Range bits."""
    rows = weight_memory(fused)
    c_bytes = sum(r["c_bytes"] for r in rows)
    per_layer = ", ".join(f"{r['name']} {r['weights']}x{r['ctype']}" for r in rows)
    line = f"C export weight memory: {c_bytes:.0f} bytes ({per_layer})"
    if all(r["range_bytes"] is not None for r in rows):
        r_bytes = sum(r["range_bytes"] for r in rows)
        bits = ", ".join(f"{r['name']} {r['range_bits']}" for r in rows)
        line += f"; at the quantizers' Range bits ({bits}, as n2d2py --report): {r_bytes:g} bytes"
    return line


# -- packed weights ---------------------------------------------------------------------------
class PackedWeights:
    """A layer's integer weights as grid indices k (W = w0 + step·k) of ``bits`` bits each,
    packed LSB first; fields of 3, 5, 6 or 7 bits may straddle two bytes (one guard byte
    ends such arrays). Lossless for any integer weights."""

    def __init__(self, W_int):
        values = numpy.asarray(W_int, numpy.int64).ravel()
        self.count = values.size
        self.w0 = int(values.min()) if values.size else 0
        offsets = values - self.w0
        self.step = int(numpy.gcd.reduce(offsets)) if offsets.any() else 1
        index = offsets // self.step
        levels = int(index.max()) + 1 if values.size else 1
        self.bits = max(1, math.ceil(math.log2(levels))) if levels > 1 else 1
        if self.bits > 8:          # wider grids are stored as plain integers
            self.bytes_ = None
            return
        self.straddles = 8 % self.bits != 0
        total = self.count * self.bits
        out = numpy.zeros((total + 7) // 8 + (1 if self.straddles else 0), numpy.uint16)
        position = numpy.arange(self.count, dtype=numpy.int64) * self.bits
        numpy.add.at(out, position >> 3, (index << (position & 7)) & 0xFF)
        high = (index << (position & 7)) >> 8
        numpy.add.at(out, (position >> 3) + 1, high) if self.straddles else None
        self.bytes_ = out.astype(numpy.uint8)

    @property
    def packed(self):
        return self.bytes_ is not None

    def decode(self, array, i):
        """C expression of weight ``i`` (an int expression) of the packed ``array``."""
        b, mask = self.bits, (1 << self.bits) - 1
        if b == 8:
            k = f"{array}[{i}]"
        elif not self.straddles:
            per = 8 // b
            k = (f"((uint32_t){array}[(uint32_t)({i}) >> {per.bit_length() - 1}] >> "
                 f"(((uint32_t)({i}) & {per - 1}u) * {b}u) & {mask}u)")
        else:
            bit = f"((uint32_t)({i}) * {b}u)"
            k = (f"((((uint32_t){array}[{bit} >> 3] | ((uint32_t){array}[({bit} >> 3) + 1] << 8))"
                 f" >> ({bit} & 7u)) & {mask}u)")
        value = f"(int32_t){k}" if self.step == 1 else f"{self.step} * (int32_t){k}"
        return f"({self.w0} + {value})" if self.w0 else f"({value})"


# -- the program ------------------------------------------------------------------------------
class Buffer:
    """An activation buffer: the output of ``name`` (``env``: the input), ``count`` values of
    C type ``ctype`` (``size`` bytes each), live from step ``first`` to step ``last``."""

    def __init__(self, name, count, row, first):
        self.name, self.count = name, int(count)
        self.ctype, self.lo, self.hi, self.size, self.dtype = row
        self.first = self.last = first
        self.arena = self.offset = None

    @property
    def bytes(self):
        return self.count * self.size


class CProgram:
    """The C program of ``fused`` (see the module docstring). Construction checks everything
    and generates the code (an N2D2Error names the node the C code cannot express), so an
    instance is a network the C code computes. ``nodes``: the exported nodes in execution
    order (the traced layers), ``output`` the one the argmax reads, ``buffers`` {name:
    ``Buffer``} (``env``: the input), ``memory()`` flash and RAM in bytes, ``files()`` the
    sources."""

    def __init__(self, fused, pack_weights=False):
        self.fused, self.pack_weights = fused, bool(pack_weights)
        self.mode = fused.options.act_scaling_mode
        self.integer = self.mode in INTEGER_MODES
        self.ids = names.c_identifiers(["env", *fused.nodes], suffixes=C_SUFFIXES,
                                       file=getattr(fused, "source", None))
        self.nodes, self.output = self._plan()
        self.buffers = {}
        self._buffers()
        self.arenas = self._place()
        self.consts, self.helpers, self.flash = [], set(), {"weights": 0, "constants": 0}
        self.weight_rows = []     # (node, weights, stored as, bytes) per Conv/Fc
        self.kernels = [node.export_c(self) for node in self.nodes]

    # -- what is exported ------------------------------------------------------------------
    def _plan(self):
        fused = self.fused
        out = fused.nodes.get(fused.targets[0].cell) if fused.targets else None
        if out is not None and out.keeps_argmax:   # a last Softmax: stop at its input
            out = fused.nodes.get(out.parents[0])
        if out is None:
            raise N2D2Error("C export: the network has no layer to export")
        needed, todo = set(), [out.name]
        while todo:
            name = todo.pop()
            if name != "env" and name not in needed:
                needed.add(name)
                todo.extend(fused.nodes[name].parents)
        return [n for n in fused.nodes.values() if n.name in needed], out

    @staticmethod
    def fail(node, message):
        """The error refusing ``node`` (what a node's ``export_c`` raises)."""
        return N2D2Error(f"[{node.name}] C export: {message}")

    def _range(self, name):
        return self.buffers[name].lo, self.buffers[name].hi

    def _buffers(self):
        """Each node's output buffer: its C type from the codes' range, its lifetime (the
        steps from its writer to its last reader)."""
        fused, buffers = self.fused, self.buffers
        # input codes 0..255 (-qat-sat), signed ones after post-training quantization
        lo, hi = int(getattr(fused.input, "min_code", 0)), int(fused.input.max_code)
        buffers["env"] = Buffer("env", numpy.prod(fused.input_shape), c_type(lo, hi), 0)
        for step, node in enumerate(self.nodes, start=1):
            for parent in node.parents:
                src = buffers[parent]
                if src.ctype == "double":
                    raise N2D2Error(f"[{node.name}] C export: its input [{parent}] is not "
                                    f"integer codes (floating-point logits)")
                src.last = step
            buffers[node.name] = Buffer(node.name, numpy.prod(node.out_shape),
                                        self._out_type(node), step)
        buffers[self.output.name].last = len(self.nodes) + 1   # read by the argmax

    def _out_type(self, node):
        if not hasattr(node, "rescaling"):    # codes moved, pooled: the node says their range
            return c_type(*node.output_codes(*self._range(node.parents[0])))
        form = self._form(node)
        if form is None:           # Floating-point: codes, or double logits
            r = node.rescaling
            return DOUBLE if r.S is None else c_type(r.lo, r.hi)
        if form.op == "logits":
            return C_TYPES[-1]
        return c_type(form.lo, form.hi)

    def _form(self, node):
        """The node's ``IntegerForm``, None for the Floating-point export; refuses a node
        that rescales in floating point in an integer mode."""
        r = node.rescaling
        form = r.integer_form()
        if form is None and (self.integer or r.mode != "Floating-point"):
            reason = r.float_reason
            raise N2D2Error(f"[{node.name}] the integer C export ({self.mode}) cannot express "
                            f"this layer: {reason}; export without --n2d2-compat, or with "
                            f"--act-rescaling-mode Floating-point")
        return form

    # -- memory: one arena per element width, buffers placed by liveness ----------------------
    def _place(self):
        """Offsets in one arena per element size: each buffer at the lowest offset that no
        buffer live at the same time overlaps (largest first); a chain of layers needs the
        largest pair of consecutive buffers."""
        arenas = {}
        for size in sorted({b.size for b in self.buffers.values()}):
            group = sorted((b for b in self.buffers.values() if b.size == size),
                           key=lambda b: (-b.count, b.first))
            placed, end = [], 0
            for buf in group:
                busy = sorted((p.offset, p.offset + p.count) for p in placed
                              if p.first <= buf.last and buf.first <= p.last)
                offset = 0
                for start, stop in busy:
                    if offset + buf.count <= start:
                        break
                    offset = max(offset, stop)
                buf.arena, buf.offset = size, offset
                placed.append(buf)
                end = max(end, offset + buf.count)
            arenas[size] = end
        return arenas

    def live_peak(self):
        """(bytes, names): the largest set of buffers live at one step (the reading layer's
        inputs and its output, and what later layers still need)."""
        best = (0, [])
        for step in range(1, len(self.nodes) + 1):
            live = [b for b in self.buffers.values() if b.first <= step <= b.last]
            total = sum(b.bytes for b in live)
            if total > best[0]:
                best = (total, [b.name for b in live])
        return best

    def memory(self):
        """Flash (weights, constants) and RAM (the arenas) in bytes, with the live peak."""
        ram = sum(size * count for size, count in self.arenas.items())
        peak, live = self.live_peak()
        return {"weights": self.flash["weights"], "constants": self.flash["constants"],
                "flash": self.flash["weights"] + self.flash["constants"], "ram": ram,
                "live_peak": peak, "live_buffers": live}

    def weight_line(self):
        """The weights as stored, per layer, next to ``n2d2py --report``'s figure."""
        rows = self.weight_rows
        total = sum(r[3] for r in rows)
        per_layer = ", ".join(f"{name} {n}x{stored}" for name, n, stored, _ in rows)
        line = (f"C export weight memory: {total} bytes{' packed' if self.pack_weights else ''} "
                f"({per_layer})")
        report = {r["name"]: r for r in weight_memory(self.fused)}
        if all(report[name]["range_bytes"] is not None for name, *_ in rows):
            r_bytes = sum(report[name]["range_bytes"] for name, *_ in rows)
            bits = ", ".join(f"{name} {report[name]['range_bits']}" for name, *_ in rows)
            line += (f"; at the quantizers' Range bits ({bits}, as n2d2py --report): "
                     f"{r_bytes:g} bytes")
        return line

    def memory_line(self):
        m = self.memory()
        packed = "packed at their bit widths" if self.pack_weights else "unpacked"
        live = " + ".join(f"{n} {self.buffers[n].bytes}" for n in m["live_buffers"])
        return (f"C export memory: flash {m['flash']} bytes (weights {m['weights']}, {packed}; "
                f"biases, clips and scales {m['constants']}), RAM {m['ram']} bytes of activation "
                f"buffers (largest live set: {live} = {m['live_peak']} bytes)")

    # -- code -------------------------------------------------------------------------------
    def ident(self, name, suffix=""):
        return self.ids[name] + suffix

    def buffer_expr(self, name):
        b = self.buffers[name]
        return f"(({b.ctype} *)(arena{8 * b.size} + {b.offset}))" if b.ctype != "double" \
            else f"(arena64 + {b.offset})"

    def const(self, name, values, ctype=None, kind="constants"):
        """C expression ``[o]``-indexable for per-channel ``values``: a literal when they are
        all equal, else a ``static const`` array in weights.h (counted in ``flash``)."""
        values = numpy.asarray(values).ravel()
        if ctype == "double":
            if values.size and (values == values[0]).all():
                return lambda o: repr(float(values[0]))
        elif values.size and (values == values[0]).all():
            v = int(values[0])
            return lambda o: str(v) if -2 ** 31 < v <= INT32_MAX else f"INT64_C({v})"
        if ctype is None:
            ctype = c_type(int(values.min()), int(values.max()))[0] if values.size else "int8_t"
        size = 8 if ctype == "double" else C_TYPES[[r[0] for r in C_TYPES].index(ctype)][3]
        fmt = (lambda v: repr(float(v))) if ctype == "double" else (lambda v: str(int(v)))
        body = ",\n  ".join(", ".join(fmt(v) for v in values[i:i + 16])
                            for i in range(0, len(values), 16))
        self.consts.append(f"static const {ctype} {name}[{len(values)}] = {{\n  {body}\n}};\n")
        self.flash[kind] += size * len(values)
        return lambda o: f"{name}[{o}]"

    def weights(self, node):
        """(C expression of weight i, declared array): plain integers or packed indices."""
        name = self.ident(node.name, "_W")
        if self.pack_weights:
            packed = PackedWeights(node.W_int)
            if packed.packed:
                data = packed.bytes_
                body = ",\n  ".join(", ".join(str(int(v)) for v in data[i:i + 24])
                                    for i in range(0, len(data), 24))
                self.consts.append(f"/* {node.name}: {packed.count} weights W = {packed.w0} + "
                                   f"{packed.step}*k, k on {packed.bits} bits */\n"
                                   f"static const uint8_t {name}[{len(data)}] = "
                                   f"{{\n  {body}\n}};\n")
                self.flash["weights"] += len(data)
                self.weight_rows.append((node.name, packed.count, f"{packed.bits} bits",
                                         len(data)))
                return lambda i: packed.decode(name, i)
        ctype = c_int_type(node.W_int)
        values = numpy.asarray(node.W_int).ravel()
        body = ",\n  ".join(", ".join(str(int(v)) for v in values[i:i + 24])
                            for i in range(0, len(values), 24))
        self.consts.append(f"static const {ctype} {name}[{len(values)}] = {{\n  {body}\n}};\n")
        self.flash["weights"] += values.size * C_BITS[ctype] // 8
        self.weight_rows.append((node.name, values.size, ctype, values.size * C_BITS[ctype] // 8))
        return lambda i: f"(int32_t){name}[{i}]"

    def _acc_bound(self, node):
        """Largest |accumulator| of ``node`` on its input buffers' ranges."""
        return node.accumulator_bound([max(abs(int(v)) for v in self._range(p))
                                       for p in node.parents])

    def _rescale(self, node):
        """``static <out> L_x_rescale(int32_t acc, int o)``: the node's ``IntegerForm`` (or the
        engine's double arithmetic in the Floating-point export), after checking that its
        accumulator holds in int32."""
        bound = self._acc_bound(node)
        if bound > INT32_MAX:
            raise self.fail(node, f"its accumulator can reach {bound}, beyond int32")
        n, out = self.ident(node.name), self.buffers[node.name].ctype
        form = self._form(node)
        if form is None:
            return self._rescale_float(node, n, out)
        problem = form.int32_problem(bound)
        if problem:
            raise self.fail(node, problem)
        lines = ["const int32_t x = acc;"]
        if form.bias is not None:
            lines = [f"const int32_t x = acc + {self.const(n + '_B', form.bias)('o')};"]
        if form.op == "logits":
            return (f"\nstatic int32_t {n}_rescale(int32_t acc, int o) {{\n    (void)o;\n    "
                    f"{lines[0]}\n    return x;\n}}\n")
        z = "x"
        if form.clip is not None:
            self.helpers.add("clip")
            lines.append(f"const int32_t z = clip_acc(x, {self.const(n + '_C', form.clip)('o')});")
            z = "z"
        if form.op == "fixed":
            n_bits = form.fractional_bits
            half = (1 << (n_bits - 1)) if n_bits else 0
            if form.wide_product(bound):
                self.helpers.add("asr64")
                mult = self.const(n + "_M", form.mult, "int32_t")("o")
                lines.append(f"const int64_t y = asr64((int64_t){z} * {mult} + INT64_C({half}), "
                             f"{n_bits});")
                return self._finish(n, out, lines, form)
            self.helpers.add("asr32")
            ctype = "int16_t" if form.multiplier_bits == 16 else "int32_t"
            mult = self.const(n + "_M", form.mult, ctype)("o")
            lines.append(f"const int32_t y = asr32({z} * (int32_t){mult} + {half}, {n_bits});")
        elif form.op == "single":
            self.helpers.add("asr32")
            e = self.const(n + "_E", form.shift, "uint8_t")("o")
            lines.append(f"const int e = {e};")
            lines.append(f"const int32_t y = asr32({z} + (e > 0 ? (int32_t)1 << (e - 1) : 0), e);")
        else:
            self.helpers.add("asr32")
            a = self.const(n + "_A", form.shift_a, "uint8_t")("o")
            b = self.const(n + "_E", form.shift_b, "uint8_t")("o")
            lines.append(f"const int b = {b};")
            lines.append(f"const int32_t y = asr32({z} + {z} * ((int32_t)1 << {a}) + "
                         f"(b > 0 ? (int32_t)1 << (b - 1) : 0), b);")
        return self._finish(n, out, lines, form)

    def _finish(self, n, out, lines, form):
        """The saturation to [lo, hi] (y is int64 after a wide product)."""
        lo, hi = int(form.lo), int(form.hi)
        body = "\n    ".join(["(void)o;"] + lines)
        return (f"\nstatic {out} {n}_rescale(int32_t acc, int o) {{\n    {body}\n"
                f"    return ({out})(y < {lo} ? {lo} : (y > {hi} ? {hi} : y));\n}}\n")

    def _rescale_float(self, node, n, out):
        """The engine's Floating-point rescaling (``ActivationRescaling``) in double."""
        r = node.rescaling
        self.helpers.add("math")
        lines = ["double t = (double)acc;", "(void)o;"]
        if r.D != 1.0:
            lines.append(f"t /= {float(r.D)!r};")
        if r.B is not None:
            lines.append(f"t += {self.const(n + '_B', r.B.astype(numpy.float64), 'double')('o')};")
        if r.S is None:
            return (f"\nstatic double {n}_rescale(int32_t acc, int o) {{\n    "
                    + "\n    ".join(lines) + "\n    return t;\n}\n")
        if r.C is not None:
            self.helpers.add("clip_double")
            C = self.const(n + "_C", r.C.astype(numpy.float64), "double")("o")
            lines.append(f"t = clip_double(t, {C});")
        S = self.const(n + "_S", r.S.astype(numpy.float64), "double")("o")
        lines.append(f"t = round(t * {S});")
        lo, hi = int(r.lo), int(r.hi)
        lines.append(f"return ({out})(t < {lo}.0 ? {lo} : (t > {hi}.0 ? {hi} : (int32_t)t));")
        return (f"\nstatic {out} {n}_rescale(int32_t acc, int o) {{\n    "
                + "\n    ".join(lines) + "\n}\n")

    def _signature(self, node):
        ins = ", ".join(f"const {self.buffers[p].ctype} *in{k}" for k, p in enumerate(node.parents))
        out = self.buffers[node.name].ctype
        return f"static void {self.ident(node.name, '_run')}({ins}, {out} *out)"

    # -- kernels (each node's ``export_c`` names its rule) -----------------------------------
    def conv(self, node):
        n = self.ident(node.name)
        O, Cg, KH, KW = node.W_int.shape
        C, H, W = self.fused.input_shape if node.parents[0] == "env" else \
            self.fused.nodes[node.parents[0]].out_shape
        _, OH, OW = node.out_shape
        (SH, SW), (PH, PW), (DH, DW), G = node.stride, node.padding, node.dilation, node.groups
        w = self.weights(node)(f"((o * {Cg} + c) * {KH} + ky) * {KW} + kx")
        channel = f"o / {O // G} * {Cg} + c" if G > 1 else "c"
        return self._rescale(node) + f"""
{self._signature(node)} {{
    int o, oy, ox, c, ky, kx;
    for (o = 0; o < {O}; ++o) for (oy = 0; oy < {OH}; ++oy) for (ox = 0; ox < {OW}; ++ox) {{
        int32_t acc = 0;
        for (c = 0; c < {Cg}; ++c) for (ky = 0; ky < {KH}; ++ky) for (kx = 0; kx < {KW}; ++kx) {{
            const int iy = oy * {SH} - {PH} + ky * {DH}, ix = ox * {SW} - {PW} + kx * {DW};
            if (iy < 0 || iy >= {H} || ix < 0 || ix >= {W}) continue;
            acc += {w} * (int32_t)in0[(({channel}) * {H} + iy) * {W} + ix];
        }}
        out[(o * {OH} + oy) * {OW} + ox] = {n}_rescale(acc, o);
    }}
}}
"""

    def fc(self, node):
        n = self.ident(node.name)
        O, I = node.W_int.shape
        w = self.weights(node)(f"o * {I} + i")
        return self._rescale(node) + f"""
{self._signature(node)} {{
    int o, i;
    for (o = 0; o < {O}; ++o) {{
        int32_t acc = 0;
        for (i = 0; i < {I}; ++i) acc += {w} * (int32_t)in0[i];
        out[o] = {n}_rescale(acc, o);
    }}
}}
"""

    def elemwise(self, node):
        n = self.ident(node.name)
        C, H, W = node.out_shape
        terms = " + ".join(f"(int32_t)in{k}[j] * {m}" for k, m in enumerate(node.multipliers))
        return self._rescale(node) + f"""
{self._signature(node)} {{
    int j;
    for (j = 0; j < {C * H * W}; ++j) out[j] = {n}_rescale({terms}, j / {H * W});
}}
"""

    def move(self, node):
        """A cell that only moves codes (its ``fuse`` names ``Fuser.move``): a gather through
        a constant index table, found by running the node on the indices 1..N (0: padding).
        The indices in reverse order must be moved to the same places: a cell that selects
        by value (a max) picks other indices then, and is refused."""
        shape = self.fused.input_shape if node.parents[0] == "env" else \
            self.fused.nodes[node.parents[0]].out_shape
        count = int(numpy.prod(shape))
        probe = numpy.arange(1, count + 1, dtype=numpy.int64).reshape(1, *shape)
        moved = numpy.asarray(node([probe])).ravel()
        reverse = numpy.asarray(node([count + 1 - probe])).ravel()
        if moved.size != self.buffers[node.name].count or moved.min() < 0 or \
                moved.max() > count or not numpy.array_equal(moved, numpy.round(moved)) or \
                not numpy.array_equal(numpy.where(moved > 0, count + 1 - moved, 0), reverse):
            raise self.fail(node, f"Type={node.type_name} does not only move or pad its input "
                                  f"codes")
        table = self.const(self.ident(node.name, "_I"), moved.astype(numpy.int64) - 1)
        out = self.buffers[node.name].ctype
        return f"""
{self._signature(node)} {{
    int j;
    for (j = 0; j < {moved.size}; ++j) {{
        const int32_t k = {table('j')};
        out[j] = k < 0 ? ({out})0 : ({out})in0[k];   /* -1: padding */
    }}
}}
"""

    def pool(self, node):
        C, H, W = self.fused.input_shape if node.parents[0] == "env" else \
            self.fused.nodes[node.parents[0]].out_shape
        _, OH, OW = node.out_shape
        (KH, KW), (SH, SW), (DH, DW) = node.kernel, node.stride, node.dilation
        PT, _, PL, _ = node.pads    # the trailing pads and ceil-mode overhang: outside the input
        is_max = node.pooling == "Max"
        if is_max and node.empty_windows((C, H, W)):
            raise self.fail(node, "a max pool window holds only padding (no input to take the "
                                  "max of)")
        dy, dx = (f" * {d}" if d != 1 else "" for d in (DH, DW))
        init = "INT32_MIN" if is_max else "0"
        update = "if (v > acc) acc = v;" if is_max else "acc += v;"
        out = self.buffers[node.name].ctype
        return f"""
{self._signature(node)} {{
    int c, oy, ox, ky, kx;
    for (c = 0; c < {C}; ++c) for (oy = 0; oy < {OH}; ++oy) for (ox = 0; ox < {OW}; ++ox) {{
        int32_t acc = {init};
        for (ky = 0; ky < {KH}; ++ky) for (kx = 0; kx < {KW}; ++kx) {{
            const int iy = oy * {SH} - {PT} + ky{dy}, ix = ox * {SW} - {PL} + kx{dx};
            int32_t v;
            if (iy < 0 || iy >= {H} || ix < 0 || ix >= {W}) continue;  /* padding: ignored (Max), 0 (Average) */
            v = in0[(c * {H} + iy) * {W} + ix];
            {update}
        }}
        out[(c * {OH} + oy) * {OW} + ox] = ({out})acc;
    }}
}}
"""

    HELPERS = {
        "asr32": """/* arithmetic right shift (a floor), portable C99 for negative values too */
static int32_t asr32(int32_t v, int s) { return v >= 0 ? v >> s : -1 - ((-1 - v) >> s); }
""",
        "asr64": """static int64_t asr64(int64_t v, int s) { return v >= 0 ? v >> s : -1 - ((-1 - v) >> s); }
""",
        "clip": """/* clip to [0, C] (to [C, 0] when C < 0, as N2D2's CPU clip) */
static int32_t clip_acc(int32_t x, int32_t C) {
    const int32_t lo = C < 0 ? C : 0, hi = C > 0 ? C : 0;
    return x < lo ? lo : (x > hi ? hi : x);
}
""",
        "clip_double": """static double clip_double(double t, double C) {
    const double lo = C < 0.0 ? C : 0.0, hi = C > 0.0 ? C : 0.0;
    return t < lo ? lo : (t > hi ? hi : t);
}
""",
    }

    def header_comment(self):
        o = self.fused.options
        rounding = ", ".join(f"{what} {getattr(o, key)}" for what, key in
                             (("weights", "w_mode"), ("biases", "b_mode"), ("clips", "c_mode"))
                             if hasattr(o, key))
        if getattr(o, "n2d2_compat", False):
            rounding += ", N2D2-compatible"
        if self.integer:
            wide = [n.name for n in self.nodes if hasattr(n, "rescaling") and
                    self._form(n).wide_product(self._acc_bound(n))]
            arithmetic = ("Integer only: no floating-point type or operation; int32 "
                          "accumulators and rescaling" + (", int64 only for the Fixed-point32 "
                                                          f"products z*M ({', '.join(wide)})"
                                                          if wide else ", no int64") + ".")
        else:
            arithmetic = ("Floating-point rescaling: the per-channel rescale (and the logits) "
                          "compute in double, as n2d2py's engine does (the accumulators are "
                          "int32); export in an integer mode for integer-only code.")
        return (f"/* Generated by n2d2py from a fused network (--act-rescaling-mode "
                f"{o.act_scaling_mode}{', ' + rounding if rounding else ''}).\n"
                f"   {arithmetic} */\n")

    def files(self):
        """{file name: text} of the program."""
        fused, m = self.fused, self.memory()
        env = self.buffers["env"]
        out_buf = self.buffers[self.output.name]
        arenas = []
        for size, count in sorted(self.arenas.items()):
            ctype = {1: "uint8_t", 2: "int16_t", 4: "int32_t", 8: "double"}[size]
            name = "arena64" if size == 8 else f"arena{8 * size}"
            arenas.append(f"static {ctype} {name}[{max(count, 1)}];")
        calls = []
        for node in self.nodes:
            ins = ", ".join(self.buffer_expr(p) for p in node.parents)
            out = self.buffer_expr(node.name)
            calls.append(f"    {self.ident(node.name, '_run')}({ins}, {out});")
            calls.append(f"    NETWORK_TRACE_LAYER(\"{node.name}\", {self.buffer_expr(node.name)}, "
                         f"{self.buffers[node.name].count});")
        helpers = "".join(text for key, text in self.HELPERS.items() if key in self.helpers)
        includes = "#include <stdint.h>\n" + \
            ("#include <math.h>\n" if "math" in self.helpers else "")
        comment = self.header_comment()
        C, H, W = fused.input_shape
        network_h = f"""{comment}#ifndef N2D2PY_NETWORK_H
#define N2D2PY_NETWORK_H
#include <stdint.h>
#define NETWORK_INPUT_SIZE {C * H * W}      /* C*H*W = {C}*{H}*{W} codes, C, H, W order */
#define NETWORK_OUTPUT_SIZE {out_buf.count}
#define NETWORK_INPUT_SIGNED {int(env.lo < 0)}
#define NETWORK_WEIGHTS_BYTES {m['weights']}
#define NETWORK_FLASH_BYTES {m['flash']}  /* weights + biases, clips, scales */
#define NETWORK_RAM_BYTES {m['ram']}    /* activation buffers */
typedef {env.ctype} network_input_t;
/* write NETWORK_INPUT_SIZE input codes here, then call network_run() */
network_input_t *network_input(void);
/* runs the network on the codes in network_input(); returns the index of the largest output */
int network_run(void);
#ifdef NETWORK_TRACE
/* called after each layer with its output codes (count values of bytes each) */
void network_trace(const char *layer, const void *codes, int count, int bytes);
#endif
#endif
"""
        network_c = f"""{comment}{includes}#include "network.h"
#include "weights.h"

#ifdef NETWORK_TRACE
#define NETWORK_TRACE_LAYER(name, out, count) network_trace(name, out, count, (int)sizeof *(out))
#else
#define NETWORK_TRACE_LAYER(name, out, count)
#endif

/* activation buffers, one arena per element width (offsets from the layers' lifetimes) */
{chr(10).join(arenas)}
{helpers}{''.join(self.kernels)}
network_input_t *network_input(void) {{
    return {self.buffer_expr('env')};
}}

int network_run(void) {{
    const {out_buf.ctype} *y = {self.buffer_expr(self.output.name)};
    int k, best = 0;
{chr(10).join(calls)}
    for (k = 1; k < NETWORK_OUTPUT_SIZE; ++k) if (y[k] > y[best]) best = k;
    return best;
}}
"""
        weights_h = (comment + "#ifndef N2D2PY_WEIGHTS_H\n#define N2D2PY_WEIGHTS_H\n"
                     "#include <stdint.h>\n" + "".join(self.consts) + "#endif\n")
        libm = " -lm" if "math" in self.helpers else ""
        makefile = f"""# make: build ./network; make run: score stimuli.bin (n2d2py --export-stimuli N);
# make check: compare with the classes n2d2py's integer engine computed (expected.txt)
CFLAGS ?= -std=c99 -O2 -Wall
LDLIBS ?={libm}

network: main.c network.c network.h weights.h
\t$(CC) $(CFLAGS) -o network main.c network.c $(LDLIBS)

run: network
\t@test -f stimuli.bin || {{ echo "no stimuli.bin: export with n2d2py ... --export C --export-stimuli N"; exit 1; }}
\t./network stimuli.bin

check: network
\t@test -f expected.txt || {{ echo "no expected.txt: export with --export-stimuli N"; exit 1; }}
\t./network stimuli.bin | diff - expected.txt && echo "C program = n2d2py integer engine on every stimulus"

.PHONY: run check
"""
        return {"network.h": network_h, "network.c": network_c, "weights.h": weights_h,
                "main.c": MAIN_C, "Makefile": makefile}


MAIN_C = r"""/* Usage: network STIMULI.bin [TRACE.bin]
   STIMULI.bin: per input a little-endian uint16 label (65535: none), then NETWORK_INPUT_SIZE
   codes (one byte each). Prints "index class label" per input, then the accuracy.
   Built with -DNETWORK_TRACE, writes every layer's output codes to TRACE.bin. */
#include <stdio.h>
#include <stdint.h>
#include "network.h"

#ifdef NETWORK_TRACE
static FILE *trace;
void network_trace(const char *layer, const void *codes, int count, int bytes) {
    (void)layer;
    if (trace) fwrite(codes, (size_t)bytes, (size_t)count, trace);
}
#endif

int main(int argc, char **argv) {
    unsigned char label_bytes[2];
    long index = 0, labelled = 0, correct = 0;
    FILE *f;
    if (argc < 2) { fprintf(stderr, "usage: %s STIMULI.bin [TRACE.bin]\n", argv[0]); return 2; }
    f = fopen(argv[1], "rb");
    if (!f) { perror(argv[1]); return 2; }
#ifdef NETWORK_TRACE
    if (argc > 2 && !(trace = fopen(argv[2], "wb"))) { perror(argv[2]); return 2; }
#endif
    while (fread(label_bytes, 1, 2, f) == 2) {
        const int label = label_bytes[0] | (label_bytes[1] << 8);
        int predicted;
        if (fread(network_input(), 1, NETWORK_INPUT_SIZE, f) != NETWORK_INPUT_SIZE) {
            fprintf(stderr, "%s: input %ld is truncated\n", argv[1], index);
            return 1;
        }
        predicted = network_run();
        printf("%ld %d %d\n", index, predicted, label == 65535 ? -1 : label);
        if (label != 65535) {
            ++labelled;
            correct += predicted == label;
        }
        ++index;
    }
    fclose(f);
#ifdef NETWORK_TRACE
    if (trace) fclose(trace);
#endif
    if (labelled) {
        const long hundredths = (correct * 10000 + labelled / 2) / labelled;
        printf("accuracy: %ld.%02ld %% (%ld/%ld)\n", hundredths / 100, hundredths % 100, correct,
               labelled);
    } else {
        printf("accuracy: no labelled stimuli\n");
    }
    return 0;
}
"""


def test_stimuli(fused, count):
    """(codes, labels) of the first ``count`` stimuli of the Test set (-1: all) as the fused
    network reads them (``FusedNet.input_codes``)."""
    from ..backend import asnumpy
    if count < -1:
        raise N2D2Error(f"--export-stimuli {count}: expected a count of stimuli (-1: all)")
    codes, labels = [], []
    for x, lab, _ in fused.sp.batches("Test", False, None, None if count < 0 else count):
        codes.append(asnumpy(fused.input_codes(x)))
        labels.append(numpy.asarray(asnumpy(lab)).reshape(-1))
    if not codes:
        raise N2D2Error("--export-stimuli: the Test set has no stimuli")
    return numpy.concatenate(codes), numpy.concatenate(labels)


def export_c_command(fused, folder, pack_weights=False, nb_stimuli=None, say=print,
                     program=None):
    """``--export C`` (``--pack-weights``, ``--export-stimuli N``): check, write ``folder``,
    then tell the user the memory figures and how to check the C program."""
    program = program or CProgram(fused, pack_weights)
    stimuli = None if not nb_stimuli else test_stimuli(fused, nb_stimuli)
    export_c(fused, folder, pack_weights, stimuli, program=program)
    say(program.weight_line())
    say(program.memory_line())
    if stimuli is not None:
        accuracy = program.expected.splitlines()[-1]
        say(f"{len(stimuli[0])} test stimuli written to '{folder}/stimuli.bin'; n2d2py's integer "
            f"engine on them: {accuracy} ('make -C {folder} run' prints the C program's, "
            f"'make -C {folder} check' compares every class)")
    say(f"C99 export written to '{folder}' (make -C {folder})")
    return program


def export_c(fused, folder, pack_weights=False, stimuli=None, program=None):
    """Write the C99 program of ``fused`` into ``folder`` (atomically: the whole folder or
    nothing; a refused network writes nothing). ``stimuli``: None or (codes, labels) to write
    ``stimuli.bin`` and ``expected.txt`` (the integer engine's output of ``make run``).
    Returns the ``CProgram``."""
    from ..folders import write_folder_atomically
    program = program or CProgram(fused, pack_weights)
    files = program.files()
    expected = None
    if stimuli is not None:
        codes, labels = stimuli
        out = numpy.asarray(fused.forward(codes))
        expected = run_output(out.reshape(len(out), -1).argmax(axis=1), labels)

    def write(tmp):
        for name, text in files.items():
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text)
        if stimuli is not None:
            write_stimuli(os.path.join(tmp, "stimuli.bin"), *stimuli)
            with open(os.path.join(tmp, "expected.txt"), "w") as f:
                f.write(expected)
    write_folder_atomically(folder, write)
    program.folder, program.expected = os.fspath(folder), expected
    return program
