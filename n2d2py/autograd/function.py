"""Function: a differentiable op with ``forward`` and ``backward`` side by side on raw arrays.

Contract (docs/ARCHITECTURE.md, "Functions"):
  * ``check_inputs(*xs)``  raise ``ShapeError`` naming the inputs before any maths;
  * ``forward(xp, *xs)``   arrays in, an array (or a tuple of arrays) out; save what backward
                           needs in attributes (``self.saved = ...``), only if
                           ``self.needs_backward`` (False under ``no_grad``);
  * ``backward(xp, gy, needs_grad)`` ``gy`` is the output gradient (a tuple for tuple outputs,
                           zeros where an output got no gradient); return one gradient per input,
                           in order, ``None`` where ``needs_grad[i]`` is False.
``apply`` lives only here: it picks ``xp``, links the graph and checks gradient shapes.
"""
import itertools
import weakref

from .variable import Variable, as_variable, grad_enabled
from ..backend import get_xp


_created = itertools.count()   # creation order: ties in backward's order are broken by it


class Function:
    needs_backward = False
    inputs = ()
    outputs = ()
    rank = 0
    order = 0

    def check_inputs(self, *xs):
        """Override to validate shapes; raise ``n2d2py.errors.ShapeError``."""

    def forward(self, xp, *xs):
        raise NotImplementedError

    def backward(self, xp, gy, needs_grad):
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    def apply(self, *inputs):
        variables = [as_variable(x) for x in inputs]
        xs = [v.data for v in variables]
        self.check_inputs(*xs)
        xp = get_xp(*xs)
        self.needs_backward = grad_enabled() and any(v.requires_grad for v in variables)
        ys = self.forward(xp, *xs)
        multiple = isinstance(ys, tuple)
        outs = [Variable(y, requires_grad=self.needs_backward) for y in (ys if multiple else (ys,))]
        if self.needs_backward:
            self.inputs = variables
            self.outputs = [weakref.ref(y) for y in outs]
            self.rank = max(v.rank for v in variables) + 1
            self.order = next(_created)
            for y in outs:
                y.creator, y.rank = self, self.rank
        return tuple(outs) if multiple else outs[0]

    __call__ = apply

    def _backward_arrays(self, gys):
        xp = get_xp(*(v.data for v in self.inputs))
        refs = [ref() for ref in self.outputs]
        filled = [g if g is not None else xp.zeros(y.shape, dtype=y.dtype) if y is not None else None
                  for g, y in zip(gys, refs)]
        gy = tuple(filled) if len(filled) > 1 else filled[0]
        needs = tuple(v.requires_grad for v in self.inputs)
        gxs = self.backward(xp, gy, needs)
        if not isinstance(gxs, (tuple, list)):
            gxs = (gxs,)
        assert len(gxs) == len(self.inputs), \
            f"{type(self).__name__}.backward returned {len(gxs)} gradients for {len(self.inputs)} inputs"
        for v, g in zip(self.inputs, gxs):
            assert g is None or g.shape == v.shape, \
                f"{type(self).__name__}.backward: gradient shape {g.shape} != input shape {v.shape}"
        return gxs
