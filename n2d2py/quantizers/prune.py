"""``QWeight=Prune``: weights times a 0/1 mask, gradient times the same mask, as N2D2's
Prune quantizer.

Masks are created at the first forward (N2D2's ``initialize``) by the PruningFiller, unless a
``<cell>_masks.syntxt`` was imported; in Gradual mode the target zero fraction grows by
GammaThreshold every StepSizeThreshold stimuli (``on_step(batch_size)``) up to Threshold.
"""
import math
import os

import numpy  # host-side random index draws for the Random filler (never on weight data)

from ..autograd import Function, Variable
from ..backend import DTYPE, asnumpy, get_xp
from ..errors import WeightsError, expect
from ..ini.convert import enum, to_float, to_uint
from ..io.names import cell_file
from ..params import Key
from .base import WEIGHT_QUANTIZERS, WeightQuantizer, read_syntxt_values, write_syntxt_rows

F32 = DTYPE


class ApplyMask(Function):
    """y = w·mask; g_w = g·mask (the mask is a constant)."""

    def __init__(self, mask):
        self.mask = mask

    def forward(self, xp, w):
        return w * self.mask.astype(w.dtype, copy=False)

    def backward(self, xp, gy, needs_grad):
        return (gy * self.mask.astype(gy.dtype, copy=False),)


def fraction(value):
    """A ``Key`` check: a fraction of the weights, in [0, 1]."""
    return None if 0.0 <= value <= 1.0 else f"must be a fraction in [0, 1], got {value}"


def zeros_to_add(mask, threshold):
    """max(0, ceil(thr·N) − zeros already in the mask), thr·N in float32 as N2D2."""
    target = math.ceil(float(F32(threshold) * F32(mask.size)))
    return max(0, target - int((mask == 0).sum()))


def fill_random(mask, threshold, rng):
    """Random filler: zero ``zeros_to_add`` of the mask's ones, chosen uniformly without
    replacement (N2D2 draws an index and walks to the next 1, a slightly non-uniform variant
    of the same idea; its global generator cannot be reproduced here anyway)."""
    xp = get_xp(mask)
    count = zeros_to_add(mask, threshold)
    if count:
        ones = xp.flatnonzero(mask.reshape(-1) != 0)
        picks = rng.choice(int(ones.size), size=min(count, int(ones.size)), replace=False)
        flat = mask.reshape(-1)  # a view: zeroing it zeroes the mask
        flat[ones[xp.asarray(picks)]] = 0
    return mask


def fill_iter_nonstruct(w, threshold, delta):
    """IterNonStruct filler: the smallest integer j with fraction(|w| ≤ Delta·j) ≥ thr, then
    mask = |w| > Delta·j (Delta·j and the fraction in float32, as N2D2)."""
    xp = get_xp(w)
    a = xp.sort(xp.abs(w).reshape(-1))
    n = a.size
    expect(threshold <= 1.0, f"Prune: threshold {threshold} above 1 can never be reached",
           error=WeightsError)
    reached = (xp.arange(n + 1, dtype=F32) / F32(n)) >= F32(threshold)
    needed = int(xp.argmax(reached))  # smallest zero count meeting the threshold
    j = 0
    if needed > 0:
        target = float(a[needed - 1])
        d = F32(delta)
        j = max(1, math.ceil(target / float(d)))
        while d * F32(j) < target:  # float32 product, as N2D2's delta * iter_delta
            j += 1
        while j > 1 and d * F32(j - 1) >= target:
            j -= 1
    return (xp.abs(w) > F32(delta) * F32(j)).astype(F32)


