"""Exports of a FusedNet (spec/qat.md §5.8): ``weights_quantized/`` and C99 sources.

``export_weights_quantized(fused, folder)`` writes, atomically (temporary folder, then rename),
what N2D2's ``exportNetworkFreeParameters("weights_quantized")`` writes per remaining cell:

* ``<cell>_weights.syntxt``: the fused W (integers under RINTF), one line per output, 6
  significant digits (the quantizer is gone, so N2D2 uses its default precision); grouped convs
  write only the connected channels, as N2D2 does;
* ``<cell>_biases.syntxt``: the fused bias B_o (Convs, and Fcs with a bias), one per line;

plus ``scaling.json``, which N2D2 has no file for (its S_o and C_o live only in memory and in
its C++ export headers). Its content, one object per fused node in execution order::

    {"options": {act_scaling_mode, w_mode, b_mode, c_mode, n2d2_compat},
     "input": {"range": 255, "alpha": 1.0, "shape": [C, H, W]},
     "nodes": [{"name", "type", "parents", "range", "alpha", "out_shape",
                "weights_integer_shape",           # Conv/Fc: shape of the integer weights
                "rescaling": {"mode", "weight_denominator" D, "saturation": [lo, hi],
                              "bias" B_o, "clip" C_o, "scale" S_o,   # per channel, N2D2 domain
                              "fixed_point_multiplier", "fractional_bits",   # Fixed-point*
                              "shift", "clip_in_shift"},                    # Single-shift
                "multipliers": [...],              # ElemWise: Q16 operand multipliers
                "pooling", "kernel", "stride", "padding"}]}              # Pool

The integer engine computes per channel ``t = acc/D + B``, then the rescaling of
``scaling.py``; ``acc`` uses ``round(W·D)``, the weights in the ``.syntxt`` file times D.

``export_c(fused, folder)`` writes a self-contained C99 program (``network.h``, ``network.c``,
``weights.h`` with int8/int16/int32 weight arrays, ``main.c``, ``Makefile``): static buffers only,
int32 accumulators (the export checks the bound), the same rescaling as the Python engine
operation for operation (float64, C ``round``/``llround``, arithmetic shifts), so predictions
match bit for bit. ``main`` reads N stimuli of C·H·W uint8 codes (x·255, C, H, W order) from a
raw file and prints one predicted class per line.
"""
import json
import os

import numpy

from ..errors import N2D2Error
from ..io import syntxt
from .engine import IntegerConv, IntegerElemWise, IntegerFc, IntegerPool, SoftmaxNode

__all__ = ["export_weights_quantized", "export_c", "write_stimuli", "scaling_description",
           "weight_memory", "weight_memory_line"]

INT32_LIMIT = 2 ** 31 - 1


# -- weights_quantized/ -----------------------------------------------------------------------
def scaling_description(fused):
    nodes = []
    for node in fused.nodes.values():
        item = {"name": node.name, "type": node.type_name, "parents": node.parents,
                "range": node.R, "alpha": node.alpha, "out_shape": list(node.out_shape)}
        if isinstance(node, (IntegerConv, IntegerFc)):
            item["weights_integer_shape"] = list(node.W_int.shape)
        if hasattr(node, "rescaling"):
            item["rescaling"] = node.rescaling.describe()
        if isinstance(node, IntegerConv):
            item.update(stride=list(node.stride), padding=list(node.padding),
                        dilation=list(node.dilation), groups=node.groups)
        if isinstance(node, IntegerElemWise):
            item["multipliers"] = node.multipliers
        if isinstance(node, IntegerPool):
            item.update(pooling=node.pooling, kernel=list(node.kernel), stride=list(node.stride),
                        padding=list(node.padding))
        nodes.append(item)
    return {"options": fused.options.as_dict(),
            "input": {"range": fused.input.R, "alpha": fused.input.alpha,
                      "shape": list(fused.input_shape)},
            "nodes": nodes}


