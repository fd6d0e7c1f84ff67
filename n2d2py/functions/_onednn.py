"""oneDNN's direct convolutions for float32 NumPy arrays: forward, input and weight gradients.

oneDNN (Intel's deep-learning kernel library, the CPU engine under PyTorch) runs convolutions as
JIT-compiled direct kernels on blocked layouts; the GEMM kernels of ``conv.py`` have to unroll
every window first. On the Xeon of tools/bench/README.md, one thread, batch 128, a ResNet-20
3x3 layer of 16 channels at 32x32 takes 5.5 ms forward here (layout changes included) against
10.4 ms with im2col + OpenBLAS, and its two gradients 5 ms each against 10 ms.

What runs here: NumPy arrays, float32 input and weights, non-negative padding, no
zero-upsampling, on a machine where the ``onednn-cpu-gomp`` wheel loads (x86-64 Linux) and
``N2D2PY_ONEDNN`` is not ``0``. Everything else returns ``None`` and ``conv.py`` keeps its own
kernels: CuPy, float64 (the integer engine's exact sums), negative pads (N2D2 crops with
them), other machines, and any shape oneDNN declines.

How: ctypes over oneDNN's C API, no compiled code of ours. Per (operation, shapes, options,
threads) one cached plan: oneDNN picks its own layouts (format ``any``), our NCHW / OIHW arrays
are converted in and out by oneDNN's reorder primitives, and the converted buffers and the
primitive's scratchpad are per-thread work arrays (``_im2col.scratch``), so that two threads
never share one. The batch is split across n2d2py's threads (``parallel.split``), each running
oneDNN single-threaded; weight gradients are added in range order, so results are
reproducible for a given thread count, as with the GEMM kernels.
"""
import ctypes
import math
import os
import platform
import sys
import threading
from collections import OrderedDict

import numpy

from ..parallel import added, split
from ._im2col import scratch

__all__ = ["available", "forward", "backward_data", "backward_weights"]

#: the distribution (PyPI name) that ships ``libdnnl.so.3``, CPU-only, GNU OpenMP
WHEEL = "onednn-cpu-gomp"
ENV_SWITCH = "N2D2PY_ONEDNN"
#: plans kept (each holds a JIT-compiled primitive); the least recently used goes first
MAX_PLANS = 256
#: batch items per call: at most this many bytes of input plus output, so that oneDNN's
#: layout copies (work arrays kept per thread) stay bounded whatever the image size
CHUNK_BYTES = 16 << 20

# oneDNN C API constants (oneapi/dnnl/dnnl_types.h, dnnl_common_types.h; stable in v3)
_F32, _TAG_ANY, _TAG_A, _TAG_AB, _TAG_ABC, _TAG_ABCD, _TAG_ABCDE = 3, 1, 2, 3, 4, 5, 6
_FORWARD_TRAINING, _CONVOLUTION_DIRECT, _CPU_ENGINE, _STREAM_IN_ORDER = 64, 1, 1, 1
_SCRATCHPAD_USER = 1
_QUERY_SRC, _QUERY_DIFF_SRC, _QUERY_WEIGHTS, _QUERY_DIFF_WEIGHTS = 129, 130, 131, 132
_QUERY_DST, _QUERY_DIFF_DST, _QUERY_SCRATCHPAD, _QUERY_IMPL = 133, 134, 136, 8
_ARG_SRC, _ARG_DST, _ARG_WEIGHTS, _ARG_SCRATCHPAD = 1, 17, 33, 80
_ARG_DIFF_SRC, _ARG_DIFF_DST, _ARG_DIFF_WEIGHTS = 129, 145, 161
_ARG_FROM, _ARG_TO = 1, 17

_Dims = ctypes.c_int64 * 12
_void_p = ctypes.c_void_p
_out_p = ctypes.POINTER(ctypes.c_void_p)


class _ExecArg(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_int), ("memory", _void_p)]


