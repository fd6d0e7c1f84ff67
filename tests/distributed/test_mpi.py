"""Two ranks under ``mpiexec`` (the ``mpich`` wheel), the command as users run it. Skipped when
mpi4py or mpiexec is missing or MPI cannot start two processes here.

* ``mpiexec -n 2 n2d2py net.ini --learn-epoch 1`` == one process on the global batch (1e-6
  relative; the same validation and test lines), and bit for bit one process that sums the
  gradients of the two parts before each update; rank 0 alone prints and writes;
* a rank killed outright mid-epoch: the run ends within seconds with one line naming the rank
  and the signal, ``net_state/`` of the last save is intact and ``-l`` resumes it;
* Ctrl-C (SIGINT to mpiexec): saved once, by rank 0, mid-epoch; ``-l`` on two ranks then ends
  bitwise where the uninterrupted run ends;
* one rank's bad image: one line naming the rank and the file, the others ended at once;
* a stopped rank: the others' watchdog ends the run after ``--comm-timeout``.
"""
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy
import pytest
from cli_runner import command, environment
from tiny_nets import CONV_BN_SAT_12, CONV_FC_12, write_ini

from n2d2py import checkpoint

pytest.importorskip("mpi4py")
MPIEXEC = shutil.which("mpiexec")
ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "N2D2_DATA": "/nonexistent"}


def mpi_env():
    return {k: v for k, v in environment(**ENV).items() if not k.startswith(("PMI_", "OMPI_"))}


@pytest.fixture(scope="module", autouse=True)
def mpi_starts():
    if MPIEXEC is None:
        pytest.skip("no mpiexec (pip install mpich)")
    try:
        probe = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-c",
                                "import sys; from mpi4py import MPI; c = MPI.COMM_WORLD; "
                                "sys.stdout.write(f'<{c.Get_rank()}/{c.Get_size()}>')"],
                               capture_output=True, text=True, timeout=60, env=mpi_env())
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"MPI cannot start two processes here ({exc})")
    if probe.returncode != 0 or not ("<0/2>" in probe.stdout and "<1/2>" in probe.stdout):
        pytest.skip(f"MPI cannot start two processes here: {probe.stderr.strip()[-300:]}")


def mpirun(folder, *argv, ranks=2):
    return [MPIEXEC, "-n", str(ranks), *command(*argv)]


def run(folder, *argv, ranks=2, timeout=120):
    argv = mpirun(folder, *argv, ranks=ranks) if ranks else command(*argv)
    proc = subprocess.run(argv, cwd=folder, capture_output=True, text=True, timeout=timeout,
                          env=mpi_env())
    return proc.returncode, proc.stdout, proc.stderr


def arrays(folder):
    return checkpoint.load(folder / "net_state").arrays


