"""ONNX import (spec/ini.md §5) and export: ``import_onnx``, ``OnnxModel``, ``infer_file``.

Modules: ``graph`` (safe loading, constant folding, values), ``ops`` (the table of handlers,
one per ONNX operator; Conv, Gemm, pools) with ``ops_elementwise`` and ``ops_shape``,
``importer`` (the walk, overrides), ``cells`` (ONNX-exact pools), ``runner`` (running a graph
on arrays), ``deepnet`` (splicing a ``Type=ONNX`` section into a DeepNet), ``export`` (float
and QDQ ONNX of a DeepNet), ``export_integer`` (integer ONNX of the fused ``--qat-sat`` net).
"""
from .importer import ImportedGraph, import_onnx
from .ops import SUPPORTED
from .runner import OnnxModel, infer_file
from .deepnet import build_onnx_section

__all__ = ["import_onnx", "ImportedGraph", "OnnxModel", "infer_file", "SUPPORTED", "build_onnx_section"]
