"""Element-by-element agreement of a fused integer network with its fake-quantized DeepNet
(in real arithmetic the FLOAT_MULT/NONE path is exactly the fake-quantized chain expressed
in integer codes y·R/α), with rounding ties counted.

Each fused Conv/Fc node with an activation quantizer is fed the fake-quant codes of its input
(so one disagreement does not propagate) and its output codes are compared with the fake-quant
codes ``rint(y·R/α)``. The two sides compute the same real number v (the code before rounding)
differently: the fake-quant path in float32 (conv sums, BatchNorm, ``clip(x)/α·R``), the fused
path from an exact integer accumulator with N2D2's float32 constants S, B in float64. A
disagreement is only allowed on a **rounding tie**: an element whose fused v lies within the
float32 error bound E of the fake-quant path of a k + ½ boundary,

    E = u·(n + 16)·|S|·(Σ|W_int|·code / D + |B|max) + 16·u·|v|,   u = 2^−24,

n the fan-in, |B|max the bias terms before cancellation (|β|/|f| + |b| + |μ| in the accumulator
domain for a Conv+BN, |B| for an Fc or a Conv without BatchNorm): the classic γ_n bound of a
float32 dot product plus a few roundings per BatchNorm/quantizer step. ``exact_half`` also
counts where the fake-quant float32 value is exactly k + ½ (its half-away rounding then decides
alone). An Average pool's codes (window sums) are its own node run on the fake-quant codes.
"""
import copy
from contextlib import contextmanager

import numpy

from n2d2py.autograd import no_grad
from n2d2py.backend import asnumpy

F32 = numpy.float32
U = 2.0 ** -24


class _Recorder:
    """Wraps a cell's activation quantizer to keep its input (the float32 pre-quantization)."""

    def __init__(self, quantizer):
        self.quantizer, self.x = quantizer, None

    def __call__(self, x, training=False):
        self.x = asnumpy(x.data)
        return self.quantizer(x, training)

    def __getattr__(self, name):
        return getattr(self.quantizer, name)


@contextmanager
def recording(net):
    saved = {n: c.qact for n, c in net.cells.items() if c.qact is not None}
    recorders = {n: _Recorder(q) for n, q in saved.items()}
    try:
        for n, r in recorders.items():
            net.cells[n].qact = r
        yield recorders
    finally:
        for n, q in saved.items():
            net.cells[n].qact = q


def fake_quant_value(x, quantizer):
    """The SAT activation's float32 value before rounding, as ``SATActQuantize`` computes it."""
    a = numpy.abs(F32(quantizer.alpha))
    q = numpy.fmin(numpy.maximum(x, F32(0.0)), a)
    q /= a
    return q * F32(quantizer.range)


def _bias_magnitude(net, fused, node):
    """|B|max per output channel (see the module docstring), accumulator domain."""
    k = fused.constants[node.name]
    if node.type_name == "Fc" or node.source == node.name:     # no BatchNorm: |B| itself
        B = node.rescaling.B
        return numpy.zeros(len(node.W_int)) if B is None else numpy.abs(B.astype(numpy.float64))
    bn, conv = net.cells[node.source], net.cells[node.name]
    gamma, beta, mu, var = (asnumpy(a).astype(numpy.float64) for a in bn.arrays())
    f = numpy.abs(gamma / numpy.sqrt(float(bn.epsilon) + var))
    f = numpy.where(f > 0, f, 1.0)
    b = 0.0 if conv.bias is None else numpy.abs(asnumpy(conv.bias.data).astype(numpy.float64))
    return (numpy.abs(beta) / f + b + numpy.abs(mu)) * (k["R_in"] / k["alpha_in"]) * k["wsf"]


def agreement(net, fused, x):
    """Fake-quant vs fused on one batch ``x``. Returns (fake classes, fused classes, report),
    report = {node: {"size", "mismatches", "ties", "exact_half", "off_tie"}}."""
    with recording(net) as recorders, no_grad():
        outs = {k: asnumpy(v.data) for k, v in net.forward(x, keep="all").items()}
    env = fused.input_codes(x)
    target = net.targets[0].cell
    fake_cls = outs[target].reshape(len(x), -1).argmax(axis=1)
    fused_out = numpy.asarray(fused.forward(env))
    fused_cls = fused_out.reshape(len(x), -1).argmax(axis=1)

    def codes(name):
        if name == "env":
            return env
        node = fused.nodes[name]
        if node.type_name == "Pool":    # an Average pool outputs window sums: run it on codes
            return node([codes(p) for p in node.parents])
        return numpy.rint(outs[node.source] * node.R / node.alpha).astype(numpy.int64)

    report = {}
    for name, node in fused.nodes.items():
        if node.type_name not in ("Conv", "Fc") or getattr(node, "logits", False):
            continue
        a = codes(node.parents[0])
        acc = node.accumulate_exact(a)
        y = node.rescaling(numpy, acc)
        expected = codes(name).reshape(y.shape)
        r = node.rescaling
        t = r._clip(numpy, r.pre_activation(numpy, acc), acc.ndim)
        S = numpy.abs(r._channel(numpy, r.S, acc.ndim, numpy.float64))
        v = t * S
        absolute = copy.copy(node)
        absolute.W_int = numpy.abs(node.W_int)
        mag = absolute.accumulate_exact(a).astype(numpy.float64) / r.D
        mag += _bias_magnitude(net, fused, node).reshape((1, -1) + (1,) * (acc.ndim - 2))
        n = node.W_int[0].size
        bound = U * (n + 16) * S * mag + 16 * U * numpy.abs(v)
        ties = numpy.abs(v - numpy.floor(v) - 0.5) <= bound
        v32 = fake_quant_value(recorders[node.source].x, net.cells[node.source].qact)
        v32 = v32.reshape(y.shape).astype(numpy.float64)
        bad = y != expected
        report[name] = {"size": int(y.size), "mismatches": int(bad.sum()), "ties": int(ties.sum()),
                        "exact_half": int((v32 - numpy.floor(v32) == 0.5).sum()),
                        "off_tie": int((bad & ~ties).sum())}
    return fake_cls, fused_cls, report


def tie_summary(report):
    """Totals over the layers: (mismatches, ties, exact_half, off_tie, elements)."""
    keys = ("mismatches", "ties", "exact_half", "off_tie", "size")
    return tuple(sum(r[k] for r in report.values()) for k in keys)
