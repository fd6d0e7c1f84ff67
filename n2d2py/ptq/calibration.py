"""The calibration pass and the whole flow: ``calibrate(net, options, ...)`` -> ``CalibratedNet``.

1. The PTQ rules are asked once without statistics (``build.Builder``): a cell that cannot be
   quantized is refused before any stimulus is read, and we learn which cells' outputs to
   observe, and their sign.
2. Calibration set: Validation when it has stimuli, else Test (N2D2's choice); ``calib`` N > 0
   takes its first N stimuli, N < 0 all of them. The float network runs in inference mode, batch
   by batch in the set's order; for each observed cell (and the input ``env``) a ``RangeStats``
   and a ``Histogram`` are updated (``histogram.py``: the histogram of a cell is made on the
   first batch and grows with the range, as N2D2's).
3. The rules run again with the statistics and build the integer nodes.

Between 1 and 2, unless ``options.cross_layer_equalization`` is off (``--no-cle``), the
float network's consecutive layers are equalized (``equalization.py``, N2D2's order: after
BatchNorm folding, before the weight clipping and the statistics); steps 2 and 3 see the
equalized weights, and the network's own parameters are given back afterwards.

``Statistics`` can be saved and reloaded (N2D2's ``outputs_range.bin``/``outputs_histogram.bin``
plus ``calibration.json``: which network, weights and options they come from, so that
``--calib-reload`` refuses statistics of other weights instead of using them silently, as N2D2
would).
"""
import hashlib
import json
import os

import numpy

from ..autograd import no_grad
from ..backend import asnumpy
from ..errors import DataError, N2D2Error
from .build import Builder, Format
from .equalization import equalize
from .histogram import (Histogram, RangeStats, load_histograms, load_ranges, nb_bins,
                        save_histograms, save_ranges)
from .network import CalibratedNet

__all__ = ["calibrate", "plan", "collect", "Statistics", "calibration_set", "fingerprint"]

RANGE_FILE, HISTOGRAM_FILE, INFO_FILE = "outputs_range.bin", "outputs_histogram.bin", \
    "calibration.json"


class Statistics:
    """{cell: RangeStats} (``env`` included), {cell: Histogram}, the set and stimuli used."""

    def __init__(self, ranges, histograms, set_name, count):
        self.ranges, self.histograms = ranges, histograms
        self.set_name, self.count = set_name, int(count)

    def save(self, folder, info):
        save_ranges(os.path.join(folder, RANGE_FILE), self.ranges)
        save_histograms(os.path.join(folder, HISTOGRAM_FILE), self.histograms)
        with open(os.path.join(folder, INFO_FILE), "w") as f:
            json.dump(dict(info, set=self.set_name, stimuli=self.count), f, indent=1)

    @classmethod
    def load(cls, folder, info):
        """Statistics saved in ``folder``; None when they are not there. ``info``: what they
        must have been collected for (``fingerprint``); a mismatch is an error."""
        paths = [os.path.join(folder, name) for name in (RANGE_FILE, HISTOGRAM_FILE)]
        if not os.path.isfile(paths[0]):
            return None   # the histograms alone are optional (clipping mode None needs none)
        meta = os.path.join(folder, INFO_FILE)
        saved = {}
        if os.path.isfile(meta):
            try:
                with open(meta) as f:
                    saved = json.load(f)
            except (OSError, ValueError) as exc:
                raise DataError(f"unreadable ({exc})", file=meta) from None
            if not isinstance(saved, dict):
                raise DataError("expected a JSON object", file=meta)
            cle = info.get("cross_layer_equalization")
            if "cross_layer_equalization" in saved and saved["cross_layer_equalization"] != cle:
                raise DataError(f"these statistics were collected "
                                f"{'without' if cle else 'with'} cross-layer equalization: "
                                f"calibrate again without --calib-reload, or "
                                f"{'give' if not saved['cross_layer_equalization'] else 'omit'}"
                                f" --no-cle", file=meta)
            for key in ("weights", "cells"):
                if key in saved and saved[key] != info[key]:
                    raise DataError(f"these statistics were collected from other "
                                    f"{'weights' if key == 'weights' else 'cells'}: calibrate "
                                    f"again without --calib-reload", file=meta)
        ranges = load_ranges(paths[0])
        hists = load_histograms(paths[1]) if os.path.isfile(paths[1]) else {}
        count = saved.get("stimuli", 0) if isinstance(saved.get("stimuli", 0), int) else 0
        return cls(ranges, hists, str(saved.get("set", "reloaded")), count)


