"""AdamSolver: N2D2 feeds Adam the batch-SUMMED gradient (no division by B)."""
import math

import numpy
import pytest

from n2d2py.autograd import Parameter
from n2d2py.solvers import SOLVERS, AdamSolver

ATOL = 1e-6  # float32 update vs float64 reference
B, N = 16, 6


def n2d2_adam(w, G_sum, state, lr, beta1, beta2, eps):
    """N2D2's Adam in float64 on the summed gradient; state = (t, m, v)."""
    t, m, v = state
    t += 1
    m = beta1 * m + (1 - beta1) * G_sum
    v = beta2 * v + (1 - beta2) * G_sum ** 2
    alpha = lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
    return w - alpha * m / (numpy.sqrt(v) + eps * math.sqrt(1 - beta2 ** t)), (t, m, v)


def test_defaults_and_registry():
    assert AdamSolver().parameters_dict() == {"LearningRate": 0.001, "Beta1": 0.9, "Beta2": 0.999,
                                              "Epsilon": 1e-8, "Clamping": (None, None)}
    assert SOLVERS.get("Adam") is AdamSolver


def test_adam_follows_n2d2_on_summed_gradient(xp, rng):
    # a large epsilon makes the B factor visible: it only cancels when eps is negligible
    keys = dict(learning_rate=0.01, beta1=0.8, beta2=0.95, epsilon=0.5)
    w_ref = rng.standard_normal(N)
    p, s = Parameter(xp.asarray(w_ref, dtype=numpy.float32)), AdamSolver(**keys)
    state = (0, numpy.zeros(N), numpy.zeros(N))
    for _ in range(5):
        G = rng.standard_normal((B, N))
        p.grad = xp.asarray(G.mean(axis=0), dtype=numpy.float32)
        s.update(p, B)
        w_ref, state = n2d2_adam(w_ref, G.sum(axis=0), state, 0.01, 0.8, 0.95, 0.5)
    data = p.data.get() if hasattr(p.data, "get") else p.data
    numpy.testing.assert_allclose(data, w_ref, atol=ATOL)
    assert s.steps == 5 and p.grad is None


def test_adam_equals_torch_adam_with_eps_over_b(torch, rng):
    w0 = rng.standard_normal(N).astype(numpy.float32)
    p, s = Parameter(w0.copy()), AdamSolver(learning_rate=0.02, epsilon=1e-3)
    tw = torch.tensor(w0.copy(), requires_grad=True)
    opt = torch.optim.Adam([tw], lr=0.02, eps=1e-3 / B)
    for _ in range(10):
        g = rng.standard_normal(N).astype(numpy.float32)
        p.grad = g.copy()
        s.update(p, B)
        tw.grad = torch.tensor(g)
        opt.step()
    numpy.testing.assert_allclose(p.data, tw.detach().numpy(), atol=ATOL)


def test_adam_state_roundtrip_and_clamping(rng):
    p, s = Parameter(numpy.zeros(N, numpy.float32)), AdamSolver(learning_rate=1.0, clamping=":0.5")
    p.grad = -numpy.ones(N, numpy.float32)
    s.update(p, B)
    numpy.testing.assert_allclose(p.data, 0.5)     # first step moves by ~lr = 1, clamped at 0.5
    state = s.state_dict()
    t = AdamSolver(learning_rate=1.0, clamping=":0.5")
    t.load_state_dict(state)
    assert t.steps == 1 and numpy.array_equal(t.moment2, s.moment2)
    with pytest.raises(ValueError):
        t.load_state_dict({**state, "type": "SGD"})
