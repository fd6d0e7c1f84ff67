"""DeepNet -> ONNX: ``export_onnx(net, path)`` (N2D2's ``-export ONNX`` is absent; this is ours).

Every cell's output is the tensor named after the cell, NCHW, batch dim symbolic ``N``; ``env``
is the graph input ``env``; the graph outputs are the cells nothing reads. Each cell writes its
own nodes (``Cell.export_onnx(exporter, inputs)``, beside its code in ``cells/``; a cell that
cannot be exported says why in ``onnx_refusal``), then the exporter adds its activation
(``ActivationFunction.export_onnx``) and activation quantizer. The exporter offers the cells
``node``, ``const``, ``concat`` (multi-parent inputs concatenated on channels, as in N2D2),
``clip``, ``weight_input`` and ``error``.

Quantizers (``qdq=True``, default when any cell has one) give a QDQ graph, read
from each quantizer's ``grid()`` (scale · integer code, codes in [lo, hi]):

* Weights: the fake-quantized weights ``w_q`` are written as integer codes × the grid's scale in
  a ``DequantizeLinear`` (int8 when every code fits, else int32): SAT Default/FullRange
  ``w_q = (2k − R)/R`` (codes 2k − R, scale 1/R, odd codes), Symmetric/Asymmetric ``k/r``
  (scale 1/r, r = floor(R/2)); ApplyScaling divides the scale by s; LSQ ``k·step`` (scale step).
  The codes are checked: max|code·scale − w_q| ≤ 1e-6·max|w_q| (float32 products differ from
  N2D2's ``2·(1/R)·k − 1`` by an ulp), else the export fails naming the cell. A weight
  quantizer without a grid (SAT ApplyQuantization=0, DQ, FracBits, DFP/Po2, DQA, Prune) exports
  its fake-quantized weights as float constants.
* Activations: ``Clip(0, top)`` then ``QuantizeLinear``/``DequantizeLinear`` (uint8, the grid's
  scale): SAT and PACT scale |α|/R, top |α|; LSQ scale step, top R·step. Codes in [0, 255].
  ONNX rounds x/scale half to even; n2d2py rounds R·(x/α) (half away from zero for SAT on the
  CPU): the two quotients differ by an ulp, so an element within an ulp of a rounding tie may
  land one step (scale) apart. Tests allow that on a tiny fraction of elements only.
"""
import numpy
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..autograd import no_grad
from ..backend import asnumpy
from ..errors import OnnxError

OPSET = 19
WEIGHT_TOLERANCE = 1e-6