def calibration_set(net):
    """N2D2's choice: Validation if it has stimuli, else Test; an error when both are empty."""
    from ..scoring import set_size
    for name in ("Validation", "Test"):
        if net.sp is not None and set_size(net, name) > 0:
            return name
    where = getattr(net.document, "path", None)
    raise DataError("calibration needs stimuli, and the Validation and Test sets are empty: "
                    "give [database] a Validation share or test data", file=where)


def fingerprint(net, needs, options):
    """What statistics depend on: the observed cells and a hash of every weight array."""
    digest = hashlib.sha256()
    for cell in net.cells.values():
        for p in cell.own_parameters():
            digest.update(numpy.ascontiguousarray(asnumpy(p.data)).tobytes())
        for name in getattr(cell, "state_names", ()):
            digest.update(numpy.ascontiguousarray(asnumpy(getattr(cell, name))).tobytes())
    return {"cells": sorted(needs), "weights": digest.hexdigest(),
            "bits": options.bits, "act_clipping_mode": options.act_clipping_mode,
            "cross_layer_equalization": options.cross_layer_equalization}


def plan(net, options):
    """The rules without statistics: refusals now; returns {cell: unsigned} to observe."""
    return Builder(net, options).run().needs


def collect(net, needs, options, set_name, limit=None, progress=None):
    """Run the float network on ``set_name`` (first ``limit`` stimuli) and gather the
    statistics of ``needs`` ({cell: unsigned}) and of the input; ``progress(n)`` after each
    batch of n stimuli."""
    mode = options.act_clipping_mode
    bins = nb_bins(options.bits, "MSE" if mode == "None" else mode)
    ranges = {"env": RangeStats(), **{name: RangeStats() for name in needs}}
    hists, count = {}, 0
    with no_grad():
        for x, labels, _ in net.sp.batches(set_name, False, None, limit):
            ranges["env"].update(x)
            outputs = net.forward(x, keep=set(needs))
            for name, unsigned in needs.items():
                values = asnumpy(outputs[name].data)
                ranges[name].update(values)
                if name not in hists:
                    hists[name] = Histogram.for_range(ranges[name], unsigned, bins)
                hists[name].update(values, ranges[name])
            count += len(labels)
            if progress is not None:
                progress(len(labels))
    if count == 0:
        raise DataError(f"calibration read no stimulus from the {set_name} set",
                        file=getattr(net.document, "path", None))
    return Statistics(ranges, hists, set_name, count)


def input_format(stats, options):
    """The input's codes: unsigned when every calibration input is >= 0 (and unsigned codes are
    allowed), step R/Q_env with R the largest |x| seen."""
    env = stats.ranges["env"]
    unsigned = options.unsigned and env.min >= 0.0
    R = env.max_abs if env.max_abs > 0 else 1.0
    if unsigned:
        return Format(R / options.unsigned_max, 0, options.unsigned_max)
    return Format(R / options.signed_max, -options.signed_max, options.signed_max)


def calibrate(net, options, calib=-1, folder=None, reload=False, progress=None, set_name=None):
    """Post-training quantization of ``net`` (a DeepNet with its float weights imported) with
    ``options`` (``PTQOptions``): returns a ``CalibratedNet``. ``calib``: stimuli to calibrate
    on (< 0: the whole set); ``folder``: where statistics are saved (and read with
    ``reload``); ``set_name``: the set to calibrate on (default: N2D2's choice,
    ``calibration_set``)."""
    if calib == 0:
        raise N2D2Error("--calib 0 calibrates nothing: give the number of stimuli (-1: all of "
                        "the Validation set)")
    needs = plan(net, options)
    equalization = equalize(net) if options.cross_layer_equalization else None
    try:   # on the equalized weights; the float network is given back as it was
        info = fingerprint(net, needs, options)
        stats = Statistics.load(folder, info) if reload and folder else None
        reloaded = stats is not None
        if stats is None:
            set_name = set_name or calibration_set(net)
            stats = collect(net, needs, options, set_name, None if calib < 0 else int(calib),
                            progress)
        if "env" not in stats.ranges:
            raise DataError("the reloaded statistics have no input range ('env')",
                            file=os.path.join(folder, RANGE_FILE))
        builder = Builder(net, options, stats, input_format(stats, options)).run()
        fused = CalibratedNet.from_builder(builder, net, options, stats)
    finally:
        if equalization is not None:
            equalization.restore()
    fused.reloaded, fused.fingerprint, fused.equalization = reloaded, info, equalization
    if equalization is not None:
        fused.notices = equalization.notices() + fused.notices
    return fused
