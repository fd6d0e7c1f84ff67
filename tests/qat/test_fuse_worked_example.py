"""N2D2's fusion constants for LeNet-bn-SAT + weights_test_SAT, channel 0."""
import numpy
import pytest

from n2d2py.errors import N2D2Error
from n2d2py.qat import fuse_qat

from qat_helpers import load

REL = 2e-5   # the reference values have 6 significant digits

# layer, mode, W[0, :5] (flattened C, kH, kW), S_0, B_0, C_0   (N2D2's values)
EXAMPLE = [
    ("conv1", "NONE", [.02745, .05098, .03529, .06667, -.21569], 0.0207648, 169.448, 722.375),
    ("conv1", "RINTF", [3, 6, 4, 8, -27], 0.000163503, 21520, 91742),
    ("conv2", "NONE", [-.0667, -.2, .6, .0667, .3333], 0.289775, 11.9291, 51.7642),
    ("conv2", "RINTF", [-1, -3, 9, 1, 5], 0.0193184, 179, 776),
    ("conv3", "RINTF", [1, 1, -3, -9, -1], 0.0154523, -35, 971),
]


@pytest.fixture(scope="module")
def net():
    return load("LeNet-bn-SAT", "weights_test_SAT")


@pytest.fixture(scope="module")
def fused(net):
    return {mode: fuse_qat(net, "Floating-point", mode, mode, mode) for mode in ("NONE", "RINTF")}


@pytest.mark.parametrize("layer, mode, W, S, B, C", EXAMPLE)
def test_constants_of_channel_0(fused, layer, mode, W, S, B, C):
    k = fused[mode].constants[layer]
    numpy.testing.assert_allclose(k["W"][0].ravel()[:5], W, atol=5e-5)
    assert k["S"][0] == pytest.approx(S, rel=REL)
    assert k["B"][0] == pytest.approx(B, rel=REL)
    assert k["C"][0] == pytest.approx(C, rel=REL)


def test_rintf_weights_and_4bit_hack(fused):
    k1, k2 = fused["RINTF"].constants["conv1"], fused["RINTF"].constants["conv2"]
    assert k1["wsf"] == 127 and k2["wsf"] == 15 and k2["corr"] == 1.0
    assert numpy.array_equal(k2["W"], numpy.rint(k2["W"]))
    assert set(numpy.unique(numpy.abs(k2["W"])).astype(int)) <= set(range(1, 16, 2))


def test_compat_hack_uses_31(net):
    k = fuse_qat(net, "Floating-point", "RINTF", "RINTF", "RINTF", n2d2_compat=True).constants["conv2"]
    assert k["R_in"] == 31.0 and k["corr"] == pytest.approx(31 / 15)
    assert k["S"][0] == pytest.approx(0.0193184, rel=REL)   # the hack cancels when R_in is 15


def test_fc_sat_scales(fused):
    """SAT scales s_0 of the FCs: weights_test_SAT fc1 2.47024, fc2 0.847119."""
    assert fused["RINTF"].constants["fc1"]["sat_scaling"] == pytest.approx(2.47024, rel=REL)
    assert fused["RINTF"].constants["fc2"]["sat_scaling"] == pytest.approx(0.847119, rel=REL)


def test_original_net_untouched(net, fused):
    assert list(net.cells) == ["conv1", "bn1", "pool1", "conv2", "bn2", "pool2", "conv3", "bn3",
                               "fc1", "fc1.drop", "fc2", "softmax"]
    assert net.cells["conv1"].qweight is not None and net.cells["conv1"].bias is None
    assert list(fused["NONE"].nodes) == ["conv1", "pool1", "conv2", "pool2", "conv3", "fc1", "fc2",
                                         "softmax"]
    assert fused["NONE"].alias["bn2"] == "conv2" and fused["NONE"].alias["fc1.drop"] == "fc1"


def test_conv_without_bn_is_refused(net):
    import copy
    broken = copy.copy(net)
    broken.cells = {k: v for k, v in net.cells.items() if k != "bn1"}
    pool1 = copy.copy(net.cells["pool1"])
    pool1.parents = ["conv1"]
    broken.cells["pool1"] = pool1
    with pytest.raises(N2D2Error, match=r"\[conv1\] has no BatchNorm child with a SAT activation "
                                        r"quantizer"):
        fuse_qat(broken)


def test_double_shift_is_n2d2s_scaling_but_not_its_qat_simulation(net):
    """N2D2's -qat-sat leaves Double-shift layers unscaled: --n2d2-compat refuses it; without,
    conv2 (RINTF, D = 1, S_0 = 0.0193184) gets N2D2's two-shift approximation: 2^-6
    (0.81 of S), then 2^-9 (0.91 < 0.98), so the second exponent drops to 8: 2^-6 + 2^-8 =
    0.01953 = 1.011·S."""
    with pytest.raises(N2D2Error, match="Double-shift cannot be combined with --n2d2-compat"):
        fuse_qat(net, "Double-shift", n2d2_compat=True)
    fused = fuse_qat(net, "Double-shift", "RINTF", "RINTF", "RINTF")
    form = fused.nodes["conv2"].rescaling.integer_form()
    assert (form.shift_a[0], form.shift_b[0]) == (2, 8)        # (z + z·2^2 + 2^7) >> 8
    assert form.clip[0] == 776 and form.bias[0] == 179
