"""N2D2's two-stage SAT recipe (QAT documentation, "HandMade model: LeNet Example - INI File"),
end to end on a few hundred stimuli, and what a QAT weights folder holds (as N2D2's).

Stage 1, ``ini_examples/LeNet_SAT4_stage1.ini``: clamp-only weights (QWeight.ApplyQuantization=0),
float ReLU activations. The user copies the weights folder to ``weights_clamped/``. Stage 2,
``ini_examples/LeNet_SAT4.ini``: quantization on (4-bit weights and SAT activations, conv1 and fc2
at 8 bits), ``-w weights_clamped``.
"""
import os
import pathlib
import shutil

import numpy
import pytest

from n2d2py import cli
from n2d2py.autograd import no_grad
from n2d2py.backend import asnumpy
from n2d2py.deepnet import DeepNet

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "ini_examples"
STAGE1, STAGE2 = EXAMPLES / "LeNet_SAT4_stage1.ini", EXAMPLES / "LeNet_SAT4.ini"
LSQ4 = EXAMPLES / "LeNet_LSQ4.ini"
STIMULI = 256           # two batches of 128 per stage: the recipe's plumbing, not its accuracy
QUANTIZED = ("conv1", "conv2", "conv3", "fc1", "fc2")
SAT_ACTS = ("bn1", "bn2", "bn3", "fc1")
#: conv and fc files carry 10 significant digits (cells with a quantizer), enough for float32
#: to read back exactly; BatchNorm files carry N2D2's 6.
BN_RTOL = 1e-5


def weights_of(net):
    return {name: asnumpy(net.cells[name].weights[0].data).copy() for name in QUANTIZED}


def quantized_of(net, name):
    cell = net.cells[name]
    with no_grad():
        return asnumpy(cell.qweight(list(cell.weights))[0].data)


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    """Stage 1 through the Python API (DeepNet.learn, as ``--learn 256 --log 256``); returns
    (net, workdir). The best-validation weights are in ``workdir/weights_validation``."""
    workdir = tmp_path_factory.mktemp("stage1")
    net = DeepNet.from_ini(STAGE1, device="cpu", seed=1)
    net.learn(stimuli=STIMULI, log=STIMULI, rng=numpy.random.default_rng(1), out=open(os.devnull, "w"),
              workdir=str(workdir), reload_best=False)
    return net, workdir