def export_weights_quantized(fused, folder):
    """Write ``folder`` (``weights_quantized``) atomically; returns the folder."""
    from ..folders import write_folder_atomically

    def write(tmp):
        for node in fused.nodes.values():
            if not isinstance(node, (IntegerConv, IntegerFc)):
                continue
            W = node.W_fused
            syntxt.write_rows(syntxt.weights_path(tmp, node.name, "weights", create=True),
                              W.reshape(len(W), -1), 6)
            B = node.rescaling.B
            if B is not None:
                syntxt.write_column(syntxt.weights_path(tmp, node.name, "biases"), B, 6)
        with open(os.path.join(tmp, "scaling.json"), "w") as f:
            json.dump(scaling_description(fused), f, indent=1)
    write_folder_atomically(folder, write)
    return folder


# -- C99 export ---------------------------------------------------------------------------------
def write_stimuli(path, codes):
    """Raw uint8 stimuli for ``main.c``: N × (C·H·W) bytes, C-order."""
    codes = numpy.asarray(codes)
    if codes.min() < 0 or codes.max() > 255:
        raise N2D2Error("stimuli codes must lie in 0..255")
    numpy.ascontiguousarray(codes, dtype=numpy.uint8).tofile(path)


def c_name(name):
    return "L_" + "".join(ch if ch.isalnum() else "_" for ch in name)


def c_int_type(values):
    m = int(numpy.abs(values).max()) if values.size else 0
    if m <= 127:
        return "int8_t"
    return "int16_t" if m <= 32767 else "int32_t"


C_BITS = {"int8_t": 8, "int16_t": 16, "int32_t": 32}


def weight_memory(fused):
    """Weight memory of the C export, per fused Conv/Fc node (build order): dicts with
    ``name``, ``weights`` (the integer array's size: the C export stores every connected
    weight), ``ctype`` and ``c_bits`` (the array's integer type, the smallest of
    int8/int16/int32 holding max|W_int|), ``c_bytes`` = weights · c_bits / 8, and
    ``range_bits`` = ceil(log2(R_w + 1)), the bits ``n2d2py --report`` (``stats.cost_table``)
    gives a SAT weight quantizer of Range R_w, with ``range_bytes`` = weights · range_bits / 8.

    The two differ by design: the report counts the information of the quantizer's R_w + 1
    levels (a 4-bit layer is 0.5 byte per weight), the C arrays use a whole C integer type per
    weight (int8_t), and under ``-wt-round-mode NONE`` a Default-mode R_w = 255 grid lowers to the
    odd integers −255..255 (W_int = w_q·R_w), which need int16_t. ``cost_table(net,
    overrides={name: (c_bits, a_bits)}).size_bytes`` gives the C bytes back."""
    from ..stats.cost import range_bits
    rows = []
    for node in fused.nodes.values():
        if not isinstance(node, (IntegerConv, IntegerFc)):
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


def c_double(v):
    return repr(float(v)) if numpy.isfinite(v) else "0.0"


def c_array(ctype, name, values):
    values = numpy.asarray(values).ravel()
    fmt = c_double if ctype == "double" else (lambda v: str(int(v)) + ("LL" if ctype == "int64_t" else ""))
    body = ",\n  ".join(", ".join(fmt(v) for v in values[i:i + 16]) for i in range(0, len(values), 16))
    return f"static const {ctype} {name}[{max(len(values), 1)}] = {{\n  {body or '0'}\n}};\n"


def _rescale_arrays(node):
    r = node.rescaling
    n, O = c_name(node.name), node.out_shape[0]
    out = []
    out.append(c_array("double", f"{n}_B", r.B if r.B is not None else numpy.zeros(O)))
    if r.C is not None:
        out.append(c_array("double", f"{n}_C", r.C))
    if r.S is not None:
        out.append(c_array("double", f"{n}_S", r.S))
    if r.mult is not None:
        out.append(c_array("int64_t", f"{n}_M", r.mult))
    if r.shift is not None:
        out.append(c_array("int64_t", f"{n}_E", r.shift))
    return "".join(out)


