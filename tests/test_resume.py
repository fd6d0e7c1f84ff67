"""Resumable, reproducible and guarded training (issue "Reliability", training side).

* ``-l DIR``: 2 epochs straight == 1 epoch + resume, and == Ctrl-C in the middle of epoch 1 +
  resume; the same for ``--learn N`` (with-replacement chunks). Compared bitwise: every array of
  the final ``net_state/`` (parameters, BN running statistics, SAT α, SGD momentum, Adam
  moments) with ``numpy.array_equal``, plus the ``weights/`` text files byte for byte;
* ``--seed``: two runs give identical arrays, another seed does not;
* NaN/Inf in an activation, the loss or a gradient: one line naming the cell, epoch, batch and
  step; the state saved is the one before the faulty step (finite, resumable);
* ``--learn N`` draws its batches as ``sp.random_batches`` (with replacement);
* the mixed-precision constraint hooks (penalty in the loss, ``on_epoch``, schedule length);
* signal deferral, state folders that cannot be used.

A tiny network (12x12 input, Conv 3x3x4 + BatchNorm + SAT QAct + Dropout + Fc) on the bundled
MNIST subset; everything in-process except the SIGTERM/SIGKILL runs.
"""
import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy
import pytest
from cli_runner import start
from tiny_nets import CONV_BN_SAT_12 as NET
from tiny_nets import quick_runs, write_ini

from n2d2py import checkpoint, cli
from n2d2py.deepnet import DeepNet
from n2d2py.errors import NumericalError
from n2d2py.signals import Terminated, deferred_signals

BATCHES_PER_EPOCH = 100   # 3200 Learn stimuli / 32


@pytest.fixture(autouse=True)
def bundled_mnist(monkeypatch):
    quick_runs(monkeypatch)


def folder_with_net(path, text=NET):
    return write_ini(path, text).parent


def command(folder, monkeypatch, *options):
    monkeypatch.chdir(folder)
    return cli.main(["net.ini", *options])


def interrupt_at(monkeypatch, call):
    """Make the ``call``-th training step of the next run raise KeyboardInterrupt (Ctrl-C)."""
    real, calls = DeepNet.learn_batch, []

    def learn_batch(self, x, labels):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return real(self, x, labels)
    monkeypatch.setattr(DeepNet, "learn_batch", learn_batch)
    return lambda: monkeypatch.setattr(DeepNet, "learn_batch", real)


