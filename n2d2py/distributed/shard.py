"""Which part of every batch a replica reads, and what a replica's functions may ask about it.

Data-parallel training reads the run's *global* batches, in the order one process would, and
each of the ``size`` replicas takes its slice of each: ``Shard.part(n)``, NumPy's
``array_split`` rule (the first ``n mod size`` ranks get one stimulus more). Cutting every batch,
rather than the epoch, keeps the batches (and the validation pass's per-batch scores) those of
one process, and leaves the rank of a stimulus irrelevant to its augmentation (the streaming
loader seeds each stimulus from its place in the global stream).

During a training step, a replica's functions that draw per stimulus or reduce over the batch
ask ``current()`` for the ``StepPart`` they run on: Dropout draws the global batch's mask and
keeps its rows (the same masks as one process, and every replica's generator stays the same);
LSQ's activation step starts from the global batch's mean |x|. ``current()`` is None outside a
data-parallel step, so a single process pays nothing. Thread-local: the tests run replicas as
threads.
"""
import contextlib
import threading


class Shard:
    """Rank ``rank`` of ``size``: its slice of a batch of ``n`` stimuli."""

    def __init__(self, rank, size):
        self.rank, self.size = int(rank), int(size)

    def bounds(self, n):
        q, r = divmod(int(n), self.size)
        lo = self.rank * q + min(self.rank, r)
        return lo, lo + q + (self.rank < r)

    def part(self, n):
        """The ``slice`` of a batch of ``n`` that this rank reads."""
        return slice(*self.bounds(n))

    def rows(self, batch_size):
        """The most stimuli this rank gets from a batch of ``batch_size``."""
        return -(-int(batch_size) // self.size)

    def __repr__(self):
        return f"Shard(rank={self.rank}, size={self.size})"


class StepPart:
    """A replica's rows ``lo:hi`` of a global batch of ``total`` stimuli, and its communicator
    (``sum``: a few per-batch numbers summed over the replicas)."""

    def __init__(self, lo, hi, total, comm):
        self.lo, self.hi, self.total, self.comm = int(lo), int(hi), int(total), comm

    @property
    def count(self):
        return self.hi - self.lo

    def sum(self, values):
        from .communicator import allreduce_numbers
        return allreduce_numbers(self.comm, values)

    def global_size(self, local_size):
        """Elements of a per-stimulus tensor over the global batch (``local_size`` here)."""
        return local_size // max(self.count, 1) * self.total


_local = threading.local()


def current():
    """The ``StepPart`` of the data-parallel training step running on this thread, or None."""
    return getattr(_local, "part", None)


@contextlib.contextmanager
def stepping(part):
    """Make ``part`` the current step part for the block."""
    previous, _local.part = current(), part
    try:
        yield part
    finally:
        _local.part = previous