def _rescale_call(node, acc, o):
    """C expression turning ``acc`` (int64) of channel ``o`` into the node's output (the same
    steps as ``ActivationRescaling.__call__``)."""
    r, n = node.rescaling, c_name(node.name)
    D = c_double(r.D)
    if r.S is None:
        return f"pre_activation({acc}, {D}, {n}_B[{o}])"
    has_c = r.C is not None and (r.mode != "Single-shift" or r.clip_in_shift)
    C = f"{n}_C[{o}]" if r.C is not None else "0.0"
    common = f"{acc}, {D}, {n}_B[{o}], {C}, {int(has_c)}"
    sat = f"{int(r.lo)}LL, {int(r.hi)}LL"
    if r.mode == "Floating-point":
        return f"rescale_float({common}, {n}_S[{o}], {sat})"
    if r.mult is not None:
        return f"rescale_fixed({common}, {n}_M[{o}], {sat})"
    return f"rescale_shift({common}, {n}_E[{o}], {sat})"


RUNTIME = r"""
static double pre_activation(int64_t acc, double D, double B) {
    double t = (double)acc;
    if (D != 1.0) t = t / D;
    return t + B;
}
static double clip_t(double t, double C) {
    double lo = C < 0.0 ? C : 0.0, hi = C > 0.0 ? C : 0.0;
    return t < lo ? lo : (t > hi ? hi : t);
}
static int32_t saturate(int64_t y, int64_t lo, int64_t hi) {
    return (int32_t)(y < lo ? lo : (y > hi ? hi : y));
}
/*@float*/
static int32_t rescale_float(int64_t acc, double D, double B, double C, int has_c, double S,
                             int64_t lo, int64_t hi) {
    double t = pre_activation(acc, D, B);
    if (has_c) t = clip_t(t, C);
    return saturate((int64_t)round(t * S), lo, hi);
}
/*@fixed*/
static int32_t rescale_fixed(int64_t acc, double D, double B, double C, int has_c, int64_t M,
                             int64_t lo, int64_t hi) {
    double t = pre_activation(acc, D, B);
    if (has_c) t = clip_t(t, C);
    return saturate((llround(t) * M + (1LL << 15)) >> 16, lo, hi);
}
/*@shift*/
static int32_t rescale_shift(int64_t acc, double D, double B, double C, int has_c, int64_t e,
                             int64_t lo, int64_t hi) {
    double t = pre_activation(acc, D, B);
    if (has_c) t = clip_t(t, C);
    return saturate((llround(t) + (e > 0 ? (1LL << (e - 1)) : 0)) >> e, lo, hi);
}
"""


def runtime(code):
    """The helpers ``code`` calls (unused static functions would warn under -Wall)."""
    parts = RUNTIME.split("/*@")
    keep = [parts[0]]
    for part in parts[1:]:
        tag, body = part.split("*/", 1)
        if f"rescale_{tag}(" in code:
            keep.append(body)
    return "".join(keep)


def _conv_code(node, src):
    n = c_name(node.name)
    O, Cg, KH, KW = node.W_int.shape
    C, H, W = src
    _, OH, OW = node.out_shape
    (SH, SW), (PH, PW), (DH, DW), G = node.stride, node.padding, node.dilation, node.groups
    return f"""
static void {n}_run(const int32_t *in, int32_t *out) {{
    for (int o = 0; o < {O}; ++o) {{
        const int g = o / {O // G};
        for (int oy = 0; oy < {OH}; ++oy) for (int ox = 0; ox < {OW}; ++ox) {{
            int32_t acc = 0;
            for (int c = 0; c < {Cg}; ++c) for (int ky = 0; ky < {KH}; ++ky) for (int kx = 0; kx < {KW}; ++kx) {{
                const int iy = oy * {SH} - {PH} + ky * {DH}, ix = ox * {SW} - {PW} + kx * {DW};
                if (iy < 0 || iy >= {H} || ix < 0 || ix >= {W}) continue;
                acc += (int32_t){n}_W[((o * {Cg} + c) * {KH} + ky) * {KW} + kx]
                       * in[((g * {Cg} + c) * {H} + iy) * {W} + ix];
            }}
            out[(o * {OH} + oy) * {OW} + ox] = {_rescale_call(node, "(int64_t)acc", "o")};
        }}
    }}
}}
"""