def start(folder, *argv):
    return subprocess.Popen(mpirun(folder, *argv), cwd=folder, env=mpi_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def read_until(proc, prefix, timeout=60):
    """Lines of ``proc.stdout`` up to the first starting with ``prefix``."""
    deadline, lines = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith(prefix):
            return lines
    raise AssertionError(f"no line starting with {prefix!r}: {''.join(lines)}")


def errors(stderr):
    return [line for line in stderr.splitlines() if line.startswith("n2d2py: error:")]


def test_two_ranks_learn_as_one_process_on_the_global_batch(tmp_path):
    one, two, parts = tmp_path / "one", tmp_path / "two", tmp_path / "parts"
    write_ini(one, CONV_FC_12.replace("BatchSize=16", "BatchSize=32"))
    write_ini(two, CONV_FC_12)
    write_ini(parts, CONV_FC_12.replace("[common.config]\n", "[common.config]\nSolvers.IterationSize=2\n"))
    status, single, _ = run(one, "net.ini", "--learn-epoch", "1", "--seed", "3", ranks=0)
    assert status == 0
    assert run(parts, "net.ini", "--learn-epoch", "1", "--seed", "3", ranks=0)[0] == 0
    status, out, err = run(two, "net.ini", "--learn-epoch", "1", "--seed", "3")
    assert status == 0, err
    assert out.count("Data-parallel training: 2 replicas over MPI") == 1
    assert "global batch 32 = 2 x BatchSize 16 (N2D2's multi-device rule)" in out
    assert out.count("Learning database size") == 1 and err.count("Notice:") == 1
    lines = [line for line in out.splitlines() if line.startswith(("epoch 1/1", "Final recognition"))]
    assert lines == [line for line in single.splitlines()
                     if line.startswith(("epoch 1/1", "Final recognition"))]
    a, b = arrays(one), arrays(two)
    params = [k for k in a if k.startswith("param/")]
    worst = max(float(numpy.abs(a[k] - b[k]).max() / numpy.abs(a[k]).max()) for k in params)
    assert 0 < worst < 1e-6
    # one process summing the two parts' gradients (IterationSize=2): the same bits
    c = arrays(parts)
    assert not [k for k in params if not numpy.array_equal(b[k], c[k])]
    assert "Gradient allreduce (rank 0):" in out
    assert not [name for name in os.listdir(two) if ".tmp-" in name or ".old-" in name]


def test_a_rank_killed_mid_epoch_ends_the_run_and_net_state_resumes(tmp_path):
    write_ini(tmp_path, CONV_FC_12)
    proc = start(tmp_path, "net.ini", "--learn-epoch", "50", "--seed", "3")
    ranks = read_until(proc, "Ranks:")[-1]
    read_until(proc, "epoch 2/50")                 # a log point saved net_state/
    pid = int(ranks.split("1: pid ")[1].split("@")[0])
    time.sleep(0.3)
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)
    ended = time.monotonic() - killed
    err = proc.stderr.read()
    print(f"run ended {ended:.2f} s after rank 1 was killed")
    assert ended < 10, ended
    assert proc.returncode != 0
    line, = errors(err)
    assert line.startswith(f"n2d2py: error: rank 1 of 2 (pid {pid} on ") and "ended by SIGKILL" in line
    saved = checkpoint.load(tmp_path / "net_state")      # intact: the last completed save
    epoch = saved.meta["progress"]["epoch"]
    assert epoch >= 2 and saved.meta["progress"]["plan"] is None
    status, out, err = run(tmp_path, "net.ini", "--learn-epoch", str(epoch + 1), "-l", "net_state",
                           ranks=0)
    assert status == 0, err
    assert f"Resuming from 'net_state': epoch {epoch} done" in out
    assert "state was saved with a batch of 32, learning goes on with 16" in out


def test_ctrl_c_saves_once_from_rank0_and_resuming_on_two_ranks_is_bitwise(tmp_path):
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    for folder in (whole, broken):
        write_ini(folder, CONV_FC_12)
    proc = start(broken, "net.ini", "--learn-epoch", "4", "--seed", "5")
    read_until(proc, "epoch 1/4")
    proc.send_signal(signal.SIGINT)                   # held until the next step ends
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.count("n2d2py: interrupted (current weights saved in 'weights/')") == 1
    assert not errors(err)
    progress = checkpoint.load(broken / "net_state").meta["progress"]
    assert progress["epoch"] < 4 and progress["plan"] is not None and progress["plan"]["next"] > 0
    status, out, err = run(broken, "net.ini", "--learn-epoch", "4", "-l", "net_state")
    assert status == 0, err
    assert run(whole, "net.ini", "--learn-epoch", "4", "--seed", "5")[0] == 0
    a, b = arrays(whole), arrays(broken)
    assert sorted(a) == sorted(b)
    assert not [k for k in a if not numpy.array_equal(a[k], b[k])]


def test_one_rank_failing_ends_every_rank_with_its_line(tmp_path):
    from image_folders import imagenet_ini, make_ilsvrc
    make_ilsvrc(tmp_path / "db", per_class=6)
    bad = tmp_path / "db" / "train" / "n01443537" / "n01443537_3.JPEG"
    bad.write_bytes(b"not an image at all")
    (tmp_path / "net.ini").write_text(imagenet_ini(tmp_path / "db"))
    started = time.monotonic()
    status, out, err = run(tmp_path, "net.ini", "--learn-epoch", "2", "--seed", "3", "--workers", "0")
    assert time.monotonic() - started < 60
    assert status != 0
    line, = errors(err)
    assert line.startswith("n2d2py: error: rank ") and " of 2: " in line and str(bad) in line


