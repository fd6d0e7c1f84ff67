"""The integer nodes of a calibrated network: ``qat/engine.py``'s nodes (so the integer engine,
the C export, the integer ONNX export and ``weights_quantized/`` take them as they are), each
with its **fake-quantized twin** ``simulate(xs)``, plus ``Concat`` (codes of inputs brought to one
scale, concatenated along the channels).

``simulate`` is N2D2's simulator after calibration ("fake" quantization: the integer codes held
in floats): the network's own float functions (``functions/``: ``conv2d``, ``linear``, pools) run
on the codes and integer weights in float64, which holds every accumulator exactly (< 2^53,
checked when the node is built), then the node's rescaling. It computes the same codes as the
integer kernels by a different path (im2col GEMMs, the float pools), so ``CalibratedNet`` can
score both and tests compare them code for code.
"""
from .. import functions as F
from ..autograd import Variable, no_grad
from ..backend import get_xp
from ..qat import engine

__all__ = ["Conv", "Fc", "Pool", "ElemWise", "Softmax", "Move", "Concat"]


def _float(x):
    xp = get_xp(x)
    return Variable(xp.asarray(x, dtype=xp.float64))


class Conv(engine.IntegerConv):
    def simulate(self, xs):
        x, = xs
        xp = get_xp(x)
        W = Variable(xp.asarray(self.W_int, dtype=xp.float64))
        with no_grad():
            acc = F.conv2d(_float(x), W, None, self.stride, self.padding, self.dilation,
                           self.groups).data
        return self.rescaling(xp, acc)


class Fc(engine.IntegerFc):
    def simulate(self, xs):
        x, = xs
        xp = get_xp(x)
        W = Variable(xp.asarray(self.W_int, dtype=xp.float64))
        with no_grad():
            acc = F.linear(_float(x), W, None).data
        return self.rescaling(xp, acc.reshape(len(acc), -1, 1, 1))


class Pool(engine.IntegerPool):
    """``ceil_mode``: the float twin's (the integer pool reads it from ``out_shape``)."""

    def __init__(self, *args, ceil_mode=False):
        super().__init__(*args)
        self.ceil_mode = bool(ceil_mode)

    def simulate(self, xs):
        x, = xs
        xp = get_xp(x)
        with no_grad():
            if self.pooling == "Max" and self.dilation != (1, 1):
                return F.dilated_pool2d(_float(x), "Max", self.kernel, self.stride,
                                        self.dilation, self.pads, self.ceil_mode).data
            if self.pooling == "Max":
                return F.max_pool2d(_float(x), self.kernel, self.stride, self.pads,
                                    self.ceil_mode).data
            mean = F.avg_pool2d(_float(x), self.kernel, self.stride, self.padding).data
        return xp.rint(mean * self.den)   # the window sum, as the integer pool outputs


class ElemWise(engine.IntegerElemWise):
    def simulate(self, xs):
        xp = get_xp(xs[0])
        acc = sum(xp.asarray(x, dtype=xp.float64) * float(m)
                  for x, m in zip(xs, self.multipliers))
        return self.rescaling(xp, acc)


class Softmax(engine.SoftmaxNode):
    def simulate(self, xs):
        with no_grad():
            return F.softmax(_float(xs[0]), axis=1).data


class Move(engine.MoveNode):
    def simulate(self, xs):
        with no_grad():
            return self.cell.forward([_float(xs[0])], False).data


class Concat(engine.Node):
    """The inputs' codes (one scale) concatenated along the channels."""
    type_name = "Concat"

    def __init__(self, name, parents, out_shape, R, alpha, max_code):
        super().__init__(name, parents, out_shape, R, alpha)
        self.max_code = max_code

    def __call__(self, xs):
        return get_xp(xs[0]).concatenate(list(xs), axis=1)

    def simulate(self, xs):
        with no_grad():
            return F.concat([_float(x) for x in xs], axis=1).data

    def export_c(self, program):
        """The C kernel: one sample's (C, H, W) inputs (one scale, one range) appended in
        channel order."""
        out = program.buffers[self.name].ctype
        lines, offset = [], 0
        for k, parent in enumerate(self.parents):
            count = program.buffers[parent].count
            lines.append(f"    for (j = 0; j < {count}; ++j) out[{offset} + j] = ({out})in{k}[j];")
            offset += count
        body = "\n".join(lines)
        return f"\n{program._signature(self)} {{\n    int j;\n{body}\n}}\n"

    def export_onnx(self, onnx, xs):
        from ..onnx.export_integer import Tensor
        types = {x.type for x in xs}
        if len(types) != 1:
            raise onnx.fail(self, "inputs of different integer types")
        name = onnx.node("Concat", [x.name for x in xs], f"{self.name}/concat", axis=1)
        return Tensor(name, min(x.lo for x in xs), max(x.hi for x in xs), xs[0].type)


class Simulated:
    """A node seen through its fake-quantized twin (``CalibratedNet.fake_quantized``)."""

    def __init__(self, node):
        self.node, self.name, self.parents = node, node.name, node.parents

    def __call__(self, xs):
        return self.node.simulate(xs)

    def __getattr__(self, name):
        return getattr(self.node, name)