def _fc_code(node, src, out_type):
    n = c_name(node.name)
    O, I = node.W_int.shape
    return f"""
static void {n}_run(const int32_t *in, {out_type} *out) {{
    for (int o = 0; o < {O}; ++o) {{
        int32_t acc = 0;
        for (int i = 0; i < {I}; ++i) acc += (int32_t){n}_W[o * {I} + i] * in[i];
        out[o] = {_rescale_call(node, "(int64_t)acc", "o")};
    }}
}}
"""


def _pool_code(node, src):
    n = c_name(node.name)
    C, H, W = src
    _, OH, OW = node.out_shape
    (KH, KW), (SH, SW), (PH, PW) = node.kernel, node.stride, node.padding
    is_max = node.pooling == "Max"
    init = "INT32_MIN" if is_max else "0"
    update = "if (v > acc) acc = v;" if is_max else "acc += v;"
    pad = "continue;" if is_max else "continue; /* padding counts as 0 */"
    return f"""
static void {n}_run(const int32_t *in, int32_t *out) {{
    for (int c = 0; c < {C}; ++c) for (int oy = 0; oy < {OH}; ++oy) for (int ox = 0; ox < {OW}; ++ox) {{
        int32_t acc = {init};
        for (int ky = 0; ky < {KH}; ++ky) for (int kx = 0; kx < {KW}; ++kx) {{
            const int iy = oy * {SH} - {PH} + ky, ix = ox * {SW} - {PW} + kx;
            int32_t v;
            if (iy < 0 || iy >= {H} || ix < 0 || ix >= {W}) {pad}
            v = in[(c * {H} + iy) * {W} + ix];
            {update}
        }}
        out[(c * {OH} + oy) * {OW} + ox] = acc;
    }}
}}
"""


def _elemwise_code(node):
    n = c_name(node.name)
    C, H, W = node.out_shape
    args = ", ".join(f"const int32_t *in{i}" for i in range(len(node.parents)))
    terms = " + ".join(f"(int64_t)in{i}[k] * {m}LL" for i, m in enumerate(node.multipliers))
    return f"""
static void {n}_run({args}, int32_t *out) {{
    for (int k = 0; k < {C * H * W}; ++k) {{
        const int o = k / {H * W};
        const int64_t acc = {terms};
        out[k] = {_rescale_call(node, "acc", "o")};
    }}
}}
"""


