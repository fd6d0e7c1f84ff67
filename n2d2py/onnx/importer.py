"""ONNX graph -> n2d2py cells, as N2D2's ``Type=ONNX`` section does (docs/INI.md §9).

    graph = import_onnx("resnet18v1.onnx", document, document.section("onnx"),
                        input_shapes=[(3, 224, 224)], input_names=["env"])
    graph.cells          # {name: built Cell}, topological order, named after each node's 1st output
    graph.auto_targets   # [("<softmax output>.Target", "<softmax output>")]

Walk: nodes in graph order (ONNX requires a topological one). Constant subgraphs are folded
(``graph.fold_node``); shape-only operators (Flatten, Reshape, Squeeze, Identity...) are views
(``graph.Value``) and cost nothing until a cell needs the exact (C, H, W), when a Reshape cell
named after the tensor is inserted; every other supported operator becomes a cell through the
per-operator table in ``ops.py``. Cells are built at once (their in_shapes are known), so the
ONNX initializers can be copied into their Parameters (``ONNX_init=1``).

Override sections are ``overrides.py``'s: a cell's section is applied before it is
built (a section named like the node's first output **replaces** ``<onnx>:<Type>_def``), the
activation keys once the walk is done; keys that cannot apply are errors.
"""
import os

import numpy
import onnx

from ..errors import N2D2Error, OnnxError, close_matches
from ..ini.convert import to_bool
from .graph import Value, attributes, cell_shape, fold_node, load_model, opset_of, to_array
from .overrides import N2D2_KINDS as OVERRIDE_KINDS
from .overrides import Overrides


def type_name(elem):
    """The ONNX name of element type ``elem`` (an unknown number, from a damaged file, as is)."""
    try:
        return onnx.TensorProto.DataType.Name(elem)
    except ValueError:
        return f"unknown element type {elem}"



def operators():
    """The table ``{op_type: handler}`` of every supported ONNX operator (importing the handler
    modules fills ``ops.OPS``)."""
    from . import ops_conv, ops_elementwise, ops_extension, ops_layout, ops_shape  # noqa: F401
    from .ops import OPS
    return OPS


class ImportedGraph:
    """What an import produces: ``cells`` (ordered, built), ``parents`` ({cell: [names]}),
    ``inputs`` (graph input names), ``input_names`` (the names cells use for them: the
    ``[onnx]`` Input parents, or the graph names), ``outputs`` (graph output names),
    ``output_values`` ({output: Value or constant array}), ``auto_targets``
    ([(target name, cell name)] one per Softmax), ``warnings`` (sentences)."""

    def __init__(self):
        self.cells, self.parents = {}, {}
        self.inputs, self.input_names, self.input_shapes = [], [], {}
        self.outputs, self.output_values = [], {}
        self.auto_targets, self.warnings, self.values = [], [], {}


