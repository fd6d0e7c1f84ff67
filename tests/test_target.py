"""Targets and scoring: metrics on a hand-made confusion matrix,
recognition rate (mean of per-batch success) versus plain accuracy, dense targets, losses."""
import numpy
import pytest

from n2d2py.errors import IniError
from n2d2py.target import (METRICS, Target, TargetScore, class_metric, confusion_table,
                           target_from_section)

TOL = 1e-6

# rows: target class, columns: estimated class
CONFUSION = numpy.array([[5, 1, 0],
                         [2, 3, 1],
                         [0, 0, 4]])


def test_confusion_table_counts():
    tp, fn, fp, tn = confusion_table(CONFUSION)
    assert tp.tolist() == [5, 3, 4]
    assert fn.tolist() == [1, 3, 0]
    assert fp.tolist() == [2, 1, 1]
    assert tn.tolist() == [8, 9, 11]


@pytest.mark.parametrize("name, expected", [
    # per class by hand, then the mean over the 3 classes
    ("Sensitivity", (5 / 6 + 3 / 6 + 4 / 4) / 3),
    ("Specificity", (8 / 10 + 9 / 10 + 11 / 12) / 3),
    ("Precision", (5 / 7 + 3 / 4 + 4 / 5) / 3),
    ("Accuracy", (13 / 16 + 12 / 16 + 15 / 16) / 3),
    ("F1Score", (10 / 13 + 6 / 10 + 8 / 9) / 3),
    ("Informedness", (5 / 6 + 3 / 6 + 1) / 3 + (8 / 10 + 9 / 10 + 11 / 12) / 3 - 1),
    ("IU", (5 / 8 + 3 / 7 + 4 / 5) / 3),
    ("MissRate", (1 / 6 + 3 / 6 + 0) / 3),
    ("NegativePredictiveValue", (8 / 9 + 9 / 12 + 11 / 11) / 3),
])
def test_metrics_on_hand_made_matrix(name, expected):
    assert class_metric(CONFUSION, name) == pytest.approx(expected, abs=TOL)


def test_metrics_average_only_classes_with_samples():
    # class 3 has no sample but was predicted once: it is left out of the mean (N2D2)
    m = numpy.zeros((4, 4), dtype=int)
    m[:3, :3] = CONFUSION
    m[0, 3] = 1  # one class-0 sample estimated as 3
    sensitivity = (5 / 7 + 3 / 6 + 4 / 4) / 3
    assert class_metric(m, "Sensitivity") == pytest.approx(sensitivity, abs=TOL)


def test_unknown_metric_is_an_error():
    with pytest.raises(IniError, match="unknown metric 'Recall'"):
        class_metric(CONFUSION, "Recall")


def test_recognition_rate_is_mean_of_batch_success():
    target = TargetScore(name="softmax.Target", cell="softmax")
    eye = numpy.eye(3, dtype=numpy.float32)
    # batch 1: 3 of 4 right; batch 2: 2 of 2 right
    assert target.score(eye[[0, 1, 2, 0]][:, :, None, None], numpy.array([0, 1, 2, 1])) == 0.75
    assert target.score(eye[[2, 1]][:, :, None, None], numpy.array([2, 1])) == 1.0
    assert target.recognition_rate == pytest.approx(0.875)
    assert target.accuracy == pytest.approx(5 / 6)
    assert target.confusion.tolist() == [[1, 0, 0], [1, 2, 0], [0, 0, 2]]
    target.reset()
    assert target.confusion is None and target.recognition_rate == 0.0


def test_top_n_success():
    target = TargetScore(name="t", cell="c", top_n=2)
    y = numpy.array([[0.1, 0.5, 0.4], [0.6, 0.3, 0.1]], dtype=numpy.float32)
    target.score(y, numpy.array([2, 2]))  # top-1 wrong twice; label 2 is 2nd for sample 0 only
    assert target.recognition_rate == 0.0
    assert target.recognition_rate_top_n == pytest.approx(0.5)


