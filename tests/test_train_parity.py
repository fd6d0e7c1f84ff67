"""200 training steps of a 3-layer Fc network with n2d2py's solvers vs the same network in PyTorch
(N2D2's SGD and Adam on summed gradients; docs/ARCHITECTURE.md "Solvers and fillers").

Network: Fc 8→16 tanh → Fc 16→16 relu → Fc 16→4 → softmax cross-entropy, on a fixed toy problem
(256 points labelled by a random linear teacher, 20 % of labels noisy, mini-batches of 16 in a
fixed order).

Conventions checked:
  * N2D2 SGD ``v = m·v − lr·g − Decay·lr·w; w += v`` is torch's SGD with ``weight_decay=Decay``
    (decay added to the gradient) while the rate is constant. N2D2 keeps the rate *inside* v,
    torch outside, so when StepDecay changes the rate from lr₀ to lr₁ torch's momentum buffer
    must be rescaled by lr₀/lr₁ to match; ``test_momentum_keeps_the_old_rate`` shows that this
    rescaling matters.
  * ``LearningRateStepSize`` counts stimuli: 800 stimuli = 50 iterations of 16.
  * N2D2's Adam sees the batch-summed gradient: torch Adam with ``eps/B`` on the mean loss.
  * ``IterationSize=2``: torch accumulates two half-weighted batches per step.
"""
import numpy
import pytest

import n2d2py.functions as F
from n2d2py.autograd import Parameter, Variable
from n2d2py.fillers import XavierFiller, default_filler, fans
from n2d2py.solvers import AdamSolver, SGDSolver

LOSS_ATOL = 1e-4     # the task's bound on the loss curves (float32 on both sides)
STEPS, B, N_POINTS = 200, 16, 256
SIZES = (8, 16, 16, 4)


def _require_functions():
    missing = [n for n in ("linear", "tanh", "relu", "softmax_cross_entropy")
               if not callable(getattr(F, n, None))]
    if missing:
        pytest.skip(f"n2d2py.functions not written yet: {', '.join(missing)}")


def toy_problem():
    rng = numpy.random.default_rng(2024)
    x = rng.standard_normal((N_POINTS, SIZES[0])).astype(numpy.float32)
    labels = (x @ rng.standard_normal((SIZES[0], SIZES[-1]))).argmax(axis=1)
    noisy = rng.random(N_POINTS) < 0.2   # label noise keeps the loss away from 0 for 200 steps
    labels[noisy] = rng.integers(0, SIZES[-1], noisy.sum())
    targets = numpy.eye(SIZES[-1], dtype=numpy.float32)[labels]
    weights = []
    for n_in, n_out in zip(SIZES[:-1], SIZES[1:]):
        shape = (n_out, n_in)
        weights.append(XavierFiller().fill(shape, *fans(shape), rng))
        weights.append(default_filler().fill((n_out,), rng=rng))
    return x, targets, labels, weights


def batches():
    for step in range(STEPS):
        start = (step * B) % N_POINTS
        yield step, slice(start, start + B)


def n2d2py_forward(params, xb):
    W1, b1, W2, b2, W3, b3 = params
    h = F.tanh(F.linear(xb, W1, b1))
    h = F.relu(F.linear(h, W2, b2))
    return F.linear(h, W3, b3)


def train_n2d2py(make_solver, iteration_size=1):
    x, t, _, weights = toy_problem()
    params = [Parameter(w.copy()) for w in weights]
    for p in params:
        p.solver = make_solver()
    losses = []
    for _, sl in batches():
        loss = F.softmax_cross_entropy(n2d2py_forward(params, Variable(x[sl])), t[sl])
        loss.backward()
        losses.append(float(loss.data))
        for p in params:
            p.solver.update(p, B)
    return numpy.array(losses), params


def train_torch(torch, make_optimizer, rescale_momentum=True, iteration_size=1, rate_at=None):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # 16x16 matrices: thread hand-offs cost more than they save
    try:
        return _train_torch(torch, make_optimizer, rescale_momentum, iteration_size, rate_at)
    finally:
        torch.set_num_threads(threads)


