"""Post-training quantization (N2D2's ``-calib`` flow): a trained float network -> the integer
network ``--qat-sat`` produces (``qat.engine.FusedNet``), from calibration statistics.

    from n2d2py.ptq import PTQOptions, calibrate
    fused = calibrate(net, PTQOptions(bits=8, act_clipping_mode="MSE"), calib=-1)
    fused.test()                       # integer engine
    fused.fake_quantized().test()      # N2D2's simulator (float twins of the nodes)

Modules: ``options`` (the options), ``histogram`` (statistics and N2D2's files),
``thresholds`` (None/MSE/KL-Divergence/Quantile), ``rescale`` (rescaling modes), ``build``
(formats, weights, the rules cells call: ``Cell.ptq``), ``nodes`` (integer nodes and their
float twins), ``network`` (``CalibratedNet``), ``calibrate`` (the flow), ``report`` (per-layer
table, histogram pictures), ``command`` (the CLI side).
"""
from .calibrate import calibrate
from .network import CalibratedNet
from .options import PTQOptions

__all__ = ["calibrate", "CalibratedNet", "PTQOptions"]
