"""N2D2's INI dialect (docs/INI.md): parsing, evaluation of values, templates, diagnostics.

``load_ini(path, env=None)`` / ``parse_ini_text(text)`` give an ``IniDocument``; a ``Section``
evaluates ``[S]K`` references, ``${VAR}`` and ``$(...)`` on every read; ``expand_env`` expands
environment variables in path keys (DataPath, File, ...).
"""
from .convert import enum, list_of, to_bool, to_float, to_int, to_str, to_uint, to_word
from .diagnostics import (AFTER_BUILD, FATAL, WARN, IniWarning, check_global_keys,
                          check_unknown_keys, report_unused_sections, unknown_key_policy,
                          unused_sections)
from .document import Entry, IniDocument, Section
from .evaluate import FloatExpressionText, expand_env, truncate_floats
from .mapping import parse_mapping_matrix
from .parser import load_ini, parse_ini_text
from .template import render_template

__all__ = [
    "load_ini", "parse_ini_text", "IniDocument", "Section", "Entry", "expand_env",
    "to_int", "to_uint", "to_float", "to_bool", "to_str", "to_word", "list_of", "enum",
    "IniWarning", "FATAL", "AFTER_BUILD", "WARN", "unknown_key_policy", "check_unknown_keys",
    "check_global_keys", "unused_sections", "report_unused_sections",
    "FloatExpressionText", "truncate_floats", "parse_mapping_matrix", "render_template",
]
