"""``-qat-sat``: BatchNorm + SAT fusion into an integer network, as N2D2's
DeepNetQAT does (docs/FUSION.md).

    from n2d2py.qat import fuse_qat
    fused = fuse_qat(net, "Fixed-point32", "RINTF", "RINTF", "RINTF")   # net: DeepNet, weights in
    fused.test()                         # integer inference on the Test set
    export_weights_quantized(fused, "weights_quantized")     # n2d2py.qat.export
    export_c(fused, "export_c")          # n2d2py.qat.export_c: C99, integer-only in that mode

Modules: ``fuse`` (the pass), ``scaling`` (rescaling modes, rounding, the integer-only forms),
``engine`` (integer inference, ``FusedNet``), ``export`` (weights_quantized/, scaling.json),
``export_c`` (C99 sources, stimuli), ``draw`` (PNG), ``command`` (``run_qat_sat`` for the CLI).
"""
from .fuse import QATOptions, fuse_qat
from .engine import FusedNet
from .scaling import parse_act_scaling_mode, parse_round_mode

__all__ = ["fuse_qat", "FusedNet", "QATOptions", "parse_act_scaling_mode", "parse_round_mode",
           "run_qat_sat"]


def run_qat_sat(net, args, out=None):
    """CLI entry (``--qat-sat``); see ``command.run_qat_sat``."""
    from .command import run_qat_sat as run
    return run(net, args, out)
