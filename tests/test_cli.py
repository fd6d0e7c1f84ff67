"""The ``n2d2py`` command (spec/ini.md §6.1-§6.3): N2D2 option spellings, one-line errors with
exit status 2 (never a traceback), --build-only, and a short learn + test run."""
import os
import pathlib
import subprocess
import sys

import pytest

from n2d2py import cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
LENET = ROOT / "models" / "LeNet.ini"

TINY = """
[database]
Type=MNIST_IDX_Database
Validation=0.2
[sp]
SizeX=12
SizeY=12
BatchSize=32
[sp.Transformation]
Type=RescaleTransformation
Width=12
Height=12
[fc1]
Input=sp
Type=Fc
NbOutputs=32
ActivationFunction=Rectifier
WeightsFiller=HeFiller
ConfigSection=common.config
[fc2]
Input=fc1
Type=Fc
NbOutputs=10
WeightsFiller=XavierFiller
ConfigSection=common.config
[softmax]
Input=fc2
Type=Softmax
NbOutputs=10
WithLoss=1
[softmax.Target]
[common.config]
Solvers.LearningRate=0.05
Solvers.Momentum=0.9
"""


def test_normalise_argv_accepts_n2d2_spellings():
    argv = ["net.ini", "-learn-epoch", "5", "-test", "-w", "dir", "-w-ignore", "-seed", "3",
            "-nb-test", "-1", "--log", "10"]
    assert cli.normalise_argv(argv) == ["net.ini", "--learn-epoch", "5", "--test", "-w", "dir",
                                        "--w-ignore", "--seed", "3", "--nb-test", "-1", "--log", "10"]
    args = cli.parse_args(argv)
    assert (args.learn_epoch, args.test, args.weights, args.w_ignore, args.seed, args.nb_test) == \
        (5, True, "dir", True, 3, -1)


def _cli(tmp_path, *argv):
    """Run the real entry point in a subprocess: (status, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "n2d2py.cli", *map(str, argv)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return proc.returncode, proc.stdout, proc.stderr


def _assert_one_error_line(stderr, *fragments):
    lines = [line for line in stderr.splitlines() if line.startswith("n2d2py: error: ")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_missing_file_is_one_line(tmp_path):
    status, _, err = _cli(tmp_path, "no_such_net.ini", "--build-only")
    assert status == 2
    _assert_one_error_line(err, "no_such_net.ini")


def _write(tmp_path, text):
    path = tmp_path / "net.ini"
    path.write_text(text)
    return path


def test_unknown_type_and_bad_number_are_one_line(tmp_path, capsys, monkeypatch):
    pytest.importorskip("n2d2py.cells")
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, TINY.replace("Type=Fc\nNbOutputs=32", "Type=Fcc\nNbOutputs=32"))
    assert cli.main([str(path), "--build-only"]) == 2
    err = capsys.readouterr().err
    _assert_one_error_line(err, "net.ini:", "[fc1] Type", "'Fcc'", "did you mean 'Fc'")
    path = _write(tmp_path, TINY.replace("NbOutputs=32", "NbOutputs=3x2"))
    assert cli.main([str(path), "--build-only"]) == 2
    _assert_one_error_line(capsys.readouterr().err, "[fc1] NbOutputs", "3x2")


def test_gpu_without_cupy_is_one_sentence(tmp_path, capsys, monkeypatch):
    from n2d2py import backend
    if backend.cupy_available:
        pytest.skip("a GPU is usable here")
    pytest.importorskip("n2d2py.cells")
    monkeypatch.chdir(tmp_path)
    assert cli.main([str(_write(tmp_path, TINY)), "--build-only", "--device", "gpu"]) == 2
    _assert_one_error_line(capsys.readouterr().err, "needs CuPy")


def test_build_only_lenet_prints_layers_and_writes_nothing(tmp_path, capsys, monkeypatch):
    pytest.importorskip("n2d2py.cells")
    monkeypatch.chdir(tmp_path)
    assert cli.main([str(LENET), "-build-only"]) == 0
    out = capsys.readouterr().out
    assert "Layer: conv2 [Conv(Frame_CUDA)]\n  # Shared synapses: 1500\n" in out  # C3 map: 60 kernels
    assert "  # Outputs dims: 5 5 16" in out
    assert "Target: softmax (target value: 1 / default value: 0 / top-n value: 1)" in out
    assert os.listdir(tmp_path) == []


def test_learn_then_test_end_to_end(tmp_path, capsys, monkeypatch):
    pytest.importorskip("n2d2py.cells")
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, TINY)
    assert cli.main([str(path), "-learn", "2048", "-log", "1024", "-seed", "7", "-nb-test", "300"]) == 0
    out = capsys.readouterr().out
    assert "Learning database size: 3200 images" in out and "Testing database size: 1000 images" in out
    assert out.count("Validation....................") == 2
    assert "+++ BEST validation score: " in out and "    'weights_validation' saved!" in out
    rate = float(out.split("Final recognition rate: ")[1].split("%")[0])
    assert rate > 60.0
    assert "Plain accuracy:" in out and "(error rate: " in out
    assert (tmp_path / "seed.dat").read_text().strip() == "7"
    for name in ("weights", "weights_validation", "softmax.Target/ConfusionMatrix_test.png",
                 "softmax.Target/Success_validation.png", "net.ini.png"):
        assert (tmp_path / name).exists(), name
    # a later --test reloads weights_validation/ and gives the same score
    assert cli.main([str(path), "-test", "-nb-test", "300"]) == 0
    again = capsys.readouterr().out
    assert "Weights loaded from './weights_validation'" in again
    assert float(again.split("Final recognition rate: ")[1].split("%")[0]) == pytest.approx(rate, abs=0.5)


def test_ctrl_c_saves_weights_and_exits_130(tmp_path, capsys, monkeypatch):
    pytest.importorskip("n2d2py.cells")
    from n2d2py.deepnet import DeepNet
    monkeypatch.chdir(tmp_path)
    calls = []
    real = DeepNet.learn_batch

    def interrupted(self, x, labels):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, x, labels)

    monkeypatch.setattr(DeepNet, "learn_batch", interrupted)
    assert cli.main([str(_write(tmp_path, TINY)), "--learn-epoch", "2", "--seed", "1"]) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == "n2d2py: interrupted (current weights saved in 'weights/')"
    assert "Traceback" not in err
    assert sorted(os.listdir(tmp_path / "weights")) == ["fc1_biases.syntxt", "fc1_weights.syntxt",
                                                        "fc2_biases.syntxt", "fc2_weights.syntxt"]
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n or ".old-" in n]


def test_help_explains_and_shows_examples(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "N2D2 INI file" in out and "examples:" in out and "--learn-epoch N" in out
