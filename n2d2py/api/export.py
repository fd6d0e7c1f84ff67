"""``n2d2.export``: code generation from the Python API. ``export_c`` writes the C99 sources of
a SAT-trained network fused by ``fuse_qat`` (``qat_SAT=True``), as ``n2d2py NET.ini --test
--qat-sat --export C`` does; ``export_onnx`` (an n2d2py extension) writes the float or QDQ
ONNX model. The post-training-calibrated exports of N2D2 (``calibration=...``, CPP, TensorRT,
STM32) are not covered."""
import os

from .errors import WrongInputType, WrongValue

available_export = ["C"]


def _deepnet(network):
    from .cells import DeepNetCell
    from .deepnet import DeepNet
    if isinstance(network, DeepNetCell):
        return network.get_embedded_deepnet()
    if isinstance(network, DeepNet):
        return network
    raise WrongInputType(f"export: expected a DeepNetCell or a DeepNet (x.get_deepnet()), got "
                         f"{type(network).__name__}")


def export_c(deepnet_cell, provider=None, export_folder_name=None, qat_SAT=True,
             act_scaling_mode="SINGLE_SHIFT", wt_round_mode="NONE", b_round_mode="NONE",
             c_round_mode="NONE", **kwargs):
    """The integer C99 sources of a SAT-trained network (``export_<C>_int8`` by default):
    fused with ``fuse_qat`` unless it was already. ``provider``: the stimuli of the fused
    network's test (default: the network's). Returns the folder."""
    from ..qat.export_c import export_c as write_c
    from .quantizer import fuse_qat
    if kwargs.get("calibration", 0) or not qat_SAT:
        raise WrongValue("export_c: n2d2py exports SAT-trained networks (qat_SAT=True); "
                         "post-training calibration (calibration=...) is not covered here")
    unknown = set(kwargs) - {"calibration", "nb_bits", "export_nb_stimuli_max"}
    if unknown:
        raise WrongInputType(f"export_c: unknown argument(s) {', '.join(sorted(unknown))}")
    if kwargs.get("nb_bits", 8) != 8:
        raise WrongValue(f"export_c: nb_bits={kwargs['nb_bits']!r}: the fused network's C export "
                         f"is 8-bit")
    if act_scaling_mode == "FLOAT_MULT":
        raise WrongValue("export_c: the C export does not support FLOAT_MULT scaling")
    net = _deepnet(deepnet_cell)
    provider = provider or net.get_provider()
    if net._fused is None or provider is not net.get_provider():
        fuse_qat(net, provider, act_scaling_mode, wt_round_mode, b_round_mode, c_round_mode)
    folder = os.fspath(export_folder_name or "export_C_int8")
    write_c(net._fused, folder)
    return folder


def export_onnx(deepnet_cell, path, qdq=None):
    """The ONNX model of the network (float, or QDQ when it has quantizers)."""
    return _deepnet(deepnet_cell).export_onnx(path, qdq)


__all__ = ["available_export", "export_c", "export_onnx"]