def state_arrays(folder):
    with numpy.load(folder / "net_state" / "arrays.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def assert_same_training(a, b):
    """Bitwise-equal final states and byte-equal weights/."""
    xs, ys = state_arrays(a), state_arrays(b)
    assert sorted(xs) == sorted(ys)
    different = [k for k in xs if not numpy.array_equal(xs[k], ys[k])]
    assert not different, different
    files = sorted(os.listdir(a / "weights"))
    assert files == sorted(os.listdir(b / "weights"))
    for name in files:
        assert (a / "weights" / name).read_bytes() == (b / "weights" / name).read_bytes(), name
    pa = json.loads((a / "net_state" / "state.json").read_text())["progress"]
    pb = json.loads((b / "net_state" / "state.json").read_text())["progress"]
    for key in ("epoch", "steps", "stimuli", "validation", "best", "generators", "window"):
        assert pa[key] == pb[key], key


def test_resume_at_epoch_boundary_is_bitwise(tmp_path, monkeypatch):
    whole, split = folder_with_net(tmp_path / "whole"), folder_with_net(tmp_path / "split")
    assert command(whole, monkeypatch, "--learn-epoch", "2", "--seed", "7") == 0
    assert command(split, monkeypatch, "--learn-epoch", "1", "--seed", "7") == 0
    assert command(split, monkeypatch, "--learn-epoch", "2", "-l", "net_state") == 0
    assert_same_training(whole, split)
    arrays = state_arrays(whole)
    # what the state holds: BN statistics, SAT alpha, Adam moments, SGD momentum, epoch order
    assert {"cell/bn1/mean", "cell/bn1/variance"} <= set(arrays)
    assert any(k.startswith("solver/") and k.endswith("moment2") for k in arrays)
    assert any(k.startswith("solver/") and k.endswith("momentum_buffer") for k in arrays)
    progress = json.loads((whole / "net_state" / "state.json").read_text())["progress"]
    assert (progress["epoch"], progress["steps"], progress["stimuli"]) == (2, 200, 6400)
    assert len(progress["validation"]) == 2


def test_resume_after_ctrl_c_mid_epoch_is_bitwise(tmp_path, monkeypatch, capsys):
    whole, broken = folder_with_net(tmp_path / "whole"), folder_with_net(tmp_path / "broken")
    assert command(whole, monkeypatch, "--learn-epoch", "2", "--seed", "3") == 0
    restore = interrupt_at(monkeypatch, 41)           # 40 steps done in epoch 1
    assert command(broken, monkeypatch, "--learn-epoch", "2", "--seed", "3") == 130
    restore()
    assert "n2d2py: interrupted" in capsys.readouterr().err
    progress = json.loads((broken / "net_state" / "state.json").read_text())["progress"]
    assert (progress["epoch"], progress["plan"], progress["steps"]) == (0, {"next": 40, "epoch": 1}, 40)
    assert command(broken, monkeypatch, "--learn-epoch", "2", "-l", "net_state") == 0
    assert "Resuming from 'net_state': epoch 0 + 40 batches done" in capsys.readouterr().out
    assert_same_training(whole, broken)


def test_resume_learn_stimuli_mid_chunk_is_bitwise(tmp_path, monkeypatch):
    whole, broken = folder_with_net(tmp_path / "whole"), folder_with_net(tmp_path / "broken")
    options = ["--learn", "1000", "--log", "400", "--seed", "5"]
    assert command(whole, monkeypatch, *options) == 0
    restore = interrupt_at(monkeypatch, 17)          # in the second chunk (13 batches each)
    assert command(broken, monkeypatch, *options) == 130
    restore()
    assert command(broken, monkeypatch, "--learn", "1000", "--log", "400", "-l", "net_state") == 0
    assert_same_training(whole, broken)
    progress = json.loads((whole / "net_state" / "state.json").read_text())["progress"]
    assert progress["stimuli"] == 1000 and [s for s, _ in progress["validation"]] == [400, 800, 1000]


def test_same_seed_is_bitwise_identical_and_another_differs(tmp_path, monkeypatch):
    runs = {}
    for name, seed in (("a", "11"), ("b", "11"), ("c", "12")):
        folder = folder_with_net(tmp_path / name)
        assert command(folder, monkeypatch, "--learn", "320", "--log", "320", "--seed", seed) == 0
        runs[name] = state_arrays(folder)
    assert all(numpy.array_equal(runs["a"][k], runs["b"][k]) for k in runs["a"])
    assert not numpy.array_equal(runs["a"]["param/0"], runs["c"]["param/0"])  # fillers follow it


# -- numerical faults ------------------------------------------------------------------------------
def poison(monkeypatch, cls, call, value=numpy.nan, gradient=False):
    """``cls.forward``'s output gets ``value`` at its ``call``-th training call (or, with
    ``gradient``, its backward does)."""
    from n2d2py.autograd import Function
    real, calls = cls.forward, []

    class Poison(Function):
        def forward(self, xp, x):
            return x if gradient else x + xp.asarray(value, dtype=x.dtype)

        def backward(self, xp, gy, needs_grad):
            return (gy + xp.asarray(value, dtype=gy.dtype) if gradient else gy,)

    def forward(self, xs, training=False):
        y = real(self, xs, training)
        if training:
            calls.append(1)
            if len(calls) >= call:  # from then on, as a real fault would
                return Poison().apply(y)
        return y
    monkeypatch.setattr(cls, "forward", forward)


def test_nan_activation_stops_naming_cell_epoch_batch_step(tmp_path, monkeypatch, capsys):
    from n2d2py.cells.batchnorm import BatchNormCell
    folder = folder_with_net(tmp_path / "run")
    real_forward = BatchNormCell.forward
    poison(monkeypatch, BatchNormCell, 105)
    assert command(folder, monkeypatch, "--learn-epoch", "2", "--seed", "1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "".join(err)
    assert err[-1].startswith("n2d2py: error: net.ini: [bn1] produced NaN at "
                              "epoch 2, batch 5 (step 105)"), err
    state = checkpoint.load(folder / "net_state")
    assert state.meta["progress"]["steps"] == 104 and state.meta["progress"]["plan"]["next"] == 4
    assert all(numpy.isfinite(a).all() for a in state.arrays.values() if a.dtype.kind == "f")
    monkeypatch.setattr(BatchNormCell, "forward", real_forward)   # the last good state resumes
    assert command(folder, monkeypatch, "--learn-epoch", "2", "-l", "net_state") == 0


def test_inf_loss_and_nan_gradient_are_located(tmp_path, monkeypatch):
    from n2d2py.cells.fc import FcCell
    folder = folder_with_net(tmp_path / "run")
    monkeypatch.chdir(folder)
    net = DeepNet.from_ini("net.ini", seed=1)
    real_forward = FcCell.forward
    poison(monkeypatch, FcCell, 3, value=numpy.inf)
    with pytest.raises(NumericalError, match=r"\[fc1\] produced Inf at epoch 1, batch 3 \(step 3\)"):
        net.learn(epochs=1, out=io.StringIO(), rng=numpy.random.default_rng(1))
    net = DeepNet.from_ini(folder / "net.ini", seed=1)
    monkeypatch.setattr(FcCell, "forward", real_forward)
    poison(monkeypatch, FcCell, 2, gradient=True)
    with pytest.raises(NumericalError, match=r"\[fc1\] produced NaN in the gradient of fc1\.\S+ "
                                             r"at epoch 1, batch 2 \(step 2\)"):
        net.learn(epochs=1, out=io.StringIO(), rng=numpy.random.default_rng(1))


# -- --learn N: with replacement ---------------------------------------------------------------------
def test_learn_n_draws_batches_as_random_batches(tmp_path, monkeypatch):
    folder = folder_with_net(tmp_path / "run")
    monkeypatch.chdir(folder)
    net = DeepNet.from_ini("net.ini", seed=2)
    seen = []
    real = DeepNet.learn_batch

    def learn_batch(self, x, labels):
        seen.append((x.copy(), labels.copy()))
        return real(self, x, labels)
    monkeypatch.setattr(DeepNet, "learn_batch", learn_batch)
    history = net.learn(stimuli=100, log=100, out=io.StringIO(), rng=numpy.random.default_rng(9),
                        save_state=False)
    expected = list(net.sp.random_batches("Learn", 100, numpy.random.default_rng(9)))
    assert history.stimuli == 100 and [len(lab) for _, lab in seen] == [32, 32, 32, 4]
    assert len(expected) == len(seen)
    for (x, labels), (ex, elabels, _) in zip(seen, expected):
        assert numpy.array_equal(x, ex) and numpy.array_equal(labels, elabels)


# -- quantizer hooks ---------------------------------------------------------------------------------
def test_quantizer_hooks_are_called(tmp_path, monkeypatch):
    """The training loop calls every quantizer's begin_training (the run's batches), on_epoch
    (1-based), penalty (each step, through constraints.constraint_loss) and on_step (each step,
    with the batch size): the base class's no-op hooks, overridden here by DFP."""
    from n2d2py.quantizers.dfp import DFPWeightQuantizer
    text = NET.replace("[fc1]\nInput=drop1\nType=Fc\n", "[fc1]\nInput=drop1\nType=Fc\nQWeight=DFP\n"
                       "QWeight.Range=15\nQWeight.Regularization=WQR\n")
    folder = folder_with_net(tmp_path / "run", text)
    monkeypatch.chdir(folder)
    calls = {"penalty": 0, "epochs": [], "length": [], "steps": []}
    real_penalty, real_epoch = DFPWeightQuantizer.penalty, DFPWeightQuantizer.on_epoch

    def penalty(self, total_weights):
        calls["penalty"] += 1
        return real_penalty(self, total_weights)

    def on_epoch(self, epoch):
        calls["epochs"].append(epoch)
        real_epoch(self, epoch)
    monkeypatch.setattr(DFPWeightQuantizer, "penalty", penalty)
    monkeypatch.setattr(DFPWeightQuantizer, "on_epoch", on_epoch)
    monkeypatch.setattr(DFPWeightQuantizer, "begin_training", lambda self, b: calls["length"].append(b))
    monkeypatch.setattr(DFPWeightQuantizer, "on_step", lambda self, n: calls["steps"].append(n))
    net = DeepNet.from_ini("net.ini", seed=1)
    net.learn(epochs=2, out=io.StringIO(), save_state=False)
    assert net.cells["fc1"].qweight.epoch == 2
    assert {k: v for k, v in calls.items() if k != "steps"} == \
        {"penalty": 200, "epochs": [1, 2], "length": [200]}
    assert len(calls["steps"]) == 200 and set(calls["steps"]) <= {32, 8}


# -- signals, state folders ----------------------------------------------------------------------------
def test_deferred_signals_hold_ctrl_c_and_sigterm_until_the_block_ends():
    previous = signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(Terminated()))
    try:
        done = []
        with pytest.raises(KeyboardInterrupt):
            with deferred_signals():
                with deferred_signals():          # nested: the outer block decides
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(0.01)
                    done.append("inner")
                done.append("outer")
        assert done == ["inner", "outer"]
        with pytest.raises(Terminated):
            with deferred_signals():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.01)
                done.append("term")
        assert done[-1] == "term"
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_unusable_state_folders_are_one_line_errors(tmp_path, monkeypatch, capsys):
    folder = folder_with_net(tmp_path / "run")
    assert command(folder, monkeypatch, "--learn-epoch", "1", "-l", "missing") == 2
    assert "missing: training-state folder does not exist" in capsys.readouterr().err
    assert command(folder, monkeypatch, "--learn", "64", "--log", "64", "--seed", "1") == 0
    assert command(folder, monkeypatch, "--learn-epoch", "1", "-l", "net_state") == 2
    assert "resume it with --learn" in capsys.readouterr().err
    other = folder_with_net(tmp_path / "other", NET.replace("NbOutputs=4", "NbOutputs=5"))
    monkeypatch.chdir(other)
    assert cli.main(["net.ini", "--learn", "64", "-l", str(folder / "net_state")]) == 2
    err = capsys.readouterr().err
    assert "saved by another network" in err and "Traceback" not in err
    (folder / "net_state" / "arrays.npz").write_bytes(b"garbage")
    monkeypatch.chdir(folder)
    assert cli.main(["net.ini", "--learn", "64", "-l", "net_state"]) == 2
    assert "corrupt training state" in capsys.readouterr().err


