"""The fusion of the LeNet shapes N2D2's QAT documentation teaches (its INI and Python LeNets): a
Dropout between a Conv and its BatchNorm (identity at inference: fused through), and an Fc without
activation quantizer inside the network (fc1 -> Dropout -> fc2; its outputs become signed codes
round(t·R_in) as N2D2 makes them). N2D2's trained LeNet-bn-SAT weights, 300 test digits."""
import numpy
import pytest

from n2d2py.deepnet import DeepNet
from n2d2py.ini import parse_ini_text
from n2d2py.qat import fuse_qat

from qat_helpers import MNIST_MODEL

TEXT = (MNIST_MODEL / "LeNet-bn-SAT.ini").read_text()


def variant(text, tmp_path, monkeypatch):
    monkeypatch.setenv("N2D2_DATA", str(tmp_path))
    net = DeepNet.from_ini(parse_ini_text(text, str(tmp_path / "variant.ini")))
    net.import_weights(str(MNIST_MODEL / "weights_test_SAT"), ignore_missing=True)
    net.sp.batch_size = 300
    return net


def predictions(net, fused):
    x, labels, _ = next(net.sp.batches("Test", False, None, 300))
    fake = numpy.asarray(net.forward(x)["softmax"].data).reshape(300, -1).argmax(1)
    integer = numpy.asarray(fused.forward(fused.input_codes(x))).reshape(300, -1).argmax(1)
    return fake, integer, labels


def test_a_dropout_between_conv_and_batchnorm_is_fused_through(tmp_path, monkeypatch):
    text = TEXT.replace("[bn3]Bn_def\nInput=conv3", "[conv3.drop]\nInput=conv3\nType=Dropout\n"
                        "NbOutputs=[conv3]NbOutputs\n\n[bn3]Bn_def\nInput=conv3.drop")
    assert "conv3.drop" in text
    net = variant(text, tmp_path, monkeypatch)
    fused = fuse_qat(net)
    assert "conv3.drop" not in fused.nodes and fused.alias["bn3"] == "conv3"
    fake, integer, labels = predictions(net, fused)
    assert numpy.array_equal(fake, integer)
    reference = fuse_qat(variant(TEXT, tmp_path, monkeypatch))      # without the Dropout
    for key in ("W", "S", "B", "C"):
        assert numpy.array_equal(fused.constants["conv3"][key], reference.constants["conv3"][key])


@pytest.mark.parametrize("compat", [False, True])
def test_an_fc_without_qact_inside_the_network_outputs_codes(tmp_path, monkeypatch, compat):
    start = TEXT.index("[Fc_def]")
    end = TEXT.index("ConfigSection", start)
    fc_def = "\n".join(line for line in TEXT[start:end].splitlines() if not line.startswith("QAct"))
    text = TEXT[:start] + fc_def + "\n" + TEXT[end:]
    text = text.replace("QWeight.Range=255\nQAct.Range=255", "QWeight.Range=255")
    net = variant(text, tmp_path, monkeypatch)
    assert net.cells["fc1"].qact is None and net.cells["fc2"].qact is None
    fused = fuse_qat(net, n2d2_compat=compat)
    fc1, fc2 = fused.nodes["fc1"], fused.nodes["fc2"]
    assert (fc1.R, fc1.alpha) == (15, 1.0) and not fc1.logits       # codes t·R_in, signed
    assert fc1.rescaling.lo == -(1 << 31) and (fc2.rescaling.S is None) != compat  # last: logits
    fake, integer, labels = predictions(net, fused)
    assert (fake == integer).mean() >= 0.99
    assert (integer == labels).mean() >= 0.95