def test_a_stopped_rank_is_reported_after_the_timeout(tmp_path):
    write_ini(tmp_path, CONV_FC_12)
    proc = start(tmp_path, "net.ini", "--learn-epoch", "50", "--seed", "3", "--comm-timeout", "2")
    ranks = read_until(proc, "Ranks:")[-1]
    read_until(proc, "epoch 1/50")
    pid = int(ranks.split("1: pid ")[1].split("@")[0])
    stopped = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    try:
        proc.wait(timeout=30)
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    print(f"run ended {time.monotonic() - stopped:.2f} s after rank 1 was stopped (--comm-timeout 2)")
    assert time.monotonic() - stopped < 10
    line, = errors(proc.stderr.read())
    assert line.startswith("n2d2py: error: rank 0 of 2: waited 2 s in allreduce for the other ranks")


API_SCRIPT = """
import sys, zlib
import n2d2py as n2d2
from n2d2py import distributed
from n2d2py.cells import DeepNetCell
n2d2.global_variables.seed = 3
net = DeepNetCell.load_from_INI("net.ini")
comm = distributed.init() if distributed.launched()[1] > 1 else None
if comm is not None:
    distributed.data_parallel(net.get_embedded_deepnet().N2D2(), comm, global_batch=True)
history = net.fit(1, valid_metric="RecognitionRate")
if comm is None or comm.rank == 0:
    sys.stdout.write(f"<validation {history.validation}>")
"""


def test_the_n2d2_python_api_trains_replicas_too(tmp_path):
    write_ini(tmp_path, CONV_FC_12.replace("BatchSize=16", "BatchSize=32"))
    (tmp_path / "fit.py").write_text(API_SCRIPT)
    results = []
    for argv in ([sys.executable, "fit.py"], [MPIEXEC, "-n", "2", sys.executable, "fit.py"]):
        proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                              env=mpi_env())
        assert proc.returncode == 0, proc.stderr
        results.append(proc.stdout.split("<validation ")[1].split(">")[0])
    assert results[0] == results[1] and results[0].startswith("[(3200, ")


#: conv (no bias: BatchNorm cancels it) + BatchNorm + SAT activation + Dropout + Fc, 12x12 digits
SYNC_BN_NET = CONV_BN_SAT_12.replace("ActivationFunction=Linear\nSolvers=Adam",
                                     "ActivationFunction=Linear\nConfigSection=conv.config\n"
                                     "Solvers=Adam") + "[conv.config]\nNoBias=1\n"


def test_sync_batchnorm_on_two_ranks_learns_as_one_process(tmp_path):
    # --sync-batchnorm over MPI: the statistics of the global batch, so one process's numbers
    one, two = tmp_path / "one", tmp_path / "two"
    for folder in (one, two):
        write_ini(folder, SYNC_BN_NET)
    status, single, err = run(one, "net.ini", "--learn-epoch", "1", "--seed", "3", ranks=0)
    assert status == 0, err
    status, out, err = run(two, "net.ini", "--learn-epoch", "1", "--seed", "3", "--global-batch",
                           "--sync-batchnorm")
    assert status == 0, err
    assert "BatchNorm statistics synchronised (SyncBatchNorm)" in out
    lines = [line for line in out.splitlines() if line.startswith(("epoch 1/1", "Final recognition"))]
    assert lines == [line for line in single.splitlines()
                     if line.startswith(("epoch 1/1", "Final recognition"))]
    a, b = arrays(one), arrays(two)

    def worst(keys):
        return max(float(numpy.abs(a[k] - b[k]).max() / numpy.abs(a[k]).max()) for k in keys)
    # measured here: parameters 2.3e-7, running statistics 5.8e-7 (a mean near zero)
    assert 0 < worst([k for k in a if k.startswith("param/")]) < 1e-6
    assert worst([k for k in a if k.endswith(("/mean", "/variance"))]) < 1e-5
