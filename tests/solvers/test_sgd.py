"""SGDSolver against N2D2's update rule written on the negative *summed* gradient
(step lr/B·Σ, decay lr·decay·w), fed with our batch-mean gradient."""
import numpy
import pytest

from n2d2py.autograd import Parameter
from n2d2py.errors import IniError
from n2d2py.solvers import SOLVERS, SGDSolver, to_clamping

ATOL = 1e-6   # float32 update vs float64 reference, a few steps of O(1) values
B, N = 8, 5   # batch size, parameter size


def n2d2_sgd(w, deltas, rate, batch, iteration_size=1, momentum=0.0, decay=0.0, v=None):
    """N2D2's rule (float64): Δ is the negative gradient summed over batch and accumulation."""
    delta = sum(deltas)
    r = rate / (batch * iteration_size)
    if momentum == 0.0 and decay == 0.0:
        return w + r * delta, v
    v = numpy.zeros_like(w) if v is None else v
    v = momentum * v + r * delta - decay * rate * w
    return w + v, v


def per_sample_grads(rng, steps):
    """(steps, B, N) per-stimulus gradients: N2D2 sums them, we get their mean."""
    return rng.standard_normal((steps, B, N))


def param(xp, w):
    return Parameter(xp.asarray(w, dtype=numpy.float32))


def to_np(a):
    return a.get() if hasattr(a, "get") else numpy.asarray(a)


def test_defaults_match_spec():
    s = SGDSolver()
    expected = {"LearningRate": 0.01, "Momentum": 0.0, "Decay": 0.0, "LearningRatePolicy": "None",
                "LearningRateStepSize": 1, "LearningRateDecay": 0.1, "Power": 0.0,
                "MaxIterations": 0, "IterationSize": 1, "WarmUpDuration": 0, "WarmUpLRFrac": 0.25,
                "MinDecay": 0.0, "Clamping": (None, None), "PolyakMomentum": True}
    assert s.parameters_dict() == expected
    assert SOLVERS.get("SGD") is SGDSolver and SGDSolver.type_name == "SGD"


def test_ini_text_sets_keys_and_rejects_bad_ones():
    s = SGDSolver()
    s.set_parameters({"LearningRate": "0.05", "Momentum": "0.9", "LearningRatePolicy": "PolyDecay",
                      "IterationSize": "4", "Clamping": "-1.0:1.0"})
    assert (s.learning_rate, s.momentum, s.learning_rate_policy) == (0.05, 0.9, "PolyDecay")
    assert (s.iteration_size, s.clamping) == (4, (-1.0, 1.0))
    with pytest.raises(IniError, match="LearningRat"):
        s.set_parameter("LearningRat", "0.1")
    with pytest.raises(IniError, match="StepDecay"):
        s.set_parameter("LearningRatePolicy", "Step")
    with pytest.raises(IniError):
        s.set_parameter("IterationSize", "0")


@pytest.mark.parametrize("text, pair", [("-1.0:1.0", (-1.0, 1.0)), (":2", (None, 2.0)),
                                        ("0.5:", (0.5, None)), ("", (None, None))])
def test_clamping_forms(text, pair):
    assert to_clamping(text) == pair


@pytest.mark.parametrize("text", ["1", "a:b", "2:1", "1:2:3"])
def test_clamping_rejects(text):
    with pytest.raises(ValueError):
        to_clamping(text)


def test_plain_step_is_rate_times_mean_gradient(xp, rng):
    w0 = rng.standard_normal(N)
    grads = per_sample_grads(rng, 3)
    s, p, w_ref = SGDSolver(learning_rate=0.1), param(xp, w0), w0
    for G in grads:
        p.grad = xp.asarray(G.mean(axis=0), dtype=numpy.float32)
        s.update(p, B)
        w_ref, _ = n2d2_sgd(w_ref, [-G.sum(axis=0)], 0.1, B)
        assert p.grad is None
    numpy.testing.assert_allclose(to_np(p.data), w_ref, atol=ATOL)
    assert p.data.dtype == numpy.float32


