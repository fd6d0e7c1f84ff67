"""Data-parallel training over several processes: MPI (mpi4py) for processes and CPU arrays,
NCCL (CuPy) for GPU arrays. User guide: docs/DISTRIBUTED.md.

From the command line, ``mpiexec -n K n2d2py NET.ini --learn-epoch N`` runs K replicas
(``command.py``). From Python, under the same launcher::

    from n2d2py import distributed
    from n2d2py.deepnet import DeepNet
    comm = distributed.init()                     # MPI (one rank per process)
    net = DeepNet.from_ini("NET.ini", seed=1)     # the same seed on every rank
    distributed.data_parallel(net, comm)          # replica comm.rank of comm.size
    net.learn(epochs=1)                           # rank 0 writes; all hold the same weights

Modules: ``communicator`` (the interface: rank, size, allreduce, broadcast, barrier, abort; the
one-process communicator), ``mpi``, ``nccl``, ``launch`` (launcher detection, ``init``, the rank
supervisor), ``shard`` (each replica's part of a batch), ``replicas`` (what the training
step, loops and passes ask), ``sync_batchnorm``, ``command`` (the CLI's part).

Names are resolved on first use: importing this package imports neither MPI nor CuPy.
"""
_EXPORTS = {
    "Communicator": "communicator", "SINGLE": "communicator",
    "broadcast_json": "communicator", "broadcast_arrays": "communicator",
    "MPICommunicator": "mpi", "NCCLCommunicator": "nccl",
    "init": "launch", "launched": "launch",
    "Shard": "shard",
    "DataParallel": "replicas", "data_parallel": "replicas",
    "SyncBatchNormGroup": "sync_batchnorm",
}


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'n2d2py.distributed' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = sorted(_EXPORTS)
