"""Exports: weights_quantized/ + scaling.json, and the C99 program compiled
with the system gcc, whose predictions on 100 test digits equal the Python integer engine's."""
import json

import numpy
import pytest

from n2d2py.io import syntxt
from n2d2py.qat import fuse_qat
from n2d2py.qat.export import export_weights_quantized

from c_helpers import c_classes
from qat_helpers import load

CASES = [("LeNet-bn-SAT", "weights_test_SAT", "Fixed-point32", "RINTF", False),
         ("LeNet_w1_a2", "weights_LeNet_w1_a2", "Floating-point", "NONE", False),
         ("LeNet_wMix_a4", "weights_LeNet_wMix_a4", "Single-shift", "RINTF", False)]


def test_weights_quantized(tmp_path):
    fused = fuse_qat(load("LeNet-bn-SAT", "weights_test_SAT"), "Fixed-point32", "RINTF", "RINTF",
                     "RINTF")
    folder = export_weights_quantized(fused, tmp_path / "weights_quantized")
    W = syntxt.read_numbers(syntxt.weights_path(folder, "conv2", "weights"), 16 * 150)
    assert W.reshape(16, 150)[0, :5].tolist() == [-1, -3, 9, 1, 5]      # N2D2's values
    B = syntxt.read_numbers(syntxt.weights_path(folder, "conv1", "biases"), 6)
    assert B[0] == 21520
    info = json.loads((tmp_path / "weights_quantized" / "scaling.json").read_text())
    conv2 = next(n for n in info["nodes"] if n["name"] == "conv2")
    assert conv2["rescaling"]["clip"][0] == 776 and conv2["rescaling"]["saturation"] == [0, 15]
    integer = conv2["rescaling"]["integer"]      # integers only: bias, clip in acc units (D = 1)
    assert integer["clip"][0] == 776 and integer["bias"][0] == 179
    M, n = integer["multiplier"][0], integer["fractional_bits"]
    top = max(integer["multiplier"])           # the most fractional bits a 32-bit M allows
    assert top < 2 ** 31 <= 2 * top and M / 2 ** n == pytest.approx(0.0193184, rel=1e-5)
    compat = fuse_qat(load("LeNet-bn-SAT", "weights_test_SAT"), "Fixed-point32", "RINTF", "RINTF",
                      "RINTF", n2d2_compat=True)
    export_weights_quantized(compat, tmp_path / "compat")
    info = json.loads((tmp_path / "compat" / "scaling.json").read_text())
    conv2 = next(n for n in info["nodes"] if n["name"] == "conv2")["rescaling"]
    assert conv2["fixed_point_multiplier"][0] == round(0.0193184 * 65536)   # N2D2: 16 bits
    assert not list(tmp_path.glob("weights_quantized.tmp-*"))          # written atomically


@pytest.mark.parametrize("ini, weights, mode, rnd, compat", CASES, ids=[c[0] for c in CASES])
def test_c_export_matches_python(tmp_path, ini, weights, mode, rnd, compat):
    net = load(ini, weights, batch_size=100)
    fused = fuse_qat(net, mode, rnd, rnd, rnd, n2d2_compat=compat)
    x, labels, _ = next(net.sp.batches("Test", False, None, 100))
    codes = fused.input_codes(x)
    expected = numpy.asarray(fused.forward(codes)).reshape(100, -1).argmax(axis=1)
    predicted, _ = c_classes(fused, codes, tmp_path, labels)
    assert numpy.array_equal(predicted, expected)
    assert (predicted == labels).sum() >= 95