def test_momentum_and_decay_follow_n2d2(xp, rng):
    w0 = rng.standard_normal(N)
    s, p, w_ref, v = SGDSolver(learning_rate=0.05, momentum=0.9, decay=0.01), param(xp, w0), w0, None
    for G in per_sample_grads(rng, 6):
        p.grad = xp.asarray(G.mean(axis=0), dtype=numpy.float32)
        s.update(p, B)
        w_ref, v = n2d2_sgd(w_ref, [-G.sum(axis=0)], 0.05, B, momentum=0.9, decay=0.01, v=v)
    numpy.testing.assert_allclose(to_np(p.data), w_ref, atol=ATOL)


def test_iteration_size_accumulates_then_updates_once(xp, rng):
    w0 = rng.standard_normal(N)
    grads = per_sample_grads(rng, 3)
    s, p = SGDSolver(learning_rate=0.2, momentum=0.5, iteration_size=3), param(xp, w0)
    for i, G in enumerate(grads):
        p.grad = xp.asarray(G.mean(axis=0), dtype=numpy.float32)
        s.update(p, B)
        assert p.grad is None
        if i < 2:  # the first I-1 batches of a cycle do not move the weights
            numpy.testing.assert_array_equal(to_np(p.data), w0.astype(numpy.float32))
    w_ref, _ = n2d2_sgd(w0, [-G.sum(axis=0) for G in grads], 0.2, B, iteration_size=3, momentum=0.5)
    numpy.testing.assert_allclose(to_np(p.data), w_ref, atol=ATOL)
    assert (s.iteration, s.iteration_pass) == (1, 0)


def test_clamping_applies_after_update(xp):
    s, p = SGDSolver(learning_rate=1.0, clamping="-0.5:"), param(xp, [0.0, 0.0, 2.0])
    p.grad = xp.asarray([1.0, -1.0, 0.0], dtype=numpy.float32)
    s.update(p, 4)
    numpy.testing.assert_array_equal(to_np(p.data), [-0.5, 1.0, 2.0])


def test_no_gradient_means_no_update(xp):
    s, p = SGDSolver(learning_rate=1.0, momentum=0.9), param(xp, [1.0, 2.0])
    assert s.update(p, 4) is None
    numpy.testing.assert_array_equal(to_np(p.data), [1.0, 2.0])
    assert s.iteration == 0 and s.momentum_buffer is None


def test_clone_copies_keys_not_state(rng):
    s = SGDSolver(learning_rate=0.3, momentum=0.9, learning_rate_policy="StepDecay")
    p = param(numpy, rng.standard_normal(N))
    p.grad = numpy.ones(N, numpy.float32)
    s.update(p, B)
    c = s.clone()
    assert (c.learning_rate, c.momentum, c.learning_rate_policy) == (0.3, 0.9, "StepDecay")
    assert c.iteration == 0 and c.momentum_buffer is None and c is not s


def test_state_dict_resumes_exactly(xp, rng):
    w0, grads = rng.standard_normal(N), per_sample_grads(rng, 5).mean(axis=1).astype(numpy.float32)
    keys = dict(learning_rate=0.1, momentum=0.9, decay=1e-3, iteration_size=2,
                learning_rate_policy="StepDecay", learning_rate_step_size=2 * B)
    straight, p1 = SGDSolver(**keys), param(xp, w0)
    for g in grads:
        p1.grad = xp.asarray(g)
        straight.update(p1, B)
    first, p2 = SGDSolver(**keys), param(xp, w0)
    for g in grads[:3]:            # stop mid-cycle: one gradient is pending in the accumulator
        p2.grad = xp.asarray(g)
        first.update(p2, B)
    state = first.state_dict()
    assert isinstance(state["momentum_buffer"], numpy.ndarray) and state["iteration_pass"] == 1
    resumed = SGDSolver(**keys)
    resumed.load_state_dict(state)
    for g in grads[3:]:
        p2.grad = xp.asarray(g)
        resumed.update(p2, B)
    numpy.testing.assert_array_equal(to_np(p2.data), to_np(p1.data))
    with pytest.raises(ValueError):
        SOLVERS.get("Adam")().load_state_dict(state)
