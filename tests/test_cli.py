"""The ``n2d2py`` command as N2D2's ``n2d2``: its option spellings, one-line errors with exit status
2 (never a traceback), --build-only, and a short learn + test run."""
import os
import re

import pytest
from cli_runner import ROOT, assert_error, error_line, run_subprocess
from tiny_nets import TWO_FC_12 as TINY
from tiny_nets import write_ini

from n2d2py import cli

LENET = ROOT / "models" / "LeNet.ini"


def test_normalise_argv_accepts_n2d2_spellings():
    argv = ["net.ini", "-learn-epoch", "5", "-test", "-w", "dir", "-w-ignore", "-seed", "3",
            "-nb-test", "-1", "--log", "10"]
    assert cli.normalise_argv(argv) == ["net.ini", "--learn-epoch", "5", "--test", "-w", "dir",
                                        "--w-ignore", "--seed", "3", "--nb-test", "-1", "--log", "10"]
    args = cli.parse_args(argv)
    assert (args.learn_epoch, args.test, args.weights, args.w_ignore, args.seed, args.nb_test) == \
        (5, True, "dir", True, 3, -1)


def test_missing_file_is_one_line(tmp_path):
    status, _, err = run_subprocess(tmp_path, "no_such_net.ini", "--build-only")
    assert status == 2
    assert_error(error_line(err), "no_such_net.ini")


def test_unknown_type_and_bad_number_are_one_line(tmp_path, capsys, monkeypatch):
    pytest.importorskip("n2d2py.cells")
    monkeypatch.chdir(tmp_path)
    path = write_ini(tmp_path, TINY.replace("Type=Fc\nNbOutputs=32", "Type=Fcc\nNbOutputs=32"))
    assert cli.main([str(path), "--build-only"]) == 2
    err = capsys.readouterr().err
    assert_error(error_line(err), "net.ini:", "[fc1] Type", "'Fcc'", "did you mean 'Fc'")
    path = write_ini(tmp_path, TINY.replace("NbOutputs=32", "NbOutputs=3x2"))
    assert cli.main([str(path), "--build-only"]) == 2
    assert_error(error_line(capsys.readouterr().err), "[fc1] NbOutputs", "3x2")


def test_gpu_without_cupy_is_one_sentence(tmp_path, capsys, monkeypatch):
    from n2d2py import backend
    if backend.cupy_available:
        pytest.skip("a GPU is usable here")
    pytest.importorskip("n2d2py.cells")
    monkeypatch.chdir(tmp_path)
    assert cli.main([str(write_ini(tmp_path, TINY)), "--build-only", "--device", "gpu"]) == 2
    assert_error(error_line(capsys.readouterr().err), "needs CuPy")


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
    path = write_ini(tmp_path, TINY)
    assert cli.main([str(path), "-learn", "2048", "-log", "1024", "-seed", "7", "-nb-test", "300"]) == 0
    out = capsys.readouterr().out
    assert "Learning database size: 3200 images" in out and "Testing database size: 1000 images" in out
    # one line per log point: loss, training and validation scores, best so far
    points = [line for line in out.splitlines() if " images: loss " in line]
    assert [line.split(":")[0] for line in points] == ["1024/2048 images", "2048/2048 images"]
    assert all(re.search(r"training \d+\.\d\d%, validation \d+\.\d\d%", line) for line in points)
    assert points[0].endswith("best so far (saved in 'weights_validation')")
    rate = float(out.split("Final recognition rate: ")[1].split("%")[0])
    assert rate > 60.0
    correct = int(out.split("Final recognition rate: ")[1].split("(")[1].split("/")[0])
    assert "(%d/300 images; error rate: " % correct in out and rate == pytest.approx(correct / 3)
    assert "Plain accuracy" not in out      # one headline score
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
    assert cli.main([str(write_ini(tmp_path, TINY)), "--learn-epoch", "2", "--seed", "1"]) == 130
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
