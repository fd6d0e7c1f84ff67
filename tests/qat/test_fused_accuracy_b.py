"""Second half of the ten LeNet configurations (see test_fused_accuracy.py)."""
import pytest

from qat_helpers import CONFIGS
from test_fused_accuracy import check_config


@pytest.mark.parametrize("ini, weights, n2d2", CONFIGS[5:], ids=[c[0] for c in CONFIGS[5:]])
def test_fused_matches_fake_quant(ini, weights, n2d2):
    check_config(ini, weights, n2d2)
