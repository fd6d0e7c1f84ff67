"""Ranks as threads of one process: the communicator interface without MPI (``ThreadGroup``),
and ``run_replicas`` to run one function per rank and collect what each returned.

Collectives meet at a barrier; sums are taken in rank order, so every rank gets the same bits
(as MPI's allreduce gives them). NumPy releases the GIL in its kernels, so replicas do overlap.
"""
import threading

import numpy

from n2d2py.distributed.communicator import Communicator


class ThreadGroup:
    """``size`` ranks; ``communicator(rank)`` is the one the thread of ``rank`` uses."""

    def __init__(self, size, timeout=60.0):
        self.size, self.timeout = size, timeout
        self.barrier = threading.Barrier(size, timeout=timeout)
        self.slots = [None] * size
        self.calls = []          # (rank, operation, size): what the ranks called, in order

    def communicator(self, rank):
        return FakeComm(self, rank)


class FakeComm(Communicator):
    name = "threads"

    def __init__(self, group, rank):
        self.group, self.rank, self.size = group, rank, group.size
        self.local_rank, self.local_size = rank, group.size
        self.aborted = None

    def _exchange(self, value):
        group = self.group
        group.slots[self.rank] = value
        group.barrier.wait()
        values = list(group.slots)
        group.barrier.wait()          # everyone has read before a slot is written again
        return values

    def allreduce(self, array):
        self.group.calls.append((self.rank, "allreduce", array.size))
        values = self._exchange(numpy.array(array, copy=True))
        total = values[0].copy()
        for v in values[1:]:
            total += v
        array[...] = total
        return array

    def broadcast(self, array, root=0):
        array[...] = self._exchange(numpy.array(array, copy=True))[root]
        return array

    def broadcast_bytes(self, data, root=0):
        return bytes(self._exchange(None if data is None else bytes(data))[root])

    def allgather_bytes(self, data):
        return [bytes(v) for v in self._exchange(bytes(data))]

    def barrier(self):
        self._exchange(None)

    def abort(self, code=1):
        self.aborted = code      # run_replicas breaks the others' barrier when this one ends
        raise SystemExit(code)


def run_replicas(size, function, timeout=300.0):
    """``function(comm)`` on ``size`` threads (one per rank); returns their results in rank
    order, re-raising the first exception."""
    group = ThreadGroup(size)
    results, errors = [None] * size, [None] * size

    def body(rank):
        try:
            results[rank] = function(group.communicator(rank))
        except BaseException as exc:   # noqa: B902 (re-raised below)
            errors[rank] = exc
            group.barrier.abort()

    threads = [threading.Thread(target=body, args=(k,), daemon=True) for k in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a replica thread hung"
    for exc in errors:
        if exc is not None and not isinstance(exc, threading.BrokenBarrierError):
            raise exc
    for exc in errors:
        if exc is not None:
            raise exc
    return results
