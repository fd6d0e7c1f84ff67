"""``run_qat_sat`` (the CLI's --qat-sat stage): N2D2's final lines, weights_quantized/, the PNG."""
import argparse
import io

from n2d2py.qat import run_qat_sat

from qat_helpers import MNIST_MODEL, load


def test_run_qat_sat(tmp_path):
    net = load("LeNet_4b", "weights_LeNet_4b")
    args = argparse.Namespace(act_rescaling_mode="Fixed-point32", wt_round_mode="RINTF",
                              b_round_mode="RINTF", c_round_mode="RINTF", nb_test=-1,
                              ini=str(MNIST_MODEL / "LeNet_4b.ini"), workdir=str(tmp_path),
                              export=str(tmp_path / "c"))
    out = io.StringIO()
    fused, result = run_qat_sat(net, args, out)
    text = out.getvalue()
    assert "Final recognition rate: 99.8" in text and result.nb_stimuli == 1000
    assert (tmp_path / "weights_quantized" / "conv1_weights.syntxt").is_file()
    assert (tmp_path / "weights_quantized" / "scaling.json").is_file()
    png = (tmp_path / "LeNet_4b.ini.qat.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "c" / "network.c").is_file()
