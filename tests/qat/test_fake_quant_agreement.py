"""Per element (spec/qat.md §5.4 "In real arithmetic the FLOAT_MULT/NONE path is exactly the
fake-quantized chain"): each fused layer, fed the fake-quant codes of its input, outputs the
fake-quant codes y·R/α, except where the real value sits on a rounding tie (counted)."""
import numpy
import pytest

from n2d2py.autograd import no_grad
from n2d2py.backend import asnumpy
from n2d2py.qat import fuse_qat

from qat_helpers import load

TIE = 2e-3   # a float32 fake-quant and a float64 fusion may round x.5 ± float32 noise apart


def layer_mismatches(net, fused, x):
    with no_grad():
        outs = {k: asnumpy(v.data) for k, v in net.forward(x, keep="all").items()}
    env = fused.input_codes(x)

    def codes(node_name):
        if node_name == "env":
            return env
        node = fused.nodes[node_name]
        return numpy.rint(outs[node.source] * node.R / node.alpha).astype(numpy.int64)

    report = {}
    for name, node in fused.nodes.items():
        if node.type_name not in ("Conv", "Fc") or getattr(node, "logits", False):
            continue
        acc = node.accumulate(codes(node.parents[0]))
        y = node.rescaling(numpy, acc)
        expected = codes(name).reshape(y.shape)
        r = node.rescaling
        t = r._clip(numpy, r.pre_activation(numpy, acc), acc.ndim)
        v = t * r._channel(numpy, r.S, acc.ndim, numpy.float64)
        ties = numpy.abs(v - numpy.floor(v) - 0.5) < TIE * numpy.maximum(1, numpy.abs(v))
        bad = y != expected
        report[name] = (int(bad.sum()), int((bad & ~ties).sum()), y.size)
    return report


@pytest.mark.parametrize("ini, weights", [("LeNet-bn-SAT", "weights_test_SAT"),
                                          ("LeNet_4b", "weights_LeNet_4b"),
                                          ("LeNet_w1_a2", "weights_LeNet_w1_a2")])
def test_codes_agree_except_ties(ini, weights):
    net = load(ini, weights)
    fused = fuse_qat(net)
    x, _, _ = next(net.sp.batches("Test", False, None, 250))
    report = layer_mismatches(net, fused, x)
    print(ini, report)
    for name, (mismatches, off_tie, size) in report.items():
        assert off_tie == 0, f"{name}: {off_tie} mismatches away from a tie"
        assert mismatches <= 1e-3 * size
