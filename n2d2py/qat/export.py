"""The fused network's weight folder, as N2D2's -qat-sat writes it: ``weights_quantized/`` (the C99
sources are ``export_c.py``'s).

``export_weights_quantized(fused, folder)`` writes, atomically (temporary folder, then rename),
what N2D2's ``exportNetworkFreeParameters("weights_quantized")`` writes per remaining cell:

* ``<cell>_weights.syntxt``: the fused W (integers under RINTF), one line per output, 6
  significant digits (the quantizer is gone, so N2D2 uses its default precision); grouped convs
  write only the connected channels, as N2D2 does;
* ``<cell>_biases.syntxt``: the fused bias B_o (Convs, and Fcs with a bias), one per line;

plus ``scaling.json``, which N2D2 has no file for (its S_o and C_o live only in memory and in
its C++ export headers). Its content, one object per fused node in execution order::

    {"options": {act_scaling_mode, w_mode, b_mode, c_mode, n2d2_compat},
     "input": {"range": 255, "alpha": 1.0, "shape": [C, H, W]},
     "nodes": [{"name", "type", "parents", "range", "alpha", "out_shape",
                "weights_integer_shape",           # Conv/Fc: shape of the integer weights
                "rescaling": {"mode", "weight_denominator" D, "saturation": [lo, hi],
                              "bias" B_o, "clip" C_o, "scale" S_o,   # per channel, N2D2 domain
                              "fixed_point_multiplier", "fractional_bits",   # Fixed-point*
                              "shift", "clip_in_shift",                     # Single-shift
                              "integer": {"operation", "bias", "clip",       # integer modes:
                                          "multiplier", "fractional_bits",   # IntegerForm in
                                          "shift", "shifts"}},               # accumulator units
                "multipliers": [...],              # ElemWise: Q16 operand multipliers
                "pooling", "kernel", "stride", "padding"}]}              # Pool

The integer engine computes per channel ``t = acc/D + B``, then the rescaling of
``scaling.py`` (in the integer modes: ``acc + round(B·D)`` and the integer operations of
``"integer"``); ``acc`` uses ``round(W·D)``, the weights in the ``.syntxt`` file times D.
"""
import json
import os

from ..io import syntxt
from .engine import IntegerConv, IntegerElemWise, IntegerFc, IntegerPool

__all__ = ["export_weights_quantized", "scaling_description"]


# -- weights_quantized/ -----------------------------------------------------------------------
def scaling_description(fused):
    nodes = []
    for node in fused.nodes.values():
        item = {"name": node.name, "type": node.type_name, "parents": node.parents,
                "range": node.R, "alpha": node.alpha, "out_shape": list(node.out_shape)}
        if isinstance(node, (IntegerConv, IntegerFc)):
            item["weights_integer_shape"] = list(node.W_int.shape)
        if hasattr(node, "rescaling"):
            item["rescaling"] = node.rescaling.describe()
        if isinstance(node, IntegerConv):
            item.update(stride=list(node.stride), padding=list(node.padding),
                        dilation=list(node.dilation), groups=node.groups)
        if isinstance(node, IntegerElemWise):
            item["multipliers"] = node.multipliers
        if isinstance(node, IntegerPool):
            item.update(pooling=node.pooling, kernel=list(node.kernel), stride=list(node.stride),
                        padding=list(node.padding), pads=list(node.pads),
                        dilation=list(node.dilation))
        nodes.append(item)
    return {"options": fused.options.as_dict(),
            "input": {"range": fused.input.R, "alpha": fused.input.alpha,
                      "shape": list(fused.input_shape)},
            "nodes": nodes}


def export_weights_quantized(fused, folder):
    """Write ``folder`` (``weights_quantized``) atomically; returns the folder."""
    from ..folders import write_folder_atomically

    def write(tmp):
        for node in fused.nodes.values():
            if not isinstance(node, (IntegerConv, IntegerFc)):
                continue
            W = node.W_fused
            syntxt.write_rows(syntxt.weights_path(tmp, node.name, "weights", create=True),
                              W.reshape(len(W), -1), 6)
            B = node.rescaling.B
            if B is not None:
                syntxt.write_column(syntxt.weights_path(tmp, node.name, "biases", create=True), B, 6)
        with open(os.path.join(tmp, "scaling.json"), "w") as f:
            json.dump(scaling_description(fused), f, indent=1)
    with syntxt.distinct_files():
        write_folder_atomically(folder, write)
    return folder
