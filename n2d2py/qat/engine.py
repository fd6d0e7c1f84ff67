"""Integer inference of the fused network (docs/FUSION.md, "What each layer becomes").

Every node maps integer activation codes (N, C, H, W) to integer codes; only the last FC
without an activation quantizer outputs float64 logits, and a Softmax node float64
probabilities. Batch-vectorised and xp-agnostic (NumPy or CuPy follow the input).

* ``IntegerConv``: ``acc = Σ_(c,kh,kw) W_int[:, c, kh, kw] · window(x)`` by the float
  convolution's kernels (im2col + BLAS GEMM; depthwise layers element-wise). The sums
  are exact: float32 when max code · max_o Σ|W_int[o]| < 2^24 on the input, else float64, which
  the fusion proves exact (``check_exact``: < 2^53); the float array of integers goes straight
  to the layer's ``ActivationRescaling`` (scaling.py); ``accumulate`` gives it as int64.
  ``FusedNet.forward`` runs the nodes on chunks of ``CHUNK`` stimuli (cache-sized arrays).
  Groups (depthwise) supported.
* ``IntegerFc``: the same on the flattened input (N2D2's C, H, W order).
* ``IntegerPool``: Max on codes; Average outputs the window **sum** (N2D2 counts the padding):
  its 1/K is folded into the consuming layer's weight denominator by the fusion, so the average
  never leaves the integers. The node carries its whole geometry (asymmetric pads, dilation,
  the cell's output size: ONNX's ceil mode), so max pools imported from ONNX fuse to it too.
* ``IntegerElemWise``: ``acc = Σ_i M_i · code_i`` with Q16 multipliers ``M_i`` that bring each
  operand to the reference operand's units, then the node's rescaling.
* ``SoftmaxNode``: float64 softmax over the channels of the codes (argmax unchanged).
* ``MoveNode``: a cell that only moves codes (Padding, Reshape, Transpose, ChannelShuffle: its
  ``fuse`` names ``Fuser.move``) runs its own forward on them, exact (no arithmetic).

Each node names its exporters' rules (``export_onnx(onnx, xs)`` calls ``onnx/export_integer.py``,
``export_c(program)`` ``qat/export_c.py``) and declares what the C export needs to know:
``W_int`` (None without weights), ``keeps_argmax``, ``accumulator_bound``, ``output_codes``.
"""
import numpy

from ..backend import get_xp
from ..errors import N2D2Error
from ..functions.conv import _correlate as correlate

EXACT_LIMIT = 2 ** 53
#: stimuli per pass of ``FusedNet.forward``: small enough for the layers' arrays to stay in
#: cache (the results do not depend on it)
CHUNK = 50


def check_exact(name, W_int, max_code, fan_axis_sum):
    """Raise unless every accumulator is exactly representable in float64 (and in int64)."""
    bound = float(max_code) * float(fan_axis_sum)
    if bound >= EXACT_LIMIT:
        raise N2D2Error(f"[{name}] accumulator bound {bound:.3g} >= 2^53: the integer engine "
                        f"cannot prove its products exact")
    return bound


def fan_abs_max(W_int):
    """max_o Σ|W_int[o]| (the accumulator bound per unit of input code)."""
    rows = numpy.abs(numpy.asarray(W_int, numpy.int64)).reshape(len(W_int), -1).sum(axis=1)
    return int(rows.max()) if rows.size else 0


def exact_dtype(xp, x, fan):
    """float32 when every partial sum of ``x`` (integer codes) times weights with
    max_o Σ|W[o]| = ``fan`` is below 2^24 in magnitude (float32 then adds and multiplies
    integers exactly), else float64."""
    if not x.size:
        return xp.float64
    return xp.float32 if float(xp.abs(x).max()) * fan < 2 ** 24 else xp.float64


