"""Data-parallel training: K replicas of one DeepNet that learn as one process on the global batch.

``data_parallel(net, comm)`` turns a DeepNet into replica ``comm.rank`` of ``comm.size``; the
DeepNet's own training step (``DeepNet.learn_batch``), loops (``learn.py``) and passes
(``scoring.py``) then ask ``net.replicas``:

* **Data.** The StimuliProvider's batch becomes the global batch — ``size × BatchSize`` by
  default (N2D2's multi-GPU rule: every device reads a whole ``BatchSize`` batch), or
  ``BatchSize`` itself with ``global_batch=True`` — and every replica reads its slice of each
  (``shard.Shard``): the order of one process, drawn from the same seed on every replica.
* **Step.** Each replica's loss is scaled by its share of the global batch (n_r / N), so that
  the sum of the replicas' gradients is the gradient of the global batch's mean loss: one
  allreduce per step sums them, packed in one flat buffer (``bucket_bytes`` cuts it into
  slices reduced one after the other), with the loss, the stimuli counts, the signals each
  replica holds (Ctrl-C, SIGTERM: all stop after the same step) and, for BatchNorm cells that
  normalise with their own part of the batch, the running statistics (averaged, with N2D2's
  combined variance). Every replica then applies the same update to the same parameters, so
  they stay identical, bit for bit: what rank 0 saves is the state of all.
* **BatchNorm.** Per-replica statistics by default (N2D2 per device, PyTorch DDP);
  ``sync_batchnorm=True`` uses the global batch's (``sync_batchnorm.py``).
* **Passes.** Validation and test are sharded the same way; ``reduce_scores`` sums the
  confusion matrices and per-batch counts, so every replica holds the scores of one process.
* **Files.** Only rank 0 writes (``DeepNet.writer``); ``broadcast_model`` gives the others what
  it read (best weights, ``-w``).

Not bitwise equal to one process: each replica sums its part of the batch, and the allreduce
adds the parts, a different order of float32 additions (agreement to ~1e-6 relative after an
epoch, docs/DISTRIBUTED.md).
"""
import contextlib
import signal
import time
import zlib

import numpy

from .. import backend
from ..errors import InternalError, N2D2Error
from .communicator import allreduce_numbers, broadcast_arrays, broadcast_json
from .shard import Shard, StepPart, stepping

#: Gradient bytes per allreduce; None: the whole step in one (see docs/DISTRIBUTED.md).
BUCKET_BYTES = None