_SIGNATURES = {
    "dnnl_engine_create": [_out_p, ctypes.c_int, ctypes.c_size_t],
    "dnnl_stream_create": [_out_p, _void_p, ctypes.c_uint],
    "dnnl_memory_desc_create_with_tag": [_out_p, ctypes.c_int, _Dims, ctypes.c_int, ctypes.c_int],
    "dnnl_memory_desc_destroy": [_void_p],
    "dnnl_memory_desc_equal": [_void_p, _void_p],
    "dnnl_memory_desc_get_size": [_void_p],
    "dnnl_memory_create": [_out_p, _void_p, _void_p, _void_p],
    "dnnl_memory_destroy": [_void_p],
    "dnnl_primitive_attr_create": [_out_p],
    "dnnl_primitive_attr_destroy": [_void_p],
    "dnnl_primitive_attr_set_scratchpad_mode": [_void_p, ctypes.c_int],
    "dnnl_convolution_forward_primitive_desc_create":
        [_out_p, _void_p, ctypes.c_int, ctypes.c_int, _void_p, _void_p, _void_p, _void_p,
         _Dims, _Dims, _Dims, _Dims, _void_p],
    "dnnl_convolution_backward_data_primitive_desc_create":
        [_out_p, _void_p, ctypes.c_int, _void_p, _void_p, _void_p, _Dims, _Dims, _Dims, _Dims,
         _void_p, _void_p],
    "dnnl_convolution_backward_weights_primitive_desc_create":
        [_out_p, _void_p, ctypes.c_int, _void_p, _void_p, _void_p, _void_p, _Dims, _Dims, _Dims,
         _Dims, _void_p, _void_p],
    "dnnl_reorder_primitive_desc_create": [_out_p, _void_p, _void_p, _void_p, _void_p, _void_p],
    "dnnl_primitive_desc_query_md": [_void_p, ctypes.c_int, ctypes.c_int],
    "dnnl_primitive_desc_query": [_void_p, ctypes.c_int, ctypes.c_int, _void_p],
    "dnnl_primitive_desc_destroy": [_void_p],
    "dnnl_primitive_create": [_out_p, _void_p],
    "dnnl_primitive_destroy": [_void_p],
    "dnnl_primitive_execute": [_void_p, _void_p, ctypes.c_int, _void_p],
    # element-wise chains (_onednn_chain.py)
    "dnnl_binary_primitive_desc_create":
        [_out_p, _void_p, ctypes.c_int, _void_p, _void_p, _void_p, _void_p],
    "dnnl_post_ops_create": [_out_p],
    "dnnl_post_ops_destroy": [_void_p],
    "dnnl_post_ops_append_binary": [_void_p, ctypes.c_int, _void_p],
    "dnnl_post_ops_append_eltwise": [_void_p, ctypes.c_int, ctypes.c_float, ctypes.c_float],
    "dnnl_primitive_attr_set_post_ops": [_void_p, _void_p],
}
_RESTYPES = {"dnnl_primitive_desc_query_md": _void_p,
             "dnnl_memory_desc_get_size": ctypes.c_size_t}

#: calls of a few microseconds made between the executions of a thread's range: through a
#: handle that keeps the GIL (``ctypes.PyDLL``) — releasing it for each let the other thread
#: take it, and getting it back cost a futex sleep and wake-up (tools/bench/README.md)
_QUICK = ("dnnl_memory_create", "dnnl_memory_destroy", "dnnl_memory_desc_equal")

_lock = threading.Lock()
_state = {"lib": None, "tried": False, "engine": None, "omp": None, "quick": None}
_local = threading.local()          # one oneDNN stream per thread
_plans = OrderedDict()


class OneDNNError(RuntimeError):
    """oneDNN refused a call it had accepted to plan (a defect, not bad input)."""


def _library_path():
    from importlib import metadata
    try:
        files = metadata.files(WHEEL) or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name == "libdnnl.so.3":
            return str(f.locate())
    return None


