"""``--calib`` on a LeNet n2d2py trains itself (``models/LeNet.ini``, 4 epochs, seed 1, on the
bundled digits), through the command as a user runs it:

* ``--test --calib -1 -w weights_validation`` (8 bits, N2D2's defaults: MSE clipping, per layer,
  Floating-point): the float, fake-quantized and integer scores are printed, the integer one
  at most 0.3 point below the float one, fake-quantized equal to integer; ``calib_int8/`` holds the
  per-layer table, the statistics and one histogram picture per observed cell;
  ``weights_quantized/`` the integer weights and ``scaling.json``.
* 4 bits, each clipping mode, per layer and per channel: the fake-quantized and integer networks
  give the same class on every test digit (the accuracy table of docs/PTQ.md).
* ``--calib-reload`` reuses the statistics (same network, same scores) and refuses statistics
  collected from other weights; ``--export ONNX`` (onnxruntime gives the engine's codes) and
  ``--export C`` (integer-only, compiled without FP registers: every layer's codes are the
  engine's) of the calibrated network; the C export refuses what it cannot express (an int32
  accumulator overflow at 16 bits), before writing anything.
* ``tools/ptq_peer.py`` prints n2d2py's (per weight clipping mode) and onnxruntime's 4-bit rows
  side by side, with their calibration times.
"""
import json
import re
import shutil
import subprocess
import sys

import numpy
import pytest

from n2d2py.deepnet import DeepNet
from n2d2py.ptq import PTQOptions, calibrate
from n2d2py.ptq.histogram import load_ranges
from n2d2py.qat.export_c import CProgram

from c_helpers import INTEGER_FLAGS, compile_program, read_trace, run_program
from cli_runner import ROOT, assert_error, error_line, run_subprocess

LENET = ROOT / "models" / "LeNet.ini"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lenet")
    status, out, err = run_subprocess(folder, LENET, "--learn-epoch", 4, "--seed", 1,
                                      timeout=300)
    assert status == 0, err
    return folder


def rates(text):
    return [float(v) for v in re.findall(r"Final recognition rate: ([0-9.]+)%", text)]


def test_eight_bits_through_the_command(trained):
    status, out, err = run_subprocess(trained, LENET, "-w", "weights_validation", "-test",
                                      "-calib", -1, "-nbbits", 8)
    assert status == 0, err
    float_rate, fake, integer = rates(out)
    print(f"LeNet float {float_rate} %, 8-bit fake-quantized {fake} %, integer {integer} %")
    assert float_rate - 0.3 <= integer <= float_rate + 1.0 and fake == integer
    table = (trained / "calib_int8" / "layers.dat").read_text()
    for layer in ("conv1", "conv2", "conv3", "fc1", "fc2"):
        assert re.search(rf"^{layer}\s", table, re.M), layer
    assert "MSE" in table and "u8" in table and "s8" in table   # fc2 (Linear) is signed
    ranges = load_ranges(trained / "calib_int8" / "outputs_range.bin")
    assert ranges["env"].count == 800 * 32 * 32 and ranges["env"].min >= 0
    pictures = sorted((trained / "calib_int8" / "histograms").glob("*.png"))
    assert len(pictures) == 5 and all(p.read_bytes()[:4] == b"\x89PNG" for p in pictures)
    scaling = json.loads((trained / "weights_quantized" / "scaling.json").read_text())
    assert scaling["options"]["method"] == "PTQ" and scaling["options"]["bits"] == 8
    assert (trained / "LeNet.ini.ptq.png").is_file()
    assert "Calibrating on 800 Validation stimuli" in out


@pytest.fixture(scope="module")
def lenet(trained):
    net = DeepNet.from_ini(LENET)
    net.import_weights(trained / "weights_validation")
    # the batch size stays the INI's: the histograms' bin width is the first batch's
    x = numpy.concatenate([x for x, _, _ in net.sp.batches("Test", False, None, 1000)])
    return net, x


@pytest.mark.parametrize("per_output", [False, True], ids=["layer", "channel"])
def test_four_bits_fake_quantized_equals_integer(lenet, per_output):
    net, x = lenet
    for mode in ("None", "MSE", "KL-Divergence", "Quantile"):
        fused = calibrate(net, PTQOptions(4, mode, per_output=per_output), calib=256)
        codes = fused.input_codes(x)
        assert codes.max() <= 15 and codes.min() >= 0
        integer = numpy.asarray(fused.forward(codes)).reshape(len(x), -1)
        fake = numpy.asarray(fused.fake_quantized().forward(codes)).reshape(len(x), -1)
        assert numpy.array_equal(integer.argmax(axis=1), fake.argmax(axis=1)), mode
        print(f"4 bits, {mode}, per {'channel' if per_output else 'layer'}: "
              f"{fused.test().recognition_rate:.1f} %")


def test_calib_reload(trained, tmp_path):
    work = tmp_path / "run"
    shutil.copytree(trained, work)
    argv = [LENET, "-w", "weights_validation", "--test", "--calib", 200, "--nbbits", 6]
    status, first, err = run_subprocess(work, *argv)
    assert status == 0, err
    status, again, err = run_subprocess(work, *argv, "--calib-reload")
    assert status == 0, err
    assert "reloaded from 'calib_int6/'" in again and rates(again) == rates(first)
    shutil.copytree(work / "weights_validation", work / "other")
    (work / "other" / "fc2_weights.syntxt").write_text(
        (work / "other" / "fc2_weights.syntxt").read_text().replace("0.", "0.0", 1))
    status, out, err = run_subprocess(work, LENET, "-w", "other", "--calib", 200, "--nbbits",
                                      6, "--calib-reload")
    assert status == 2
    assert_error(error_line(err), "calibration.json", "other weights", "without --calib-reload")


