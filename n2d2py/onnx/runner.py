"""Running an imported ONNX graph on arrays: ``OnnxModel(path).run({input: array})``.

For tests and for ``n2d2py MODEL.onnx --infer IN.npy -o OUT.npy`` (``infer_file``). Float64
inputs (n2d2py extension, not in N2D2) are cast to float32: about 7 significant digits are kept
(relative error <= 6e-8 per value, within the tests' rtol 1e-4), values beyond float32's range
are an OnnxError. The graph is
imported for the shapes of the arrays given (the batch is dim 0, as in N2D2), the cells
run in import order under ``no_grad`` (inference: BatchNorm uses its statistics, Dropout is the
identity) and each output is reshaped from the cell's (N, C, H, W) to its ONNX shape.
"""
import os

import numpy
import onnx

from ..autograd import Variable, no_grad
from ..backend import DTYPE, asnumpy, to_device
from ..errors import OnnxError
from ..io.arrays import read_arrays, write_arrays
from .graph import cell_shape, load_model
from .importer import import_onnx

FLOAT32_MAX = float(numpy.finfo(numpy.float32).max)


class OnnxModel:
    """An ONNX model run by n2d2py cells. ``device``: "cpu" or "gpu"."""

    def __init__(self, source, device="cpu", document=None, section=None):
        self.model = load_model(source)
        self.path = None if isinstance(source, onnx.ModelProto) else os.fspath(source)
        self.device, self.document, self.section = device, document, section
        self.graph, self._shapes = None, None

    def imported(self, shapes=None):
        """The ImportedGraph for ``shapes`` (full ONNX input shapes), imported once per shapes."""
        if self.graph is None or (shapes is not None and shapes != self._shapes):
            self.graph = import_onnx(self.model, self.document, self.section, input_shapes=shapes,
                                     path=self.path)
            self._shapes = shapes
            if self.device != "cpu":
                for cell in self.graph.cells.values():
                    cell.to(self.device)
        return self.graph

    def feed_array(self, name, value):
        """``value`` as a numeric array with a batch axis, else an OnnxError naming the input."""
        try:
            array = numpy.asarray(value)
        except (ValueError, TypeError) as exc:   # ragged lists, objects without a shape
            raise OnnxError(f"input '{name}' is not an array ({exc})", file=self.path) from None
        if array.dtype.kind not in "fiub":
            raise OnnxError(f"input '{name}' of dtype {array.dtype}: expected numbers",
                            file=self.path)
        if array.ndim == 0:
            raise OnnxError(f"input '{name}' is a scalar: its first axis must be the batch",
                            file=self.path)
        return array

    def run(self, feeds):
        """``{input name: array}`` (or a list in input order) -> ``{output name: float32 array}``."""
        names = [i.name for i in self.model.graph.input
                 if i.name not in {t.name for t in self.model.graph.initializer}]
        if not isinstance(feeds, dict):
            if not isinstance(feeds, (list, tuple)):
                raise OnnxError(f"inputs given as {type(feeds).__name__}: expected a dict "
                                f"{{name: array}} or a list in input order", file=self.path)
            feeds = dict(zip(names, feeds))
        missing = [n for n in names if n not in feeds]
        if missing:
            raise OnnxError(f"missing input(s) {', '.join(missing)}; the model's inputs are "
                            f"{', '.join(names)}", file=self.path)
        arrays = [self.feed_array(n, feeds[n]) for n in names]
        graph = self.imported([("onnx", a.shape) for a in arrays])   # refuses non-float inputs
        for name, a in zip(names, arrays):   # float64 (n2d2py extension): cast to float32
            if a.dtype == numpy.float64 and a.size and \
                    numpy.nanmax(numpy.abs(numpy.where(numpy.isinf(a), 0, a))) > FLOAT32_MAX:
                raise OnnxError(f"float64 input '{name}' holds values beyond float32's range "
                                f"(|x| up to {numpy.nanmax(numpy.abs(a)):.3g}): n2d2py computes "
                                f"in float32", file=self.path)
        arrays = [a.astype(DTYPE, copy=False) for a in arrays]
        values = {}
        for name, array in zip(graph.input_names, arrays):
            c, h, w = cell_shape(array.shape, False)
            values[name] = Variable(to_device(numpy.ascontiguousarray(array)
                                              .reshape(array.shape[0], c, h, w), self.device))
        with no_grad():
            for name, cell in graph.cells.items():
                values[name] = cell.forward([values[p] for p in cell.parents], training=False)
        batch = arrays[0].shape[0] if arrays and arrays[0].ndim else 1
        out = {}
        for name in graph.outputs:
            value = graph.output_values[name]
            if isinstance(value, numpy.ndarray):   # a constant output
                out[name] = value
                continue
            data = asnumpy(values[value.source].data)
            rows = data.shape[0] if data.ndim else batch   # broadcasting may set the batch
            out[name] = data.reshape((rows,) + tuple(value.shape[1:]))
        return out


