"""Solver: N2D2's per-Parameter update rule (``Solvers=``, ``WeightsSolver=``, docs/INI.md §8).

Gradient convention (docs/ARCHITECTURE.md, "Design choices"; docs/INI.md §8): ``param.grad``
is the ordinary gradient dL/dθ of the **batch-mean** loss. N2D2 accumulates the negative gradient
*summed* over the batch (``Δ = −B·grad``); each solver converts back where its rule needs it
(SGD divides Δ by B, so it uses ``grad`` as is; Adam does not, so it uses ``B·grad``).

Each Parameter owns one solver instance (``solver.clone()`` gives a fresh copy with the same keys):
momentum buffers, moments and iteration counters live in the instance, as in N2D2 where every
weight tensor gets a clone of its cell's solver.
"""
from ..backend import asnumpy, get_xp
from ..params import Key, Parameterizable, Registry

SOLVERS = Registry("solver")

def to_clamping(text):
    """``"min:max"``, ``":max"``, ``"min:"`` or ``""`` -> ``(min or None, max or None)``."""
    text = text.strip()
    if not text:
        return (None, None)
    parts = text.split(":")
    if len(parts) != 2:
        raise ValueError(f"expected 'min:max', ':max' or 'min:', got {text!r}")
    try:
        low, high = (float(p) if p.strip() else None for p in parts)
    except ValueError:
        raise ValueError(f"expected numbers in 'min:max', got {text!r}") from None
    if low is not None and high is not None and low > high:
        raise ValueError(f"clamping minimum {low} is above maximum {high}")
    return (low, high)


def clamp_(xp, w, clamping):
    """Clamp ``w`` in place to ``clamping`` = (min or None, max or None)."""
    low, high = clamping
    if low is not None:
        xp.maximum(w, low, out=w)
    if high is not None:
        xp.minimum(w, high, out=w)


class Solver(Parameterizable):
    """Base of SGD and Adam. Subclasses write ``_step(xp, w, g, batch_size) -> notice or None``
    (``g`` the gradient to apply, ``w`` updated in place) and name their state arrays in
    ``_state_arrays`` and counters in ``_state_numbers``."""

    clamping = Key("Clamping", to_clamping, default=(None, None),
                   doc="clamp the weights after each update: 'min:max', ':max' or 'min:'")
    _state_arrays = ()
    _state_numbers = ()

    def __init__(self, **values):
        super().__init__(**values)
        if isinstance(self.clamping, str):  # Python callers may pass N2D2's text form
            self.clamping = to_clamping(self.clamping)
        self.last_notice = None

    def clone(self):
        """A fresh solver with the same keys and no state (one per Parameter)."""
        values = {k.attr: self.__dict__[k.attr] for k in self.keys().values() if k.attr in self.__dict__}
        return type(self)(**values)

    def update(self, param, batch_size):
        """Apply the rule to ``param.data`` in place from ``param.grad``, then clear the grad.

        Returns the learning-rate notice N2D2 would print (or None); it is also kept in
        ``last_notice``. A parameter without a gradient is left untouched.
        """
        g = param.grad
        if g is None:
            return None
        xp = get_xp(param.data, g)
        self._to_xp(xp)
        notice = self._step(xp, param.data, g, int(batch_size))
        param.grad = None
        if notice is not None:
            self.last_notice = notice
        return notice

    def _step(self, xp, w, g, batch_size):
        raise NotImplementedError

    # -- resumable training ------------------------------------------------------------
    def state_dict(self):
        """Counters (numbers) and buffers (NumPy arrays, or None before the first update)."""
        state = {"type": type(self).type_name}
        state.update({name: getattr(self, name) for name in self._state_numbers})
        for name in self._state_arrays:
            a = getattr(self, name)
            state[name] = None if a is None else asnumpy(a).copy()
        return state

    def load_state_dict(self, state):
        """Restore ``state_dict()``; arrays move to the parameter's device at the next update."""
        kind = state.get("type", type(self).type_name)
        if kind != type(self).type_name:
            raise ValueError(f"{type(self).__name__}: state of a {kind} solver")
        for name in self._state_numbers:
            setattr(self, name, type(getattr(self, name))(state[name]))
        for name in self._state_arrays:
            a = state.get(name)
            setattr(self, name, None if a is None else a.copy())

    def _to_xp(self, xp):
        """Move state arrays to the parameter's array module (after load or ``DeepNet.to``)."""
        for name in self._state_arrays:
            a = getattr(self, name)
            if a is not None and get_xp(a) is not xp:
                setattr(self, name, xp.asarray(asnumpy(a)))

    def describe(self):
        return f"{type(self).type_name} solver"