def test_stage1_clamps_without_rounding(stage1):
    net, workdir = stage1
    folder = workdir / "weights_validation"
    for name in QUANTIZED:
        assert net.cells[name].qweight.apply_quantization is False
        wq = quantized_of(net, name)
        if name.startswith("conv"):   # ApplyScaling=0: tanh(w)/max|tanh(w)| reaches ±1 exactly
            assert numpy.abs(wq).max() == 1.0
        assert len(numpy.unique(wq)) > min(wq.size // 2, 256)   # clamped, not rounded
        assert (folder / f"{name}_weights.syntxt").is_file()
        assert (folder / f"{name}_weights_quant.distrib.png").stat().st_size > 1000
    # the histogram data are the clamped weights
    clamped = numpy.loadtxt(folder / "conv2_weights_quant.distrib.dat")
    assert clamped.min() >= -1.0 and clamped.max() <= 1.0
    assert not list(folder.glob("*_QAct_SAT_Alpha.syntxt"))   # no activation quantizer yet


def test_stage2_starts_from_clamped_weights_and_trains(stage1, tmp_path, monkeypatch, capsys):
    net1, workdir = stage1
    shutil.copytree(workdir / "weights_validation", tmp_path / "weights_clamped")   # as users do
    monkeypatch.chdir(tmp_path)

    # what stage 2 loads before it learns: the same code path as -w (cli.stage_import)
    net2 = DeepNet.from_ini(STAGE2, device="cpu", seed=1)
    notices = net2.import_weights("weights_clamped", ignore_missing=True)
    assert sorted(notices) == sorted(f"Notice: Could not open synaptic file: "
                                     f"{os.path.join('weights_clamped', n)}_QAct_SAT_Alpha.syntxt"
                                     for n in SAT_ACTS)
    net1.import_weights(workdir / "weights_validation")   # stage 1's exported weights
    for name, W in weights_of(net1).items():
        numpy.testing.assert_array_equal(weights_of(net2)[name], W, err_msg=name)
    for bn in ("bn1", "bn2", "bn3"):
        numpy.testing.assert_allclose(net2.cells[bn].variance, net1.cells[bn].variance, rtol=BN_RTOL)
        assert net2.cells[bn].qact.alpha == 6.0     # QAct.Alpha: no alpha in a clamped folder
    # the same weights are now quantized: 8-bit conv1 (<= 256 levels), 4-bit conv2/conv3/fc1
    assert len(numpy.unique(quantized_of(net2, "conv1"))) <= 256
    for name in ("conv2", "conv3"):
        assert len(numpy.unique(quantized_of(net2, name))) <= 16

    # stage 2 itself, through the command line
    status = cli.main([str(STAGE2), "-learn", str(STIMULI), "-log", str(STIMULI), "-seed", "1",
                       "-w", "weights_clamped", "--nb-test", "200"])
    out = capsys.readouterr().out
    assert status == 0
    assert "Importing weights from directory 'weights_clamped'." in out
    assert out.count("Notice: Could not open synaptic file:") == len(SAT_ACTS)
    assert "Final recognition rate" in out
    folder = tmp_path / "weights"   # written at the end of learning
    for name in QUANTIZED:
        W = numpy.array([[float(v) for v in line.split()] for line in
                         (folder / f"{name}_weights.syntxt").read_text().splitlines()])
        start = weights_of(net1)[name].reshape(len(W), -1)
        assert W.shape == start.shape and not numpy.array_equal(W, start)   # it trained
        assert numpy.abs(W - start).max() < 0.5                              # from the clamped start
        suffix = "_quant_weights_quant" if name.startswith("fc") else "_quant_weights"
        levels = numpy.unique(numpy.loadtxt(folder / f"{name}{suffix}.syntxt"))
        assert len(levels) <= (256 if name in ("conv1", "fc2") else 16), name
        assert (folder / f"{name}_weights_quant.distrib.png").is_file()
    for name in SAT_ACTS:
        alpha = float((folder / f"{name}_QAct_SAT_Alpha.syntxt").read_text())
        assert 0 < alpha != 6.0                     # learnt, and saved in N2D2's name


def test_lsq_state_saved_and_reloaded(tmp_path):
    """LSQ steps are saved with the weights in N2D2's names and read back exactly."""
    net = DeepNet.from_ini(LSQ4, device="cpu", seed=1)
    net.weight_histograms = False
    net.learn(stimuli=128, log=128, rng=numpy.random.default_rng(1), out=open(os.devnull, "w"),
              workdir=str(tmp_path), reload_best=False)
    folder = tmp_path / "weights"
    assert (folder / "conv2_alphaW_LSQ.syntxt").read_text().endswith(" ")
    assert (folder / "bn2_QAct_LSQ_StepSize.syntxt").is_file()
    again = DeepNet.from_ini(LSQ4, device="cpu", seed=2)
    assert again.import_weights(folder, ignore_missing=True) == []
    for name in ("conv1", "conv2", "fc1", "fc2"):
        assert again.cells[name].qweight.step_size == net.cells[name].qweight.step_size
        numpy.testing.assert_array_equal(quantized_of(again, name), quantized_of(net, name))
    for name in ("bn1", "bn2", "bn3", "fc1"):
        assert again.cells[name].qact.step_size == net.cells[name].qact.step_size


#: Loose bound for CI: after 1024 stimuli (8 batches) the 4-bit nets score ~70% on the first 500
#: test digits (SAT4 71%, LSQ4 68.4% measured); chance is 10%. The real criterion (within 1.5
#: points of float LeNet after 10 epochs) is measured outside CI: see ini_examples/LeNet_SAT4.ini.
SHORT_STIMULI, SHORT_TEST, SHORT_MIN_ACCURACY = 1024, 500, 50.0   # percent


@pytest.mark.parametrize("ini", [STAGE2, LSQ4], ids=["SAT4", "LSQ4"])
def test_4bit_lenet_learns_from_scratch_short_budget_loose_bound(ini):
    net = DeepNet.from_ini(ini, device="cpu", seed=1)
    net.weight_histograms = False
    rng = numpy.random.default_rng(1)
    losses = [net.learn_batch(x, labels)[0]
              for x, labels, _ in net.sp.batches("Learn", True, rng, SHORT_STIMULI)]
    assert numpy.isfinite(losses).all() and numpy.mean(losses[-2:]) < numpy.mean(losses[:2])
    net.sp.batch_size = SHORT_TEST
    assert net.test(limit=SHORT_TEST).recognition_rate >= SHORT_MIN_ACCURACY