class Importer:
    """State of one import; ``ops.py`` handlers call its helpers."""

    def __init__(self, model, document=None, section=None, input_shapes=None, input_names=None,
                 rng=None, path=None):
        self.model, self.document, self.section = model, document, section
        self.path = path        # the model file, named in errors (None for a ModelProto)
        self.opset = opset_of(model)
        self.rng = numpy.random.default_rng(1) if rng is None else rng
        self.onnx_name = section.name if section is not None else "onnx"
        self.options = self.read_options(section)
        self.transpose = self.options["Transpose"]
        self.graph = ImportedGraph()
        self.consts, self.values = {}, self.graph.values
        self.shapes = {}        # physical (C, H, W) of every cell / input name
        self.last_cell = None
        self.overrides = Overrides(document, self.onnx_name, self.options["ONNX_init"], model)
        self.reshape_cells = {}
        self.setup_inputs(input_shapes, input_names)
        self.consumers = self.count_consumers()

    # -------------------------------------------------------------- options and inputs
    @staticmethod
    def read_options(section):
        options = {"Ignore": set(), "Transpose": False, "CNTK": False, "IgnoreInputSize": False,
                   "ONNX_init": True}
        if section is None:
            return options
        options["Ignore"] = set(section.get("Ignore", "").split())
        for key in ("Transpose", "CNTK", "IgnoreInputSize", "ONNX_init"):
            if key in section:
                options[key] = section.get_as(key, to_bool)
        return options

    def setup_inputs(self, input_shapes, input_names):
        graph = self.model.graph
        initializers = {t.name for t in graph.initializer}
        for t in graph.initializer:
            self.consts[t.name] = to_array(t, self.path)
        inputs = [i for i in graph.input if i.name not in initializers]
        if input_names is not None and len(input_names) != len(inputs):
            raise OnnxError(f"the ONNX graph has {len(inputs)} input(s) "
                            f"({', '.join(i.name for i in inputs)}) but {len(input_names)} "
                            f"parent(s) were given ({', '.join(input_names)})", file=self.path)
        if input_shapes is not None and len(input_shapes) != len(inputs):
            raise OnnxError(f"{len(input_shapes)} input shape(s) for {len(inputs)} graph "
                            f"input(s)", file=self.path)
        for k, info in enumerate(inputs):
            elem = info.type.tensor_type.elem_type
            # DOUBLE: n2d2py extension, not in N2D2 (cast to float32)
            if elem not in (0, onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16,
                            onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE):
                raise OnnxError(f"graph input '{info.name}' is of type "
                                f"{type_name(elem)}: N2D2 computes in Float32",
                                file=self.path)
            declared = [d.dim_value if d.HasField("dim_value") else 0
                        for d in info.type.tensor_type.shape.dim]
            name = input_names[k] if input_names is not None else info.name
            shape = [d or 1 for d in declared]
            if input_shapes is not None:
                shape = self.onnx_input_shape(info.name, declared, input_shapes[k])
            self.graph.inputs.append(info.name)
            self.graph.input_names.append(name)
            self.graph.input_shapes[name] = tuple(shape)
            self.values[info.name] = Value(name, shape)
            self.shapes[name] = cell_shape(shape, self.transpose)

    def onnx_input_shape(self, name, declared, given):
        """An ONNX input shape (batch first) for a parent of (C, H, W), or a full ONNX shape
        given as ``("onnx", shape)`` (``OnnxModel`` does so with its arrays' shapes)."""
        if len(given) == 2 and given[0] == "onnx":
            return tuple(int(d) for d in given[1])
        given = tuple(int(d) for d in given)
        c, h, w = (tuple(given) + (1, 1, 1))[:3]
        if self.transpose:
            h, w = w, h
        rank = len(declared) or 4
        batch = declared[0] if declared and declared[0] else 1
        shape = {1: (batch,), 2: (batch, c * h * w), 3: (batch, c, h * w),
                 4: (batch, c, h, w)}.get(rank)
        if shape is None:
            raise OnnxError(f"graph input '{name}' has rank {rank}; n2d2py maps inputs of rank "
                            f"1 to 4 onto the stimuli provider", file=self.path)
        known = [(d, s) for d, s in zip(declared[1:], shape[1:]) if d]
        if any(d != s for d, s in known) and not self.options["IgnoreInputSize"]:
            self.graph.warnings.append(f"Warning: ONNX input '{name}' has size {declared} but its "
                                       f"parent gives {list(shape)} (IgnoreInputSize=1 hides this)")
        return shape

    def count_consumers(self):
        count = {}
        for node in self.model.graph.node:
            for name in node.input:
                if name:
                    count[name] = count.get(name, 0) + 1
        for out in self.model.graph.output:
            count[out.name] = count.get(out.name, 0) + 1
        return count

    # -------------------------------------------------------------- walk
    def run(self):
        from .ops import dispatch
        table = operators()
        self.overrides.check_sections()
        for node in self.model.graph.node:
            out = node.output[0] if node.output else ""
            if out in self.options["Ignore"]:
                self.skip(node)
                continue
            inputs = [self.consts.get(n) if n else None for n in node.input]
            if node.op_type == "Constant" or (
                    node.op_type not in ("Dropout",) and node.input
                    and all(x is not None or not n for x, n in zip(inputs, node.input))):
                for name, value in zip(node.output, fold_node(node, inputs, self.opset)):
                    self.consts[name] = value
                continue
            dispatch(table, self, node)
        for out in self.model.graph.output:
            self.graph.outputs.append(out.name)
            if out.name in self.consts:
                self.graph.output_values[out.name] = self.consts[out.name]
            else:
                if self.value(out.name, layout=True).index is not None:
                    from .ops_layout import materialize
                    materialize(self, out.name, self.values[out.name], None)
                self.graph.output_values[out.name] = self.value(out.name)
        for name, cell in self.graph.cells.items():
            self.graph.parents[name] = list(cell.parents)
        self.overrides.finish(self.graph.cells)
        self.overrides.check_unused()
        self.graph.warnings.extend(self.overrides.notices)
        return self.graph

    def skip(self, node):
        """``Ignore=``: the node's outputs become its first input, as in N2D2."""
        source = node.input[0] if node.input else ""
        for name in node.output:
            if source in self.consts:
                self.consts[name] = self.consts[source]
            elif source in self.values:
                self.values[name] = self.values[source]

    # -------------------------------------------------------------- helpers for ops.py
    def error(self, node, message):
        name = node.output[0] if node.output else node.name
        return OnnxError(f"node '{name}' ({node.op_type}): {message}", file=self.path)

    def const(self, node, name, what):
        if name not in self.consts:
            raise self.error(node, f"{what} ('{name}') must be a constant (initializer or "
                                   f"constant subgraph)")
        return self.consts[name]

    def value(self, name, node=None, layout=False):
        """The Value of tensor ``name``; unless ``layout`` (the layout operators of
        ``ops_layout.py``), its samples must be along its first axis."""
        if name not in self.values:
            where = f" (node '{node.output[0]}' {node.op_type})" if node is not None else ""
            raise OnnxError(f"tensor '{name}'{where} has no value: is its producer missing?",
                            file=self.path)
        v = self.values[name]
        if not layout and v.index is not None and v.index.per_sample() is None:
            from .ops_layout import batch_moved
            raise batch_moved(self, node, name, v)
        return v

    def physical(self, source):
        return self.shapes[source]

    def reshape_positions(self, node, x, shape):
        """A view that moves or merges the batch axis (``ops.view``): its element positions."""
        from .ops_layout import check_layout, positions, set_positions
        check_layout(self, node)
        set_positions(self, node.output[0], x, positions(self, x).positions.reshape(shape),
                      shape)

    def source(self, name, node, exact=True):
        """The cell (or input) name holding tensor ``name``; with ``exact``, its data must have
        the (C, H, W) of the ONNX shape: a Reshape cell is inserted when a view changed it."""
        if name in self.consts:
            raise self.error(node, f"input '{name}' is a constant where a computed tensor is "
                                   f"expected")
        v = self.value(name, node)
        if v.index is not None:   # elements picked by layout operators: a Gather cell
            from .ops_layout import materialize
            return materialize(self, name, v, node)
        want = cell_shape(v.shape, self.transpose)
        if not exact or self.physical(v.source) == want:
            return v.source
        key = (v.source, want)
        if key not in self.reshape_cells:
            if self.transpose:
                raise self.error(node, f"reshaping '{name}' is not supported with Transpose=1")
            from ..cells.misc import ReshapeCell
            cell_name = name if name not in self.shapes else f"{name}_reshape"
            cell = ReshapeCell(name=cell_name, parents=[v.source], nb_outputs=want[0],
                               dims=(want[2], want[1], want[0]))
            self.add_cell(cell, node)
            self.reshape_cells[key] = cell_name
        return self.reshape_cells[key]

    def set_value(self, name, source, shape, index=None):
        self.values[name] = Value(source, shape, index)

    def add_cell(self, cell, node, kind=None, before_build=None):
        """Configure (the cell's section, ``overrides.py``; ``kind`` defaults to the cell's
        Type), build and register ``cell``."""
        if cell.name in self.shapes:
            raise self.error(node, f"a cell or input named '{cell.name}' already exists")
        if self.document is not None:
            cell.model = self.document.global_section.get("DefaultModel", "Frame")
        self.overrides.configure(cell, node, kind)
        if before_build is not None:
            before_build(cell)
        try:
            cell.build([self.shapes[p] for p in cell.parents], self.rng)
        except OnnxError:
            raise
        except N2D2Error as exc:   # the cell refused its keys or shapes: name the node
            raise self.error(node, f"cannot build cell [{cell.name}] "
                                   f"(Type={cell.type_name}): {exc}") from None
        self.graph.cells[cell.name] = cell
        self.shapes[cell.name] = tuple(cell.out_shape)
        self.last_cell = cell.name
        return cell

    def uses(self, source):
        """How many node inputs and graph outputs read the data of ``source``."""
        return sum(self.consumers.get(t, 0) for t, v in self.values.items() if v.source == source)


def import_onnx(path_or_model, document=None, onnx_section=None, input_shapes=None,
                input_names=None, rng=None, path=None):
    """Import an ONNX model (path or ModelProto) as built n2d2py cells.

    ``document``/``onnx_section``: the INI and its ``Type=ONNX`` section (keys ``Ignore``,
    ``Transpose``, ``CNTK``, ``IgnoreInputSize``, ``ONNX_init``; override sections:
    ``overrides.py``).
    ``input_shapes``: one (C, H, W) per graph input without initializer (or ``("onnx", shape)``
    for a full ONNX shape, batch first);
    default the declared shapes (unknown dims 1). ``input_names``: the parent names cells use
    for those inputs (the ``[onnx]`` Input list, e.g. ``["env"]``); default the graph names.
    ``path``: the model file to name in errors when ``path_or_model`` is a ModelProto.
    """
    if not isinstance(path_or_model, onnx.ModelProto):
        path = os.fspath(path_or_model)
    model = load_model(path_or_model)
    importer = Importer(model, document, onnx_section, input_shapes, input_names, rng, path)
    return importer.run()


__all__ = ["import_onnx", "ImportedGraph", "Importer", "OVERRIDE_KINDS"]