@WEIGHT_QUANTIZERS.register("Prune")
class PruneQuantizer(WeightQuantizer):
    """``QWeight=Prune``. Modes: Identity (mask of ones), Static (Threshold),
    Gradual (StartThreshold, +GammaThreshold every StepSizeThreshold stimuli, capped at
    Threshold). Fillers: None, Random, IterNonStruct. State: ``<cell>_masks.syntxt``, one line
    per output of every tensor, each 0/1 followed by a space.
    """

    pruning_mode = Key("PruningMode", enum("Identity", "Static", "Gradual"), default="Identity")
    pruning_filler = Key("PruningFiller", enum("None", "Random", "IterNonStruct"), default="Random")
    threshold = Key("Threshold", to_float, default=0.2, doc="target zero fraction",
                    check=fraction)
    delta = Key("Delta", to_float, default=0.001, doc="IterNonStruct magnitude step")
    start_threshold = Key("StartThreshold", to_float, default=0.1, doc="Gradual: first fraction",
                          check=fraction)
    step_size_threshold = Key("StepSizeThreshold", to_uint, default=0,
                              doc="Gradual: stimuli between mask updates (0: log steps)")
    gamma_threshold = Key("GammaThreshold", to_float, default=0.05, doc="Gradual: increment")

    log_steps = 10000  # N2D2's SGDSolver::mLogSteps (the -log option)
    state_names = ("masks", "current_threshold", "_counter")

    def __init__(self, rng=None, **values):
        super().__init__(**values)
        self.rng = rng if rng is not None else numpy.random.default_rng(0)
        self.masks = None
        self.current_threshold = 0.0
        self._counter = 0
        self._pending = None  # (path, flat values) imported before the masks existed
        self._weights = []

    def quantize(self, weights):
        self._weights = list(weights)  # IterNonStruct refills from the current weights
        if self.masks is None:
            self._init_masks([w.data if isinstance(w, Variable) else w for w in weights])
        return [ApplyMask(m).apply(w) for m, w in zip(self.masks, weights)]

    def _init_masks(self, arrays):
        self.masks = [get_xp(a).ones(a.shape, dtype=F32) for a in arrays]
        if self._pending is not None:
            self._set_masks_from(*self._pending)
            self._pending = None
            return
        self.current_threshold = {"Static": self.threshold,
                                  "Gradual": self.start_threshold}.get(self.pruning_mode, 0.0)
        if self.pruning_filler != "None":
            self._refill(arrays)

    def _refill(self, arrays):
        for k, a in enumerate(arrays):
            if self.pruning_filler == "Random":
                fill_random(self.masks[k], self.current_threshold, self.rng)
            elif self.pruning_filler == "IterNonStruct":
                self.masks[k] = fill_iter_nonstruct(a, self.current_threshold, self.delta)

    def on_step(self, batch_size):
        """Gradual schedule, called after every solver update: count stimuli; every
        StepSizeThreshold (or ``log_steps``) stimuli raise the target fraction by GammaThreshold,
        capped at Threshold, and refill the masks (IterNonStruct from the last forward's weights).
        """
        if self.pruning_mode != "Gradual" or self.masks is None:
            return
        step = self.step_size_threshold or self.log_steps
        self._counter += batch_size
        if self._counter < step:
            return
        self._counter -= step
        if self.current_threshold < self.threshold:
            self.current_threshold = min(self.current_threshold + self.gamma_threshold,
                                         self.threshold)
            self._refill([w.data if isinstance(w, Variable) else w for w in self._weights])

    @property
    def zero_fraction(self):
        total = sum(m.size for m in self.masks)
        return sum(int((m == 0).sum()) for m in self.masks) / total

    # -- state --------------------------------------------------------------------------
    @staticmethod
    def state_file(folder, cell_name):
        return cell_file(folder, cell_name, "_masks.syntxt")

    def export_state(self, folder, cell_name):
        if self.masks is None:
            return
        rows = [row for m in self.masks for row in asnumpy(m).reshape(m.shape[0], -1).astype(int)]
        write_syntxt_rows(self.state_file(folder, cell_name), rows)

    def import_state(self, folder, cell_name, ignore_missing=False):
        path = self.state_file(folder, cell_name)
        if ignore_missing and not os.path.exists(path):
            return
        values = read_syntxt_values(path, convert=int)
        if any(v not in (0, 1) for v in values):
            raise WeightsError("malformed masks file: expected only 0 and 1", file=path)
        if self.masks is None:
            self._pending = (path, values)
        else:
            self._set_masks_from(path, values)

    def _set_masks_from(self, path, values):
        total = sum(m.size for m in self.masks)
        if len(values) != total:
            raise WeightsError(f"expected {total} mask values, found {len(values)}", file=path)
        start = 0
        for k, m in enumerate(self.masks):
            chunk = numpy.asarray(values[start:start + m.size], dtype=F32).reshape(m.shape)
            self.masks[k] = get_xp(m).asarray(chunk)
            start += m.size
        # N2D2 resumes the schedule from the imported zero fraction
        self.current_threshold = self.zero_fraction
