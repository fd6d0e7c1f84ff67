"""Model size and BitOps (n2d2py/stats/cost.py) against published reference figures:
ResNet-20 option A (He et al. 2016) and Wess et al. 2018, Tables IV/V (All-CNN-C weight memory)."""
import pathlib

import pytest

from n2d2py.deepnet import DeepNet
from n2d2py.errors import N2D2Error
from n2d2py.ini import parse_ini_text
from n2d2py.stats import cost_table, range_bits

ROOT = pathlib.Path(__file__).resolve().parents[2]
RESNET20 = ROOT / "models" / "ResNet-20.ini"
ALL_CNN_C = ROOT / "ini_examples" / "All-CNN-C.ini"

# ResNet-20 option A (CIFAR-10)
RESNET_WEIGHTS = 268_336
RESNET_MACS = 40_551_040
FIRST_MACS, LAST_MACS = 442_368, 640          # conv1 (3->16 @32x32), fc (64->10)
FIRST_W, LAST_W = 432, 640


def build(path, replace=()):
    text = path.read_text()
    for old, new in replace:
        assert old in text
        text = text.replace(old, new)
    return DeepNet.from_ini(parse_ini_text(text, str(path)), device="cpu", load_data=False)


@pytest.fixture(scope="module")
def resnet():
    return build(RESNET20)


@pytest.fixture(scope="module")
def resnet_sat():
    """ResNet-20 with SAT 4-bit weights on every conv and 4-bit QAct on every BatchNorm and
    residual sum (the Fc keeps float weights, fed by the pooled 4-bit sum)."""
    qact = "ActivationFunction={}\nQAct=SAT\nQAct.Range=15"
    return build(RESNET20, [
        ("[conv_def]\nType=Conv\n", "[conv_def]\nType=Conv\nQWeight=SAT\nQWeight.Range=15\n"),
        ("[bn_relu_def]\nType=BatchNorm\nActivationFunction=Rectifier",
         "[bn_relu_def]\nType=BatchNorm\n" + qact.format("Rectifier")),
        ("[bn_def]\nType=BatchNorm\nActivationFunction=Linear",
         "[bn_def]\nType=BatchNorm\n" + qact.format("Linear")),
        ("NbOutputs=16\nActivationFunction=Rectifier", "NbOutputs=16\n" + qact.format("Rectifier")),
        ("NbOutputs=32\nActivationFunction=Rectifier", "NbOutputs=32\n" + qact.format("Rectifier")),
        ("NbOutputs=64\nActivationFunction=Rectifier", "NbOutputs=64\n" + qact.format("Rectifier")),
    ])


def test_range_bits():
    assert [range_bits(R) for R in (1, 3, 7, 15, 16, 255, 65535)] == [1, 2, 3, 4, 5, 8, 16]


def test_resnet20_float_baseline(resnet):
    """Seed 000 Table 1 row Base: 1.07 MB and 41.52 GBitOps at 32/32 bits."""
    t = cost_table(resnet)
    assert t.parameters == RESNET_WEIGHTS
    assert t.macs == RESNET_MACS
    assert t.input_bits == 32
    assert t.size_bytes == 1_073_344
    assert round(t.size_mb, 2) == 1.07
    assert t.bitops == 41_524_264_960
    assert round(t.gbitops, 2) == 41.52
    assert t.other_parameters == 10 + 1376       # Fc bias + 19 BN layers x 2 x channels
    # the option-A shortcut (Pool 1x1 s2, ElemWise x0, Padding) costs nothing
    shortcut = [r for r in t.rows if "_sc" in r.name]
    assert len(shortcut) == 6 and all(r.bitops == 0 and r.weights == 0 for r in shortcut)
    # activation memory at 32 bits: largest tensor 16x32x32, sum of every cell's output
    assert t.activation_max_bytes == 16 * 32 * 32 * 4
    assert t.activation_sum_bytes == 487_508 * 4


@pytest.mark.parametrize("bits, first_last, gbitops, mb", [
    # published reference points
    (8, "as-configured", 2.5953, 0.2683),
    (4, "as-configured", 0.6488, 0.1342),
    (3, "as-configured", 0.3650, 0.1006),
    (2, "as-configured", 0.1622, 0.0671),
    (4, "8bit", 0.6701, 0.1347),
    (3, "8bit", 0.3893, 0.1013),
    (2, "8bit", 0.1888, 0.0679),
])
def test_resnet20_uniform_bits(resnet, bits, first_last, gbitops, mb):
    t = cost_table(resnet, weight_bits=bits, act_bits=bits, first_last=first_last)
    assert round(t.gbitops, 4) == gbitops
    assert round(t.size_mb, 4) == mb


def test_resnet20_4bit_exact(resnet):
    t = cost_table(resnet, weight_bits=4, act_bits=4)
    assert t.bitops == RESNET_MACS * 16 == 648_816_640
    assert t.size_bytes == RESNET_WEIGHTS * 4 / 8 == 134_168
    assert t.activation_max_bytes == 16 * 32 * 32 / 2
    fp32_ends = cost_table(resnet, weight_bits=4, act_bits=4, first_last="fp32")
    assert fp32_ends.bitops == (RESNET_MACS - FIRST_MACS - LAST_MACS) * 16 \
        + (FIRST_MACS + LAST_MACS) * 1024
    assert fp32_ends.size_bytes == (RESNET_WEIGHTS - FIRST_W - LAST_W) / 2 + (FIRST_W + LAST_W) * 4