class Node:
    """A fused cell: ``name``, ``type_name`` (N2D2 Type), ``parents`` (fused node names or env),
    ``out_shape`` (C, H, W), ``R``/``alpha`` of its output codes, ``den`` (output = den · code,
    > 1 only for Average pools)."""
    type_name = ""
    den = 1
    #: the integer weights (Conv, Fc); None for a node without
    W_int = None
    #: a last node whose argmax is its input's (Softmax): the C export stops at its input
    keeps_argmax = False

    def __init__(self, name, parents, out_shape, R, alpha):
        self.name, self.parents = name, list(parents)
        self.out_shape, self.R, self.alpha = tuple(out_shape), R, alpha
        self.max_code = R  # largest value the node outputs (for exactness bounds)

    def __call__(self, xs):
        raise NotImplementedError

    def export_onnx(self, onnx, xs):
        raise onnx.fail(self, "no integer ONNX export for this node type")

    def export_c(self, program):
        """The node's C kernel (``qat/export_c.py``'s ``CProgram`` rule for it)."""
        raise program.fail(self, f"no C kernel for a fused Type={self.type_name} node (Conv, "
                                 f"Fc, Pool, ElemWise, cells that move codes)")

    def output_codes(self, lo, hi):
        """[lo, hi] of the codes a node without rescaling outputs for input codes in [lo, hi]:
        the same codes, and 0 where it pads."""
        return min(lo, 0), max(hi, 0)


class IntegerConv(Node):
    type_name = "Conv"

    def export_onnx(self, onnx, xs):
        return onnx.conv(self, xs)

    def export_c(self, program):
        return program.conv(self)

    def accumulator_bound(self, codes):
        """Largest |acc| for input codes of magnitude <= ``codes[0]``."""
        return int(codes[0]) * self.fan

    def __init__(self, name, parents, out_shape, R, alpha, W_int, stride, padding, dilation,
                 groups, rescaling, W_fused=None):
        super().__init__(name, parents, out_shape, R, alpha)
        self.W_int = numpy.asarray(W_int, numpy.int32)
        self.fan = fan_abs_max(self.W_int)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.groups, self.rescaling, self.W_fused = groups, rescaling, W_fused

    def accumulate(self, x):
        """Exact integer accumulators (N, O, OH, OW) as int64."""
        xp = get_xp(x)
        return xp.rint(self.accumulate_exact(x)).astype(xp.int64)

    def accumulate_exact(self, x):
        """The accumulators as a float array holding exact integers: float32 when every
        partial sum is below 2^24 on this input (max code · max_o Σ|W_int[o]|), else float64
        (below 2^53, proven by the fusion). The float convolution's GEMM kernels compute them
        (``functions/conv.py``: im2col and BLAS, depthwise layers element-wise): every product
        and every partial sum is an integer within the float's exact range, so the result
        does not depend on the summation order and equals the integer sum."""
        xp = get_xp(x)
        dtype = exact_dtype(xp, x, self.fan)
        (ph, pw) = self.padding
        return correlate(xp, x.astype(dtype), xp.asarray(self.W_int, dtype), tuple(self.stride),
                         (ph, ph, pw, pw), tuple(self.dilation), self.groups)

    def __call__(self, xs):
        x, = xs
        return self.rescaling(get_xp(x), self.accumulate_exact(x))


class IntegerFc(Node):
    type_name = "Fc"

    def export_onnx(self, onnx, xs):
        return onnx.fc(self, xs)

    def export_c(self, program):
        return program.fc(self)

    accumulator_bound = IntegerConv.accumulator_bound

    def __init__(self, name, parents, out_shape, R, alpha, W_int, rescaling, W_fused=None):
        super().__init__(name, parents, out_shape, R, alpha)
        self.W_int = numpy.asarray(W_int, numpy.int32)
        self.fan = fan_abs_max(self.W_int)
        self.rescaling, self.W_fused = rescaling, W_fused

    def accumulate(self, x):
        xp = get_xp(x)
        return xp.rint(self.accumulate_exact(x)).astype(xp.int64)

    def accumulate_exact(self, x):
        xp = get_xp(x)
        dtype = exact_dtype(xp, x, self.fan)
        flat = x.reshape(len(x), -1).astype(dtype)
        return (flat @ xp.asarray(self.W_int, dtype).T).reshape(len(x), -1, 1, 1)

    def __call__(self, xs):
        x, = xs
        return self.rescaling(get_xp(x), self.accumulate_exact(x))


