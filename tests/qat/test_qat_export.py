"""Exports (spec/qat.md §5.8): weights_quantized/ + scaling.json, and the C99 program compiled
with the system gcc, whose predictions on 100 test digits equal the Python integer engine's."""
import json
import shutil
import subprocess

import numpy
import pytest

from n2d2py.io import syntxt
from n2d2py.qat import fuse_qat
from n2d2py.qat.export import export_c, export_weights_quantized, write_stimuli

from qat_helpers import load

CASES = [("LeNet-bn-SAT", "weights_test_SAT", "Fixed-point32", "RINTF", False),
         ("LeNet_w1_a2", "weights_LeNet_w1_a2", "Floating-point", "NONE", False),
         ("LeNet_wMix_a4", "weights_LeNet_wMix_a4", "Single-shift", "RINTF", True)]


def test_weights_quantized(tmp_path):
    fused = fuse_qat(load("LeNet-bn-SAT", "weights_test_SAT"), "Fixed-point32", "RINTF", "RINTF",
                     "RINTF")
    folder = export_weights_quantized(fused, tmp_path / "weights_quantized")
    W = syntxt.read_numbers(syntxt.weights_path(folder, "conv2", "weights"), 16 * 150)
    assert W.reshape(16, 150)[0, :5].tolist() == [-1, -3, 9, 1, 5]      # §5.9
    B = syntxt.read_numbers(syntxt.weights_path(folder, "conv1", "biases"), 6)
    assert B[0] == 21520
    info = json.loads((tmp_path / "weights_quantized" / "scaling.json").read_text())
    conv2 = next(n for n in info["nodes"] if n["name"] == "conv2")
    assert conv2["rescaling"]["clip"][0] == 776 and conv2["rescaling"]["saturation"] == [0, 15]
    assert conv2["rescaling"]["fixed_point_multiplier"][0] == round(0.0193184 * 65536)
    assert not list(tmp_path.glob("weights_quantized.tmp-*"))          # written atomically


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc")
@pytest.mark.parametrize("ini, weights, mode, rnd, compat", CASES, ids=[c[0] for c in CASES])
def test_c_export_matches_python(tmp_path, ini, weights, mode, rnd, compat):
    net = load(ini, weights, batch_size=100)
    fused = fuse_qat(net, mode, rnd, rnd, rnd, n2d2_compat=compat)
    x, labels, _ = next(net.sp.batches("Test", False, None, 100))
    codes = fused.input_codes(x)
    expected = numpy.asarray(fused.forward(codes)).reshape(100, -1).argmax(axis=1)
    folder = export_c(fused, tmp_path / "export")
    write_stimuli(tmp_path / "stimuli.bin", codes)
    binary = str(tmp_path / "network")
    build = subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-o", binary,
                            str(folder / "main.c"), str(folder / "network.c"), "-lm"],
                           capture_output=True, text=True)
    assert build.returncode == 0 and "warning" not in build.stderr, build.stderr
    run = subprocess.run([binary, str(tmp_path / "stimuli.bin")], capture_output=True, text=True,
                         check=True)
    predicted = numpy.array([int(v) for v in run.stdout.split()])
    assert numpy.array_equal(predicted, expected)
    assert (predicted == labels).sum() >= 95
