"""Element-wise chains on oneDNN: ``out = a (op) b``, then more operations, in one pass.

BatchNorm's normalisation (``x·A + B`` and its ReLU), its input gradient
(``(x·Q + g + R)·K``) and the residual ``a + b`` + ReLU are chains of two to four NumPy passes
over cache-sized chunks. On one thread oneDNN's binary primitive with post-operations does a
chain in one JIT-compiled pass, about twice as fast; on two threads the NumPy chunks also wait
for each other: every NumPy call takes the GIL back, several times per chunk, and the two
threads queue for it (a ResNet-20 step's BatchNorm passes ran only 1.3x faster on two cores,
oneDNN's calls take the GIL once per range).

The same numbers as the NumPy passes, bit for bit: each operation is rounded to float32 in the
same order (oneDNN's binary post-operations are separate multiplies and adds, never fused
into one rounding), and the ReLU gives +0.0 for -0.0 as ``activation.rectify`` (a ``+ 0``
operation after oneDNN's clip). Tests compare both routes.

``chain`` returns False, and the caller runs its NumPy code, for CuPy, other dtypes, without
oneDNN (``_onednn.available()``), or for a chain oneDNN declines.
"""
import ctypes

import numpy

from . import _onednn as dnnl
from ..parallel import per_thread, split
from ._im2col import scratch

__all__ = ["chain"]

_ALGORITHMS = {"add": 0x1fff0, "mul": 0x1fff1}     # dnnl_binary_add, dnnl_binary_mul
_ELTWISE_RELU, _ELTWISE_CLIP, _ELTWISE_LINEAR = 0x20, 0x2e, 0x26
_ARG_SRC_0, _ARG_SRC_1, _ARG_DST = 1, 2, 17
_ARG_POST_OP_BASE = 32768     # DNNL_ARG_ATTR_MULTIPLE_POST_OP(i) = base * (i + 1), oneDNN 3.x


class _ChainPlan:
    def __init__(self, lib, pd, mds, post_args):
        self.pd, self.mds, self.post_args = pd, mds, post_args
        self.primitive = dnnl._primitive(lib, pd)
        self.scratch_md = lib.dnnl_primitive_desc_query_md(pd, dnnl._QUERY_SCRATCHPAD, 0)
        self.scratch_bytes = lib.dnnl_memory_desc_get_size(self.scratch_md)

    def release(self, lib):
        lib.dnnl_primitive_destroy(self.primitive)
        lib.dnnl_primitive_desc_destroy(self.pd)
        for md in self.mds.values():
            lib.dnnl_memory_desc_destroy(md)

    def run(self, lib, out, a, b, posts):
        """``out``/``a`` (n, C, S) views, ``b`` and ``posts``' operands as planned."""
        stream, made = dnnl._stream(lib), []

        def memory(kind, array):
            md = self.scratch_md if kind == "scratchpad" else self.mds[kind]
            return dnnl.wrap_memory(lib, md, array.ctypes.data, made)
        try:
            args = [(_ARG_SRC_0, memory("t", a)), (_ARG_SRC_1, memory(_kind(b), b)),
                    (_ARG_DST, memory("t", out))]
            for index, operand in zip(self.post_args, posts):
                args.append(((_ARG_POST_OP_BASE * (index + 1)) | _ARG_SRC_1,
                             memory(_kind(operand), operand)))
            if self.scratch_bytes:   # none for the chains BatchNorm uses, so far
                pad = scratch(numpy, "dnnl_chain_scratchpad", (self.scratch_bytes,), numpy.uint8)
                args.append((dnnl._ARG_SCRATCHPAD, memory("scratchpad", pad)))
            dnnl._execute(lib, self.primitive, stream, args)
        finally:
            dnnl.release_memory(made)


def _kind(operand):
    """"c": one value per channel, (C,); "t": a whole (n, C, S) tensor."""
    return "c" if operand.ndim == 1 else "t"


def _relu_steps(top):
    """oneDNN eltwise post-ops for ``activation.rectify``: x > 0 ? x : 0·x keeps NaN (a clip
    would make it 0), the clip caps at ``top``, and ``+ 0`` turns -0.0 into +0.0."""
    steps = [(_ELTWISE_RELU, 0.0, 0.0)]
    if top != float("inf"):
        steps.append((_ELTWISE_CLIP, 0.0, float(top)))
    return steps + [(_ELTWISE_LINEAR, 1.0, 0.0)]