def test_sigterm_and_sigkill_leave_loadable_states(tmp_path):
    """SIGTERM: exit 143 with one line, weights/ and net_state/ saved; SIGKILL at random
    moments after the run's first state write (``N2D2PY_KILL_TRIALS``; log points every 64
    stimuli, so most kills fall in or near a folder write): every net_state*/ left loads (after
    ``recover_folder``) and fits the network, weights_validation/ imports."""
    folder = folder_with_net(tmp_path / "run")
    trials = int(os.environ.get("N2D2PY_KILL_TRIALS", "2"))
    rng = numpy.random.default_rng(int(os.environ.get("N2D2PY_KILL_SEED", "1")))
    net = DeepNet.from_ini(folder / "net.ini", seed=1)
    state_file = folder / "net_state" / "state.json"
    leftovers = 0
    for trial in range(trials + 1):
        before = state_file.stat().st_mtime_ns if state_file.exists() else None
        process = start(folder, "net.ini", "--learn", "100000", "--log", "64", "--seed", "1",
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:      # this process has written a state
            assert process.poll() is None, process.communicate()[1]
            try:
                if (folder / "net_state_validation").is_dir() and state_file.stat().st_mtime_ns != before:
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.02)
        time.sleep(float(rng.uniform(0.0, 0.5)))
        if trial == 0:
            process.send_signal(signal.SIGTERM)
            err = process.communicate(timeout=60)[1]
            assert process.returncode == 143, err
            assert err.strip().splitlines()[-1].startswith("n2d2py: terminated"), err
        else:
            process.kill()
            process.communicate()
            leftovers += any(".tmp-" in p.name or ".old-" in p.name for p in folder.iterdir())
        for name in ("net_state", "net_state_validation"):
            state = checkpoint.load(folder / name)
            checkpoint.restore_net(net, state.meta["network"], state.arrays, name)
        net.import_weights(folder / "weights_validation")
    print(f"{trials} SIGKILL trials, {leftovers} left a temporary folder (kill during a write)")


def test_kill_between_the_two_renames_is_recovered(tmp_path):
    """``folder`` missing, its previous version in ``folder.old-<dead pid>``: put back."""
    from n2d2py.folders import recover_folder, write_folder_atomically
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_folder_atomically(tmp_path / "net_state", lambda tmp: open(os.path.join(tmp, "a"), "w").write("1"))
    os.replace(tmp_path / "net_state", tmp_path / f"net_state.old-{dead.pid}")
    (tmp_path / f"net_state.tmp-{dead.pid}").mkdir()
    assert recover_folder(tmp_path / "net_state")
    assert (tmp_path / "net_state" / "a").read_text() == "1"
    write_folder_atomically(tmp_path / "net_state", lambda tmp: open(os.path.join(tmp, "a"), "w").write("2"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net_state"]   # stale tmp removed
