"""Acceptance: the fused integer network scores what the fake-quantized
network scores on the 1000 bundled test digits, for N2D2's ten LeNet configurations.

Measured (fake-quant | fused Floating-point NONE | Fixed-point32 RINTF | Single-shift RINTF):
LeNet-bn-SAT 99.9|99.9|99.7|98.3, -8b 100|100|100|96.3, 4b 99.8|99.8|99.8|97.8,
w1_a2 98.8|98.8|98.6|91.0, w1_a4 99.5|99.5|99.4|96.4, w1_a8 99.4|99.4|99.4|98.3,
w3_a4 99.8|99.8|99.8|95.0, w4_a8 100|100|100|94.5, w5_a8 100|100|100|99.4, wMix_a4 99.8|99.8|99.8|93.5.
The integer modes rescale with integers only (Fc layers included, scaling.IntegerRescaling):
Fixed-point32 (31-bit multipliers) scores what Floating-point RINTF scores; RINTF's own rounding
of the weights is the loss. Single-shift approximates every scale by a power of two (up to −2 % /
+2^(1/…)): a real loss.
The ten configurations are split over this file and test_fused_accuracy_b.py (60 s budget).
"""
import pytest

from n2d2py.qat import fuse_qat

from qat_helpers import CONFIGS, load

#: (fixed-point32 RINTF, single-shift RINTF) accuracies we measured, % (regression guards)
MEASURED = {"LeNet-bn-SAT": (99.7, 98.3), "LeNet-bn-SAT-8b": (100.0, 96.3),
            "LeNet_4b": (99.8, 97.8), "LeNet_w1_a2": (98.6, 91.0), "LeNet_w1_a4": (99.4, 96.4),
            "LeNet_w1_a8": (99.4, 98.3), "LeNet_w3_a4": (99.8, 95.0), "LeNet_w4_a8": (100.0, 94.5),
            "LeNet_w5_a8": (100.0, 99.4), "LeNet_wMix_a4": (99.8, 93.5)}


def check_config(ini, weights, n2d2):
    net = load(ini, weights)
    fake = net.test().recognition_rate
    assert fake == pytest.approx(n2d2, abs=0.05)          # N2D2's own score on these digits
    fused = fuse_qat(net).test().recognition_rate           # Floating-point, NONE
    assert abs(fused - fake) <= 0.1 + 1e-9
    fixed, shift = MEASURED[ini]
    acc = fuse_qat(net, "Fixed-point32", "RINTF", "RINTF", "RINTF").test().recognition_rate
    assert acc == pytest.approx(fixed, abs=0.05)
    acc = fuse_qat(net, "Single-shift", "RINTF", "RINTF", "RINTF").test().recognition_rate
    assert acc == pytest.approx(shift, abs=0.05)


@pytest.mark.parametrize("ini, weights, n2d2", CONFIGS[:5], ids=[c[0] for c in CONFIGS[:5]])
def test_fused_matches_fake_quant(ini, weights, n2d2):
    check_config(ini, weights, n2d2)