class IntegerPool(Node):
    """Max or Average over windows of one geometry, which the engine, the integer ONNX export
    and the C export all read from the node: ``kernel``, ``stride``, ``pads`` (top, bottom,
    left, right; N2D2's symmetric ``padding`` (ph, pw) when not given), ``dilation`` and the
    output size ``out_shape`` (the cell's: ONNX's ceil mode included). Output (i, j) reads the
    input at row i·sh − top + ky·dh, column j·sw − left + kx·dw; a position outside the input
    (padding, the ceil-mode overhang) never wins a max and adds 0 to a sum."""
    type_name = "Pool"

    def export_onnx(self, onnx, xs):
        return onnx.pool(self, xs)

    def export_c(self, program):
        return program.pool(self)

    def output_codes(self, lo, hi):
        """Max: the input codes; Average: the window sums (padding adds 0)."""
        return min(lo, 0) * self.den, max(hi, 0) * self.den

    def __init__(self, name, parents, out_shape, R, alpha, pooling, kernel, stride, padding,
                 max_code, pads=None, dilation=(1, 1)):
        super().__init__(name, parents, out_shape, R, alpha)
        self.pooling, self.kernel, self.stride, self.padding = pooling, kernel, stride, padding
        (ph, pw) = padding
        self.pads = (ph, ph, pw, pw) if pads is None else tuple(int(p) for p in pads)
        self.dilation = tuple(int(d) for d in dilation)
        self.den = 1 if pooling == "Max" else kernel[0] * kernel[1]
        self.max_code = max_code * self.den

    def windows(self, xp, x, fill):
        """The kH·kW views (N, C, OH, OW) of ``x`` (N, C, H, W) that each output reads, in
        (ky, kx) order; positions outside the input hold ``fill``."""
        N, C, H, W = x.shape
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.stride, self.dilation
        top, bottom, left, right = self.pads
        _, OH, OW = self.out_shape
        height = max(top + H + bottom, (OH - 1) * sh + (kh - 1) * dh + 1)
        width = max(left + W + right, (OW - 1) * sw + (kw - 1) * dw + 1)
        xpad = xp.full((N, C, height, width), fill, x.dtype)
        xpad[:, :, top:top + H, left:left + W] = x
        return [xpad[:, :, i * dh:i * dh + sh * (OH - 1) + 1:sh,
                     j * dw:j * dw + sw * (OW - 1) + 1:sw] for i in range(kh) for j in range(kw)]

    def empty_windows(self, in_shape):
        """How many output positions (OH·OW at most) of a (C, H, W) input read no input, only
        padding (a dilated window can): the fusion and the C export refuse such max pools."""
        ones = numpy.ones((1, 1) + tuple(in_shape[1:]), numpy.int64)
        return int((sum(self.windows(numpy, ones, 0)) == 0).sum())

    def __call__(self, xs):
        x, = xs
        xp = get_xp(x)
        if self.pooling == "Max":
            fill = numpy.iinfo(numpy.int32).min
            views = self.windows(xp, x.astype(xp.int32, copy=False), fill)
            out = views[0].copy()
            for v in views[1:]:
                xp.maximum(out, v, out=out)
            return out
        views = self.windows(xp, x.astype(xp.int64), 0)
        out = views[0].copy()
        for v in views[1:]:
            out += v
        return out


class IntegerElemWise(Node):
    type_name = "ElemWise"

    def export_onnx(self, onnx, xs):
        return onnx.elemwise(self, xs)

    def export_c(self, program):
        return program.elemwise(self)

    def accumulator_bound(self, codes):
        """Largest |Σ M_i·code_i| for operand codes of magnitude <= ``codes[i]``."""
        return sum(int(c) * abs(m) for c, m in zip(codes, self.multipliers))

    def __init__(self, name, parents, out_shape, R, alpha, multipliers, rescaling):
        super().__init__(name, parents, out_shape, R, alpha)
        self.multipliers = [int(m) for m in multipliers]
        self.rescaling = rescaling

    def __call__(self, xs):
        xp = get_xp(xs[0])
        acc = None
        for x, m in zip(xs, self.multipliers):
            term = x.astype(xp.int64) * m
            acc = term if acc is None else acc + term
        return self.rescaling(xp, acc)


class SoftmaxNode(Node):
    type_name = "Softmax"
    keeps_argmax = True

    def export_c(self, program):
        raise program.fail(self, "a Softmax inside the network computes in floating point; "
                                 "only a last Softmax (dropped: it keeps the argmax) can be "
                                 "exported")

    def export_onnx(self, onnx, xs):
        return onnx.softmax(self, xs)

    def __call__(self, xs):
        x, = xs
        xp = get_xp(x)
        z = x.astype(xp.float64)
        z = xp.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)


