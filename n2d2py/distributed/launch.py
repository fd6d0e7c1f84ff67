"""Started by ``mpiexec``/``srun``: which rank this is, the communicator, and the rank supervisor.

``launched()`` reads the rank and size a launcher gives its processes (MPICH/Intel MPI: PMI_*,
Open MPI: OMPI_COMM_WORLD_*, Slurm's ``srun``: SLURM_PROCID/SLURM_STEP_NUM_TASKS) without
importing MPI, so a plain ``n2d2py`` pays nothing; ``N2D2PY_DISTRIBUTED=0`` ignores them.

``init()`` makes the communicator: MPI for processes and CPU arrays, and (when CuPy sees a GPU)
the GPU of this rank's index on its machine.

``supervise()`` makes this process the supervisor of the rank: it forks, the child runs the
command, the parent waits, forwards the signals it receives (the launcher's Ctrl-C) and, when
the child was killed outright (SIGKILL, the kernel's out-of-memory killer, a crash), prints the
one line that names the rank and the signal before the launcher tears the job down; MPICH's
``mpiexec`` kills the other ranks within a second of one dying, too fast for them to say
anything. ``N2D2PY_SUPERVISOR=0`` turns it off.
"""
import os
import signal
import socket
import sys

_RANK_SIZE = (("PMI_RANK", "PMI_SIZE"), ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
              ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS"))


def launched(environ=None):
    """(rank, size) given by the launcher that started this process, else (0, 1)."""
    environ = os.environ if environ is None else environ
    if environ.get("N2D2PY_DISTRIBUTED", "1") == "0":
        return 0, 1
    for rank, size in _RANK_SIZE:
        if environ.get(rank, "").isdigit() and environ.get(size, "").isdigit():
            return int(environ[rank]), int(environ[size])
    return 0, 1


def init(timeout=None, supervised=False):
    """The MPI communicator of this launch (selects this rank's GPU when CuPy sees any)."""
    try:
        from mpi4py import MPI  # noqa: F401
    except ImportError:
        from ..errors import N2D2Error
        raise N2D2Error("this command was started as several processes (mpiexec, srun), which "
                        "needs mpi4py: pip install 'n2d2py[mpi]'") from None
    from .mpi import DEFAULT_TIMEOUT, MPICommunicator
    comm = MPICommunicator(timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
                           supervised=supervised)
    from .. import backend
    if backend.cupy_available:
        import cupy
        cupy.cuda.Device(comm.local_rank % cupy.cuda.runtime.getDeviceCount()).use()
    return comm


# -- the supervisor ---------------------------------------------------------------------------------
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def supervise(rank, size):
    """Fork; return True in the child (which runs the command), never in the parent (which
    exits with the child's status). False when not available (no fork, or turned off)."""
    if not hasattr(os, "fork") or os.environ.get("N2D2PY_SUPERVISOR", "1") == "0":
        return False
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    # forwarding is in place before the fork: a signal sent to the supervisor as soon as the
    # child runs must not kill it, and one that comes before the child's pid is known is
    # forwarded once it is; the child gets the handlers it had back
    child, early = [], []
    previous = {signum: signal.signal(signum, lambda s, f: _forward(child, early, s))
                for signum in FORWARDED}
    pid = os.fork()
    if pid == 0:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _die_with(parent)
        return True
    child.append(pid)
    while early:
        _forward(child, [], early.pop(0))
    os._exit(_report(_wait(pid), rank, size, pid))


#: how often the supervisor looks at its child and runs the signal handlers, seconds
POLL_SECONDS = 0.05


def _wait(pid):
    """The child's wait status. Not one blocking ``waitpid``: the kernel hands a signal sent to
    the process to any of its threads (BLAS starts some at import), and Python runs the
    handler in the main thread only when that thread runs again, which a ``waitpid`` not
    interrupted never does: a SIGTERM for the rank then waited for the rank's own end."""
    import time
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            os._exit(1)
        if done:
            return status
        time.sleep(POLL_SECONDS)


def _forward(child, early, signum):
    if not child:               # between the fork and the pid's arrival in the list
        early.append(signum)
        return
    try:
        os.kill(child[0], signum)
    except ProcessLookupError:
        pass


def _die_with(parent):
    """The child is killed with its supervisor (the launcher kills supervisors)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


def _report(status, rank, size, pid):
    """The exit status of the supervisor; a line on stderr when the rank was killed."""
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    signum = os.WTERMSIG(status)
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    hint = " (killed by hand, or by the kernel when memory ran out)" if signum == signal.SIGKILL \
        else " (a crash)" if signum in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL) else ""
    os.write(2, f"n2d2py: error: rank {rank} of {size} (pid {pid} on {socket.gethostname()}) "
                f"ended by {name}{hint}: the run stops\n".encode())
    return 128 + signum