def export_c(fused, folder):
    """Write the C99 sources into ``folder``; returns the folder."""
    os.makedirs(folder, exist_ok=True)
    shapes = {"env": fused.input_shape}
    weights, layers, buffers, calls = [], [], [], []
    target = fused.targets[0].cell
    out_node = fused.nodes[target]
    if isinstance(out_node, SoftmaxNode):   # softmax keeps the argmax: stop at its input
        out_node = fused.nodes[out_node.parents[0]] if out_node.parents[0] != "env" else None
    if out_node is None:
        raise N2D2Error("C export: the network has no layer to export")
    logits_type = {}
    for node in fused.nodes.values():
        if isinstance(node, SoftmaxNode):
            continue
        n = c_name(node.name)
        src = shapes[node.parents[0]]
        shapes[node.name] = node.out_shape
        size = int(numpy.prod(node.out_shape))
        out_type = "double" if getattr(node, "rescaling", None) is not None and node.rescaling.S is None else "int32_t"
        logits_type[node.name] = out_type
        buffers.append(f"static {out_type} {n}_out[{size}];")
        if isinstance(node, (IntegerConv, IntegerFc)):
            bound = _acc_bound(node, fused, shapes)
            if bound > INT32_LIMIT:
                raise N2D2Error(f"[{node.name}] C export: accumulator bound {bound} exceeds int32")
            weights.append(c_array(c_int_type(node.W_int), f"{n}_W", node.W_int))
            weights.append(_rescale_arrays(node))
            layers.append(_conv_code(node, src) if isinstance(node, IntegerConv)
                          else _fc_code(node, src, out_type))
        elif isinstance(node, IntegerPool):
            layers.append(_pool_code(node, src))
        elif isinstance(node, IntegerElemWise):
            weights.append(_rescale_arrays(node))
            layers.append(_elemwise_code(node))
        else:
            raise N2D2Error(f"[{node.name}] C export: unsupported node {node.type_name}")
        for p in node.parents:
            if p != "env" and logits_type.get(p) != "int32_t":
                raise N2D2Error(f"[{node.name}] C export: input {p} is not integer codes")
        ins = ", ".join("input" if p == "env" else f"{c_name(p)}_out" for p in node.parents)
        calls.append(f"    {n}_run({ins}, {n}_out);")
    out_type = logits_type[out_node.name]
    nb_out = int(numpy.prod(out_node.out_shape))
    C, H, W = fused.input_shape
    files = {
        "weights.h": "/* Fused integer weights and per-channel rescaling (generated by n2d2py). */\n"
                     "#ifndef N2D2PY_WEIGHTS_H\n#define N2D2PY_WEIGHTS_H\n#include <stdint.h>\n"
                     + "".join(weights) + "#endif\n",
        "network.h": f"""/* Fused integer network (generated by n2d2py from a -qat-sat fusion). */
#ifndef N2D2PY_NETWORK_H
#define N2D2PY_NETWORK_H
#include <stdint.h>
#define NETWORK_INPUT_SIZE {C * H * W}
#define NETWORK_OUTPUT_SIZE {nb_out}
#define NETWORK_WEIGHTS_BYTES {int(sum(r["c_bytes"] for r in weight_memory(fused)))}
/* input: C*H*W codes (x*255), C, H, W order; returns the index of the largest output */
int network_run(const int32_t *input);
#endif
""",
        "network.c": "#include <math.h>\n#include <stdint.h>\n#include \"network.h\"\n"
                     "#include \"weights.h\"\n" + runtime("".join(layers)) + "\n".join(buffers) + "\n"
                     + "".join(layers) + f"""
int network_run(const int32_t *input) {{
{chr(10).join(calls)}
    const {out_type} *y = {c_name(out_node.name)}_out;
    int best = 0;
    for (int k = 1; k < NETWORK_OUTPUT_SIZE; ++k) if (y[k] > y[best]) best = k;
    return best;
}}
""",
        "main.c": """/* Usage: network STIMULI.bin -- N x NETWORK_INPUT_SIZE uint8 codes; prints one class per line. */
#include <stdio.h>
#include <stdint.h>
#include "network.h"

int main(int argc, char **argv) {
    static uint8_t raw[NETWORK_INPUT_SIZE];
    static int32_t input[NETWORK_INPUT_SIZE];
    FILE *f;
    if (argc != 2) { fprintf(stderr, "usage: %s STIMULI.bin\\n", argv[0]); return 2; }
    f = fopen(argv[1], "rb");
    if (!f) { perror(argv[1]); return 2; }
    while (fread(raw, 1, NETWORK_INPUT_SIZE, f) == NETWORK_INPUT_SIZE) {
        for (int k = 0; k < NETWORK_INPUT_SIZE; ++k) input[k] = raw[k];
        printf("%d\\n", network_run(input));
    }
    fclose(f);
    return 0;
}
""",
        "Makefile": "network: main.c network.c network.h weights.h\n"
                    "\t$(CC) -std=c99 -O2 -Wall -o network main.c network.c -lm\n",
    }
    for name, text in files.items():
        with open(os.path.join(folder, name), "w") as f:
            f.write(text)
    return folder


def _acc_bound(node, fused, shapes):
    """max_code(input) · max_o Σ|W_int[o]| (+ nothing: the bias is added in float64)."""
    parent = node.parents[0]
    max_code = fused.input.max_code if parent == "env" else fused.nodes[parent].max_code
    fan = numpy.abs(node.W_int.astype(numpy.int64)).reshape(len(node.W_int), -1).sum(axis=1).max()
    return int(max_code) * int(fan)
