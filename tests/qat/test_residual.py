"""Residual graphs: MobileNet-v2-mini with N2D2's 8-bit weights (ElemWise Sum
after BatchNorm, global Average pool, Fc with bias). On the first 300 bundled test digits we
measured fake-quant 99.67 %, fused Floating-point NONE 99.67 %, Fixed-point32 RINTF 99.33 %."""
import numpy
import pytest

from n2d2py.qat import fuse_qat

from qat_helpers import MULTIBRANCH, load

LIMIT = 300


@pytest.fixture(scope="module")
def net():
    return load("MobileNet_v2_mini", "mobilenet-v2-weights-8b", folder=MULTIBRANCH)


def test_residual_fusion(net):
    fused = fuse_qat(net)
    add = fused.nodes["conv3.1_bn_sum"]
    assert add.type_name == "ElemWise" and len(add.parents) == 2
    # operands in the units of the skip branch (bn2's codes, N2D2's "parent 0")
    assert add.multipliers[1] == 65536 and fused.constants["conv3.1_bn_sum"]["reference"] == 1
    assert fused.nodes["pool"].den == numpy.prod(fused.nodes["pool"].kernel)
    fake = net.test(limit=LIMIT).recognition_rate
    assert fake == pytest.approx(99.667, abs=0.01)
    assert abs(fused.test(limit=LIMIT).recognition_rate - fake) <= 100 / LIMIT + 1e-7


def test_residual_fixed_point(net):
    fused = fuse_qat(net, "Fixed-point32", "RINTF", "RINTF", "RINTF")
    assert fused.test(limit=LIMIT).recognition_rate == pytest.approx(99.333, abs=0.01)