def _make_plan(lib, shape, op, b_kind, steps):
    n, C, S = shape
    # (n, C) when S is 1: oneDNN 3.2 broadcast a (1, C, 1) operand over (n, C, 1) wrongly
    mds = {"t": dnnl._plain_md(lib, (n, C, S) if S > 1 else (n, C)),
           "c": dnnl._plain_md(lib, (1, C, 1) if S > 1 else (1, C))}
    attr, post_ops, pd = dnnl._void_p(), dnnl._void_p(), dnnl._void_p()
    dnnl._check(lib.dnnl_primitive_attr_create(ctypes.byref(attr)), "attributes")
    dnnl._check(lib.dnnl_post_ops_create(ctypes.byref(post_ops)), "post-ops")
    post_args = []
    try:
        dnnl._check(lib.dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl._SCRATCHPAD_USER),
                    "attributes")
        for index, (name, what) in enumerate(steps):
            if name == "relu":
                for alg, alpha, beta in _relu_steps(what):
                    dnnl._check(lib.dnnl_post_ops_append_eltwise(post_ops, alg, alpha, beta),
                                "post-ops")
            else:
                post_args.append(len(post_args) + sum(len(_relu_steps(s[1])) for s in steps[:index]
                                                      if s[0] == "relu"))
                dnnl._check(lib.dnnl_post_ops_append_binary(post_ops, _ALGORITHMS[name],
                                                            mds[what]), "post-ops")
        dnnl._check(lib.dnnl_primitive_attr_set_post_ops(attr, post_ops), "post-ops")
        status = lib.dnnl_binary_primitive_desc_create(
            ctypes.byref(pd), dnnl._state["engine"], _ALGORITHMS[op], mds["t"], mds[b_kind],
            mds["t"], attr)
        if status != 0:
            for md in mds.values():
                lib.dnnl_memory_desc_destroy(md)
            return None
        return _ChainPlan(lib, pd, mds, post_args)
    finally:
        lib.dnnl_post_ops_destroy(post_ops)
        lib.dnnl_primitive_attr_destroy(attr)


def _plan(shape, op, b_kind, steps):
    return dnnl.cached_plan(("chain", shape, op, b_kind, steps),
                            lambda lib: _make_plan(lib, shape, op, b_kind, steps))


def _usable(*arrays):
    return all(type(a) is numpy.ndarray and a.dtype == numpy.float32 and a.flags.c_contiguous
               for a in arrays)


def chain(out, a, op, b, *posts):
    """``out = a (op) b``, then each of ``posts`` in turn, over (N, C, S) float32 arrays
    (``out`` may be ``a`` or a tensor operand: each element is read before it is written);
    returns False (nothing written) where oneDNN does not run it.

    ``op``: "add" or "mul"; ``b``: a (C,) per-channel vector or an (N, C, S) array; a post is
    ("add" | "mul", operand) as ``b``, or ("relu", top): ``min(max(·, 0), top)`` (``top``
    inf: no cap)."""
    operands = [a, out, b] + [p[1] for p in posts if p[0] != "relu"]
    if out.ndim != 3 or not _usable(*operands) or not dnnl.available():
        return False
    N, C, S = out.shape
    if any(o.shape not in ((C,), (N, C, S)) for o in operands):
        return False
    steps = tuple((name, float(what) if name == "relu" else _kind(what)) for name, what in posts)
    tensors = [p[1] for p in posts if p[0] != "relu"]
    lib, plan = _plan((N, C, S), op, _kind(b), steps)
    if plan is None:
        return False

    def cut(operand, lo, hi):
        return operand[lo:hi] if operand.ndim == 3 else operand

    def part(lo, hi):
        dnnl._one_thread()
        p = plan if hi - lo == N else _plan((hi - lo, C, S), op, _kind(b), steps)[1]
        if p is None:
            raise dnnl.OneDNNError(f"oneDNN planned a chain for batch {N} but not {hi - lo}")
        p.run(lib, out[lo:hi], a[lo:hi], cut(b, lo, hi), [cut(t, lo, hi) for t in tensors])
    split(numpy, N, part, per_thread(out))
    return True
