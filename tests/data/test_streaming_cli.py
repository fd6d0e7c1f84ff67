"""The command on file-backed databases: N2D2's MobileNet_v2.ini (``--learn 256``), a
ResNet-18-BN-style INI, N2D2's GTSRB INI, NumPy and CSV data train from folders the tests make;
``-l`` resumes mid-epoch bit for bit with worker processes; Ctrl-C, SIGTERM, SIGKILL and bad
images leave no process behind; bad data is one line naming the file."""
import json
import os
import pathlib
import re
import signal
import subprocess
import time
import uuid

import numpy
import pytest
from cli_runner import error_line, run_subprocess, start
from image_folders import imagenet_ini, make_gtsrb, make_ilsvrc

from n2d2py import cli

MODELS = pathlib.Path(__file__).resolve().parent / "n2d2" / "models"


@pytest.fixture(autouse=True)
def no_pictures(monkeypatch):
    from n2d2py.report import plots      # pictures take most of a tiny run's time
    for name in ("network_graph_png", "confusion_matrix_png", "learning_curves_png"):
        monkeypatch.setattr(plots, name, lambda *a, **k: None)


def run_in(folder, monkeypatch, *argv):
    monkeypatch.chdir(folder)
    return cli.main([str(a) for a in argv])


def processes_with(token):
    """Pids of live processes whose environment holds ``token`` (the command and its workers)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if token.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


def assert_no_process_left(token, seconds=10.0):
    deadline = time.monotonic() + seconds
    while processes_with(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not processes_with(token), "worker processes outlived the command"


def final_rate(text):
    return float(re.findall(r"Final recognition rate: ([0-9.]+)%", text)[-1])


# -- N2D2's model files ---------------------------------------------------------------------------
def test_mobilenet_v2_ini_learns_256_stimuli_from_an_ilsvrc_folder(tmp_path):
    make_ilsvrc(tmp_path / "data" / "ILSVRC2012")
    (tmp_path / "run").mkdir()
    token = uuid.uuid4().hex
    status, out, err = run_subprocess(tmp_path / "run", MODELS / "MobileNet_v2.ini", "--learn", "256",
                                      "--seed", "1", "--workers", "2", timeout=600,
                                      env={"N2D2_DATA": str(tmp_path / "data"), "I19_TOKEN": token})
    assert status == 0, err
    assert "Learning database size: 24 images" in out and "Validation database size: 8" in out
    assert "Learning done: 256 images" in out
    assert (tmp_path / "run" / "weights_validation" / "conv1_weights.syntxt").is_file()
    assert_no_process_left(token)


RESNET_STYLE = {r"\$SIZE=224": "$SIZE=128", r"\$ALPHA=1.0": "$ALPHA=0.25",
                r"\$BATCH_SIZE=128": "$BATCH_SIZE=16",
                # N2D2's file has no [sp] section (neither N2D2 nor n2d2py runs it as it is):
                # ResNet-18.ini's, added
                r"\n\[sp.Transformation-1\]": "\n[sp]\nSizeX=${SIZE}\nSizeY=${SIZE}\nNbChannels=3\n"
                                              "BatchSize=${BATCH_SIZE}\n\n[sp.Transformation-1]"}


def test_resnet_18_bn_style_ini_learns_an_epoch(tmp_path, monkeypatch):
    """N2D2's ResNet-18-BN.ini with its documented knobs turned down (128 px, width 0.25,
    batch 16) and its missing [sp] section: the ImageNet chain, BatchNorm, the residual
    template, 2 steps an epoch."""
    text = (MODELS / "ResNet-18-BN.ini").read_text()
    for pattern, value in RESNET_STYLE.items():
        text, count = re.subn(pattern, lambda _, v=value: v, text)
        assert count == 1, pattern
    (tmp_path / "net.ini").write_text(text)
    (tmp_path / "ResNet_BN-block.ini.tpl").write_text((MODELS / "ResNet_BN-block.ini.tpl").read_text())
    make_ilsvrc(tmp_path / "data" / "ILSVRC2012", sizes=(100, 160))
    monkeypatch.setenv("N2D2_DATA", str(tmp_path / "data"))
    assert run_in(tmp_path, monkeypatch, "net.ini", "--learn-epoch", "1", "--seed", "2",
                  "--workers", "2") == 0
    state = json.loads((tmp_path / "net_state" / "state.json").read_text())["progress"]
    assert (state["epoch"], state["steps"], state["stimuli"]) == (1, 2, 24)


def test_gtsrb_ini_learns_from_a_gtsrb_folder(tmp_path, monkeypatch, capsys):
    make_gtsrb(tmp_path / "data" / "GTSRB", per_class=10)
    monkeypatch.setenv("N2D2_DATA", str(tmp_path / "data"))
    ini = MODELS / "GTSRB29_32c4s1_32mp2_48c5s1_48mp3_200_43.ini"
    assert run_in(tmp_path, monkeypatch, ini, "--learn-epoch", "2", "--seed", "1") == 0
    out = capsys.readouterr().out
    assert "Learning database size: 24 images" in out and "Validation database size: 6" in out
    assert "Testing database size: 9 images" in out


# -- NumPy and CSV ---------------------------------------------------------------------------------
TABLE_NET = """
[database]
{database}

