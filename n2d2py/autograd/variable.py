"""Variable: an array that remembers the Function that made it, so gradients can flow back.

Gradients follow the usual convention (dL/dx, not N2D2's negative "diff"); solvers subtract.
"""
import contextlib
import heapq
import threading

import numpy

from ..backend import DTYPE, get_xp
from ..parallel import sum_of

_state = threading.local()
_arith = None  # n2d2py.functions.arith, imported on first use (it imports this module)


def _ops():
    """functions.arith, cached: an ``import`` statement in every operator costs ~5 us."""
    global _arith
    if _arith is None:
        from ..functions import arith
        _arith = arith
    return _arith


def grad_enabled():
    return getattr(_state, "enabled", True)


@contextlib.contextmanager
def no_grad():
    """Inference mode: functions run without recording the graph or saving inputs."""
    previous = grad_enabled()
    _state.enabled = False
    try:
        yield
    finally:
        _state.enabled = previous


class Variable:
    """An array (numpy or cupy) with an optional gradient and the function that created it.

    ``grad`` accumulates (``+=``) on leaves across backward calls until ``clear_grad``;
    non-leaf gradients are freed once used unless ``retain_grad`` is set.
    """

    __array_priority__ = 200  # numpy_array + Variable -> Variable.__radd__
    __slots__ = ("data", "grad", "requires_grad", "creator", "rank", "name", "retain_grad",
                 "__weakref__")

    def __init__(self, data, requires_grad=False, name=None):
        if isinstance(data, Variable):
            data = data.data
        self.data = data
        self.grad = None
        self.requires_grad = requires_grad
        self.creator = None
        self.rank = 0
        self.name = name
        self.retain_grad = False

    # -- array-like surface -------------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    size = property(lambda self: self.data.size)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        name = f" {self.name!r}" if self.name else ""
        return f"<Variable{name} shape={tuple(self.shape)} dtype={self.dtype}>"

    @property
    def xp(self):
        return get_xp(self.data)

    @property
    def is_leaf(self):
        return self.creator is None

    def detach(self):
        """Same data, cut from the graph: the gradient treats it as a constant."""
        return Variable(self.data, requires_grad=False, name=self.name)

    def clear_grad(self):
        self.grad = None

    def array(self):
        """The raw array (numpy or cupy)."""
        return self.data

    # -- backward ----------------------------------------------------------------------
    def backward(self, gy=None):
        """Accumulate d(self)/d(leaf) * gy into every leaf's ``grad`` that requires it.

        ``gy`` defaults to ones (for a scalar loss). Functions run in decreasing rank
        (reverse topological order), and a variable consumed several times (residual
        graphs) sums its gradients before its creator runs.
        """
        xp = self.xp
        if gy is None:
            gy = xp.ones_like(self.data)
        gy = gy.data if isinstance(gy, Variable) else gy
        if not self.requires_grad:
            return
        if self.creator is None:
            self.grad = gy if self.grad is None else self.grad + gy
            return
        pending = {id(self): gy}
        heap, seen = [], set()

        def push(function):
            # equal ranks run latest-created first: the same order in every process, so the
            # replicas of a data-parallel run call their collectives (SyncBatchNorm) alike
            if id(function) not in seen:
                seen.add(id(function))
                heapq.heappush(heap, (-function.rank, -function.order, function))

        push(self.creator)
        while heap:
            _, _, function = heapq.heappop(heap)
            outputs = [ref() for ref in function.outputs]
            gys = [None if y is None else pending.pop(id(y), None) for y in outputs]
            if all(g is None for g in gys):
                continue
            for y, g in zip(outputs, gys):
                if y is not None and y.retain_grad and g is not None:
                    y.grad = g if y.grad is None else y.grad + g
            gxs = function._backward_arrays(gys)
            for x, gx in zip(function.inputs, gxs):
                if gx is None or not x.requires_grad:
                    continue
                if x.creator is None:
                    x.grad = gx if x.grad is None else sum_of(xp, x.grad, gx)
                else:
                    previous = pending.get(id(x))
                    pending[id(x)] = gx if previous is None else sum_of(xp, previous, gx)
                    push(x.creator)

    # -- arithmetic (differentiable, via functions.arith) ------------------------------
    def __add__(self, other):
        return _ops().add(self, other)

    __radd__ = __add__

    def __sub__(self, other):
        return _ops().sub(self, other)

    def __rsub__(self, other):
        return _ops().sub(other, self)

    def __mul__(self, other):
        return _ops().mul(self, other)

    __rmul__ = __mul__

    def __truediv__(self, other):
        return _ops().div(self, other)

    def __rtruediv__(self, other):
        return _ops().div(other, self)

    def __neg__(self):
        return _ops().neg(self)


class Parameter(Variable):
    """A learnable leaf (weights, biases, BN scales, quantizer α/step). ``solver`` updates it."""

    __slots__ = ("solver", "group")

    def __init__(self, data, name=None, group="weights"):
        super().__init__(data, requires_grad=True, name=name)
        self.solver = None  # set by the owning cell from the INI (Solvers/WeightsSolver/...)
        self.group = group  # "weights" | "biases" | "scales" | "quantizer" ...


def as_variable(x):
    """Wrap an array or a Python/NumPy scalar as a constant Variable (float32 for scalars)."""
    if isinstance(x, Variable):
        return x
    if isinstance(x, (int, float, numpy.number)):
        x = numpy.asarray(x, dtype=DTYPE)
    return Variable(x, requires_grad=False)
