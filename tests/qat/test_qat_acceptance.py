"""Acceptance of ``--qat-sat`` on every one of the 1000 bundled test digits:

1. N2D2's ten QAT LeNets: the fused integer network (Floating-point, NONE) predicts the class the
   fake-quantized network predicts on every digit, and every fused layer's integer codes equal
   the fake-quant codes y·R/α except on counted rounding ties (``qat_agreement.py``).
2. The same for a LeNet that n2d2py trains itself with SAT (ini_examples/LeNet_SAT4.ini, 1024
   stimuli, seed 1).
3. N2D2's residual MobileNet-v2-mini models (8-bit Default and Symmetric weights): fake-quant and
   fused accuracy, same class on every digit, and (4.) their C export.
4. The C99 export built with ``gcc -O2 -std=c99 -Wall -Werror`` gives the Python engine's class on
   all 1000 digits (one process reads them all), and its weight memory line matches
   ``stats.cost_table`` at the C arrays' integer widths (like with like), next to the report's
   bytes at the quantizers' Range bits.
5. Networks ``--qat-sat`` cannot fuse: exit status 2, one ``n2d2py: error:`` line naming the cell,
   and nothing written by the fusion.

Measured (fake-quant = fused accuracy; code mismatches / counted ties / exact float32 .5 cases
over all fused layers, 6.5 M codes per LeNet): LeNet-bn-SAT 99.9 % 2/201/0, -8b 100 % 60/4512/3,
4b 99.8 % 0/679/0, w1_a2 98.8 % 1/68/0, w1_a4 99.5 % 1/122/0, w1_a8 99.4 % 57/5515/24, w3_a4
99.8 % 1/132/4, w4_a8 100 % 5/3637/1, w5_a8 100 % 15/5234/10, wMix_a4 99.8 % 0/854/0.
MobileNet_v2_mini 99.8 % (N2D2: 98.67 % on the 10 000 MNIST test digits), _wSym 99.4 % (98.55 %).
"""
import os
import pathlib
import re

import numpy
import pytest

from n2d2py import cli
from n2d2py.autograd import no_grad
from n2d2py.backend import asnumpy
from n2d2py.qat import fuse_qat, run_qat_sat
from n2d2py.qat.export_c import weight_memory, weight_memory_line
from n2d2py.stats import cost_table

from c_helpers import c_classes as compile_and_run
from qat_agreement import agreement, tie_summary
from qat_helpers import CONFIGS, MULTIBRANCH, load

ROOT = pathlib.Path(__file__).resolve().parents[2]
DIGITS = 1000
#: rounding ties may be at most this fraction of a network's codes (measured ≤ 8.5e-4)
TIE_FRACTION = 2e-3


def digits_batch(net):
    net.sp.batch_size = DIGITS
    x, labels, _ = next(net.sp.batches("Test", False, None, DIGITS))
    assert len(labels) == DIGITS
    return x, labels


def check_agreement(name, net, fused, x):
    fake, integer, report = agreement(net, fused, x)
    mismatches, ties, exact, off_tie, size = tie_summary(report)
    print(f"{name}: classes differ on {int((fake != integer).sum())}/{len(x)} digits; codes: "
          f"{mismatches} mismatches, all on ties: {off_tie == 0}; {ties} ties counted "
          f"({exact} exact float32 .5) among {size} codes; per layer {report}")
    assert numpy.array_equal(fake, integer), f"{name}: fused class differs from fake-quant"
    for layer, r in report.items():
        assert r["off_tie"] == 0, f"{name} [{layer}]: {r['off_tie']} code mismatches off a tie"
    assert mismatches <= ties <= TIE_FRACTION * size
    return fake


