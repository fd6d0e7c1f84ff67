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

from ..errors import OnnxError
from .importer import import_onnx


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
    try:
        graph = import_onnx(onnx_file(section), document, section, input_shapes=in_shapes,
                            input_names=list(parents), rng=rng)
    except OnnxError as exc:
        if exc.section is None:
            raise section.error(exc.message, error=OnnxError) from None
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


__all__ = ["build_onnx_section", "onnx_file"]