def _load():
    """The loaded library and its CPU engine, or None (not installed, disabled, not x86-64)."""
    if _state["tried"]:
        return _state["lib"]
    with _lock:
        if _state["tried"]:
            return _state["lib"]
        lib = None
        if (os.environ.get(ENV_SWITCH, "1").strip() != "0" and sys.platform.startswith("linux")
                and platform.machine() in ("x86_64", "AMD64")):
            path = _library_path()
            try:
                lib = ctypes.CDLL(path) if path else None
            except OSError:      # missing libgomp, foreign wheel: keep the GEMM kernels
                lib = None
        if lib is not None:
            for name, argtypes in _SIGNATURES.items():
                fn = getattr(lib, name)
                fn.argtypes = argtypes
                fn.restype = _RESTYPES.get(name, ctypes.c_int)
            quick = ctypes.PyDLL(path)
            for name in _QUICK:
                fn = getattr(quick, name)
                fn.argtypes, fn.restype = _SIGNATURES[name], ctypes.c_int
            _state["quick"] = quick
            engine = _void_p()
            if lib.dnnl_engine_create(ctypes.byref(engine), _CPU_ENGINE, 0) != 0:
                lib = None
            _state["engine"] = engine
            try:
                _state["omp"] = ctypes.PyDLL("libgomp.so.1").omp_set_num_threads
            except (OSError, AttributeError):
                _state["omp"] = None
        _state["lib"], _state["tried"] = lib, True
        return lib


def available():
    """Whether float32 NumPy convolutions run on oneDNN in this process."""
    return _load() is not None


def _check(status, what):
    if status != 0:
        raise OneDNNError(f"oneDNN {what} failed (status {status})")


def _stream(lib):
    stream = getattr(_local, "stream", None)
    if stream is None:
        stream = _void_p()
        _check(lib.dnnl_stream_create(ctypes.byref(stream), _state["engine"], _STREAM_IN_ORDER),
               "stream creation")
        _local.stream = stream
    return stream


def _plain_md(lib, shape):
    md = _void_p()
    tag = {1: _TAG_A, 2: _TAG_AB, 3: _TAG_ABC, 4: _TAG_ABCD, 5: _TAG_ABCDE}[len(shape)]
    _check(lib.dnnl_memory_desc_create_with_tag(ctypes.byref(md), len(shape), _Dims(*shape),
                                                _F32, tag), "memory descriptor")
    return md


def _any_md(lib, shape):
    md = _void_p()
    _check(lib.dnnl_memory_desc_create_with_tag(ctypes.byref(md), len(shape), _Dims(*shape),
                                                _F32, _TAG_ANY), "memory descriptor")
    return md


