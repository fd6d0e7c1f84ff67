"""Splicing a ``Type=ONNX`` section into a DeepNet (spec/ini.md §2.2, §5.1, §5.2).

The DeepNet owner calls, in ``build_cells`` where a section's ``Type`` is ``ONNX``::

    from .onnx.deepnet import build_onnx_section
    new_cells, new_targets, notes = build_onnx_section(document, section, parents, in_shapes, rng)
    cells.update(new_cells); targets.extend(new_targets)

``parents`` are the section's ``Input`` names (sp/env -> env), ``in_shapes`` their (C, H, W).
Targets: every ``[<cell>.Target*]`` section of an imported cell, then the automatic
``<softmax>.Target`` of each ONNX Softmax that has no such section (spec §5.1).
"""
import os

from ..errors import OnnxError, close_matches


def onnx_file(section):
    """``File``: INI-evaluated, environment-expanded; relative to the CWD (spec §5.1)."""
    path = section.get_path("File")
    if not os.path.isfile(path):
        raise section.error(f"ONNX file '{path}' not found (relative paths are relative to "
                            f"the current directory)", key="File", error=OnnxError)
    return path


def build_onnx_section(document, section, parents, in_shapes, rng):
    """Import the section's model; returns ({name: built Cell}, [Target], [warning])."""
    from ..target import TargetScore, target_from_section
    from .importer import import_onnx   # the onnx package: only for INIs with a Type=ONNX section
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
        for target_section in document.matching(f"{name}.Target*"):
            target = target_from_section(target_section, name)
            target.loss_kind = getattr(cell, "loss_kind", None)
            targets.append(target)
            explicit.add(name)
    for target_name, cell_name in graph.auto_targets:
        if cell_name not in explicit:
            target = TargetScore(name=target_name, cell=cell_name)
            target.loss_kind = graph.cells[cell_name].loss_kind
            targets.append(target)
    return dict(graph.cells), targets, list(graph.warnings)


def splice_onnx_section(document, section, parents, cells, targets, input_shape, rng):
    """Build the ``Type=ONNX`` ``section`` into ``cells`` / ``targets`` (DeepNet's build loop).

    Import warnings go to ``document.warnings``. Returns the imported cell names (in order)."""
    for parent in parents:
        if parent != "env" and parent not in cells:
            raise section.error(f"parent '{parent}' is not a cell built so far"
                                f"{close_matches(parent, list(cells) + ['sp'])}", key="Input")
    in_shapes = [tuple(input_shape) if p == "env" else tuple(cells[p].out_shape) for p in parents]
    new_cells, new_targets, notes = build_onnx_section(document, section, parents, in_shapes, rng)
    for name in new_cells:
        if name in cells:
            raise section.error(f"ONNX node output '{name}' names a cell that already exists",
                                error=OnnxError)
    cells.update(new_cells)
    targets.extend(new_targets)
    for note in notes:
        document.warn(note, section)
    return list(new_cells)


def resolve_onnx_parents(section, parents, onnx_sections):
    """spec/ini.md §2.2: ``Input=onnx,<imported cell>`` lists the ONNX section only to order the
    cell after it; the section name is then dropped. ``onnx_sections``: {section: [cells]}.

    A cell naming *only* ONNX sections reads each one's last imported cell (N2D2 would fail on
    the lookup: the section is not a cell)."""
    if not any(p in onnx_sections for p in parents):
        return parents
    if any(p not in onnx_sections for p in parents):
        return [p for p in parents if p not in onnx_sections]
    out = []
    for p in parents:
        if not onnx_sections[p]:
            raise section.error(f"parent [{p}] imported no cell", key="Input", error=OnnxError)
        out.append(onnx_sections[p][-1])
    return out


def onnx_ini_text(path):
    """The INI N2D2 makes up for ``n2d2 model.onnx`` (spec/ini.md §5.1): Frame model, no
    database, [sp] from the graph input shape (batch = dim 0, at least 1), one [onnx] section."""
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
    return (f"DefaultModel=Frame\n[sp]\nSizeX={w}\nSizeY={h}\nNbChannels={c}\n"
            f"BatchSize={max(dims[0], 1)}\n\n[onnx]\nInput=sp\nType=ONNX\n"
            f"File={os.path.abspath(path)}\n")


def deepnet_from_onnx(path, device="cpu", seed=1):
    """A DeepNet for an ``.onnx`` file run directly (``n2d2py MODEL.onnx``): the made-up INI of
    ``onnx_ini_text``; when the graph has no Softmax (no automatic target), a plain ``Target``
    on the last imported cell, so that inference and export work."""
    import numpy

    from .. import deepnet as D
    from ..ini import parse_ini_text
    from ..target import Target
    document = parse_ini_text(onnx_ini_text(path), os.fspath(path) + ".ini")
    notices = []
    model = D.read_global_keys(document, notices)
    device = D.choose_device(device, model, notices)
    rng = numpy.random.default_rng(seed)
    database, sp, input_shape = D.build_stimuli(document, False, rng)
    order, levels = D.cell_order(document)
    cells, targets = D.build_cells(document, order, input_shape, rng)
    if not cells:
        raise OnnxError(f"'{path}' imports no cell")
    if not targets:
        last = list(cells)[-1]
        targets = [Target(name=f"{last}.Target", cell=last)]
        targets[0].loss_kind = None
    net = D.DeepNet(document, cells, targets, sp, database, input_shape, "cpu", model, levels,
                    notices)
    return net.to(device) if device != "cpu" else net


__all__ = ["build_onnx_section", "onnx_file", "splice_onnx_section", "resolve_onnx_parents",
           "deepnet_from_onnx", "onnx_ini_text"]
