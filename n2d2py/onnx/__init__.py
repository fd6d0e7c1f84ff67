"""ONNX import (docs/INI.md §9, docs/ONNX.md) and export: ``import_onnx``, ``OnnxModel``,
``infer_file``.

Modules: ``graph`` (safe loading, constant folding, values), ``ops`` (the table of handlers and
their helpers) with ``ops_conv`` (Conv, Gemm, pools), ``ops_elementwise``, ``ops_shape`` and
``ops_extension``, ``importer`` (the walk, overrides), ``cells`` (ONNX-exact pools, extension
cells), ``runner`` (running a graph on arrays), ``section`` (``Type=ONNX`` sections, registered
with ``build.SECTION_BUILDERS``), ``export`` (float and QDQ ONNX of a DeepNet),
``export_integer`` (integer ONNX of the fused ``--qat-sat`` net).
"""
import importlib

#: public name -> the module that defines it. Loaded on first use, so that the command's parser
#: (``onnx/cli.py``) and INI-only runs never pay for the ``onnx`` package (half a second to import).
_PUBLIC = {"import_onnx": "importer", "ImportedGraph": "importer", "OnnxModel": "runner",
           "infer_file": "runner"}

__all__ = list(_PUBLIC) + ["SUPPORTED"]


def __getattr__(name):
    if name == "SUPPORTED":   # every operator the importer's handler modules register
        from .importer import operators
        return sorted(operators())
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
