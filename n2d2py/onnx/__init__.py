"""ONNX import (spec/ini.md §5) and export: ``import_onnx``, ``OnnxModel``, ``infer_file``.

Modules: ``graph`` (safe loading, constant folding, values), ``ops`` (the table of handlers,
one per ONNX operator; Conv, Gemm, pools) with ``ops_elementwise`` and ``ops_shape``,
``importer`` (the walk, overrides), ``cells`` (ONNX-exact pools), ``runner`` (running a graph
on arrays), ``deepnet`` (splicing a ``Type=ONNX`` section into a DeepNet), ``export`` (float
and QDQ ONNX of a DeepNet), ``export_integer`` (integer ONNX of the fused ``--qat-sat`` net).
"""
import importlib

#: public name -> the module that defines it. Loaded on first use, so that the command's parser
#: (``onnx/cli.py``) and INI-only runs never pay for the ``onnx`` package (half a second to import).
_PUBLIC = {"import_onnx": "importer", "ImportedGraph": "importer", "OnnxModel": "runner",
           "infer_file": "runner", "SUPPORTED": "ops", "build_onnx_section": "deepnet"}

__all__ = list(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
