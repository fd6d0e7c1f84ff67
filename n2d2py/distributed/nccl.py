"""NCCL communicator: CuPy arrays reduced on the GPUs (``cupy.cuda.nccl``), the rest over MPI.

One rank per GPU (``launch.init`` picks the GPU of the rank's index on its machine). Rank 0
makes NCCL's unique id and broadcasts it over MPI; every rank then joins the NCCL communicator.
``allreduce``/``broadcast`` of a CuPy array run on CuPy's current stream, which is synchronised
before returning (the caller reads the result at once); NumPy arrays and bytes go through the
MPI communicator, whose watchdog also watches the NCCL calls. ``abort`` aborts NCCL's
communicator (a rank blocked in a kernel returns), then MPI's.

``nccl`` and ``cupy`` can be given (the tests run this code with stand-ins, ranks as threads:
``tests/distributed/test_nccl.py``); by default they are CuPy's.
"""
import contextlib

from .communicator import Communicator, broadcast_json

_NCCL_TYPES = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64",
               "int32": "NCCL_INT32", "int64": "NCCL_INT64", "uint8": "NCCL_UINT8",
               "int8": "NCCL_INT8"}


class NCCLCommunicator(Communicator):
    """NCCL over the ranks of ``host`` (an ``MPICommunicator``, kept for host data)."""

    name = "NCCL"

    def __init__(self, host, nccl=None, cupy=None):
        if nccl is None:
            from cupy.cuda import nccl
        if cupy is None:
            import cupy
        self.host, self.nccl, self.cupy = host, nccl, cupy
        self.rank, self.size = host.rank, host.size
        self.local_rank, self.local_size = host.local_rank, host.local_size
        uid = list(nccl.get_unique_id()) if host.rank == 0 else None
        uid = tuple(broadcast_json(host, uid))
        self.comm = nccl.NcclCommunicator(self.size, uid, self.rank)

    def _on_device(self, array):
        return isinstance(array, self.cupy.ndarray)

    def _type(self, array):
        name = _NCCL_TYPES.get(array.dtype.name)
        if name is None:
            raise TypeError(f"NCCL cannot reduce {array.dtype} arrays")
        return getattr(self.nccl, name)

    def _waiting(self, operation):
        watchdog = getattr(self.host, "watchdog", None)
        return watchdog.waiting(operation) if watchdog is not None else contextlib.nullcontext()

    def allreduce(self, array):
        if not self._on_device(array):
            return self.host.allreduce(array)
        stream = self.cupy.cuda.get_current_stream()
        with self._waiting("NCCL allreduce"):
            self.comm.allReduce(array.data.ptr, array.data.ptr, array.size, self._type(array),
                                self.nccl.NCCL_SUM, stream.ptr)
            stream.synchronize()
        return array

    def broadcast(self, array, root=0):
        if not self._on_device(array):
            return self.host.broadcast(array, root)
        stream = self.cupy.cuda.get_current_stream()
        with self._waiting("NCCL broadcast"):
            self.comm.bcast(array.data.ptr, array.size, self._type(array), root, stream.ptr)
            stream.synchronize()
        return array

    def broadcast_bytes(self, data, root=0):
        return self.host.broadcast_bytes(data, root)

    def allgather_bytes(self, data):
        return self.host.allgather_bytes(data)

    def barrier(self):
        self.host.barrier()

    def abort(self, code=1):
        try:
            self.comm.abort()
        finally:
            self.host.abort(code)

    def close(self):
        self.comm.destroy()
        self.host.close()

    def describe(self):
        return f"NCCL on {self.size} GPUs ({self.host.describe()} for the rest)"
