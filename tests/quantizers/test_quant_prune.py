"""Prune weight quantizer (``QWeight=Prune``): masks, fillers, Gradual schedule, masks file."""
import numpy
import pytest

from mt19937 import uniform_tensor
from n2d2py.autograd import Variable
from n2d2py.errors import WeightsError
from n2d2py.quantizers import PruneQuantizer, make_weight_quantizer

ZERO_FRACTION_TOL = 0.1  # N2D2's test: zero fraction within ±0.1 of the threshold


def test_static_random_prune_like_n2d2_unit_test():
    w = uniform_tensor(9, -1.0, 1.0, (6, 1, 3, 3))  # 3×3×1×6 weights, Static, thr = 0.2
    q = make_weight_quantizer("Prune", {"PruningMode": "Static", "Threshold": "0.2"})
    W = Variable(w, requires_grad=True)
    (Wp,) = q([W])
    mask = q.masks[0]
    assert abs(q.zero_fraction - 0.2) <= ZERO_FRACTION_TOL
    assert int((mask == 0).sum()) == 11  # ceil(0.2·54)
    numpy.testing.assert_array_equal(Wp.data, w * mask)
    g = uniform_tensor(10, -1.0, 1.0, w.shape)
    Wp.backward(g)
    numpy.testing.assert_array_equal(W.grad, g * mask)


def test_identity_keeps_everything_and_defaults():
    q = PruneQuantizer()
    assert (q.pruning_mode, q.pruning_filler, q.threshold, q.delta) == ("Identity", "Random", 0.2, 0.001)
    assert (q.start_threshold, q.step_size_threshold, q.gamma_threshold) == (0.1, 0, 0.05)
    w = numpy.ones((3, 4), numpy.float32)
    assert numpy.array_equal(q([Variable(w)])[0].data, w)


def test_iter_nonstruct_smallest_delta_multiple():
    w = numpy.asarray([[0.0005, -0.0015, 0.0025, 0.01, -0.2]], dtype=numpy.float32)
    q = PruneQuantizer(pruning_mode="Static", pruning_filler="IterNonStruct", threshold=0.5)
    q([Variable(w)])
    # fraction(|w| ≤ 0.001·j) ≥ 0.5 first at j = 3 (3 of 5 values), mask = |w| > 0.003
    assert q.masks[0].tolist() == [[0, 0, 0, 1, 1]]


def test_gradual_schedule_counts_stimuli():
    w = uniform_tensor(11, -1.0, 1.0, (10, 10))
    # fractions exact in binary: ceil(thr·N) is taken in float32 as N2D2 (0.1 + 0.2 would give 31%)
    q = PruneQuantizer(pruning_mode="Gradual", start_threshold=0.25, gamma_threshold=0.125,
                       threshold=0.5, step_size_threshold=64)
    q([Variable(w)])
    assert q.zero_fraction == 0.25
    q.on_step(32)
    assert q.zero_fraction == 0.25  # 32 < 64 stimuli
    q.on_step(32)
    assert q.zero_fraction == 0.38  # ceil(0.375·100)
    q.on_step(64)
    assert q.zero_fraction == 0.5
    q.on_step(64)
    assert q.zero_fraction == 0.5  # capped at Threshold


def test_masks_file_roundtrip_and_errors(tmp_path):
    w = uniform_tensor(12, -1.0, 1.0, (4, 2, 3, 3))
    q = PruneQuantizer(pruning_mode="Static", threshold=0.3)
    q([Variable(w)])
    q.export_state(str(tmp_path), "conv1")
    lines = (tmp_path / "conv1_masks.syntxt").read_text().splitlines()
    assert len(lines) == 4 and all(len(line.split()) == 18 and line.endswith(" ") for line in lines)
    r = PruneQuantizer(pruning_mode="Static", threshold=0.9)
    r.import_state(str(tmp_path), "conv1")  # before the masks exist: applied at first forward
    r([Variable(w)])
    numpy.testing.assert_array_equal(r.masks[0], q.masks[0])
    assert r.current_threshold == pytest.approx(q.zero_fraction)
    wrong = PruneQuantizer()
    wrong.import_state(str(tmp_path), "conv1")  # 72 values for a 50-weight cell
    with pytest.raises(WeightsError, match="expected 50 mask values"):
        wrong([Variable(numpy.ones((5, 10), numpy.float32))])
    (tmp_path / "bad_masks.syntxt").write_text("1 0 2 ")
    with pytest.raises(WeightsError, match="bad_masks"):
        PruneQuantizer().import_state(str(tmp_path), "bad")
    with pytest.raises(WeightsError, match="nothing_masks"):
        PruneQuantizer().import_state(str(tmp_path), "nothing")
