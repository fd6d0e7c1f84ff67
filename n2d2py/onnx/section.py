"""``Type=ONNX`` sections (docs/INI.md §9), registered with
``build.SECTION_BUILDERS``: the model's nodes become cells named after their outputs.

Targets: every ``[<cell>.Target*]`` section of an imported cell, then the automatic
``<softmax>.Target`` of each ONNX Softmax that has no such section, as N2D2 adds them. An ``.onnx``
file run directly (``n2d2py MODEL.onnx``) is ``DeepNet.from_ini`` on the document of
``onnx_document``.
"""
import os

from ..build import SECTION_BUILDERS
from ..errors import OnnxError


def onnx_file(section):
    """``File``: INI-evaluated, environment-expanded; relative to the CWD, as in N2D2."""
    path = section.get_path("File")
    if not os.path.isfile(path):
        raise section.error(f"ONNX file '{path}' not found (relative paths are relative to "
                            f"the current directory)", key="File", error=OnnxError)
    return path


@SECTION_BUILDERS.register("ONNX")
def build_onnx_section(section, parents, in_shapes, rng):
    """Import the section's model on ``parents`` (names, sp/env -> env) of shapes ``in_shapes``
    (C, H, W); returns ({name: built Cell}, [Target], {alias: cell name}). An alias is a graph
    output that is not a cell but holds a cell's data in its layout (``Flatten`` after a global
    pool): later sections may name it. Import notes go to the document's warnings."""
    from ..target import TargetScore, target_from_section
    from .importer import import_onnx
    document = section.document
    try:
        graph = import_onnx(onnx_file(section), document, section, input_shapes=in_shapes,
                            input_names=list(parents), rng=rng)
    except OnnxError as exc:
        if exc.section is None:
            message = f"{exc.file}: {exc.message}" if exc.file else exc.message
            raise section.error(message, error=OnnxError) from None
        raise
    targets, explicit = [], set()
    for name, cell in graph.cells.items():
        # a prefix test, not a glob: ONNX names may hold '*', '?' or '['
        for target_section in [s for s in document if s.name.startswith(f"{name}.Target")]:
            target = target_from_section(target_section, name)
            target.loss_kind = getattr(cell, "loss_kind", None)
            targets.append(target)
            explicit.add(name)
    for target_name, cell_name in graph.auto_targets:
        if cell_name not in explicit:
            target = TargetScore(name=target_name, cell=cell_name)
            target.loss_kind = graph.cells[cell_name].loss_kind
            targets.append(target)
    for note in graph.warnings:
        document.warn(note, section)
    return dict(graph.cells), targets, output_aliases(graph)


def output_aliases(graph):
    """{graph output: cell} for the outputs that only reshape a cell's output, keeping its
    (C, H, W) layout once flattened in N2D2's order (so a cell reading either sees the same data)."""
    from .graph import cell_shape
    aliases = {}
    for name, value in graph.output_values.items():
        source = getattr(value, "source", None)
        if name in graph.cells or source not in graph.cells or value.index is not None:
            continue
        if cell_shape(value.shape) == tuple(graph.cells[source].out_shape):
            aliases[name] = source
    return aliases


def onnx_document(path):
    """The INI N2D2 makes up for ``n2d2 model.onnx``: Frame model, no
    database, [sp] from the graph input shape (batch = dim 0, at least 1), one [onnx] section;
    parsed as the document ``<path>.ini``."""
    from ..ini import parse_ini_text
    from .graph import cell_shape, load_model
    model = load_model(os.fspath(path))
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise OnnxError(f"'{path}' has {len(inputs)} graph inputs; running an ONNX file directly "
                        f"needs exactly one (write an INI with a Type=ONNX section instead)")
    dims = [d.dim_value if d.HasField("dim_value") else 0
            for d in inputs[0].type.tensor_type.shape.dim] or [1]
    c, h, w = cell_shape([d or 1 for d in dims], False)
    text = (f"DefaultModel=Frame\n[sp]\nSizeX={w}\nSizeY={h}\nNbChannels={c}\n"
            f"BatchSize={max(dims[0], 1)}\n\n[onnx]\nInput=sp\nType=ONNX\n"
            f"File={os.path.abspath(path)}\n")
    return parse_ini_text(text, os.fspath(path) + ".ini")


__all__ = ["build_onnx_section", "onnx_file", "onnx_document"]
