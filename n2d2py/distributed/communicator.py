"""The communicator interface data-parallel training talks to, and the one-process communicator.

A ``Communicator`` is a group of ``size`` processes (ranks); every collective is called by all of
them, in the same order. What training needs is small:

* ``allreduce(array)``: the element-wise sum over the ranks, in place (gradient buckets, counts,
  batch statistics), on the array's device: NumPy arrays go through MPI, CuPy arrays through
  NCCL;
* ``broadcast(array, root)`` in place, ``broadcast_bytes(data, root)``, ``allgather_bytes(data)``
  (training states, seeds, the rank table), ``barrier()``;
* ``abort(code)``: end every rank now (a rank that failed alone must not leave the others
  waiting in a collective).

``Communicator`` itself is rank 0 of 1: every collective returns its input, so a single process
runs the same code with nothing to pay. ``mpi.MPICommunicator`` (mpi4py) and
``nccl.NCCLCommunicator`` (CuPy's NCCL, MPI for the rest) are the real ones; the tests drive the
same code with ranks as threads of one process (``tests/distributed/fake.py``).

``broadcast_json`` and ``broadcast_arrays`` build what the training loop sends (a ``net_state/``
read by rank 0, the reloaded best weights) on ``broadcast_bytes``: JSON text and raw array
bytes, never pickle.
"""
import json
import sys

import numpy


class Communicator:
    """One process alone: rank 0 of 1, collectives are the identity."""

    name = "single process"
    rank, size = 0, 1
    local_rank, local_size = 0, 1     # rank and count of the ranks on this machine

    @property
    def writer(self):
        """Whether this rank writes the run's files (weights, logs, pictures, net_state/)."""
        return self.rank == 0

    def allreduce(self, array):
        """Sum ``array`` (contiguous) over the ranks, in place; returns it."""
        return array

    def broadcast(self, array, root=0):
        """Copy rank ``root``'s ``array`` into every rank's ``array`` (same shape and dtype)."""
        return array

    def broadcast_bytes(self, data, root=0):
        """Rank ``root``'s ``data`` (bytes; other ranks pass None) on every rank."""
        return bytes(data)

    def allgather_bytes(self, data):
        """Every rank's ``data`` (bytes), in rank order, on every rank."""
        return [bytes(data)]

    def barrier(self):
        """Return when every rank has called it."""

    def abort(self, code=1):
        """End every rank of the group now, with exit status ``code``."""
        sys.stdout.flush()
        sys.stderr.flush()
        raise SystemExit(code)

    def close(self):
        """Release what the communicator holds (the watchdog, NCCL's communicator)."""

    def describe(self):
        return self.name


SINGLE = Communicator()


# -- what the training loop sends, built on broadcast_bytes --------------------------------------
def broadcast_json(comm, value, root=0):
    """Rank ``root``'s JSON-able ``value`` on every rank (other ranks pass anything)."""
    data = json.dumps(value).encode() if comm.rank == root else None
    return json.loads(comm.broadcast_bytes(data, root).decode())


def broadcast_arrays(comm, arrays, root=0):
    """Rank ``root``'s ``{name: ndarray}`` as NumPy arrays on every rank (others pass None):
    one JSON layout (names, dtypes, shapes), then the bytes of every array in one message."""
    if comm.rank == root:
        arrays = {k: numpy.asarray(v) for k, v in arrays.items()}   # tobytes(): C order
        layout = [[k, v.dtype.str, list(v.shape)] for k, v in arrays.items()]
        payload = b"".join(v.tobytes() for v in arrays.values())
    else:
        layout = payload = None
    layout = broadcast_json(comm, layout, root)
    payload = comm.broadcast_bytes(payload, root)
    out, offset = {}, 0
    for name, dtype, shape in layout:
        dtype = numpy.dtype(dtype)
        count = int(numpy.prod(shape, dtype=numpy.int64))
        out[name] = numpy.frombuffer(payload, dtype, count, offset).reshape(tuple(shape)).copy()
        offset += count * dtype.itemsize
    return out


def allreduce_numbers(comm, values):
    """The sums over the ranks of a few numbers (float64, on the host)."""
    return comm.allreduce(numpy.array(values, numpy.float64))