class MoveNode(Node):
    """The codes moved by ``cell`` (its forward selects or moves values, no arithmetic; no
    activation, no quantizer): exact on integers. ``den`` and the code range are its input's."""

    def __init__(self, name, parent, cell):
        super().__init__(name, [parent.name], cell.out_shape, parent.R, parent.alpha)
        self.cell, self.den, self.max_code = cell, parent.den, parent.max_code
        self.type_name = cell.type_name

    def __call__(self, xs):
        from ..autograd import Variable, no_grad
        with no_grad():
            return self.cell.forward([Variable(xs[0])], False).data

    def export_onnx(self, onnx, xs):
        return onnx.move(self, xs)

    def export_c(self, program):
        return program.move(self)


def run(nodes, codes, keep=None):
    """Run ``nodes`` (ordered {name: Node}) on input codes; returns {name: output} for ``keep``
    (default: every node)."""
    values = {"env": codes}
    for name, node in nodes.items():
        values[name] = node([values[p] for p in node.parents])
    return values if keep is None else {k: values[k] for k in keep}


class FusedNet:
    """The fused integer network (``fuse.fuse_qat`` builds it; the DeepNet is untouched).

    ``nodes`` ordered {name: Node}; ``input`` the env Node (R=255, α=1); ``targets`` copies of
    the DeepNet's targets re-pointed at fused nodes; ``sp`` the DeepNet's StimuliProvider;
    ``constants`` N2D2's fused W, S, B, C per node; ``alias`` original cell -> fused node.
    """

    def __init__(self, nodes, input_node, targets, sp, options, constants, alias):
        self.nodes, self.input, self.targets, self.sp = nodes, input_node, targets, sp
        self.options, self.constants, self.alias = options, constants, alias
        self.input_shape = input_node.out_shape

    @staticmethod
    def input_codes(x):
        """env stimuli in [0, 1] -> uint8-valued int32 codes x·255, as N2D2's fusion assumes.

        N2D2 multiplies by 255 without rounding; MNIST through OpenCV's uint8 resize gives
        integers up to float32 noise, which we round. Inputs that are not integral after ×255
        (a float-valued transformation) raise: the integer engine cannot take them.
        """
        xp = get_xp(x)
        scaled = xp.asarray(x, xp.float64) * 255.0
        codes = xp.rint(scaled)
        if codes.size and float(xp.abs(scaled - codes).max()) > 1e-3:
            raise N2D2Error("the fused integer network needs stimuli that are integers after "
                            "×255 (uint8 pixels / 255); these are not")
        if codes.size and (float(codes.min()) < 0 or float(codes.max()) > 255):
            raise N2D2Error("the fused integer network needs stimuli in [0, 1] (codes 0..255)")
        return codes.astype(xp.int32)

    def forward(self, codes, keep=None):
        """Integer inference on input codes (N, C, H, W) (uint8 or int values 0..255).
        Returns the output of the first target's node, or {name: output} for ``keep``
        ("all" or a list of node names)."""
        xp = get_xp(codes)
        codes = xp.asarray(codes).astype(xp.int32)
        names = [self.targets[0].cell] if keep is None else \
            (list(self.nodes) if keep == "all" else list(keep))
        parts = [run(self.nodes, codes[k:k + CHUNK], names) for k in range(0, len(codes), CHUNK)]
        if not parts:
            parts = [run(self.nodes, codes, names)]
        values = {k: parts[0][k] if len(parts) == 1 else xp.concatenate([p[k] for p in parts])
                  for k in names}
        return values[names[0]] if keep is None else values

    def test(self, sp=None, set_name="Test", limit=None, out=None):
        """Score ``set_name`` with the targets (N2D2's "Final recognition rate"); returns a
        ``scoring.TestResult``. ``out``: a stream for N2D2's final lines."""
        import time
        from ..scoring import TestResult
        from ..report import text
        sp = self.sp if sp is None else sp
        start, count = time.perf_counter(), 0
        for target in self.targets:
            target.reset()
        for x, labels, _ in sp.batches(set_name, False, None, limit):
            outputs = self.forward(self.input_codes(x), keep=[t.cell for t in self.targets])
            for target in self.targets:
                target.score(outputs[target.cell], labels)
            count += len(labels)
        result = TestResult(self.targets, time.perf_counter() - start, count)
        if out is not None:
            for target in self.targets:
                if target.scored:
                    out.write(text.final_lines(target) + "\n")
            out.flush()
        return result
