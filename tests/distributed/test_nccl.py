"""The NCCL communicator (distributed/nccl.py) against stand-ins for ``cupy.cuda.nccl`` and CuPy,
ranks as threads: device arrays are reduced and broadcast through NCCL's calls (by pointer, on
the current stream, synchronised), host arrays and bytes through the MPI side, rank 0's unique id
reaches every rank, abort aborts NCCL then MPI. No GPU runs here: this checks our side of the
calls, with CuPy's signatures (``allReduce(sendbuf, recvbuf, count, datatype, op, stream)``,
``bcast(buff, count, datatype, root, stream)``)."""
import ctypes
import threading

import numpy
import pytest
from fake import ThreadGroup

from n2d2py.distributed.nccl import NCCLCommunicator


class DeviceArray:
    """A 'device' array: host memory reached only through its pointer, as NCCL sees it."""

    def __init__(self, values):
        self.host = numpy.ascontiguousarray(values)
        self.dtype, self.size, self.shape = self.host.dtype, self.host.size, self.host.shape
        self.data = type("Memory", (), {"ptr": self.host.ctypes.data})()


def view(ptr, count, dtype):
    buffer = (ctypes.c_char * (count * dtype.itemsize)).from_address(ptr)
    return numpy.frombuffer(buffer, dtype, count)


class FakeCupy:
    ndarray = DeviceArray

    def __init__(self):
        self.synchronised = 0
        stream = type("Stream", (), {"ptr": 1234, "synchronize": lambda s: self._sync()})()
        self.cuda = type("Cuda", (), {"get_current_stream": staticmethod(lambda: stream)})()

    def _sync(self):
        self.synchronised += 1


class FakeNccl:
    """``cupy.cuda.nccl`` for ranks that are threads of one process."""
    NCCL_SUM = 0
    NCCL_FLOAT32, NCCL_FLOAT64, NCCL_INT64 = 7, 8, 4
    TYPES = {7: numpy.float32, 8: numpy.float64, 4: numpy.int64}

    def __init__(self, size):
        self.barrier = threading.Barrier(size, timeout=30)
        self.slots, self.ids, self.calls, self.aborted = [None] * size, [None] * size, [], []
        nccl = self

        class NcclCommunicator:
            def __init__(self, ndev, uid, rank):
                assert ndev == size
                self.rank = rank
                nccl.ids[rank] = uid

            def _exchange(self, value):
                nccl.slots[self.rank] = value
                nccl.barrier.wait()
                values = list(nccl.slots)
                nccl.barrier.wait()
                return values

            def allReduce(self, send, recv, count, dtype, op, stream):
                assert op == nccl.NCCL_SUM and stream == 1234
                nccl.calls.append(("allReduce", self.rank, count))
                values = self._exchange(view(send, count, numpy.dtype(nccl.TYPES[dtype])).copy())
                view(recv, count, numpy.dtype(nccl.TYPES[dtype]))[...] = sum(values[1:], values[0])

            def bcast(self, buff, count, dtype, root, stream):
                nccl.calls.append(("bcast", self.rank, count))
                target = view(buff, count, numpy.dtype(nccl.TYPES[dtype]))
                target[...] = self._exchange(target.copy())[root]

            def abort(self):
                nccl.aborted.append(self.rank)

            def destroy(self):
                pass

        self.NcclCommunicator = NcclCommunicator

    @staticmethod
    def get_unique_id():
        return tuple(int(v) for v in numpy.random.default_rng().integers(0, 256, 128))


def ranks(size, body):
    group, nccl = ThreadGroup(size), FakeNccl(size)
    cupies = [FakeCupy() for _ in range(size)]
    results, errors = [None] * size, []

    def run(rank):
        try:
            comm = NCCLCommunicator(group.communicator(rank), nccl=nccl, cupy=cupies[rank])
            results[rank] = body(comm)
        except BaseException as exc:   # noqa: B902
            errors.append(exc)
            group.barrier.abort()
            nccl.barrier.abort()

    threads = [threading.Thread(target=run, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]
    return results, group, nccl, cupies


def test_device_arrays_go_through_nccl_host_arrays_through_mpi():
    def body(comm):
        device = DeviceArray(numpy.arange(5, dtype=numpy.float32) * (comm.rank + 1))
        assert comm.allreduce(device) is device
        host = numpy.full(3, comm.rank + 1.0)
        comm.allreduce(host)
        root = DeviceArray(numpy.full(4, 7.0 if comm.rank == 2 else 0.0))
        comm.broadcast(root, root=2)
        return device.host.copy(), host, root.host.copy(), comm.broadcast_bytes(
            b"state" if comm.rank == 0 else None)

    results, group, nccl, cupies = ranks(3, body)
    for device, host, root, data in results:
        numpy.testing.assert_array_equal(device, numpy.arange(5) * 6.0)   # 1 + 2 + 3
        numpy.testing.assert_array_equal(host, [6.0, 6.0, 6.0])
        numpy.testing.assert_array_equal(root, [7.0] * 4)
        assert data == b"state"
    assert len(set(nccl.ids)) == 1 and len(nccl.ids[0]) == 128      # rank 0's id everywhere
    assert sorted(c for c in nccl.calls if c[0] == "allReduce") == [("allReduce", r, 5) for r in range(3)]
    assert sorted(c for c in group.calls if c[1] == "allreduce") == [(r, "allreduce", 3) for r in range(3)]
    assert all(c.synchronised == 2 for c in cupies)          # after the allreduce and the bcast


def test_the_gradient_step_runs_on_nccl_with_data_parallel_buckets():
    """DataParallel's flat bucket and step numbers through NCCL (float32 'device' buffer)."""
    def body(comm):
        flat = DeviceArray(numpy.concatenate([numpy.full(6, comm.rank + 1.0), [0.5, 16, 0, 0]])
                           .astype(numpy.float32))
        comm.allreduce(flat)
        return flat.host

    results, *_ = ranks(2, body)
    numpy.testing.assert_array_equal(results[0], [3.0] * 6 + [1.0, 32, 0, 0])


def test_unsupported_types_and_abort():
    def body(comm):
        with pytest.raises(TypeError, match="NCCL cannot reduce complex64"):
            comm.allreduce(DeviceArray(numpy.zeros(2, numpy.complex64)))
        if comm.rank == 1:
            with pytest.raises(SystemExit):
                comm.abort(3)
        return comm.describe()

    results, group, nccl, _ = ranks(2, body)
    assert nccl.aborted == [1] and results[0].startswith("NCCL on 2 GPUs")