def infer_file(model_path, in_npy, out_path, device="cpu", weights=None):
    """Run ``model_path`` (``.onnx``, or an N2D2 INI) on the array in ``in_npy`` and write
    ``out_path``: ``.npy`` for one output, else ``.npz`` (one array per output name; the suffix
    is added if missing). Returns the path written.

    ``.onnx``: ``in_npy`` holds the one graph input (``.npz``: one array per input name); the
    outputs are the graph outputs, in their ONNX shapes. INI: the DeepNet is built without data,
    ``weights`` (a folder, N2D2's ``-w``) imported if given, and run under ``no_grad`` on the
    (N, C, H, W) array (a single (C, H, W) stimulus gets a batch axis); the outputs are the
    target cells', (N, C, H, W), named after the cells."""
    if str(model_path).endswith(".onnx"):
        if weights:
            raise OnnxError("-w imports N2D2 weight folders into an INI network; an .onnx file "
                            "carries its own weights")
        outputs = OnnxModel(model_path, device).run(read_feeds(in_npy))
    else:
        x = read_arrays(in_npy)
        if isinstance(x, dict):
            raise OnnxError("an INI network has one input: give a .npy array, not a .npz",
                            file=in_npy)
        outputs = infer_ini(model_path, x, device, weights)
    return write_outputs(outputs, out_path)


def read_feeds(in_npy):
    """``.npz``: one array per graph input, by name; ``.npy``: the single input."""
    feeds = read_arrays(in_npy)
    return feeds if isinstance(feeds, dict) else [feeds]


def infer_ini(ini_path, x, device="cpu", weights=None):
    """{target cell: output (N, C, H, W)} of the INI network on ``x``."""
    from ..deepnet import DeepNet
    net = DeepNet.from_ini(ini_path, device=device, load_data=False)
    if weights:
        net.import_weights(weights, ignore_missing=True)
    x = numpy.asarray(x, dtype=DTYPE)
    if x.shape == tuple(net.input_shape):
        x = x[None]
    if x.ndim != 4 or x.shape[1:] != tuple(net.input_shape):
        raise OnnxError(f"input of shape {x.shape}: the network '{ini_path}' takes (N, "
                        f"{', '.join(str(d) for d in net.input_shape)}) stimuli")
    with no_grad():
        outputs = net.forward(numpy.ascontiguousarray(x), training=False)
    return {name: asnumpy(v.data) for name, v in outputs.items()}


def write_outputs(outputs, out_path):
    """One output: ``.npy``; several: ``.npz`` with one member per output, each under its own
    name (``io.arrays.write_arrays``). Written beside, then renamed: never half a file."""
    from ..folders import output_atomically
    out_path = os.fspath(out_path)
    if len(outputs) == 1:
        path = out_path if out_path.endswith(".npy") else f"{out_path}.npy"
        array = next(iter(outputs.values()))
        output_atomically(path, lambda tmp: numpy.save(tmp, array))
    else:
        path = out_path if out_path.endswith(".npz") else f"{os.path.splitext(out_path)[0]}.npz"
        output_atomically(path, lambda tmp: write_arrays(tmp, outputs))
    return path


__all__ = ["OnnxModel", "infer_file"]