class Exporter:
    def __init__(self, net, qdq):
        self.net, self.qdq = net, qdq
        self.nodes, self.inits, self.names = [], [], set()
        self.reserved = set()   # the cells' names: only their own outputs take them

    # ------------------------------------------------------------ helpers
    def fresh(self, base, exact=False):
        """A tensor name not used yet, ``base`` or ``base_2``...; a cell's own name only for
        that cell's output (``exact``), so ``a/b`` (cell a's bias) never takes cell ``a/b``'s."""
        if exact:
            self.names.add(base)
            return base
        name, k = base, 1
        while name in self.names or name in self.reserved:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name

    def const(self, base, array, dtype=numpy.float32):
        name = self.fresh(base)
        self.inits.append(numpy_helper.from_array(numpy.asarray(array, dtype=dtype), name))
        return name

    def node(self, op, inputs, base, exact=False, **attrs):
        out = self.fresh(base, exact)
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out

    def error(self, cell, message):
        return OnnxError(f"cannot export cell [{cell.name}] (Type={cell.type_name}): {message}")

    # ------------------------------------------------------------ walk
    def run(self, path):
        net = self.net
        with no_grad():
            tensors = self.export_all(net.cells, "env", self.finish)
        c, h, w = net.input_shape
        inputs = [helper.make_tensor_value_info("env", TensorProto.FLOAT, ["N", c, h, w])]
        read = {p for cell in net.cells.values() for p in cell.parents}
        outputs = []
        for name, cell in net.cells.items():
            if name not in read:
                if tensors[name] != name:     # an omitted cell (Dropout) as graph output
                    tensors[name] = self.node("Identity", [tensors[name]], name, exact=True)
                outputs.append(helper.make_tensor_value_info(
                    name, TensorProto.FLOAT, ["N", *[int(d) for d in cell.out_shape]]))
        return self.save("n2d2py", inputs, outputs, path)

    def export_all(self, items, env, finish):
        """``{name: output tensor}`` over ``items`` ({name: cell or fused node}, in order): each
        writes its nodes (``export_onnx(self, input tensors)``), ``finish(item, tensor)`` names
        the result; ``env`` is the graph input's tensor."""
        self.names.add("env")
        self.reserved = set(items)
        tensors = {"env": env}
        for name, item in items.items():
            tensors[name] = finish(item, item.export_onnx(self, [tensors[p] for p in item.parents]))
        return tensors

    def save(self, graph_name, inputs, outputs, path):
        """The checked ModelProto of the nodes and initializers built so far; written to ``path``
        unless it is None."""
        graph = helper.make_graph(self.nodes, graph_name, inputs, outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="n2d2py")
        model.ir_version = 9
        onnx.checker.check_model(model)
        if path is not None:   # beside, then renamed: a full disk names the file, no half model
            from ..folders import output_atomically
            output_atomically(str(path), lambda tmp: onnx.save(model, tmp))
        return model

    def finish(self, cell, y):
        """Activation, then activation quantizer; the last node is renamed after the cell."""
        y = self.activation(cell, y)
        if cell.qact is not None:
            y = self.act_qdq(cell, y)
        if y == cell.name or y in self.net.cells or not self.nodes or self.nodes[-1].output[0] != y:
            return y
        last = self.nodes[-1]
        self.names.discard(y)
        last.output[0] = cell.name
        last.name = cell.name
        self.names.add(cell.name)
        return cell.name

    def concat(self, cell, xs):
        return xs[0] if len(xs) == 1 else self.node("Concat", xs, f"{cell.name}/concat", axis=1)

    def clip(self, n, y, lo, hi):
        return self.node("Clip", [y, self.const(f"{n}/clip_min", lo), self.const(f"{n}/clip_max", hi)],
                         f"{n}/clip")

    def fake_quantized(self, cell):
        """The weights the forward uses (quantized by QWeight when the cell has one), host arrays."""
        if cell.qweight is None:
            return [asnumpy(W.data) for W in cell.weights]
        return [asnumpy(w.data) for w in cell.qweight(list(cell.weights))]

    def weight_input(self, cell, W, wq, base):
        """A float initializer, or (QDQ) DequantizeLinear(int codes, scale) for ``wq``."""
        grid = None if cell.qweight is None or not self.qdq else cell.qweight.grid()
        if grid is None:     # float network, or a quantizer without an integer grid
            return self.const(base, W if cell.qweight is None else wq)
        codes = numpy.rint(wq.astype(numpy.float64) / grid.scale)
        err = numpy.abs(codes * grid.scale - wq).max() if wq.size else 0.0
        if err > WEIGHT_TOLERANCE * max(float(numpy.abs(wq).max()), 1e-30):
            raise self.error(cell, f"its quantized weights are not integer multiples of "
                                   f"{grid.scale:g} (error {err:g})")
        small = codes.min() >= -128 and codes.max() <= 127
        codes = self.const(f"{base}_int", codes, numpy.int8 if small else numpy.int32)
        zero = self.const(f"{base}_zero", 0, numpy.int8 if small else numpy.int32)
        return self.node("DequantizeLinear", [codes, self.const(f"{base}_scale", grid.scale), zero],
                         f"{base}_dq")

    def act_qdq(self, cell, y):
        """Clip to the activation quantizer's grid, then QuantizeLinear/DequantizeLinear."""
        q, n = cell.qact, cell.name
        grid = q.grid()
        if grid is None or grid.lo != 0:
            raise self.error(cell, f"activation quantizer {q.type_name} has no QDQ export (its "
                                   f"outputs are not unsigned integer codes times a scale)")
        if grid.hi > 255:
            raise self.error(cell, f"activation quantizer Range={grid.hi} does not fit uint8")
        y = self.clip(n, y, 0.0, grid.top)
        s, z = self.const(f"{n}/qscale", grid.scale), self.const(f"{n}/qzero", 0, numpy.uint8)
        y = self.node("QuantizeLinear", [y, s, z], f"{n}/q")
        return self.node("DequantizeLinear", [y, s, z], f"{n}/dq")

    def activation(self, cell, y):
        return y if cell.activation is None else cell.activation.export_onnx(self, cell, y)


def export_onnx(net, path=None, qdq=None):
    """Write ``net`` (a DeepNet, inference semantics) as an ONNX model at ``path`` (None: only
    return it). ``qdq``: weight/activation quantizers as QDQ nodes (default: when any cell has
    one; False exports the fake-quantized float weights and no activation quantizer)."""
    if qdq is None:
        qdq = any(c.quantizers() for c in net.cells.values())
    if not qdq and any(c.qact is not None for c in net.cells.values()):
        raise OnnxError("activation quantizers need qdq=True")
    return Exporter(net, qdq).run(path)


__all__ = ["export_onnx", "OPSET"]