def test_bits_from_quantizers(resnet_sat):
    """SAT Range=15 -> 4 bits; the first conv reads 8-bit image data; the Fc has no QWeight."""
    t = cost_table(resnet_sat)
    rows = {r.name: r for r in t.rows}
    assert t.input_bits == 8
    assert (rows["conv1"].w_bits, rows["conv1"].a_bits) == (4, 8)
    assert (rows["s2.1_conv1"].w_bits, rows["s2.1_conv1"].a_bits) == (4, 4)  # input: a QAct sum
    assert (rows["fc"].w_bits, rows["fc"].a_bits) == (32, 4)   # pooling keeps 4-bit codes
    assert rows["s1.1_conv1"].out_bits == 32 and rows["s1.1_bn1"].out_bits == 4
    middle = RESNET_MACS - FIRST_MACS - LAST_MACS
    assert t.bitops == middle * 16 + FIRST_MACS * 4 * 8 + LAST_MACS * 32 * 4
    assert t.size_bytes == (RESNET_WEIGHTS - LAST_W) / 2 + LAST_W * 4


def test_first_last_rules_on_quantized_net(resnet_sat):
    middle = RESNET_MACS - FIRST_MACS - LAST_MACS
    quantized = cost_table(resnet_sat, first_last="quantized")
    assert quantized.bitops == RESNET_MACS * 16      # first/last at the middle layers' 4/4
    eight = cost_table(resnet_sat, first_last="8bit")
    assert eight.bitops == middle * 16 + (FIRST_MACS + LAST_MACS) * 64
    assert round(eight.gbitops, 4) == 0.6701


def test_overrides_mixed_precision(resnet):
    t = cost_table(resnet, weight_bits=4, act_bits=4, overrides={"conv1": (8, 8), "fc": (2, 3)})
    assert t.bitops == (RESNET_MACS - FIRST_MACS - LAST_MACS) * 16 + FIRST_MACS * 64 \
        + LAST_MACS * 6
    assert t.size_bytes == (RESNET_WEIGHTS - FIRST_W - LAST_W) / 2 + FIRST_W + LAST_W * 2 / 8
    with pytest.raises(N2D2Error, match="nope"):
        cost_table(resnet, overrides={"nope": (4, 4)})
    with pytest.raises(N2D2Error, match="bn1"):
        cost_table(resnet, overrides={"bn1": (4, 4)})
    with pytest.raises(ValueError, match="first_last"):
        cost_table(resnet, first_last="int8")


# -- All-CNN-C, Wess et al. ------------------------------------------------------------------
ALL_CNN_WEIGHTS = [2592, 82944, 82944, 165888, 331776, 331776, 331776, 36864, 1920]


@pytest.fixture(scope="module")
def all_cnn():
    return build(ALL_CNN_C)


def w_mem_bits(net, bits):
    """W_mem of Wess et al.: Σ weights x bits over the nine convolutions."""
    names = [r.name for r in cost_table(net).weighted_rows()]
    overrides = {n: (b, 32) for n, b in zip(names, bits)}
    return cost_table(net, overrides=overrides).size_bytes * 8


def matches_kbits(w_mem, kbits):
    """The tables print K = 1000 bits, sometimes truncated (10,947,840 -> 10947K), sometimes
    rounded (5,473,920 -> 5474K): within 1K either way."""
    return abs(w_mem / 1000 - kbits) < 1


def test_all_cnn_c_shapes(all_cnn):
    t = cost_table(all_cnn)
    rows = t.weighted_rows()
    assert [r.weights for r in rows] == ALL_CNN_WEIGHTS
    assert [r.out_shape for r in rows][-3:] == [(192, 6, 6), (192, 6, 6), (10, 6, 6)]
    assert t.parameters == 1_368_480
    assert t.macs == 270_798_336
    assert t.size_bytes * 8 == 43_791_360          # Wess et al. Table V: 43791K bits at 32 bits


@pytest.mark.parametrize("bits, kbits", [
    ([32] * 9, 43791),                        # 32 bit float: 43,791,360 bits exactly
    ([8] * 9, 10947),                         # 8 bit DFP-eq
    ([4] * 9, 5474),                          # 4 bit DFP-eq and Po2-eq
    ([7, 7, 7, 4, 4, 3, 3, 7, 7], 5432),      # DFP-lw, CR 8.1
    # The table prints 5929K (CR 7.38 = 43791/5929) for [8 8 8 5 4 4 3 8 8], but those bits give
    # 6137K; a 7-bit ordering such as [7 7 3 7 4 4 3 7 7] gives 5929K. We assert the arithmetic.
    ([8, 8, 8, 5, 4, 4, 3, 8, 8], 6137),
])
def test_all_cnn_c_table_v(all_cnn, bits, kbits):
    assert matches_kbits(w_mem_bits(all_cnn, bits), kbits)


@pytest.mark.parametrize("bits, kbits", [
    ([32] * 9, 44344), ([8] * 9, 11086), ([7] * 9, 9700), ([6] * 9, 8314), ([5] * 9, 6928),
    ([9, 9, 9, 9, 6, 5, 7, 9, 9], 9485), ([9, 9, 9, 9, 5, 5, 5, 9, 9], 8490),
    ([9, 9, 9, 5, 4, 4, 5, 9, 9], 7163), ([9, 6, 5, 5, 3, 3, 4, 7, 9], 5513), ([4] * 9, 5543),
])
def test_all_cnn_c_cifar100_table_iv(bits, kbits):
    net = build(ALL_CNN_C, [("$NB_CLASSES=10", "$NB_CLASSES=100")])
    assert cost_table(net).parameters == 1_385_760          # Table III: 1386K
    assert matches_kbits(w_mem_bits(net, bits), kbits)
