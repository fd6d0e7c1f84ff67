"""SyncBatchNorm: BatchNorm whose batch statistics are those of the global batch.

In data-parallel training each replica sees 1/K of the batch; by default a BatchNorm cell
normalises with its own part's statistics (N2D2 per device, PyTorch DDP), which changes the
results with K. With ``--sync-batchnorm`` every BatchNorm cell calls ``SyncBatchNormGroup``
instead: ``functions.batch_norm`` with ``group=comm``, which sums the per-channel batch sums over
the replicas (one small allreduce in the forward pass, one in the backward pass; two each where
the channel means are large against their spread), so every replica normalises with the global
batch's mean and variance and updates the running statistics as one process would. The sums
are the ones one process makes (per stimulus in float32, over stimuli in float64), so the
outputs agree with one process's to float64 rounding of those sums.

Every replica must call the same collectives in the same order: the graph is the same on all
(same INI), and backward visits functions of equal depth in creation order (``autograd``).
"""
from .. import functions as F


class SyncBatchNormGroup:
    """What a BatchNorm cell calls instead of ``F.batch_norm`` when its statistics are shared
    over ``comm`` (``cell.statistics_group``)."""

    def __init__(self, comm):
        self.comm = comm

    def __call__(self, x, scale, bias, mean, var, eps, training, momentum):
        return F.batch_norm(x, scale, bias, mean, var, eps, training, momentum,
                            group=self.comm if training else None)