[sp]
SizeX={width}
SizeY={height}
NbChannels=1
BatchSize=8

[fc1]
Input=sp
Type=Fc
NbOutputs=16
ActivationFunction=Rectifier
ConfigSection=common.config

[fc2]
Input=fc1
Type=Fc
NbOutputs=3
ActivationFunction=Linear
ConfigSection=common.config

[softmax]
Input=fc2
Type=Softmax
NbOutputs=3
WithLoss=1

[softmax.Target]

[common.config]
Solvers.LearningRate=0.05
Solvers.Momentum=0.9
"""


def separable(n=90, features=8, seed=0):
    rng = numpy.random.default_rng(seed)
    labels = numpy.arange(n) % 3
    x = rng.normal(0, 0.3, (n, features))
    x[numpy.arange(n), labels] += 2.0
    return x, labels


def test_csv_database_learns(tmp_path, monkeypatch, capsys):
    x, labels = separable()
    rows = [",".join(f"{v:.5f}" for v in row) + f",class{k}" for row, k in zip(x, labels)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    database = f"Type=CSV_Database\nDataPath={tmp_path / 'd.csv'}\nLearn=0.6\nValidation=0.2"
    (tmp_path / "net.ini").write_text(TABLE_NET.format(database=database, width=8, height=1))
    assert run_in(tmp_path, monkeypatch, "net.ini", "--learn-epoch", "10", "--seed", "1") == 0
    assert final_rate(capsys.readouterr().out) >= 90


@pytest.mark.parametrize("streamed", [True, False])
def test_numpy_database_learns_from_npy_streamed_and_npz(tmp_path, monkeypatch, capsys, streamed):
    x, labels = separable(features=16)
    images = numpy.clip(x * 60 + 60, 0, 255).astype(numpy.uint8).reshape(-1, 4, 4)
    if streamed:
        numpy.save(tmp_path / "x.npy", images)
        numpy.save(tmp_path / "y.npy", labels)
        files = f"DataPath={tmp_path / 'x.npy'}\nLabelPath={tmp_path / 'y.npy'}"
    else:
        numpy.savez(tmp_path / "d.npz", x=images, y=labels)
        files = f"DataPath={tmp_path / 'd.npz'}"
    database = f"Type=NumPy_Database\n{files}\nLabelNames=a b c"
    (tmp_path / "net.ini").write_text(TABLE_NET.format(database=database, width=4, height=4))
    assert run_in(tmp_path, monkeypatch, "net.ini", "--learn-epoch", "10", "--seed", "1",
                  "--workers", "1") == 0
    assert final_rate(capsys.readouterr().out) >= 90


# -- resume, signals, bad data ---------------------------------------------------------------------
def small_imagenet(tmp_path, name="run", sp="", **folder):
    run = tmp_path / name
    make_ilsvrc(run / "ilsvrc", **folder)
    (run / "net.ini").write_text(imagenet_ini(run / "ilsvrc", sp=sp))
    return run


def state(folder):
    with numpy.load(folder / "net_state" / "arrays.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def test_resume_mid_epoch_with_workers_is_bitwise(tmp_path, monkeypatch, capsys):
    from n2d2py.deepnet import DeepNet
    whole, broken = small_imagenet(tmp_path, "whole"), small_imagenet(tmp_path, "broken")
    assert run_in(whole, monkeypatch, "net.ini", "--learn-epoch", "2", "--seed", "3",
                  "--workers", "2") == 0
    real, calls = DeepNet.learn_batch, []

    def learn_batch(self, x, labels):
        calls.append(1)
        if len(calls) == 3:                  # Ctrl-C after 2 of epoch 1's 5 steps
            raise KeyboardInterrupt
        return real(self, x, labels)
    monkeypatch.setattr(DeepNet, "learn_batch", learn_batch)
    assert run_in(broken, monkeypatch, "net.ini", "--learn-epoch", "2", "--seed", "3",
                  "--workers", "2") == 130
    monkeypatch.setattr(DeepNet, "learn_batch", real)
    assert run_in(broken, monkeypatch, "net.ini", "--learn-epoch", "2", "-l", "net_state",
                  "--workers", "1") == 0
    assert "Resuming from 'net_state': epoch 0 + 2 batches done" in capsys.readouterr().out
    a, b = state(whole), state(broken)
    assert sorted(a) == sorted(b)
    assert [k for k in a if not numpy.array_equal(a[k], b[k])] == []


def running(folder, token, *argv, **popen):
    process = start(folder, "net.ini", "--learn-epoch", "100000", "--seed", "1", *argv,
                    env={"I19_TOKEN": token}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                    **popen)
    deadline = time.monotonic() + 60
    while not (folder / "net_state").is_dir():        # learning: the first epoch is done
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    assert len(processes_with(token)) == 3            # the command and its 2 workers
    return process


@pytest.mark.parametrize("how, status", [("SIGTERM", 143), ("Ctrl-C", 130), ("SIGKILL", -9),
                                         ("SIGTERM to the group", 143)])
def test_signals_leave_no_worker_behind(tmp_path, how, status):
    """Ctrl-C in a terminal and ``kill -- -PGID`` signal the workers too: they leave the
    decision (save the state, stop) to the command."""
    folder = small_imagenet(tmp_path)
    token = uuid.uuid4().hex
    process = running(folder, token, "--workers", "2", start_new_session=True)
    if how == "Ctrl-C":
        os.killpg(process.pid, signal.SIGINT)
    elif how == "SIGTERM to the group":
        os.killpg(process.pid, signal.SIGTERM)
    else:
        process.send_signal(getattr(signal, how))
    err = process.communicate(timeout=60)[1]
    assert process.returncode == status, err
    assert "Traceback" not in err
    if status > 0:
        assert (folder / "net_state" / "state.json").is_file()
    assert_no_process_left(token)


def test_bad_jpeg_is_one_line_or_skipped_and_counted(tmp_path):
    folder = small_imagenet(tmp_path)
    from image_folders import SYNSETS
    bad = folder / "ilsvrc" / "train" / SYNSETS[2] / f"{SYNSETS[2]}_4.JPEG"
    bad.write_bytes(bad.read_bytes()[:200])
    token = uuid.uuid4().hex
    status, out, err = run_subprocess(folder, "net.ini", "--learn-epoch", "1", "--workers", "2",
                                      env={"I19_TOKEN": token})
    assert status == 2
    assert error_line(err) == f"n2d2py: error: {bad}: truncated JPEG (200 bytes, no end-of-image marker)"
    assert_no_process_left(token)
    status, out, err = run_subprocess(folder, "net.ini", "--learn-epoch", "2", "--workers", "2",
                                      "--skip-bad-images", env={"I19_TOKEN": token})
    assert status == 0, err
    assert err.strip().splitlines()[-1] == (f"n2d2py: 1 unreadable image(s) skipped (first: {bad}: "
                                            f"truncated JPEG (200 bytes, no end-of-image marker))")
    assert "Learning done: 46 images" in out               # 2 epochs of 24 - 1
    assert_no_process_left(token)


def test_missing_label_file_is_one_line(tmp_path):
    folder = small_imagenet(tmp_path)
    os.remove(folder / "ilsvrc" / "val.txt")
    status, _, err = run_subprocess(folder, "net.ini", "--learn-epoch", "1")
    assert status == 2
    assert error_line(err) == (f"n2d2py: error: {folder / 'ilsvrc' / 'val.txt'}: cannot open the file "
                               f"(No such file or directory); expected the validation labels, "
                               f"'<file> <label index>' lines")


def test_loader_keys_in_sp_and_options(tmp_path, monkeypatch, capsys):
    folder = small_imagenet(tmp_path, sp="Workers=0\nPrefetch=3\nSkipBadImages=1")
    assert run_in(folder, monkeypatch, "net.ini", "--learn-epoch", "1") == 0
    (folder / "net.ini").write_text(imagenet_ini(folder / "ilsvrc", sp="Prefetch=0"))
    assert run_in(folder, monkeypatch, "net.ini", "--learn-epoch", "1") == 2
    assert "Prefetch must be at least 1" in capsys.readouterr().err
    status, help_text, _ = run_subprocess(folder, "--help", env={"COLUMNS": "200"})
    assert status == 0 and "--workers N" in help_text and "--skip-bad-images" in help_text
