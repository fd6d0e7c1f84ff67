"""The communicator interface's pieces without MPI: the one-process communicator, JSON and array
broadcasts (no pickle), batch slices, the launcher's rank and size from its environment, the
rank supervisor's line for a killed rank, rank 0's notices only, and a plain command that never
imports MPI."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy
import pytest
from cli_runner import environment
from fake import run_replicas

from n2d2py.distributed import SINGLE, Shard, broadcast_arrays, broadcast_json, launched
from n2d2py.distributed.command import WithoutNotices, replicated_command
from n2d2py.distributed.communicator import allreduce_numbers


def test_one_process_collectives_are_the_identity():
    a = numpy.arange(4.0)
    assert SINGLE.allreduce(a) is a and SINGLE.broadcast(a) is a
    assert (SINGLE.rank, SINGLE.size, SINGLE.writer) == (0, 1, True)
    assert broadcast_json(SINGLE, {"seed": 3}) == {"seed": 3}
    assert broadcast_arrays(SINGLE, {"w": a})["w"].tolist() == [0.0, 1.0, 2.0, 3.0]
    with pytest.raises(SystemExit):
        SINGLE.abort(2)


def test_json_and_arrays_from_rank0_reach_every_rank_exactly():
    arrays = {"param/0": numpy.random.default_rng(0).standard_normal((3, 4)).astype(numpy.float32),
              "order": numpy.arange(7, dtype=numpy.int64), "empty": numpy.zeros((0, 2)),
              "scalar": numpy.array(2.5)}

    def body(comm):
        meta = broadcast_json(comm, {"a": [1, 2], "b": None} if comm.rank == 0 else "ignored")
        got = broadcast_arrays(comm, arrays if comm.rank == 0 else None)
        sums = allreduce_numbers(comm, [comm.rank, 1.0])
        return meta, got, sums

    for meta, got, sums in run_replicas(3, body):
        assert meta == {"a": [1, 2], "b": None}
        assert list(got) == list(arrays)
        for k, v in arrays.items():
            assert got[k].dtype == v.dtype and got[k].shape == v.shape and got[k].tobytes() == v.tobytes()
        assert sums.tolist() == [3.0, 3.0]


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7])
def test_slices_cover_every_batch_once_differing_by_one_at_most(size):
    for n in (0, 1, 5, 16, 129):
        parts = [Shard(rank, size).part(n) for rank in range(size)]
        lengths = [p.stop - p.start for p in parts]
        assert sum(lengths) == n and max(lengths) - min(lengths) <= 1
        assert [p.start for p in parts] == [sum(lengths[:k]) for k in range(size)]
        assert lengths == sorted(lengths, reverse=True)       # array_split's rule
        assert max(lengths) <= Shard(0, size).rows(n)


def test_rank_and_size_from_the_launcher_environment():
    assert launched({}) == (0, 1)
    assert launched({"PMI_RANK": "1", "PMI_SIZE": "4"}) == (1, 4)                 # MPICH
    assert launched({"OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_SIZE": "3"}) == (2, 3)
    assert launched({"SLURM_PROCID": "5", "SLURM_STEP_NUM_TASKS": "8"}) == (5, 8)
    assert launched({"SLURM_PROCID": "0", "SLURM_NTASKS": "8"}) == (0, 1)   # sbatch, no srun
    assert launched({"PMI_RANK": "1", "PMI_SIZE": "4", "N2D2PY_DISTRIBUTED": "0"}) == (0, 1)


def test_which_commands_run_as_replicas():
    from n2d2py.cli import parse_args
    assert replicated_command(parse_args(["n.ini", "--learn-epoch", "1"]))
    assert replicated_command(parse_args(["n.ini", "--test"]))
    for other in (["--build-only"], ["--report"], ["--export", "ONNX"], ["--learn-epoch", "1", "--export", "ONNX"]):
        assert not replicated_command(parse_args(["n.ini", *other]))


def test_other_ranks_keep_their_errors_not_their_notices():
    import io
    sink = io.StringIO()
    stream = WithoutNotices(sink)
    print("Notice: bundled MNIST", file=stream)
    stream.write("n2d2py: error: rank 1 of 2: bad image\nNotice: half")
    stream.write(" a line\npartial")
    stream.flush()
    assert sink.getvalue() == "n2d2py: error: rank 1 of 2: bad image\npartial"


def run_python(code, timeout=60):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=environment())


def test_the_supervisor_names_a_rank_killed_outright_and_passes_exit_codes_on():
    killed = run_python("""
        import os, signal
        from n2d2py.distributed.launch import supervise
        assert supervise(1, 2) is True
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert killed.returncode == 128 + signal.SIGKILL
    line, = [line for line in killed.stderr.splitlines() if line.startswith("n2d2py: error:")]
    assert line.startswith("n2d2py: error: rank 1 of 2 (pid ") and "ended by SIGKILL" in line
    plain = run_python("""
        import sys
        from n2d2py.distributed.launch import supervise
        supervise(0, 2)
        sys.exit(7)
    """)
    assert plain.returncode == 7 and plain.stderr == ""
    # a signal sent to the supervisor (the launcher's Ctrl-C) reaches the rank
    forwarded = run_python("""
        import os, signal, sys, time
        from n2d2py.distributed.launch import supervise
        parent = os.getpid()
        supervise(0, 2)
        signal.signal(signal.SIGTERM, lambda s, f: sys.exit(143))
        os.kill(parent, signal.SIGTERM)
        time.sleep(20)
    """)
    assert forwarded.returncode == 143 and forwarded.stderr == ""
    # ... whichever of the supervisor's threads the kernel hands it to: here not the main one
    # (it blocks SIGTERM; a BLAS thread took it at random before), which a waitpid kept asleep
    import time
    start = time.monotonic()
    other_thread = run_python("""
        import os, signal, sys, threading, time
        from n2d2py.distributed.launch import supervise
        parent = os.getpid()
        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
        supervise(0, 2)
        signal.signal(signal.SIGTERM, lambda s, f: sys.exit(143))
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
        os.kill(parent, signal.SIGTERM)
        time.sleep(8)
    """)
    assert other_thread.returncode == 143 and other_thread.stderr == ""
    assert time.monotonic() - start < 6
    # a signal that reaches the supervisor before it knows the child's pid waits for it (the
    # child above can signal before the parent runs again after the fork: a lost signal was a
    # rank sleeping on, exit 0)
    from n2d2py.distributed.launch import _forward
    early = []
    _forward([], early, signal.SIGTERM)
    assert early == [signal.SIGTERM]


def test_a_plain_command_imports_no_mpi(tmp_path):
    code = ("import sys, json\nimport n2d2py.cli\nn2d2py.cli.parse_args(['net.ini', '--learn-epoch', '1'])\n"
            "import n2d2py.distributed.command as c\nc.start(n2d2py.cli.parse_args(['n.ini', '--test']))\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('mpi4py'))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={k: v for k, v in environment().items()
                               if not k.startswith(("PMI_", "OMPI_", "SLURM_"))}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == []
    assert os.listdir(tmp_path) == []
