"""Picking elements within each sample (the ONNX layout operators Slice, Split, Gather,
GatherND, Expand, Tile... once composed; **n2d2py extension, not in N2D2**).

``gather_samples(x, index, shape)``: y[n] = x[n].ravel()[index], reshaped to (N,) + ``shape``.
Backward: gx[n].ravel()[index] += gy[n].ravel(); a plain assignment when ``index`` has no
repeat (``unique``), else one ``bincount`` over the whole batch (repeated positions add up).
"""
from ..autograd.function import Function
from ..errors import expect

__all__ = ["gather_samples", "GatherSamples"]


class GatherSamples(Function):
    def __init__(self, index, shape, unique):
        self.index, self.shape, self.unique = index, tuple(int(d) for d in shape), bool(unique)

    def check_inputs(self, x):
        size = 1
        for d in x.shape[1:]:
            size *= int(d)
        expect(self.index.size == 0 or int(self.index.max()) < size,
               f"gather_samples: index up to {int(self.index.max())} for samples of {size} values")

    def forward(self, xp, x):
        n = x.shape[0]
        if self.needs_backward:
            self.saved = x.shape
        return x.reshape(n, -1)[:, self.index].reshape((n,) + self.shape)

    def backward(self, xp, gy, needs_grad):
        shape = self.saved
        n = shape[0]
        g = gy.reshape(n, -1)
        per_sample = 1
        for d in shape[1:]:
            per_sample *= int(d)
        if self.unique:
            gx = xp.zeros((n, per_sample), dtype=gy.dtype)
            gx[:, self.index] = g
        else:
            where = (xp.arange(n, dtype=self.index.dtype)[:, None] * per_sample
                     + self.index[None, :]).ravel()
            gx = xp.bincount(where, weights=g.ravel(), minlength=n * per_sample) \
                .astype(gy.dtype).reshape(n, per_sample)
        return (gx.reshape(shape),)


def gather_samples(x, index, shape, unique=None):
    """``index``: an integer array (on x's device) of positions within one sample;
    ``unique``: whether no position repeats (computed when None)."""
    if unique is None:
        unique = len(set(index.tolist())) == index.size if index.size else True
    return GatherSamples(index, shape, unique).apply(x)