def _train_torch(torch, make_optimizer, rescale_momentum, iteration_size, rate_at):
    x, _, labels, weights = toy_problem()
    params = [torch.tensor(w.copy(), requires_grad=True) for w in weights]
    opt = make_optimizer(params)
    xt, yt = torch.tensor(x), torch.tensor(labels)
    losses, rate = [], opt.param_groups[0]["lr"]
    for step, sl in batches():
        W1, b1, W2, b2, W3, b3 = params
        h = torch.tanh(xt[sl] @ W1.T + b1)
        h = torch.relu(h @ W2.T + b2)
        loss = torch.nn.functional.cross_entropy(h @ W3.T + b3, yt[sl])
        (loss / iteration_size).backward()
        losses.append(float(loss.detach()))
        if (step + 1) % iteration_size:
            continue
        new_rate = rate_at((step + 1) // iteration_size - 1) if rate_at else rate
        if new_rate != rate and rescale_momentum:
            for p in params:   # N2D2 keeps the old rate inside its momentum term
                buf = opt.state.get(p, {}).get("momentum_buffer")
                if buf is not None:
                    buf.mul_(rate / new_rate)
        rate = new_rate
        for group in opt.param_groups:
            group["lr"] = rate
        opt.step()
        opt.zero_grad(set_to_none=True)
    return numpy.array(losses), params


def sgd_keys():
    return dict(learning_rate=0.1, momentum=0.9, decay=5e-4, learning_rate_policy="StepDecay",
                learning_rate_step_size=50 * B, learning_rate_decay=0.5)


def torch_sgd(torch):
    return lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4)


@pytest.fixture(scope="module")
def sgd_run():
    """Our SGD run, shared by the two tests that compare it (saves ~1 s)."""
    _require_functions()
    return train_n2d2py(lambda: SGDSolver(**sgd_keys()))


def test_sgd_momentum_decay_step_decay_matches_torch(torch, sgd_run):
    ours, params = sgd_run
    rate_at = SGDSolver(**sgd_keys()).learning_rate_at
    theirs, tparams = train_torch(torch, torch_sgd(torch), rate_at=lambda it: rate_at(it, B))
    assert ours[-1] < 0.5 * ours[0]          # it learns: the curve is not trivially flat
    numpy.testing.assert_allclose(ours, theirs, atol=LOSS_ATOL, rtol=0)
    for p, tp in zip(params, tparams):
        numpy.testing.assert_allclose(p.data, tp.detach().numpy(), atol=10 * LOSS_ATOL)


def test_momentum_keeps_the_old_rate(torch, sgd_run):
    """Without rescaling torch's buffer at each StepDecay change, the curves separate."""
    ours, _ = sgd_run
    rate_at = SGDSolver(**sgd_keys()).learning_rate_at
    plain, _ = train_torch(torch, torch_sgd(torch), rescale_momentum=False,
                           rate_at=lambda it: rate_at(it, B))
    assert numpy.abs(ours - plain).max() > 10 * LOSS_ATOL


def test_iteration_size_two_matches_torch_accumulation(torch):
    _require_functions()
    keys = dict(learning_rate=0.2, momentum=0.9, decay=5e-4, iteration_size=2)
    ours, _ = train_n2d2py(lambda: SGDSolver(**keys), iteration_size=2)
    theirs, _ = train_torch(torch, lambda ps: torch.optim.SGD(ps, lr=0.2, momentum=0.9,
                                                             weight_decay=5e-4), iteration_size=2)
    numpy.testing.assert_allclose(ours, theirs, atol=LOSS_ATOL, rtol=0)


def test_adam_matches_torch_with_eps_over_batch(torch):
    _require_functions()
    ours, _ = train_n2d2py(lambda: AdamSolver(learning_rate=0.01, epsilon=1e-4))
    theirs, _ = train_torch(torch, lambda ps: torch.optim.Adam(ps, lr=0.01, eps=1e-4 / B))
    assert ours[-1] < 0.5 * ours[0]
    numpy.testing.assert_allclose(ours, theirs, atol=LOSS_ATOL, rtol=0)
