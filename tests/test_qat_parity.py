"""Parity with N2D2 on its own trained QAT LeNets.

``n2d2 <ini> -test -w <folder>`` (N2D2's CPU build) on the 1000 bundled test digits scores, for the
ten QAT INIs of ``tests_data/mnist_model/``, the plain accuracies in ``N2D2_CORRECT`` below. We run
the same code path as ``n2d2py <ini> --test -w <folder>`` (DeepNet.from_ini, import_weights with
missing files as notices, DeepNet.test) and require the same number of correct digits.

``oracle-outputs/`` holds N2D2's per-layer outputs (``-log-outputs``) for two test digits of
LeNet-bn-SAT and LeNet_w1_a2; ``test_layer_outputs_match_n2d2`` names the first layer that departs.
"""
import pathlib

import numpy
import pytest

from n2d2py.autograd import no_grad
from n2d2py.backend import asnumpy
from n2d2py.deepnet import DeepNet

ROOT = pathlib.Path(__file__).resolve().parent.parent
N2D2_INI = ROOT / "tests" / "data" / "n2d2"
MODELS = N2D2_INI / "tests_data" / "mnist_model"
ORACLE = N2D2_INI / "oracle-outputs"

#: INI -> (weights folder, digits N2D2 classifies correctly out of the 1000 test digits)
N2D2_CORRECT = {
    "LeNet-bn-SAT": ("weights_test_SAT", 999),
    "LeNet-bn-SAT-8b": ("weights_8b_SAT", 1000),
    "LeNet_4b": ("weights_LeNet_4b", 998),
    "LeNet_w1_a2": ("weights_LeNet_w1_a2", 988),
    "LeNet_w1_a4": ("weights_LeNet_w1_a4", 995),
    "LeNet_w1_a8": ("weights_LeNet_w1_a8", 994),
    "LeNet_w3_a4": ("weights_LeNet_w3_a4", 998),
    "LeNet_w4_a8": ("weights_LeNet_w4_a8", 1000),
    "LeNet_w5_a8": ("weights_LeNet_w5_a8", 1000),
    "LeNet_wMix_a4": ("weights_LeNet_wMix_a4", 998),
}

#: oracle-outputs/README.md: test_stimulus_1 is test digit 576, test_stimulus_2 is 660
ORACLE_STIMULI = {"test_stimulus_1": 576, "test_stimulus_2": 660}
#: N2D2 prints 6 significant digits: 5e-6 relative, plus an absolute floor for values near 0
PRINT_RTOL, PRINT_ATOL = 1e-5, 1e-5

#: Inference does not depend on the batch size (BN uses running statistics, the quantizers are
#: element-wise or per tensor): test in one batch to keep CI fast.
TEST_BATCH = 1000

def load(name, folder):
    """What ``n2d2py <ini> --test -w <folder>`` does before testing (cli.stage_build/import)."""
    net = DeepNet.from_ini(MODELS / f"{name}.ini", device="cpu", seed=1)
    notices = net.import_weights(MODELS / folder, ignore_missing=True)
    return net, notices


@pytest.mark.parametrize("name", sorted(N2D2_CORRECT))
def test_accuracy_matches_n2d2(name):
    folder, expected = N2D2_CORRECT[name]
    net, notices = load(name, folder)
    assert notices == []    # N2D2's folders hold every file the net reads
    net.sp.batch_size = TEST_BATCH
    result = net.test()
    assert result.nb_stimuli == 1000
    assert result.correct == expected
    assert result.recognition_rate == pytest.approx(expected / 10)   # percent


def read_dat(path, channels):
    """N2D2's ``-log-outputs`` text: one block per channel (rows of values); 1x1 outputs are a
    zero-padded square grid of the channel values. Returns (C, H, W) or (C, 1, 1)."""
    blocks = [b for b in path.read_text().split("\n\n") if b.strip()]
    grids = [numpy.array([[float(v) for v in line.split()] for line in b.strip().splitlines()])
             for b in blocks]
    if len(grids) == channels:
        return numpy.stack(grids)
    return grids[0].ravel()[:channels].reshape(channels, 1, 1)


@pytest.mark.parametrize("name", ["LeNet-bn-SAT", "LeNet_w1_a2"])
def test_layer_outputs_match_n2d2(name):
    net, _ = load(name, N2D2_CORRECT[name][0])
    for stimulus, index in ORACLE_STIMULI.items():
        folder = ORACLE / name / stimulus
        x, _ = net.sp.stimulus("Test", index)
        layers = {"env": x}
        with no_grad():
            outputs = net.forward(x[None], training=False, keep="all")
        layers.update({cell: asnumpy(v.data)[0] for cell, v in outputs.items()})
        for cell in ["env"] + list(net.cells):   # build order: the first departure is named
            ours = layers[cell]
            theirs = read_dat(folder / f"{cell}.dat", ours.shape[0])
            numpy.testing.assert_allclose(
                ours, theirs, rtol=PRINT_RTOL, atol=PRINT_ATOL * max(1.0, abs(theirs).max()),
                err_msg=f"{name} {stimulus} (test digit {index}): first departure at [{cell}]")


def test_cli_w_with_missing_files_prints_notices_and_tests(tmp_path, monkeypatch, capsys):
    """``n2d2py <ini> --test -w DIR``: a file missing from DIR is N2D2's notice, not an error;
    what is there is imported (N2D2's ``-w`` imports with ignoreNotExists)."""
    import shutil
    from n2d2py import cli
    folder = tmp_path / "partial"
    shutil.copytree(MODELS / "weights_test_SAT", folder)
    missing = ["bn2_QAct_SAT_Alpha.syntxt", "fc2_weights.syntxt"]
    for name in missing:
        (folder / name).unlink()
    monkeypatch.chdir(tmp_path)
    status = cli.main([str(MODELS / "LeNet-bn-SAT.ini"), "-test", "-w", "partial", "-nb-test", "100"])
    out = capsys.readouterr().out
    assert status == 0
    assert "Importing weights from directory 'partial'." in out
    notices = [line for line in out.splitlines() if line.startswith("Notice: Could not open")]
    assert sorted(notices) == sorted(f"Notice: Could not open synaptic file: "
                                     f"{pathlib.Path('partial', n)}" for n in missing)
    assert "Final recognition rate: " in out and "Weights loaded from" not in out   # -w, no reload
