"""Interrupted, killed, resumed and repeated trainings of the ``n2d2py`` command (issue: "no
interruption may lose or corrupt their weights").

Each test runs ``python -m n2d2py.cli`` on a tiny INI (one Fc layer on the bundled MNIST subset)
in a temporary working directory:

* SIGKILL at random moments (``N2D2PY_KILL_TRIALS`` trials, default a handful; the long run uses
  50+): every weights folder left behind must import (``DeepNet.import_weights``), whatever write
  the kill interrupted;
* Ctrl-C (SIGINT) and SIGTERM: a clean exit (130 / 143 or 0) that leaves ``weights/`` consistent;
* ``--seed``: two runs with the same seed write byte-identical weights (NumPy);
* ``-l DIR``: resuming an interrupted training continues it exactly (more in test_resume.py).
"""
import os
import random
import signal
import subprocess
import time

import cli_runner
import pytest
from tiny_nets import ONE_FC_28 as TINY_INI
from tiny_nets import write_ini

from n2d2py.deepnet import DeepNet

TRIALS = int(os.environ.get("N2D2PY_KILL_TRIALS", "4"))
STARTUP_SECONDS = 60


@pytest.fixture
def workdir(tmp_path):
    write_ini(tmp_path, TINY_INI, name="tiny.ini")
    return tmp_path


def start(workdir, *options):
    return cli_runner.start(workdir, "tiny.ini", *options, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            env={"N2D2_DATA": "/nonexistent",    # use the bundled MNIST subset
                                 "MPLBACKEND": "Agg"})


def run(workdir, *options, timeout=300):
    process = start(workdir, *options)
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return out


def wait_for_training(process, workdir, timeout=STARTUP_SECONDS):
    """Block until the first weights folder exists (the training loop is running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"n2d2py ended early: {process.communicate()[1]}")
        if (workdir / "weights_validation").is_dir():
            return
        time.sleep(0.05)
    raise AssertionError("no weights_validation/ after the first epoch")


def network(workdir):
    return DeepNet.from_ini(workdir / "tiny.ini", load_data=False)


def check_folders(workdir):
    """Every weights folder left in ``workdir`` imports; returns their names."""
    net = network(workdir)
    folders = [p for p in workdir.iterdir() if p.is_dir() and p.name in ("weights", "weights_validation")]
    for folder in folders:
        net.import_weights(folder)
    return [f.name for f in folders]


def test_sigkill_at_random_moments_leaves_loadable_weights(workdir):
    rng = random.Random(int(os.environ.get("N2D2PY_KILL_SEED", "1")))
    for _ in range(TRIALS):
        process = start(workdir, "--learn-epoch", "1000", "--seed", "1")
        wait_for_training(process, workdir)
        time.sleep(rng.uniform(0.0, 1.5))
        process.kill()
        process.communicate()
        assert "weights_validation" in check_folders(workdir)


@pytest.mark.parametrize("signum, codes", [(signal.SIGINT, (130,))])
def test_ctrl_c_saves_consistent_weights_and_exits_cleanly(workdir, signum, codes):
    process = start(workdir, "--learn-epoch", "1000", "--seed", "1")
    wait_for_training(process, workdir)
    time.sleep(0.3)
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode in codes, err
    assert "Traceback" not in err, err
    assert "interrupted" in err
    assert set(check_folders(workdir)) == {"weights", "weights_validation"}


def test_sigterm_saves_consistent_weights_and_exits_cleanly(workdir):
    process = start(workdir, "--learn-epoch", "1000", "--seed", "1")
    wait_for_training(process, workdir)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode in (143, 130, 0), err
    assert "Traceback" not in err
    assert set(check_folders(workdir)) == {"weights", "weights_validation"}


def read_folder(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def learn(folder, *options):
    """``folder`` (new) with the tiny INI, after the command has run there to its end."""
    folder.mkdir()
    write_ini(folder, TINY_INI, name="tiny.ini")
    run(folder, *options)
    return folder


def test_same_seed_gives_bitwise_identical_weights(tmp_path):
    results = []
    for name in ("a", "b"):
        folder = learn(tmp_path / name, "--learn-epoch", "2", "--seed", "7")
        results.append((read_folder(folder / "weights"), read_folder(folder / "weights_validation")))
    assert results[0] == results[1]


def test_different_seeds_give_different_weights(tmp_path):
    results = []
    for seed in ("7", "8"):
        folder = learn(tmp_path / seed, "--learn-epoch", "1", "--seed", seed)
        results.append(read_folder(folder / "weights"))
    assert results[0] != results[1]


def test_resume_after_interrupt_continues_exactly(tmp_path):
    whole = learn(tmp_path / "whole", "--learn-epoch", "4", "--seed", "7")
    broken = learn(tmp_path / "broken", "--learn-epoch", "2", "--seed", "7")
    run(broken, "--learn-epoch", "4", "--seed", "7", "-l", "net_state")
    assert read_folder(whole / "weights") == read_folder(broken / "weights")


# -- n2d2py.guard: any exception escaping user-input processing becomes one N2D2Error ---------
def test_guard_maps_foreign_exceptions_to_n2d2_errors(monkeypatch):
    from n2d2py.errors import N2D2Error, ShapeError, WeightsError
    from n2d2py.guard import user_input_errors
    monkeypatch.delenv("N2D2PY_DEBUG", raising=False)
    for exc, words in [(ValueError("bad"), "internal error"), (MemoryError(), "memory"),
                       (EOFError(), "truncated"), (ShapeError("x must be 4-D"), "internal error"),
                       (RecursionError(), "nested"), (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "x"), "text"),
                       (FileNotFoundError(2, "No such file", "w/a.syntxt"), "No such file"),
                       (TypeError("odd"), "internal error")]:
        with pytest.raises(N2D2Error) as info:
            with user_input_errors(place="net.ini"):
                raise exc
        assert words in str(info.value) and ("net.ini" in str(info.value) or "w/a" in str(info.value))
    with pytest.raises(WeightsError):                   # N2D2Error passes through unchanged
        with user_input_errors("x"):
            raise WeightsError("short", file="w")
    with pytest.raises(KeyboardInterrupt):               # never swallowed
        with user_input_errors("x"):
            raise KeyboardInterrupt

    @user_input_errors(place="deco.ini")
    def broken():
        return [][1]
    with pytest.raises(N2D2Error, match="deco.ini"):
        broken()
    monkeypatch.setenv("N2D2PY_DEBUG", "1")
    with pytest.raises(IndexError):
        broken()
    monkeypatch.delenv("N2D2PY_DEBUG")
    with pytest.raises(IndexError):                      # --debug: the bug's own traceback
        with user_input_errors(place="net.ini", debug=True):
            raise IndexError("list index out of range")


def test_internal_error_is_one_line_and_debug_shows_its_traceback(tmp_path, monkeypatch, capsys):
    """A bug (a check inside n2d2py, not the input) is one line naming it an internal error;
    with --debug the original exception and its traceback come out."""
    from n2d2py import cli

    def broken(run):
        raise IndexError("list index out of range")
    monkeypatch.setattr(cli, "STAGES", [broken])
    monkeypatch.delenv("N2D2PY_DEBUG", raising=False)
    assert cli.main([str(tmp_path / "net.ini")]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("n2d2py: error: ") and "internal error" in line and "--debug" in line
    with pytest.raises(IndexError):
        cli.main([str(tmp_path / "net.ini"), "--debug"])
