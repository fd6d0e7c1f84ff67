"""The command line's part of data-parallel training (``mpiexec -n K n2d2py NET.ini ...``).

``start`` (first thing ``cli.main`` does): a command launched as K > 1 processes that learns or
tests becomes K replicas (each behind its supervisor, ``launch.supervise``); any other command
(``--export``, ``--report``, ``--infer``, ``--build-only``...) runs on rank 0 alone while the
other ranks leave at once. Then every stage runs on every rank, with what only one may do done
by rank 0: the seed and ``-l DIR`` (``share_seed``: rank 0 chooses and reads, the others receive),
``-w DIR`` and the best weights (read by rank 0, broadcast), every file written, every line
printed. ``replicate`` makes the network a replica (``replicas.data_parallel``) before learning or
testing.

Errors: one line, ``n2d2py: error: rank R of K: ...``. What every rank decided together (a NaN in
the summed gradients, a state folder rank 0 could not read) is said once, by rank 0, and every
rank ends normally. An error of one rank alone ends the whole run (``abort``): rank 0 at once;
another rank after ``SAY_AFTER`` seconds, so that an error every rank meets (an INI error) is
said once, by rank 0, whose abort ends the others first.
"""
import io
import sys
import time

from ..errors import N2D2Error

SAY_AFTER = 1.0


def add_arguments(parser):
    group = parser.add_argument_group(
        "data-parallel training (mpiexec -n K n2d2py NET.ini ...; docs/DISTRIBUTED.md)")
    group.add_argument("--global-batch", action="store_true",
                       help="[sp] BatchSize is the global batch, split across the K replicas "
                            "(default: N2D2's multi-device rule, each replica reads a BatchSize "
                            "batch: the global batch is K x BatchSize)")
    group.add_argument("--sync-batchnorm", action="store_true",
                       help="BatchNorm normalises with the global batch's statistics (default: "
                            "each replica's own part, as N2D2 per device)")
    group.add_argument("--comm-timeout", type=float, default=600.0, metavar="S",
                       help="end the run when a rank waits S seconds for the others (one is "
                            "stopped or cut off; default 600, 0: never)")


def replicated_command(args):
    """Whether the command runs as replicas: learning or testing, nothing rank 0 does alone."""
    alone = (args.build_only, args.infer, getattr(args, "report", False), args.export,
             getattr(args, "lps", False), getattr(args, "calib", 0))
    return bool(args.learn_epoch or args.learn or args.test) and not any(alone)


def start(args):
    """This command's communicator: ``SINGLE``, or MPI over the ranks a launcher started."""
    from .communicator import SINGLE
    from .launch import init, launched, supervise
    rank, size = launched()
    if size <= 1:
        return SINGLE
    if not replicated_command(args):
        if rank != 0:
            raise SystemExit(0)
        return SINGLE
    supervised = supervise(rank, size)
    if rank != 0:       # rank 0 says what every rank would (notices): the others keep errors
        sys.stderr = WithoutNotices(sys.stderr)
    return init(timeout=args.comm_timeout, supervised=supervised)


class WithoutNotices(io.TextIOBase):
    """``stream`` without its ``Notice:`` lines (ranks other than 0)."""

    def __init__(self, stream):
        self.stream, self.pending = stream, ""

    def write(self, text):
        lines = (self.pending + text).split("\n")
        self.pending = lines.pop()
        kept = [line for line in lines if not line.startswith("Notice:")]
        if kept:
            self.stream.write("\n".join(kept) + "\n")
        return len(text)

    def flush(self):
        if self.pending and not self.pending.startswith("Notice:"):
            self.stream.write(self.pending)
        self.pending = ""
        self.stream.flush()

    def fileno(self):
        return self.stream.fileno()


class AgreedError(N2D2Error):
    """An error every rank raises together (rank 0 says it)."""


def on_rank0(comm, read):
    """Rank 0 calls ``read()``; an N2D2Error there is raised on every rank (``agreed``).
    Returns ``read()``'s value on rank 0, None elsewhere."""
    from .communicator import broadcast_json
    value, failure = None, None
    if comm.rank == 0:
        try:
            value = read()
        except N2D2Error as exc:
            failure = str(exc)
    failure = broadcast_json(comm, failure)
    if failure is not None:
        error = AgreedError(failure)
        error.agreed = True
        raise error
    return value


def share_seed(run, choose):
    """Rank 0 runs ``choose(run)`` (the seed, ``seed.dat``, ``-l DIR``'s state); every rank gets
    the seed and the state."""
    from .. import checkpoint
    from .communicator import broadcast_arrays, broadcast_json
    comm = run.comm
    on_rank0(comm, lambda: choose(run))
    state = run.state
    shared = broadcast_json(comm, {"seed": run.seed, "state": None if state is None else
                                   {"folder": state.folder, "meta": state.meta}})
    run.seed = shared["seed"]
    if shared["state"] is not None:
        arrays = broadcast_arrays(comm, state.arrays if comm.rank == 0 else None)
        run.state = checkpoint.Checkpoint(shared["state"]["folder"], shared["state"]["meta"], arrays)


def replicate(run):
    """Make ``run.net`` replica ``rank`` of K (NCCL when it runs on a GPU); rank 0 says how."""
    from .replicas import data_parallel
    comm = run.comm
    if run.net.device == "gpu":
        from .nccl import NCCLCommunicator
        comm = run.comm = NCCLCommunicator(comm)
    replicas = data_parallel(run.net, comm, global_batch=run.args.global_batch,
                             sync_batchnorm=run.args.sync_batchnorm)
    run.say(replicas.describe())
    table = getattr(getattr(comm, "host", comm), "rank_table", None)
    if table is not None:
        run.say(f"Ranks: {table()}")
    share_cores(run.net, comm)


def share_cores(net, comm):
    """The ranks of one machine share its cores: each computes with cores / ranks threads and
    streams with cores / ranks - 1 loader workers, unless the environment (N2D2PY_THREADS,
    OMP_NUM_THREADS) or --workers says otherwise."""
    import os

    from .. import parallel
    from ..data.loader import default_workers
    cores = default_workers() + 1
    if not any(os.environ.get(name, "").strip() for name in
               ("N2D2PY_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")):
        parallel.set_threads(max(1, cores // comm.local_size))
    if net.sp is not None and net.sp.workers is None:
        net.sp.workers = max(0, cores // comm.local_size - 1)


def fail(comm, message, exc=None):
    """Say ``message`` as this rank's error and end; returns the exit status when every rank
    ends by itself (an agreed error), else aborts the run."""
    sys.stdout.flush()
    line = f"rank {comm.rank} of {comm.size}: " + " ".join(str(message).splitlines())
    if getattr(exc, "agreed", False):
        if comm.rank == 0:
            sys.stderr.write(f"n2d2py: error: {line}\n")
            sys.stderr.flush()
        return 2
    from .mpi import report
    if comm.rank != 0:
        time.sleep(SAY_AFTER)
    report(line)
    comm.abort(2)
    return 2
