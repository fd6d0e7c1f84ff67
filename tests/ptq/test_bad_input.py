"""Bad input to ``--calib``: one line ``n2d2py: error:`` naming the file, cell or option and what
to do, exit status 2, no traceback, and nothing of the calibration written (the refusals come
before the calibration pass).

* no calibration stimuli (Validation and Test empty);
* a cell post-training quantization cannot express (a Tanh, a leaky ReLU, an LRN, a Max ElemWise);
* a rescale factor outside the mode's range (above 1 for Single-shift, 2^31 for Fixed-point32:
  the message names the modes that work);
* bad option values; damaged statistics for ``--calib-reload``.
"""
import numpy
import pytest

from n2d2py.errors import N2D2Error

from cli_runner import assert_error, error_line, run_subprocess

DATA = """[database]
Type=NumPy_Database
DataPath=data.npz
Layout=NCHW
PerLabelPartitioning=0
Learn={learn}
Validation={validation}
Test={test}

[sp]
SizeX=4
SizeY=4
BatchSize=8
"""
FC = """
[fc]
Input=sp
Type=Fc
NbOutputs=3
ActivationFunction={activation}

[softmax]
Input=fc
Type=Softmax
NbOutputs=3

[softmax.Target]
"""


def folder_with(tmp_path, cells=FC, activation="Linear", learn=0, validation=20, test=20,
                weight=1e-5):
    """An INI on 40 random 1x4x4 images whose first pixel is always 0, and Fc weights: 1.0 on
    that pixel (it sets max|W|) and ``weight`` elsewhere (the outputs' range)."""
    rng = numpy.random.default_rng(0)
    x = rng.integers(0, 256, (40, 1, 4, 4), dtype=numpy.uint8)
    x[:, 0, 0, 0] = 0
    numpy.savez(tmp_path / "data.npz", x=x, y=rng.integers(0, 3, 40))
    text = DATA.format(learn=learn, validation=validation, test=test) + \
        cells.format(activation=activation)
    (tmp_path / "net.ini").write_text(text)
    weights = tmp_path / "w"
    weights.mkdir()
    W = numpy.full((3, 16), weight)
    W[:, 0] = 1.0
    (weights / "fc_weights.syntxt").write_text("\n".join(" ".join(f"{v:.9g}" for v in row)
                                                         for row in W) + "\n")
    (weights / "fc_biases.syntxt").write_text("0\n0\n0\n")
    return tmp_path


def fails(folder, *argv):
    status, out, err = run_subprocess(folder, "net.ini", "-w", "w", *argv)
    assert status == 2, out + err
    assert not (folder / "calib_int8").exists() and not (folder / "weights_quantized").exists()
    return error_line(err)


def test_no_calibration_stimuli(tmp_path):
    folder = folder_with(tmp_path, learn=40, validation=0, test=0)
    assert_error(fails(folder, "--calib", -1), "net.ini", "calibration needs stimuli",
                 "Validation and Test sets are empty")


@pytest.mark.parametrize("activation, words", [
    ("Tanh", ["[fc]", "ActivationFunction=Tanh", "Rectifier", "Linear"]),
    ("Rectifier\nActivationFunction.LeakSlope=0.1", ["[fc]", "Rectifier", "no LeakSlope"])])
def test_activations_without_an_integer_form(tmp_path, activation, words):
    folder = folder_with(tmp_path, activation=activation)
    assert_error(fails(folder, "--calib", -1), *words)


@pytest.mark.parametrize("cell, words", [
    ("[lrn]\nInput=fc\nType=LRN\nNbOutputs=3", ["[lrn] Type=LRN", "--calib"]),
    ("[lrn]\nInput=fc,fc\nType=ElemWise\nNbOutputs=3\nOperation=Max",
     ["[lrn]", "Operation=Max", "Operation=Sum"])])
def test_cells_without_an_integer_form(tmp_path, cell, words):
    cells = FC.replace("[softmax]\nInput=fc", cell + "\n\n[softmax]\nInput=lrn")
    folder = folder_with(tmp_path, cells=cells)
    assert_error(fails(folder, "--calib", -1), *words)


def test_single_shift_factor_above_one(tmp_path):
    folder = folder_with(tmp_path)
    line = fails(folder, "--calib", -1, "--act-rescaling-mode", "Single-shift")
    assert_error(line, "[fc]", "> 1", "Fixed-point16", "Floating-point")


def test_fixed_point_factor_out_of_range(tmp_path):
    folder = folder_with(tmp_path, weight=1e-13)
    line = fails(folder, "--calib", -1, "--act-rescaling-mode", "Fixed-point16",
                 "--act-clipping-mode", "None")
    assert_error(line, "[fc]", "Fixed-point32", "Floating-point")
    status, out, err = run_subprocess(folder, "net.ini", "-w", "w", "--calib", -1,
                                      "--act-rescaling-mode", "Floating-point", "--test",
                                      "--act-clipping-mode", "None")
    assert status == 0, err


@pytest.mark.parametrize("argv, words", [
    (["--nbbits", 1], ["--nbbits 1", "2 to 16"]),
    (["--nbbits", 24], ["--nbbits 24", "2 to 16"]),
    (["--act-clipping-mode", "Entropyish"], ["--act-clipping-mode", "KL-Divergence"]),
    (["--wt-clipping-mode", "Quantile"], ["--wt-clipping-mode Quantile", "MSE"]),
    (["--act-quantile-value", 1.5], ["--act-quantile-value", "(0, 1]"]),
    (["--act-rescaling-mode", "Triple-shift"], ["Triple-shift", "Double-shift"]),
    (["--qat-sat"], ["--calib and --qat-sat"]),
])
def test_bad_options(tmp_path, argv, words):
    folder = folder_with(tmp_path)
    assert_error(fails(folder, "--calib", -1, *argv), *words)


def test_calib_of_an_onnx_file_without_data(tmp_path):
    """An .onnx file run directly has no database: nothing to calibrate on."""
    import onnx
    from onnx_models import resnet18
    onnx.save(resnet18(size=32, width=0.125), str(tmp_path / "model.onnx"))
    status, out, err = run_subprocess(tmp_path, "model.onnx", "--calib", 10)
    assert status == 2
    assert_error(error_line(err), "--calib needs a database", "Type=ONNX")


def test_damaged_statistics_on_reload(tmp_path):
    folder = folder_with(tmp_path)
    status, out, err = run_subprocess(folder, "net.ini", "-w", "w", "--calib", -1)
    assert status == 0, err
    path = folder / "calib_int8" / "outputs_range.bin"
    path.write_bytes(path.read_bytes()[:30])
    status, out, err = run_subprocess(folder, "net.ini", "-w", "w", "--calib", -1,
                                      "--calib-reload")
    assert status == 2
    assert_error(error_line(err), "outputs_range.bin", "truncated")


def test_api_refusals_are_errors_naming_the_cell(tmp_path):
    from n2d2py.ptq import PTQOptions
    with pytest.raises(N2D2Error, match="--nbbits"):
        PTQOptions(bits="eight")