# -- 1. N2D2's ten LeNets -----------------------------------------------------------------------
@pytest.mark.parametrize("ini, weights, n2d2", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_lenet_fused_equals_fake_quant_on_every_digit(ini, weights, n2d2):
    net = load(ini, weights, batch_size=DIGITS)
    x, labels = digits_batch(net)
    fake = check_agreement(ini, net, fuse_qat(net), x)
    assert 100 * (fake == labels).mean() == pytest.approx(n2d2, abs=0.05)


# -- 2. a LeNet n2d2py trains with SAT ----------------------------------------------------------
def test_self_trained_sat_lenet(tmp_path):
    from n2d2py.deepnet import DeepNet
    net = DeepNet.from_ini(ROOT / "ini_examples" / "LeNet_SAT4.ini", device="cpu", seed=1)
    net.weight_histograms = False
    rng = numpy.random.default_rng(1)
    for xb, lb, _ in net.sp.batches("Learn", True, rng, 1024):
        net.learn_batch(xb, lb)
    x, labels = digits_batch(net)
    fake = check_agreement("LeNet_SAT4 (1024 stimuli)", net, fuse_qat(net), x)
    print(f"LeNet_SAT4 after 1024 stimuli: {100 * (fake == labels).mean():.1f} %")
    assert (fake == labels).mean() > 0.5


# -- 3 + 4. residual MobileNet-v2-mini, with its C export ----------------------------------------
def c_classes(fused, x, tmp_path):
    """Compile the export and run it ONCE on all the stimuli; returns its classes."""
    classes, program = compile_and_run(fused, fused.input_codes(x), tmp_path)
    return classes, pathlib.Path(program.folder)


def check_weight_memory(net, fused, folder):
    """The export's weight bytes = cost_table at the C widths; the report's at Range bits."""
    line = weight_memory_line(fused)
    print(line)
    rows = weight_memory(fused)
    c_bytes = sum(r["c_bytes"] for r in rows)
    assert re.search(rf"weight memory: {c_bytes:.0f} bytes", line)
    header = (folder / "network.h").read_text()
    assert f"#define NETWORK_WEIGHTS_BYTES {c_bytes:.0f}" in header
    like = cost_table(net, overrides={r["name"]: (r["c_bits"], 8) for r in rows})
    assert like.size_bytes == c_bytes
    configured = cost_table(net)     # the report's bits: ceil(log2(Range + 1)) per quantizer
    assert configured.size_bytes == sum(r["range_bytes"] for r in rows)
    assert f"{configured.size_bytes:g} bytes" in line


MOBILENETS = [("MobileNet_v2_mini", "mobilenet-v2-weights-8b", 98.67),
              ("MobileNet_v2_mini_wSym", "mobilenet-v2-weights-sym-8b", 98.55)]


@pytest.mark.parametrize("ini, weights, n2d2_full_mnist", MOBILENETS, ids=[m[0] for m in MOBILENETS])
def test_mobilenet_fused_and_c_export(ini, weights, n2d2_full_mnist, tmp_path):
    net = load(ini, weights, folder=MULTIBRANCH, batch_size=DIGITS)
    x, labels = digits_batch(net)
    with no_grad():
        fake = asnumpy(net.forward(x)[net.targets[0].cell].data).reshape(DIGITS, -1).argmax(axis=1)
    fused = fuse_qat(net)
    integer = numpy.asarray(fused.forward(fused.input_codes(x))).reshape(DIGITS, -1).argmax(axis=1)
    fake_acc, fused_acc = 100 * (fake == labels).mean(), 100 * (integer == labels).mean()
    print(f"{ini}: fake-quant {fake_acc:.2f} %, fused {fused_acc:.2f} % on the {DIGITS} bundled "
          f"digits (N2D2: {n2d2_full_mnist} % on the full MNIST test set); classes differ on "
          f"{int((fake != integer).sum())}")
    assert numpy.array_equal(fake, integer)
    assert fake_acc >= n2d2_full_mnist - 0.5
    c, folder = c_classes(fused, x, tmp_path)
    assert numpy.array_equal(c, integer)
    check_weight_memory(net, fused, folder)


# -- 4. LeNet C exports on all digits -------------------------------------------------------------
C_CASES = [("LeNet-bn-SAT", "weights_test_SAT", "Floating-point", "NONE"),      # int16 conv1/fc2
           ("LeNet_4b", "weights_LeNet_4b", "Fixed-point32", "RINTF"),          # int8 everywhere
           ("LeNet_w1_a2", "weights_LeNet_w1_a2", "Single-shift", "RINTF")]


@pytest.mark.parametrize("ini, weights, mode, rnd", C_CASES, ids=[c[0] for c in C_CASES])
def test_c_export_all_digits(ini, weights, mode, rnd, tmp_path):
    net = load(ini, weights, batch_size=DIGITS)
    x, labels = digits_batch(net)
    fused = fuse_qat(net, mode, rnd, rnd, rnd)
    python = numpy.asarray(fused.forward(fused.input_codes(x))).reshape(DIGITS, -1).argmax(axis=1)
    c, folder = c_classes(fused, x, tmp_path)
    print(f"{ini} {mode} {rnd}: C = Python on {int((c == python).sum())}/{DIGITS} digits, "
          f"accuracy {100 * (c == labels).mean():.1f} %")
    assert numpy.array_equal(c, python)
    check_weight_memory(net, fused, folder)


def test_run_qat_sat_prints_weight_memory(tmp_path):
    import argparse
    import io
    net = load("LeNet_w1_a2", "weights_LeNet_w1_a2")
    args = argparse.Namespace(workdir=str(tmp_path), export=str(tmp_path / "c"), nb_test=10,
                              ini="LeNet_w1_a2.ini")
    out = io.StringIO()
    fused, _ = run_qat_sat(net, args, out)
    text = out.getvalue()
    assert "C export weight memory: 62460 bytes" in text
    assert cost_table(net).size_bytes == 8550 and "as n2d2py --report): 8550 bytes" in text


# -- 5. networks that cannot be fused ---------------------------------------------------------
def sat4_without_bn1(tmp_path):
    text = (ROOT / "ini_examples" / "LeNet_SAT4.ini").read_text()
    text = re.sub(r"\[bn1\] Bn_def\nInput=conv1\nNbOutputs=\[conv1\]NbOutputs\n", "", text)
    text = text.replace("[pool1]\nInput=bn1", "[pool1]\nInput=conv1")
    assert "[bn1]" not in text and "Input=conv1\nType=Pool" in text
    path = tmp_path / "LeNet_SAT4_noBN.ini"
    path.write_text(text)
    return path


BAD = [("models/LeNet.ini", r"\[conv1\] no cell of this network has a SAT quantizer"),
       ("ini_examples/LeNet_LSQ4.ini", r"\[conv1\] QWeight=LSQ: -qat-sat fuses SAT quantizers only"),
       ("noBN", r"\[conv1\] has no BatchNorm child with a SAT activation quantizer")]


@pytest.mark.parametrize("export", [False, True], ids=["test", "export-C"])
@pytest.mark.parametrize("ini, message", BAD, ids=["float-LeNet", "LSQ", "Conv-without-BN"])
def test_unfusable_networks_exit_2(ini, message, export, tmp_path, monkeypatch, capsys):
    path = sat4_without_bn1(tmp_path) if ini == "noBN" else ROOT / ini
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    argv = [str(path), "--test", "--qat-sat", "-w", os.devnull, "--nb-test", "10"]
    status = cli.main(argv + (["--export", "C"] if export else []))
    captured = capsys.readouterr()
    errors = [line for line in (captured.out + captured.err).splitlines()
              if line.startswith("n2d2py: error:")]
    assert status == 2
    assert len(errors) == 1 and re.search(message, errors[0]), errors
    written = sorted(p.name for p in work.iterdir())
    assert not (work / "weights_quantized").exists() and not (work / "export_C_int8").exists()
    assert not [n for n in written if n.endswith(".qat.png") or n.startswith("weights")], written
