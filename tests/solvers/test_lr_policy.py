"""Learning-rate schedules, as N2D2's: the step counts STIMULI, PolyDecay counts iterations,
MaxIterations caps the counter, and a notice is returned when the step changes."""
import math

import numpy
import pytest

from n2d2py.autograd import Parameter
from n2d2py.solvers import SGDSolver, scheduled_rate, stimuli_step

RTOL = 1e-12  # pure float64 arithmetic


def test_step_counts_stimuli_not_iterations():
    # B=32, I=2, step size 100 stimuli: iteration 3 has seen 3*2*32 = 192 stimuli -> step 1
    assert [stimuli_step(it, 2, 32, 100) for it in range(5)] == [0, 0, 1, 1, 2]


def test_step_decay_with_epoch_sized_steps():
    # LeNet.ini: LearningRateStepSize=[sp]_EpochSize, decay 0.993 once per epoch
    s = SGDSolver(learning_rate=0.05, learning_rate_policy="StepDecay",
                  learning_rate_step_size=60000, learning_rate_decay=0.993)
    rates = [s.learning_rate_at(it, 64) for it in (0, 937, 938, 1874, 1875)]
    # 938*64 = 60032 >= 60000: first decay at iteration 938; 1875*64 = 120000: second
    numpy.testing.assert_allclose(rates, [0.05, 0.05, 0.05 * 0.993, 0.05 * 0.993,
                                          0.05 * 0.993 ** 2], rtol=RTOL)


@pytest.mark.parametrize("policy, expected", [
    ("ExponentialDecay", 0.1 * math.exp(-0.5 * 3)),
    ("InvTDecay", 0.1 / (1 + 0.5 * 3)),
    ("InvDecay", 0.1 * (1 + 0.5 * 7) ** -2.0),     # uses the iteration, not the step
    ("PolyDecay", 0.1 * (1 - 7 / 20) ** 2.0),      # MaxIterations in iterations
    ("None", 0.1),
])
def test_policies_at_iteration_7(policy, expected):
    # B=4, step size 8 stimuli: iteration 7 has seen 28 stimuli -> step 3
    rate = scheduled_rate(policy, 0.1, 7, 4, step_size=8, decay=0.5, power=2.0, max_iterations=20)
    assert math.isclose(rate, expected, rel_tol=RTOL)


def test_cosine_decay_warm_up_then_half_cosine():
    kw = dict(step_size=1, max_iterations=10, warm_up_duration=2, warm_up_lr_frac=0.25,
              min_decay=0.1)
    rates = [scheduled_rate("CosineDecay", 1.0, it, 1, **kw) for it in range(11)]
    assert rates[0] == pytest.approx(0.25) and rates[1] == pytest.approx(0.625)
    assert rates[2] == pytest.approx(1.0)
    assert rates[6] == pytest.approx(0.9 * 0.5 * (1 + math.cos(math.pi * 4 / 8)) + 0.1)
    assert rates[10] == pytest.approx(0.1)  # floor MinDecay * lr at MaxIterations steps


def test_poly_decay_needs_max_iterations():
    with pytest.raises(ValueError, match="MaxIterations"):
        scheduled_rate("PolyDecay", 0.1, 0, 1)


def test_update_walks_the_schedule_and_reports_changes():
    s = SGDSolver(learning_rate=1.0, learning_rate_policy="StepDecay", learning_rate_step_size=8,
                  learning_rate_decay=0.5)
    p = Parameter(numpy.zeros(1, numpy.float32))
    moves, notices = [], []
    for _ in range(5):
        p.grad = numpy.ones(1, numpy.float32)
        before = float(p.data[0])
        notices.append(s.update(p, 4))   # 4 stimuli per update, step every 8 stimuli
        moves.append(before - float(p.data[0]))
    numpy.testing.assert_allclose(moves, [1.0, 1.0, 0.5, 0.5, 0.25], rtol=1e-6)
    assert notices == [None, None, "Learning rate after 2(x4) iteration(s): 0.5", None,
                       "Learning rate after 4(x4) iteration(s): 0.25"]
    assert s.last_notice == notices[-1]


def test_max_iterations_caps_the_counter():
    s = SGDSolver(learning_rate=1.0, learning_rate_policy="PolyDecay", power=1.0, max_iterations=3)
    p = Parameter(numpy.zeros(1, numpy.float32))
    moves = []
    for _ in range(5):
        p.grad = numpy.ones(1, numpy.float32)
        before = float(p.data[0])
        s.update(p, 2)
        moves.append(before - float(p.data[0]))
    # rates 1, 2/3, 1/3, then the counter stays at 3: rate 0 -> no update
    numpy.testing.assert_allclose(moves, [1.0, 2 / 3, 1 / 3, 0.0, 0.0], rtol=1e-6, atol=1e-7)
    assert s.iteration == 3