class DataParallel:
    """Replica ``comm.rank`` of ``comm.size`` training ``net`` (see the module docstring)."""

    def __init__(self, net, comm, global_batch=False, sync_batchnorm=False, bucket_bytes=BUCKET_BYTES):
        sp = net.sp
        if sp is None:
            raise N2D2Error("data-parallel training needs the network's database and stimuli "
                            "provider")
        self.net, self.comm = net, comm
        self.replica_batch = sp.batch_size if not global_batch else -(-sp.batch_size // comm.size)
        self.batch = sp.batch_size if global_batch else sp.batch_size * comm.size
        if self.batch < comm.size:
            raise N2D2Error(f"--global-batch: BatchSize={sp.batch_size} is smaller than the "
                            f"{comm.size} replicas", section=getattr(sp, "name", "sp"))
        self.rule = "global" if global_batch else "per-replica"
        sp.batch_size = self.batch
        sp.shard = self.shard = Shard(comm.rank, comm.size)
        self.sync_batchnorm = bool(sync_batchnorm)
        if self.sync_batchnorm:
            from .sync_batchnorm import SyncBatchNormGroup
            group = SyncBatchNormGroup(comm)
        for cell in net.cells.values():
            if hasattr(cell, "statistics_group"):
                cell.statistics_group = group if self.sync_batchnorm else None
        self.bucket_bytes = bucket_bytes
        self.planned = None        # global stimuli of the next step's batch (learn.py tells)
        self.count = 0             # global stimuli of the last step
        self.stop = None           # KeyboardInterrupt class to raise after the step, or None
        self.seconds = {"allreduce": 0.0, "steps": 0, "each": []}
        self._before = {}
        net.replicas = self

    # -- describing ------------------------------------------------------------------------------
    def describe(self):
        rule = (f"{self.comm.size} x BatchSize {self.replica_batch} (N2D2's multi-device rule)"
                if self.rule == "per-replica" else
                f"BatchSize, ~{self.replica_batch} per replica (--global-batch)")
        bn = "synchronised (SyncBatchNorm)" if self.sync_batchnorm else "per replica"
        return (f"Data-parallel training: {self.comm.size} replicas over {self.comm.describe()}; "
                f"global batch {self.batch} = {rule}; BatchNorm statistics {bn}")

    def timing_line(self, seconds):
        """Rank 0's gradient allreduce time per step over a learning run of ``seconds``: the
        mean (waiting for the slowest replica included), the median and the least (about the
        transfer alone)."""
        steps, spent, each = self.seconds["steps"], self.seconds["allreduce"], self.seconds["each"]
        if not steps:
            return "Gradient allreduce: no step"
        return (f"Gradient allreduce (rank 0): {1e3 * spent / steps:.2f} ms per step, median "
                f"{1e3 * float(numpy.median(each)):.2f} ms, least {1e3 * min(each):.2f} ms "
                f"({100 * spent / max(seconds, 1e-9):.1f}% of the learning time, {steps} steps)")

    # -- one training step -------------------------------------------------------------------------
    @contextlib.contextmanager
    def training_step(self, n_local):
        """The block of one step on this replica's ``n_local`` stimuli: yields its
        ``StepPart`` (rows lo:hi of the global batch); ``part.count / part.total`` scales the loss."""
        total = self.planned
        self.planned = None
        if total is not None:
            lo, hi = self.shard.bounds(total)
        else:                   # a caller outside learn.py: ask the others how many they have
            counts = numpy.zeros(self.comm.size)
            counts[self.comm.rank] = n_local
            counts = allreduce_numbers(self.comm, counts)
            lo, total = int(counts[:self.comm.rank].sum()), int(counts.sum())
        self._before = {name: getattr(cell, "mean").copy() for name, cell in self.merged_cells()}
        with stepping(StepPart(lo, lo + n_local, total, self.comm)) as part:
            yield part

    def merged_cells(self):
        """Cells whose running statistics come from each replica's own part of the batch."""
        return [(name, cell) for name, cell in self.net.cells.items()
                if getattr(cell, "statistics_group", False) is None and
                "mean" in cell.state_names and "variance" in cell.state_names]

    def reduce(self, params, loss, part):
        """Sum the gradients of ``params`` (in place of their ``grad``) and the step's numbers
        over the replicas; merge per-replica BatchNorm statistics. Returns the global batch's
        loss; sets ``count`` (its stimuli) and ``stop`` (a signal any replica holds)."""
        from ..signals import held
        signals = held()
        xp = backend.get_xp(*(p.data for p in params)) if params else numpy
        dtype = params[0].data.dtype if params else numpy.float32
        cells = self.merged_cells()
        n = part.count
        pieces, shapes = [], []
        for p in params:
            g = p.grad
            pieces.append(xp.zeros(p.data.size, dtype) if g is None else g.reshape(-1).astype(dtype, copy=False))
            shapes.append(p.data.shape)
        flags = [0.0 if p.grad is None else 1.0 for p in params]
        weight = 1.0 if n > 0 else 0.0
        for name, cell in cells:
            delta = (cell.mean - self._before[name]) * weight
            pieces += [delta.astype(dtype), (cell.variance * weight).astype(dtype),
                       (delta * delta).astype(dtype)]
        numbers = flags + [loss * n / max(part.total, 1), n, weight,
                           float(signal.SIGINT in signals), float(signal.SIGTERM in signals)]
        pieces.append(xp.asarray(numpy.array(numbers, dtype)))
        flat = xp.concatenate(pieces) if pieces else xp.zeros(0, dtype)
        start = time.perf_counter()
        self.allreduce_flat(flat)
        tail = backend.asnumpy(flat[flat.size - len(numbers):]).astype(numpy.float64)
        spent = time.perf_counter() - start
        self.seconds["allreduce"] += spent
        self.seconds["steps"] += 1
        self.seconds["each"].append(spent)
        has_grad, (loss_sum, count, replicas, interrupted, terminated) = tail[:len(params)], tail[len(params):]
        self.count = int(round(count))
        rescale = part.total / count if count and round(count) != part.total else None
        offset = 0
        for p, shape, flag in zip(params, shapes, has_grad):
            size = int(numpy.prod(shape, dtype=numpy.int64))
            if flag > 0:
                g = flat[offset:offset + size].reshape(shape)
                p.grad = g * dtype.type(rescale) if rescale else g
            else:
                p.grad = None
            offset += size
        replicas = max(replicas, 1.0)
        for name, cell in cells:
            c = cell.mean.size
            delta, var, square = (flat[offset + k * c: offset + (k + 1) * c] / dtype.type(replicas)
                                  for k in range(3))
            offset += 3 * c
            cell.mean[...] = self._before[name] + delta
            cell.variance[...] = var + square - delta * delta
        self.stop = (None if not (interrupted or terminated) else
                     _terminated() if terminated else KeyboardInterrupt)
        return loss_sum * (rescale or 1.0)

    def allreduce_flat(self, flat):
        """One allreduce, or one per ``bucket_bytes`` slice of ``flat``."""
        if not self.bucket_bytes:
            self.comm.allreduce(flat)
            return
        step = max(1, self.bucket_bytes // flat.itemsize)
        for start in range(0, flat.size, step):
            self.comm.allreduce(flat[start:start + step])

    def global_success(self, success, n):
        """The global batch's training score from this replica's ``success`` on ``n`` stimuli."""
        correct, total = allreduce_numbers(self.comm, [_count(success or 0.0, n), n])
        return float(correct / total) if total else 0.0

    def raise_if_stopped(self):
        """After a step: every replica raises the signal any of them held."""
        if self.stop is not None:
            stop, self.stop = self.stop, None
            raise stop()

    # -- passes without gradients ------------------------------------------------------------------
    def reduce_scores(self, targets, sizes):
        """Every replica's confusion matrices and per-batch counts summed into ``targets``, as
        if one process had scored the whole pass; ``sizes``: this replica's stimuli per global
        batch. Returns the pass's stimuli."""
        scored = [t for t in targets if t.scored]
        layout, values = [], []
        for t in scored:
            classes = self.classes(t)
            confusion = t.confusion if t.confusion is not None else numpy.zeros((classes, classes))
            success = iter(t.batch_success)
            top = iter(t.batch_success_top_n)
            correct = [_count(next(success), n) if n else 0.0 for n in sizes]
            top_correct = [_count(next(top, 0.0), n) if n else 0.0 for n in sizes]
            layout.append((t, classes))
            values += list(numpy.asarray(confusion, numpy.float64).ravel()) + correct + top_correct
        values += list(sizes)
        total = allreduce_numbers(self.comm, values) if values else numpy.zeros(0)
        batches = len(sizes)
        counts = total[len(total) - batches:]
        offset = 0
        for t, classes in layout:
            t.nb_classes = classes
            t.confusion = numpy.rint(total[offset:offset + classes * classes]).astype(numpy.int64) \
                .reshape(classes, classes)
            offset += classes * classes
            correct, top_correct = total[offset:offset + batches], total[offset + batches:offset + 2 * batches]
            offset += 2 * batches
            full = [(c, k, n) for c, k, n in zip(correct, top_correct, counts) if n > 0]
            t.batch_success = [float(c / n) for c, _, n in full]
            binary = self.net.cells[t.cell].out_shape[0] == 1      # no top-N (target.py)
            t.batch_success_top_n = [] if binary else [float(k / n) for _, k, n in full]
        return int(round(counts.sum()))

    def classes(self, target):
        c = self.net.cells[target.cell].out_shape[0]
        return 2 if c == 1 else c

    # -- keeping the replicas identical ------------------------------------------------------------
    def broadcast_model(self, root=0):
        """Rank ``root``'s parameters, statistics, solver and quantizer state on every replica."""
        from .. import checkpoint
        meta, arrays = checkpoint.net_arrays(self.net) if self.comm.rank == root else (None, None)
        meta = broadcast_json(self.comm, meta, root)
        arrays = broadcast_arrays(self.comm, arrays, root)
        if self.comm.rank != root:
            checkpoint.restore_net(self.net, meta, arrays)

    def check_identical(self):
        """Raise InternalError unless every replica holds the same parameters and statistics
        (a CRC of their bytes, compared at each log point)."""
        crc = 0
        for p in self.net.parameters():
            crc = zlib.crc32(numpy.ascontiguousarray(backend.asnumpy(p.data)).tobytes(), crc)
        for cell in self.net.cells.values():
            for s in cell.state_names:
                value = getattr(cell, s, None)
                if value is not None:
                    crc = zlib.crc32(numpy.ascontiguousarray(backend.asnumpy(value)).tobytes(), crc)
        crcs = self.comm.allgather_bytes(crc.to_bytes(4, "little"))
        if len(set(crcs)) > 1:
            raise InternalError(f"the replicas' parameters differ (CRC per rank: "
                                f"{[int.from_bytes(c, 'little') for c in crcs]})")


def _count(ratio, n):
    """Correct stimuli from a success ``ratio`` over ``n`` (exact for whole counts; a ratio
    over n·positions, for outputs with a spatial extent, stays a weighted ratio)."""
    count = ratio * n
    return float(round(count)) if abs(count - round(count)) < 1e-6 else count


def _terminated():
    from ..signals import Terminated
    return Terminated


def data_parallel(net, comm, global_batch=False, sync_batchnorm=False, bucket_bytes=BUCKET_BYTES,
                  broadcast=True):
    """Make ``net`` replica ``comm.rank`` of ``comm.size`` (see ``DataParallel``); with
    ``broadcast`` every replica starts from rank 0's parameters. Returns the DataParallel."""
    replicas = DataParallel(net, comm, global_batch, sync_batchnorm, bucket_bytes)
    if broadcast:
        replicas.broadcast_model()
    return replicas


def detach(net):
    """Make ``net`` one process again (what rank 0 does alone after learning: --qat-sat)."""
    replicas = net.replicas
    if replicas is None:
        return
    sp = net.sp
    sp.batch_size, sp.shard = replicas.replica_batch if replicas.rule == "per-replica" else \
        replicas.batch, None
    for cell in net.cells.values():
        if hasattr(cell, "statistics_group"):
            cell.statistics_group = None
    net.replicas = None