def _weights_shape(w_shape, groups):
    O, Cg, kH, kW = w_shape
    return (O, Cg, kH, kW) if groups == 1 else (groups, O // groups, Cg, kH, kW)


class _Operand:
    """One argument of a plan: the user's plain layout, oneDNN's, and the reorder between."""

    def __init__(self, lib, arg, query, pd, shape, is_output, tag):
        self.arg, self.is_output, self.tag = arg, is_output, tag
        self.user_md = _plain_md(lib, shape)
        self.md = lib.dnnl_primitive_desc_query_md(pd, query, 0)
        self.reorder = None
        if not lib.dnnl_memory_desc_equal(self.user_md, self.md):
            src, dst = (self.md, self.user_md) if is_output else (self.user_md, self.md)
            reorder_pd = _reorder_pd(lib, src, dst)
            self.reorder = _primitive(lib, reorder_pd)
            lib.dnnl_primitive_desc_destroy(reorder_pd)
            self.nbytes = lib.dnnl_memory_desc_get_size(self.md)


class _Plan:
    """A JIT-compiled oneDNN primitive with the reorders of its operands."""

    def __init__(self, lib, pd, operands):
        self.pd, self.operands = pd, operands
        self.primitive = _primitive(lib, pd)
        self.scratch_md = lib.dnnl_primitive_desc_query_md(pd, _QUERY_SCRATCHPAD, 0)
        self.scratch_bytes = lib.dnnl_memory_desc_get_size(self.scratch_md)
        name = ctypes.c_char_p()
        lib.dnnl_primitive_desc_query(pd, _QUERY_IMPL, 0, ctypes.byref(name))
        self.implementation = (name.value or b"").decode()

    def release(self, lib):
        for op in self.operands:
            if op.reorder is not None:
                lib.dnnl_primitive_destroy(op.reorder)
            lib.dnnl_memory_desc_destroy(op.user_md)
        lib.dnnl_primitive_destroy(self.primitive)
        lib.dnnl_primitive_desc_destroy(self.pd)

    def run(self, lib, arrays, shared=None):
        """Execute on ``arrays`` (C-contiguous float32, in operand order). ``shared``: the
        ``_Reordered`` inputs of a batch chunk several plans run on (backward data, then
        weights, both reading gy): an input already reordered to this plan's layout is not
        reordered again."""
        stream = _stream(lib)
        own = shared is None
        if own:
            shared = _Reordered()

        def memory(md, address):
            return wrap_memory(lib, md, address, shared.made)

        try:
            args, outputs = [], []
            for op, array in zip(self.operands, arrays):
                if op.reorder is None:
                    args.append((op.arg, memory(op.user_md, array.ctypes.data)))
                    continue
                inner = None if op.is_output else shared.find(lib, op.tag, array, op.md)
                if inner is None:
                    user = memory(op.user_md, array.ctypes.data)
                    work = scratch(numpy, "dnnl_" + op.tag, (op.nbytes,), numpy.uint8)
                    inner = memory(op.md, work.ctypes.data)
                    if op.is_output:
                        shared.forget(op.tag)   # its work array is overwritten
                        outputs.append((op.reorder, inner, user))
                    else:
                        _execute(lib, op.reorder, stream, [(_ARG_FROM, user), (_ARG_TO, inner)])
                        shared.keep(op.tag, array, op.md, inner)
                args.append((op.arg, inner))
            if self.scratch_bytes:
                pad = scratch(numpy, "dnnl_scratchpad", (self.scratch_bytes,), numpy.uint8)
                args.append((_ARG_SCRATCHPAD, memory(self.scratch_md, pad.ctypes.data)))
            _execute(lib, self.primitive, stream, args)
            for reorder, inner, user in outputs:
                _execute(lib, reorder, stream, [(_ARG_FROM, inner), (_ARG_TO, user)])
        finally:
            if own:
                shared.release()


class _Reordered:
    """The inputs reordered into work arrays (one per operand tag) during one batch chunk,
    and the memory objects made for it, destroyed by ``release``."""

    def __init__(self):
        self.made, self.inputs = [], {}

    def find(self, lib, tag, array, md):
        entry = self.inputs.get(tag)
        if entry is None:
            return None
        address, shape, kept_md, inner = entry
        same = (address == array.ctypes.data and shape == array.shape
                and _state["quick"].dnnl_memory_desc_equal(kept_md, md))
        return inner if same else None

    def keep(self, tag, array, md, inner):
        self.inputs[tag] = (array.ctypes.data, array.shape, md, inner)

    def forget(self, tag):
        self.inputs.pop(tag, None)

    def release(self):
        release_memory(self.made)
        self.made, self.inputs = [], {}


def wrap_memory(lib, md, address, made):
    """A oneDNN memory object over ``address`` (no copy), appended to ``made`` for the caller
    to destroy after the call."""
    handle = _void_p()
    _check(_state["quick"].dnnl_memory_create(ctypes.byref(handle), md, _state["engine"],
                                              _void_p(address)), "memory creation")
    made.append(handle)
    return handle


def release_memory(made):
    """Destroy the memory objects ``wrap_memory`` made (not the arrays under them)."""
    destroy = _state["quick"].dnnl_memory_destroy
    for handle in made:
        destroy(handle)


def _execute(lib, primitive, stream, args):
    packed = (_ExecArg * len(args))(*[_ExecArg(a, m) for a, m in args])
    _check(lib.dnnl_primitive_execute(primitive, stream, len(args), packed), "execution")


def _primitive(lib, pd):
    prim = _void_p()
    _check(lib.dnnl_primitive_create(ctypes.byref(prim), pd), "primitive creation")
    return prim


def _reorder_pd(lib, src, dst):
    pd = _void_p()
    engine = _state["engine"]
    _check(lib.dnnl_reorder_primitive_desc_create(ctypes.byref(pd), src, engine, dst, engine,
                                                  None), "reorder")
    return pd


def _conv_pds(lib, kind, x_shape, w_shape, y_shape, stride, pads, dilation, groups):
    """The forward primitive descriptor (training), and for ``kind`` "data"/"weights" the
    backward one it hints; None where oneDNN has no implementation."""
    attr = _void_p()
    _check(lib.dnnl_primitive_attr_create(ctypes.byref(attr)), "attributes")
    _check(lib.dnnl_primitive_attr_set_scratchpad_mode(attr, _SCRATCHPAD_USER), "attributes")
    wshape = _weights_shape(w_shape, groups)
    mds = [_any_md(lib, s) for s in (x_shape, wshape, y_shape)]
    src, wei, dst = mds
    geometry = (_Dims(*stride), _Dims(dilation[0] - 1, dilation[1] - 1),
                _Dims(pads[0], pads[2]), _Dims(pads[1], pads[3]))
    engine, fwd, pd = _state["engine"], _void_p(), None
    try:
        status = lib.dnnl_convolution_forward_primitive_desc_create(
            ctypes.byref(fwd), engine, _FORWARD_TRAINING, _CONVOLUTION_DIRECT, src, wei, None,
            dst, *geometry, attr)
        if status != 0:      # unimplemented, or geometry oneDNN does not take
            return None
        if kind == "forward":
            return fwd
        pd = _void_p()
        if kind == "data":
            status = lib.dnnl_convolution_backward_data_primitive_desc_create(
                ctypes.byref(pd), engine, _CONVOLUTION_DIRECT, src, wei, dst, *geometry, fwd, attr)
        else:
            status = lib.dnnl_convolution_backward_weights_primitive_desc_create(
                ctypes.byref(pd), engine, _CONVOLUTION_DIRECT, src, wei, None, dst, *geometry,
                fwd, attr)
        lib.dnnl_primitive_desc_destroy(fwd)
        return pd if status == 0 else None
    finally:
        for md in mds:
            lib.dnnl_memory_desc_destroy(md)
        lib.dnnl_primitive_attr_destroy(attr)


# per kind: (argument, query, role) of each operand, in the order ``_Plan.run`` takes arrays
_OPERANDS = {
    "forward": ((_ARG_SRC, _QUERY_SRC, "x"), (_ARG_WEIGHTS, _QUERY_WEIGHTS, "w"),
                (_ARG_DST, _QUERY_DST, "y")),
    "data": ((_ARG_DIFF_DST, _QUERY_DIFF_DST, "y"), (_ARG_WEIGHTS, _QUERY_WEIGHTS, "w"),
             (_ARG_DIFF_SRC, _QUERY_DIFF_SRC, "x")),
    "weights": ((_ARG_SRC, _QUERY_SRC, "x"), (_ARG_DIFF_DST, _QUERY_DIFF_DST, "y"),
                (_ARG_DIFF_WEIGHTS, _QUERY_DIFF_WEIGHTS, "w")),
}


def _plan(kind, x_shape, w_shape, y_shape, stride, pads, dilation, groups):
    def make(lib):
        _one_thread()   # some kernels fix their thread partition when planned
        pd = _conv_pds(lib, kind, x_shape, w_shape, y_shape, stride, pads, dilation, groups)
        if pd is None:
            return None
        shapes = {"x": x_shape, "w": _weights_shape(w_shape, groups), "y": y_shape}
        operands = [_Operand(lib, arg, query, pd, shapes[role], i == 2, role)
                    for i, (arg, query, role) in enumerate(_OPERANDS[kind])]
        return _Plan(lib, pd, operands)
    return cached_plan((kind, x_shape, w_shape, y_shape, stride, pads, dilation, groups), make)


def cached_plan(key, make):
    """(library, plan) for ``key``: ``make(library)`` on first use (None: oneDNN declined),
    then kept in one cache of at most ``MAX_PLANS`` plans, the least recently used released
    first (convolutions here, element-wise chains in ``_onednn_chain``)."""
    lib = _load()
    with _lock:
        if key in _plans:
            _plans.move_to_end(key)
            return lib, _plans[key]
    plan = make(lib)
    with _lock:
        _plans[key] = plan
        while len(_plans) > MAX_PLANS:
            _, old = _plans.popitem(last=False)
            if old is not None:
                old.release(lib)
    return lib, plan


def _one_thread():
    """oneDNN runs single-threaded in the calling thread: n2d2py splits the batch across its
    own threads (``parallel.split``), as for the GEMM kernels. An OpenMP team of its own would
    spin-wait on the cores those threads need between convolutions (a ResNet-20 step took 4x
    longer with 2 OpenMP threads than with one on the 2-core Xeon of tools/bench/README.md)."""
    setter = _state["omp"]
    if setter is not None:
        setter(1)   # OpenMP's thread count is per calling thread


def _supported(arrays, pads, upsample=(1, 1)):
    if upsample != (1, 1) or min(pads) < 0 or not available():
        return False
    return all(type(a) is numpy.ndarray and a.dtype == numpy.float32 for a in arrays)


def _batch_parts(jobs, x_shape, w_shape, y_shape, options):
    """Run each ``(kind, arrays)`` of ``jobs`` over batch ranges, one per thread, each in
    chunks of at most ``CHUNK_BYTES`` of input and output, the jobs one after the other on a
    chunk (an input they share is reordered once): ``arrays`` are the operands in plan order,
    the batch on axis 0 of every operand but the weights (role "w"). Returns False (nothing
    written) when oneDNN has no kernel for these shapes; a "weights" job's chunks are added
    in batch order into its last operand."""
    plans = []
    for kind, _ in jobs:
        lib, plan = _plan(kind, tuple(x_shape), tuple(w_shape), tuple(y_shape), *options)
        if plan is None:
            return False
        plans.append(plan)
    jobs = [(kind, [numpy.ascontiguousarray(a) for a in arrays],
             [role for _, _, role in _OPERANDS[kind]], kind == "weights") for kind, arrays in jobs]
    N = x_shape[0]
    item_bytes = 4 * (math.prod(x_shape[1:]) + math.prod(y_shape[1:]))
    chunk = max(1, min(N, int(CHUNK_BYTES // item_bytes)))

    def plan_for(job, n):
        if n == N:
            return plans[job]
        p = _plan(jobs[job][0], (n,) + tuple(x_shape[1:]), tuple(w_shape),
                  (n,) + tuple(y_shape[1:]), *options)[1]
        if p is None:
            raise OneDNNError(f"oneDNN planned {jobs[job][0]} for batch {N} but not for {n}")
        return p

    def part(lo, hi):
        _one_thread()
        totals = [None] * len(jobs)
        shared = _Reordered()
        try:
            for start in range(lo, hi, chunk):
                stop = min(hi, start + chunk)
                for j, (kind, arrays, roles, reduce) in enumerate(jobs):
                    operands = [a if role == "w" else a[start:stop]
                                for a, role in zip(arrays, roles)]
                    if reduce and stop - start < N:
                        operands[-1] = numpy.empty_like(arrays[-1])   # this chunk's share
                    plan_for(j, stop - start).run(lib, operands, shared)
                    if reduce:
                        totals[j] = operands[-1] if totals[j] is None else \
                            numpy.add(totals[j], operands[-1], out=totals[j])
                shared.release()
        finally:
            shared.release()
        return totals

    parts = split(numpy, N, part)
    for j, (_, arrays, _, reduce) in enumerate(jobs):
        if reduce and (len(parts) > 1 or parts[0][j] is not arrays[-1]):
            arrays[-1][...] = added([p[j] for p in parts])
    return True


def _call(kind, inputs, out, x_shape, y_shape, w_shape, options):
    """``out`` computed by oneDNN from ``inputs``, or None when it has no kernel for them."""
    ok = _batch_parts([(kind, tuple(inputs) + (out,))], x_shape, w_shape, y_shape,
                      _options(*options))
    return out if ok else None


def _options(stride, pads, dilation, groups):
    return (tuple(stride), tuple(pads), tuple(dilation), int(groups))


def forward(x, W, y_hw, stride, pads, dilation, groups, upsample=(1, 1)):
    """y = W (*) pad(x) (no bias) as a new (N, O, OH, OW) array, or None (not for oneDNN)."""
    if not _supported((x, W), pads, upsample):
        return None
    y = numpy.empty((x.shape[0], W.shape[0]) + tuple(y_hw), numpy.float32)
    return _call("forward", (x, W), y, x.shape, y.shape, W.shape, (stride, pads, dilation, groups))


def backward_data(gy, W, in_hw, stride, pads, dilation, groups):
    """gx, the adjoint of ``forward`` in x, as a new (N, C, H, W) array, or None."""
    if not _supported((gy, W), pads):
        return None
    gx = numpy.empty((gy.shape[0], W.shape[1] * groups) + tuple(in_hw), numpy.float32)
    return _call("data", (gy, W), gx, gx.shape, gy.shape, W.shape,
                 (stride, pads, dilation, groups))


def backward_weights(x, gy, w_shape, stride, pads, dilation, groups):
    """gW (``w_shape``) = sum over the batch of gy correlated with pad(x), or None."""
    if not _supported((x, gy), pads):
        return None
    gW = numpy.empty(w_shape, numpy.float32)
    return _call("weights", (x, gy), gW, x.shape, gy.shape, w_shape,
                 (stride, pads, dilation, groups))


def backward(x, gy, W, stride, pads, dilation, groups):
    """(gx, gW) of ``forward`` in one pass over the batch, or None: per chunk, the input
    gradient, then the weight gradient, gy reordered once for both where the two kernels take
    the same layout (the same numbers as ``backward_data`` and ``backward_weights``)."""
    if not _supported((x, gy, W), pads):
        return None
    gx = numpy.empty(x.shape, numpy.float32)
    gW = numpy.empty(W.shape, numpy.float32)
    ok = _batch_parts([("data", (gy, W, gx)), ("weights", (x, gy, gW))], x.shape, W.shape,
                      gy.shape, _options(stride, pads, dilation, groups))
    return (gx, gW) if ok else None


def describe():
    """``oneDNN 3.2.0, 3x3 kernel jit:avx512_core`` (for benchmark headers), or why not used."""
    lib = _load()
    if lib is None:
        why = "off (N2D2PY_ONEDNN=0)" if os.environ.get(ENV_SWITCH, "1").strip() == "0" \
            else f"not loaded ({WHEEL} not installed, or not x86-64 Linux)"
        return f"oneDNN {why}: GEMM kernels"

    class Version(ctypes.Structure):
        _fields_ = [("major", ctypes.c_int), ("minor", ctypes.c_int), ("patch", ctypes.c_int)]
    lib.dnnl_version.restype = ctypes.POINTER(Version)
    v = lib.dnnl_version().contents
    kernel = implementation("forward", (8, 16, 32, 32), (16, 16, 3, 3), (8, 16, 32, 32), (1, 1),
                            (1, 1, 1, 1))
    return f"oneDNN {v.major}.{v.minor}.{v.patch}, 3x3 kernel {kernel}"


def implementation(kind, x_shape, w_shape, y_shape, stride, pads, dilation=(1, 1), groups=1):
    """The name of the oneDNN kernel a plan uses (``jit:avx512_core``, ...), or None."""
    if not available():
        return None
    _, plan = _plan(kind, tuple(x_shape), tuple(w_shape), tuple(y_shape), tuple(stride),
                    tuple(pads), tuple(dilation), int(groups))
    return None if plan is None else plan.implementation