def test_binary_output_uses_threshold():
    target = TargetScore(name="t", cell="c")
    y = numpy.array([[0.7], [0.2], [0.6]], dtype=numpy.float32)
    target.score(y, numpy.array([1, 0, 0]))
    assert target.confusion.tolist() == [[1, 1], [0, 1]]


def test_dense_target_values():
    target = Target(name="t", cell="c", target_value=0.9, default_value=-0.1)
    t = target.dense(numpy.array([2, 0]), (2, 3, 1, 1), numpy)
    numpy.testing.assert_allclose(t[:, :, 0, 0], [[-0.1, -0.1, 0.9], [0.9, -0.1, -0.1]], atol=TOL)
    with pytest.raises(IniError, match="label 5 does not fit the 3 outputs"):
        target.dense(numpy.array([5]), (1, 3, 1, 1), numpy)


def _section(text, name):
    from n2d2py.ini import parse_ini_text
    return parse_ini_text(text).section(name)


def test_target_from_section_keys_and_types():
    pytest.importorskip("n2d2py.ini.parser")
    target = target_from_section(_section("[s.Target]\nTopN=5\nTargetValue=0.8\n", "s.Target"), "s")
    assert isinstance(target, TargetScore) and target.top_n == 5 and target.target_value == 0.8
    plain = target_from_section(_section("[s.Target]\nType=Target\n", "s.Target"), "s")
    assert type(plain) is Target and not plain.scored
    with pytest.raises(IniError, match="unknown parameter 'TopM'.*did you mean 'TopN'"):
        target_from_section(_section("[s.Target]\nTopM=5\n", "s.Target"), "s")
    with pytest.raises(IniError, match="TargetROIs.*out of scope"):
        target_from_section(_section("[s.Target]\nType=TargetROIs\n", "s.Target"), "s")


def _functions_with(*names):
    import n2d2py.functions as F
    missing = [n for n in names if not hasattr(F, n)]
    if missing:
        pytest.skip(f"n2d2py.functions lacks {missing} (being written)")
    return F


def test_softmax_loss_gradient_is_softmax_minus_target(torch):
    _functions_with("softmax_cross_entropy")
    from n2d2py.autograd import Variable
    rng = numpy.random.default_rng(3)
    logits = rng.standard_normal((4, 5, 1, 1)).astype(numpy.float32)
    labels = numpy.array([0, 3, 4, 1])
    target = Target(name="t", cell="c")
    target.loss_kind = "softmax"
    x = Variable(logits, requires_grad=True)
    loss = target.loss(None, labels, logits=x)
    loss.backward()
    tx = torch.tensor(logits[:, :, 0, 0], requires_grad=True)
    ref = torch.nn.functional.cross_entropy(tx, torch.tensor(labels))
    ref.backward()
    assert float(loss.data) == pytest.approx(ref.item(), rel=1e-5)
    numpy.testing.assert_allclose(x.grad[:, :, 0, 0], tx.grad.numpy(), atol=1e-6)


def test_mse_loss_gradient_is_output_minus_target():
    _functions_with("mse")
    from n2d2py.autograd import Variable
    y = Variable(numpy.array([[0.2, 0.7], [0.5, 0.1]], dtype=numpy.float32)[:, :, None, None],
                 requires_grad=True)
    target = Target(name="t", cell="c")
    loss = target.loss(y, numpy.array([1, 0]))
    loss.backward()
    diff = numpy.array([[0.2, -0.3], [-0.5, 0.1]])
    assert float(loss.data) == pytest.approx(0.5 * (diff ** 2).sum() / 2, rel=1e-5)
    numpy.testing.assert_allclose(y.grad[:, :, 0, 0], diff / 2, atol=1e-6)


def test_every_metric_is_in_zero_one_for_a_perfect_matrix():
    m = numpy.diag([3, 4, 5])
    for name in METRICS:
        value = class_metric(m, name)
        expected = 0.0 if name in ("MissRate", "FallOut", "FalseDiscoveryRate",
                                   "FalseOmissionRate") else 1.0
        assert value == pytest.approx(expected), name
