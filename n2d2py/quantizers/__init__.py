"""QAT quantizers (docs/QUANTIZERS.md): ``QWeight=SAT|LSQ|Prune|DQ|FracBits|
DFP|Po2|DQA`` and ``QAct=SAT|LSQ|DQ``; the contract every one answers is ``base.Quantizer``'s.

    q = make_weight_quantizer("SAT", {"Range": "15", "QuantMode": "Symmetric"}, section)
    Wq = q([W])                      # list of Variables in, list out (one per parent)
    y = make_act_quantizer("SAT", {"Alpha": "6.0"})(x, training=True)
"""
from ..params import check_key_rules
from .base import (ACT_QUANTIZERS, WEIGHT_QUANTIZERS, ActQuantizer, ClipActQuantizer, Grid,
                   Quantizer, WeightQuantizer, export_quant_weights, format_syntxt_value,
                   quant_weights_file, write_syntxt_rows)
from . import sat, lsq, prune, dq, fracbits, dfp, dqa  # noqa: F401  (registration)
from . import pact  # noqa: F401  (registration)
from .lsq import LSQActQuantizer, LSQWeightQuantizer
from .prune import PruneQuantizer
from .sat import SATActQuantizer, SATWeightQuantizer

__all__ = ["WEIGHT_QUANTIZERS", "ACT_QUANTIZERS", "make_weight_quantizer", "make_act_quantizer",
           "Quantizer", "WeightQuantizer", "ActQuantizer", "ClipActQuantizer", "Grid", "SATWeightQuantizer", "SATActQuantizer",
           "LSQWeightQuantizer", "LSQActQuantizer", "PruneQuantizer", "export_quant_weights",
           "quant_weights_file", "format_syntxt_value", "write_syntxt_rows"]


def _make(registry, type_name, keys, section, key, **options):
    cls = registry.get(type_name, section=section, key=key)
    quantizer = cls(**options)
    quantizer.set_parameters(dict(keys or {}), section)
    check_key_rules(quantizer, section, key + ".")
    return quantizer


def make_weight_quantizer(type_name, keys=None, section=None, **options):
    """``QWeight=<type_name>`` with ``{"Range": "15", ...}`` (the ``QWeight.`` lines, prefix
    stripped, as text); unknown type or key -> IniError naming ``section``. ``options`` are
    Python-only settings (``rounding=``, ``rng=``)."""
    return _make(WEIGHT_QUANTIZERS, type_name, keys, section, "QWeight", **options)


def make_act_quantizer(type_name, keys=None, section=None, **options):
    """``QAct=<type_name>`` with the ``QAct.`` keys; see ``make_weight_quantizer``."""
    return _make(ACT_QUANTIZERS, type_name, keys, section, "QAct", **options)
