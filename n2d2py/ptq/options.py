"""The options of post-training quantization, with N2D2's spellings and defaults
(``-nbbits``, ``-act-clipping-mode``, ...): ``PTQOptions``; bad values are ``N2D2Error``s that
name the option and list what it takes."""
from ..errors import N2D2Error
from ..qat.scaling import parse_act_scaling_mode
from .thresholds import CLIPPING_MODES, parse_clipping_mode

__all__ = ["PTQOptions", "SUPPORTED_SCALING_MODES", "MIN_BITS", "MAX_BITS"]

MIN_BITS, MAX_BITS = 2, 16
#: rescaling modes of the integer layers
SUPPORTED_SCALING_MODES = ("Floating-point", "Fixed-point16", "Fixed-point32", "Single-shift",
                           "Double-shift")


class PTQOptions:
    """``bits`` (2..16), ``act_clipping_mode`` / ``wt_clipping_mode`` (N2D2 spellings),
    ``quantile`` (0 < q <= 1), ``per_output`` (per-output-channel weight scaling),
    ``act_scaling_mode``, ``unsigned`` (False: every activation signed, ``--no-unsigned``),
    ``cross_layer_equalization`` (N2D2's default; False: ``--no-cle``, ``equalization.py``)."""

    def __init__(self, bits=8, act_clipping_mode="MSE", wt_clipping_mode="None",
                 act_scaling_mode="Floating-point", per_output=False, quantile=0.9999,
                 unsigned=True, cross_layer_equalization=True):
        try:
            self.bits = int(bits)
        except (TypeError, ValueError):
            raise N2D2Error(f"--nbbits {bits!r}: expected an integer from {MIN_BITS} to "
                            f"{MAX_BITS}") from None
        if not MIN_BITS <= self.bits <= MAX_BITS:
            raise N2D2Error(f"--nbbits {bits}: post-training quantization takes {MIN_BITS} to "
                            f"{MAX_BITS} bits")
        self.act_clipping_mode = self._mode("--act-clipping-mode", act_clipping_mode)
        self.wt_clipping_mode = self._mode("--wt-clipping-mode", wt_clipping_mode)
        if self.wt_clipping_mode == "Quantile":
            raise N2D2Error("--wt-clipping-mode Quantile: weights are clipped with None, MSE or "
                            "KL-Divergence (as in N2D2)")
        self.act_scaling_mode = parse_act_scaling_mode(act_scaling_mode)
        if self.act_scaling_mode not in SUPPORTED_SCALING_MODES:
            raise N2D2Error(f"--act-rescaling-mode {self.act_scaling_mode} is not supported by "
                            f"the integer engine yet; use "
                            f"{', '.join(SUPPORTED_SCALING_MODES)}")
        try:
            self.quantile = float(quantile)
        except (TypeError, ValueError):
            self.quantile = float("nan")
        if not 0.0 < self.quantile <= 1.0:
            raise N2D2Error(f"--act-quantile-value {quantile}: expected a fraction in (0, 1]")
        self.per_output = bool(per_output)
        self.unsigned = bool(unsigned)
        self.cross_layer_equalization = bool(cross_layer_equalization)

    @staticmethod
    def _mode(option, value):
        mode = parse_clipping_mode(value)
        if mode is None:
            raise N2D2Error(f"{option} {value}: expected one of {', '.join(CLIPPING_MODES)}")
        return mode

    @property
    def signed_max(self):
        return 2 ** (self.bits - 1) - 1

    @property
    def unsigned_max(self):
        return 2 ** self.bits - 1

    def as_dict(self):
        return {"method": "PTQ", "bits": self.bits, "act_clipping_mode": self.act_clipping_mode,
                "act_quantile_value": self.quantile, "wt_clipping_mode": self.wt_clipping_mode,
                "act_rescale_per_output": self.per_output,
                "act_scaling_mode": self.act_scaling_mode, "unsigned": self.unsigned,
                "cross_layer_equalization": self.cross_layer_equalization}

    def describe(self):
        extra = f" {self.quantile}" if self.act_clipping_mode == "Quantile" else ""
        return (f"{self.bits} bits, activations clipped by {self.act_clipping_mode}{extra}, "
                f"weights clipped by {self.wt_clipping_mode}, weight scales per "
                f"{'output channel' if self.per_output else 'layer'}, rescaling "
                f"{self.act_scaling_mode}{'' if self.unsigned else ', all signed'}, "
                f"cross-layer equalization "
                f"{'on' if self.cross_layer_equalization else 'off (--no-cle)'}")
