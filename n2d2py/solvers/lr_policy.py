"""N2D2's learning-rate schedules (``LearningRatePolicy=``, docs/INI.md §8), as pure functions.

Counters, as N2D2 keeps them:
  * ``iteration`` (``it``): updates done so far (stops at ``MaxIterations`` when that is > 0);
  * ``step = floor(it · IterationSize · B / LearningRateStepSize)``: stimuli seen, in units of
    the step size (``LearningRateStepSize`` counts **stimuli**, not iterations);
  * PolyDecay and InvDecay use ``it`` directly; CosineDecay uses ``step`` against
    ``WarmUpDuration`` and ``MaxIterations``.
"""
import math

POLICIES = ("None", "StepDecay", "ExponentialDecay", "InvTDecay", "PolyDecay", "InvDecay",
            "CosineDecay")
# Policies that follow the stimuli ``step`` and announce each change of it.
STEP_POLICIES = ("StepDecay", "ExponentialDecay", "InvTDecay", "CosineDecay")


def stimuli_step(iteration, iteration_size, batch_size, step_size):
    """``floor(it · I · B / LearningRateStepSize)``."""
    return (iteration * iteration_size * batch_size) // max(step_size, 1)


def scheduled_rate(policy, lr, iteration, batch_size, *, iteration_size=1, step_size=1,
                   decay=0.1, power=0.0, max_iterations=0, warm_up_duration=0,
                   warm_up_lr_frac=0.25, min_decay=0.0):
    """The rate of update number ``iteration`` (0-based) for base rate ``lr``.

    Keyword names follow SGDSolver's keys (``LearningRateStepSize`` -> ``step_size``,
    ``LearningRateDecay`` -> ``decay``). Raises ValueError where N2D2 would divide by zero.
    """
    if policy == "None":
        return lr
    if policy in STEP_POLICIES:
        step = stimuli_step(iteration, iteration_size, batch_size, step_size)
        if policy == "StepDecay":
            return lr * decay ** step
        if policy == "ExponentialDecay":
            return lr * math.exp(-decay * step)
        if policy == "InvTDecay":
            return lr / (1.0 + decay * step)
        return _cosine(lr, step, max_iterations, warm_up_duration, warm_up_lr_frac, min_decay)
    if policy == "PolyDecay":
        if max_iterations == 0:
            raise ValueError("PolyDecay needs MaxIterations > 0")
        return lr * (1.0 - iteration / max_iterations) ** power
    if policy == "InvDecay":
        return lr * (1.0 + decay * iteration) ** (-power)
    raise ValueError(f"unknown LearningRatePolicy {policy!r}; known: {', '.join(POLICIES)}")


def _cosine(lr, step, max_steps, warm_up, warm_up_frac, min_decay):
    """Linear warm-up from ``WarmUpLRFrac·lr`` to ``lr`` over ``WarmUpDuration`` steps, then a
    half cosine down to ``MinDecay·lr`` at ``MaxIterations`` steps."""
    if step < warm_up:
        return lr * (warm_up_frac + (1.0 - warm_up_frac) * step / warm_up)
    if max_steps <= warm_up:
        raise ValueError("CosineDecay needs MaxIterations > WarmUpDuration")
    c = 0.5 * (1.0 + math.cos(math.pi * (step - warm_up) / (max_steps - warm_up)))
    return lr * max(0.0, (1.0 - min_decay) * c + min_decay)


def rate_notice(policy, rate, iteration, iteration_size, batch_size, step_size):
    """N2D2's ``Learning rate after N(xBI) iteration(s): r`` when update ``iteration`` starts a
    new stimuli step, else None."""
    if policy not in STEP_POLICIES or iteration == 0:
        return None
    now = stimuli_step(iteration, iteration_size, batch_size, step_size)
    before = stimuli_step(iteration - 1, iteration_size, batch_size, step_size)
    if now == before:
        return None
    return (f"Learning rate after {iteration}(x{iteration_size * batch_size}) "
            f"iteration(s): {rate:g}")
