"""MPI communicator (mpi4py) for processes and CPU arrays, with a watchdog against hangs.

``MPICommunicator`` duplicates ``MPI.COMM_WORLD`` (our collectives never mix with a user's) and
asks for errors as exceptions (``ERRORS_RETURN``): an MPI error becomes one line naming the
rank, then ``abort``. NumPy arrays are reduced in place (``Allreduce`` with ``IN_PLACE``); bytes
travel as a length, then the bytes (no pickle).

A collective waits for every rank. If one never comes, the launcher usually ends the job (MPICH's
``mpiexec`` and Slurm kill the other ranks within a second of one dying); the ``Watchdog``
covers the rest: it ends the run, with one line, when this rank has waited ``timeout`` seconds
in one collective (a rank stopped, stuck or cut off), or when a rank on this machine has ended
while the others run and nothing has ended them within ``GRACE`` seconds (a launcher that does
not clean up).
"""
import contextlib
import json
import os
import socket
import sys
import threading
import time

import numpy

from ..errors import N2D2Error
from .communicator import Communicator

#: Seconds a rank may wait in one collective before the watchdog ends the run (--comm-timeout).
DEFAULT_TIMEOUT = 600.0
#: Seconds the watchdog leaves the launcher to end this rank after another one died here.
GRACE = 3.0
POLL = 0.2


class ReplicaError(N2D2Error):
    """Communication between the ranks of a data-parallel run failed."""


def _alive(pid):
    """Whether process ``pid`` (of this machine) runs: not gone, not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def report(line):
    """Write one ``n2d2py: error:`` line on stderr, at once (before an abort)."""
    sys.stdout.flush()
    os.write(2, ("n2d2py: error: " + line + "\n").encode(errors="replace"))


class Watchdog:
    """A daemon thread of one rank: ends the run when a collective waits ``timeout`` seconds,
    or when a rank of this machine ended and the launcher has not ended us ``GRACE`` s later."""

    def __init__(self, comm, timeout):
        self.comm, self.timeout = comm, float(timeout or 0)
        self.waiting_in = None                  # (operation, monotonic start) of this rank
        self.peers = [(rank, entry) for rank, entry in enumerate(comm.table)
                      if rank != comm.rank and entry["host"] == comm.hostname]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, name="n2d2py-watchdog", daemon=True)
        self.thread.start()

    def waiting(self, operation):
        return _Waiting(self, operation)

    def run(self):
        dead_since = None
        while not self.stopped.wait(POLL):
            entered = self.waiting_in
            if entered is not None and self.timeout > 0 and \
                    time.monotonic() - entered[1] > self.timeout:
                report(f"rank {self.comm.rank} of {self.comm.size}: waited {self.timeout:g} s in "
                       f"{entered[0]} for the other ranks (one of them is stopped, stuck or cut "
                       f"off): stopping the run (--comm-timeout)")
                self.comm.abort(3)
            dead = [(rank, entry) for rank, entry in self.peers if not _alive(entry["pid"])]
            if not dead:
                continue
            dead_since = dead_since or time.monotonic()
            if time.monotonic() - dead_since < GRACE:
                continue
            rank, entry = dead[0]
            survivors = [r for r, e in self.peers if _alive(e["pid"])] + [self.comm.rank]
            if entry.get("supervised"):
                pass       # its supervisor said how it ended
            elif self.comm.rank == min(survivors):
                report(f"rank {rank} of {self.comm.size} (pid {entry['pid']} on {entry['host']}) "
                       f"ended while the others were running: stopping the run")
            else:
                time.sleep(0.5)     # the lowest surviving rank says it
            self.comm.abort(3)

    def stop(self):
        self.stopped.set()


class _Waiting:
    def __init__(self, watchdog, operation):
        self.watchdog, self.operation = watchdog, operation

    def __enter__(self):
        self.watchdog.waiting_in = (self.operation, time.monotonic())

    def __exit__(self, *exc):
        self.watchdog.waiting_in = None
        return False


class MPICommunicator(Communicator):
    """The ranks of ``comm`` (default ``MPI.COMM_WORLD``); ``timeout``: the watchdog's seconds
    in one collective (0: never)."""

    name = "MPI"

    def __init__(self, comm=None, timeout=DEFAULT_TIMEOUT, supervised=False):
        from mpi4py import MPI
        self.MPI = MPI
        self.comm = (comm if comm is not None else MPI.COMM_WORLD).Dup()
        self.comm.Set_errhandler(MPI.ERRORS_RETURN)
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        self.hostname = socket.gethostname()
        me = json.dumps({"pid": os.getpid(), "host": self.hostname, "supervised": bool(supervised)})
        self.table = [json.loads(b) for b in self.allgather_bytes(me.encode())]
        self.watchdog = Watchdog(self, timeout)

    # -- collectives ---------------------------------------------------------------------------
    def _call(self, operation, function, *args, **kwargs):
        try:
            with self.watchdog.waiting(operation) if hasattr(self, "watchdog") else \
                    contextlib.nullcontext():
                return function(*args, **kwargs)
        except self.MPI.Exception as exc:
            raise ReplicaError(f"rank {self.rank} of {self.size}: {operation} failed: "
                               f"{exc.Get_error_string()}") from None

    def allreduce(self, array):
        self._call("allreduce", self.comm.Allreduce, self.MPI.IN_PLACE, array, op=self.MPI.SUM)
        return array

    def broadcast(self, array, root=0):
        self._call("broadcast", self.comm.Bcast, array, root=root)
        return array

    def broadcast_bytes(self, data, root=0):
        size = numpy.array([len(data) if self.rank == root else 0], numpy.int64)
        self.broadcast(size, root)
        buffer = numpy.frombuffer(bytearray(data), numpy.uint8).copy() if self.rank == root \
            else numpy.empty(int(size[0]), numpy.uint8)
        if buffer.size:
            self.broadcast(buffer, root)
        return buffer.tobytes()

    def allgather_bytes(self, data):
        mine = numpy.frombuffer(bytes(data), numpy.uint8)
        sizes = numpy.zeros(self.size, numpy.int64)
        self._call("allgather", self.comm.Allgather, numpy.array([mine.size], numpy.int64), sizes)
        out = numpy.empty(int(sizes.sum()), numpy.uint8)
        self._call("allgather", self.comm.Allgatherv, mine, [out, sizes])
        offsets = numpy.concatenate([[0], numpy.cumsum(sizes)])
        return [out[offsets[k]:offsets[k + 1]].tobytes() for k in range(self.size)]

    def barrier(self):
        self._call("barrier", self.comm.Barrier)

    def abort(self, code=1):
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(code)

    def close(self):
        if hasattr(self, "watchdog"):
            self.watchdog.stop()

    def describe(self):
        hosts = len({entry["host"] for entry in self.table})
        return f"MPI ({self.size} processes on {hosts} machine{'s' if hosts > 1 else ''})"

    def rank_table(self):
        """``rank: pid@host`` of every rank (the launcher's reports name pids)."""
        return ", ".join(f"{r}: pid {e['pid']}@{e['host']}" for r, e in enumerate(self.table))
