"""ONNX import (spec/ini.md §5) and export: ``import_onnx``, ``OnnxModel``, ``infer_file``.

Modules: ``graph`` (safe loading, constant folding, values), ``ops`` (one handler per ONNX
operator), ``importer`` (the walk, overrides), ``cells`` (ONNX-exact pools), ``runner``
(running a graph on arrays), ``deepnet`` (splicing a ``Type=ONNX`` section into a DeepNet).
"""
from .importer import ImportedGraph, import_onnx
from .ops import SUPPORTED
from .runner import OnnxModel, infer_file
from .deepnet import build_onnx_section

__all__ = ["import_onnx", "ImportedGraph", "OnnxModel", "infer_file", "SUPPORTED", "build_onnx_section"]