def test_export_onnx_of_the_calibrated_network(trained, tmp_path, lenet):
    ort = pytest.importorskip("onnxruntime")
    work = tmp_path / "run"
    shutil.copytree(trained, work)
    status, out, err = run_subprocess(work, LENET, "-w", "weights_validation", "--calib", -1,
                                      "--export", "ONNX", "--act-rescaling-mode",
                                      "Fixed-point32")
    assert status == 0, err
    net, x = lenet
    fused = calibrate(net, PTQOptions(8, act_scaling_mode="Fixed-point32"))
    codes = fused.input_codes(x[:50])
    session = ort.InferenceSession(str(work / "LeNet.int.onnx"))
    y = session.run(None, {"env": codes.astype(numpy.uint8)})[0]   # softmax of the codes
    engine = numpy.asarray(fused.forward(codes))
    assert numpy.allclose(engine, y, rtol=0, atol=1e-12)
    assert numpy.array_equal(engine.argmax(axis=1), y.argmax(axis=1))


def test_export_c_of_the_calibrated_network(trained, tmp_path, lenet):
    """Fixed-point16 with per-layer fractional bits, integer-only C (no FP registers): the C
    program's classes on 200 test digits are the integer engine's (expected.txt, made by the
    command) and every layer's codes equal the engine's."""
    work = tmp_path / "run"
    shutil.copytree(trained, work)
    status, out, err = run_subprocess(work, LENET, "-w", "weights_validation", "--calib", -1,
                                      "--export", "C", "--act-rescaling-mode", "Fixed-point16",
                                      "--export-stimuli", 200)
    assert status == 0, err
    assert "200 test stimuli written" in out and "C export memory" in out
    folder = work / "export_C_int8"
    binary = compile_program(folder, tmp_path / "network", INTEGER_FLAGS, trace=True)
    classes, labels, accuracy, stdout = run_program(binary, folder / "stimuli.bin",
                                                    tmp_path / "trace")
    assert stdout == (folder / "expected.txt").read_text()
    net, x = lenet
    fused = calibrate(net, PTQOptions(8, act_scaling_mode="Fixed-point16"))
    codes = fused.input_codes(x[:200])
    engine = fused.forward(codes, keep="all")
    program = CProgram(fused)
    bits = {node.rescaling.fractional_bits for node in fused.nodes.values()
            if getattr(node, "rescaling", None) is not None and node.rescaling.mult is not None}
    assert bits and bits != {16}      # one n per layer, not --qat-sat's 16
    for name, got in read_trace(program, tmp_path / "trace", 200).items():
        assert numpy.array_equal(got, numpy.asarray(engine[name]).reshape(200, -1)), name
    assert classes.tolist() == numpy.asarray(engine[program.output.name]).reshape(
        200, -1).argmax(axis=1).tolist()


def test_c_export_refuses_what_its_generator_cannot_express(trained, tmp_path):
    """16-bit codes: conv1's accumulator exceeds the C program's int32, refused naming the
    layer before the calibration folder or the export is written."""
    work = tmp_path / "run"
    shutil.copytree(trained, work)
    shutil.rmtree(work / "calib_int16", ignore_errors=True)
    status, out, err = run_subprocess(work, LENET, "-w", "weights_validation", "--calib", 100,
                                      "-nbbits", 16, "--export", "C", "--act-rescaling-mode",
                                      "Single-shift")
    assert status == 2
    assert_error(error_line(err), "[conv1]", "C export", "beyond int32")
    assert not (work / "export_C_int16").exists() and not (work / "calib_int16").exists()


def test_peer_script_side_by_side(trained):
    pytest.importorskip("onnxruntime")
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "ptq_peer.py"), str(LENET), "-w",
                          "weights_validation", "--bits", "4", "--calib", "200",
                          "--wt-clipping-mode", "None", "MSE"], cwd=trained,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    rows = [[c.strip() for c in line.split("|")] for line in run.stdout.splitlines()
            if line.startswith("| 4 |")]
    ours = [r for r in rows if r[2] == "n2d2py"]
    assert len(ours) == 16 and {r[4] for r in ours} == {"None", "MSE"}
    assert len([r for r in rows if r[2] == "onnxruntime"]) == 6
    for row in ours:
        assert row[6] == row[7], row      # fake-quantized = integer
        assert row[8] == str(61470 // 2)  # 4-bit weights' bytes
    assert all(re.fullmatch(r"[0-9]+\.[0-9]", r[9]) for r in rows), rows   # calibration s
    assert re.search(r"4 bits: best n2d2py [0-9.]+ %, best onnxruntime [0-9.]+ %", run.stdout)
    assert re.search(r"4 bits, median calibration time: n2d2py [0-9.]+ s, onnxruntime [0-9.]+ s "
                     r"\(onnxruntime / n2d2py: [0-9.]+x\)", run.stdout)
