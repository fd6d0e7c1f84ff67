"""Layer-wise Precision Scaling (Wess et al. 2018, Algorithm 1): W_mem against Table V, the greedy
search with a stub evaluator (choice by min Δacc·W_mem, stop at ε), and the INI snippet."""
import pytest

from n2d2py.ini import parse_ini_text
from n2d2py.lps import ini_snippet, precision_scaling, weight_memory

# All-CNN-C for CIFAR-10 (Wess et al., Table III): conv weights per layer
ALL_CNN_C = {"conv1": 3 * 96 * 9, "conv2": 96 * 96 * 9, "conv3": 96 * 96 * 9,
             "conv4": 96 * 192 * 9, "conv5": 192 * 192 * 9, "conv6": 192 * 192 * 9,
             "conv7": 192 * 192 * 9, "conv8": 192 * 192, "conv9": 192 * 10}


def test_weight_memory_matches_table_v():
    assert weight_memory(ALL_CNN_C, dict.fromkeys(ALL_CNN_C, 32)) == 43_791_360       # 43791K
    bits = dict(zip(ALL_CNN_C, [7, 7, 7, 4, 4, 3, 3, 7, 7]))
    mem = weight_memory(ALL_CNN_C, bits)
    assert mem == 5_432_160                                                          # 5432K
    assert 43_791_360 / mem == pytest.approx(8.06, abs=0.01)                         # CR 8.1


def stub(sensitivity, baseline=90.0):
    """acc = baseline − Σ_n s_n·2^(−b_n): each bit removed doubles a layer's loss."""
    calls = []

    def evaluate(bits):
        calls.append(dict(bits))
        return baseline - sum(s * 2.0 ** -bits[n] for n, s in sensitivity.items())
    return evaluate, calls


def test_search_lowers_the_cheap_big_layer_first_and_stops_at_epsilon():
    counts = {"a": 100, "b": 10000, "c": 100}
    sens = {"a": 4.0, "b": 1.0, "c": 40.0}
    evaluate, calls = stub(sens)
    bits, steps = precision_scaling(counts, evaluate, 90.0, epsilon=0.5, start_bits=8)
    assert steps[0][0] == "b"                      # the largest layer is the first to go
    drop = sum(s * 2.0 ** -bits[n] for n, s in sens.items())
    assert drop < 0.5
    # one more bit off any layer would cost at least ε (the loop stopped for that reason)
    assert all(drop + sens[n] * 2.0 ** -bits[n] >= 0.5 for n in counts if bits[n] > 2)
    assert bits["c"] > bits["b"]                   # the sensitive layer keeps more bits
    # each step evaluated every layer still above min_bits (Algorithm 1's inner loop)
    assert len(calls) >= 1 + 3 * len(steps)


def test_min_bits_floor():
    counts = {"a": 10, "b": 20}
    evaluate, _ = stub({"a": 0.0, "b": 0.0})
    bits, steps = precision_scaling(counts, evaluate, 90.0, epsilon=0.5, start_bits=4, min_bits=2)
    assert bits == {"a": 2, "b": 2} and len(steps) == 4


def test_ini_snippet_parses():
    text = ini_snippet({"conv1": 7, "fc1": 3}, "DFP", "bits: 7 3")
    doc = parse_ini_text(text, "lps_bits.ini")
    assert doc.section("conv1").get("QWeight") == "DFP"
    assert doc.section("conv1").get("QWeight.Range") == "127"
    assert doc.section("fc1").get("QWeight.Range") == "7"
