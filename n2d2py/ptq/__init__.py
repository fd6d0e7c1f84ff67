"""Post-training quantization (N2D2's ``-calib`` flow): a trained float network -> the integer
network ``--qat-sat`` produces (``qat.engine.FusedNet``), from calibration statistics.

    from n2d2py.ptq import PTQOptions, calibrate
    fused = calibrate(net, PTQOptions(bits=8, act_clipping_mode="MSE"), calib=-1)
    fused.test()                       # integer engine
    fused.fake_quantized().test()      # N2D2's simulator (float twins of the nodes)

Modules: ``options`` (the options), ``equalization`` (cross-layer equalization, before the
statistics), ``histogram`` (statistics and N2D2's files),
``thresholds`` (None/MSE/KL-Divergence/Quantile), ``rescale`` (rescaling modes), ``build``
(formats, weights, the rules cells call: ``Cell.ptq``), ``nodes`` (integer nodes and their
float twins), ``network`` (``CalibratedNet``), ``calibration`` (the flow: ``calibrate``),
``report`` (per-layer table, histogram pictures), ``command`` (the CLI side).
"""
__all__ = ["calibrate", "CalibratedNet", "PTQOptions"]

_WHERE = {"calibrate": "calibration", "CalibratedNet": "network", "PTQOptions": "options"}


def __getattr__(name):
    """The names above, imported on first use (``n2d2py --help`` imports only ``command``)."""
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
