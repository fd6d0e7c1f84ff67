"""N2D2's ``StimuliProvider``: database stimuli -> transformations -> NCHW float32 batches.

Pipeline per stimulus of set S, in N2D2's order: static transformations for S in file order,
then on-the-fly ones, then the channel pipelines (if any), then the implicit normalisation of a
still-integer image (/255, or to [-1, 1) with ``DataSignedMapping``), then NCHW in OpenCV channel
order (BGR). Speed: the static part is computed once per set, over the whole set, and kept in
memory in its own dtype (uint8 for Rescale/PadCrop chains); a trailing run of point-wise static
blocks (RangeAffine) is deferred to batch time, where it costs a few vectorised operations, so a
RangeAffine does not quadruple the cache. Results are identical to applying them at caching time.
"""
import numpy

from ..errors import DataError
from .color import apply_operator
from .database import SETS, set_name
from .transformation import hwc, stack_if_uniform

CACHE_CHUNK = 4096       # stimuli transformed per call while filling a cache (bounds peak memory)


class ChannelPipeline:
    """One input channel built from a copy of the image (``sp.ChannelTransformation*``)."""

    def __init__(self):
        self.static, self.on_the_fly = [], []

    def stages(self, set_name):
        return [t for t in self.static + self.on_the_fly if t.applies(set_name)]


class StimuliProvider:
    """``size`` = (C, H, W) of the network input; ``batch_size``; transformations added with
    ``add_transformation`` (or read from an INI by ``from_ini``).

    ``batches(set_name, shuffle, rng, limit)`` yields ``(x, labels, ids)``: ``x`` float32
    (B, C, H, W), ``labels`` int64 (B,), ``ids`` the database stimulus ids; the last batch of a
    set is smaller when the set size is not a multiple of ``batch_size``.
    """

    def __init__(self, database, size, batch_size=1, rng=None, name="sp", section=None,
                 data_signed_mapping=False, quantization_levels=0, quantization_min=0.0,
                 quantization_max=1.0):
        self.database, self.size, self.batch_size = database, tuple(size), int(batch_size)
        self.rng = rng if rng is not None else numpy.random.default_rng(0)
        self.name, self.section = name, section
        self.data_signed_mapping = data_signed_mapping
        self.quantization = (quantization_levels, quantization_min, quantization_max)
        self.static, self.on_the_fly, self.channels = [], [], []
        self._cache = {}
        # streaming databases (loader.py): worker processes (None: cores - 1), batches decoded
        # ahead, unreadable images skipped (file -> reason) instead of stopping
        self.workers, self.prefetch, self.skip_bad_images, self.skipped = None, 2, False, {}
        # data-parallel training (distributed/shard.py): this replica's part of every batch
        self.shard = None

    @classmethod
    def from_ini(cls, document, database, rng=None):
        """Build from the ``[sp]`` (or ``[env]``) section and its sub-sections (see sp_ini.py)."""
        from .sp_ini import provider_from_ini
        return provider_from_ini(cls, document, database, rng)

    # -- configuration ------------------------------------------------------------------------
    def add_transformation(self, transformation, on_the_fly=False):
        (self.on_the_fly if on_the_fly else self.static).append(transformation)
        self._cache.clear()

    def add_channel_transformation(self, transformation, channel=None, on_the_fly=False):
        """``channel=None`` starts a new channel pipeline; ``channel=k`` appends to pipeline k;
        ``channel="all"`` appends to every pipeline (to the main one while there are none)."""
        if channel == "all":
            if not self.channels:
                return self.add_transformation(transformation, on_the_fly)
            targets = self.channels
        elif channel is None:
            self.channels.append(ChannelPipeline())
            targets = self.channels[-1:]
        else:
            if not 0 <= channel < len(self.channels):
                raise transformation.error(f"Channel={channel} but only {len(self.channels)} "
                                           f"channel pipelines exist")
            targets = [self.channels[channel]]
        for pipeline in targets:
            (pipeline.on_the_fly if on_the_fly else pipeline.static).append(transformation)
        self._cache.clear()

    # -- sizes --------------------------------------------------------------------------------
    @property
    def epoch_size(self):
        """Number of Learn stimuli (N2D2's ``_EpochSize``); 0 without a database."""
        return self.nb_stimuli("Learn")

    def nb_stimuli(self, name):
        return 0 if self.database is None else self.database.nb_stimuli(name)

    @property
    def streaming(self):
        """Whether stimuli are decoded on demand by the streaming loader (image files, .npy)."""
        return bool(getattr(self.database, "streaming", False))

    # -- the pipeline -------------------------------------------------------------------------
    def plan(self, name):
        """(cached, deferred, on_the_fly) transformation lists for set ``name``."""
        static = [t for t in self.static if t.applies(name)]
        split = len(static)
        while split and static[split - 1].pointwise:
            split -= 1
        return static[:split], static[split:], [t for t in self.on_the_fly if t.applies(name)]

    def raw(self, ids):
        batch = self.database.stack(ids)
        if isinstance(batch, numpy.ndarray):
            return batch[..., None] if batch.ndim == 3 else batch
        return [hwc(im) for im in batch]

    def cached(self, name):
        """Output of the cacheable static prefix for every stimulus of set ``name``, in set order
        (None for a streaming database: nothing is cached)."""
        if self.streaming:
            return None
        if name not in self._cache:
            ids, (prefix, _, _) = self.database.partition(name), self.plan(name)
            chunks = []
            for start in range(0, len(ids), CACHE_CHUNK):
                batch = self.raw(ids[start:start + CACHE_CHUNK])
                for transformation in prefix:
                    batch = transformation.apply_batch(batch, self.rng)
                chunks.append(batch)
            self._cache[name] = concat_batches(chunks)
        return self._cache[name]

    def transform(self, name, positions, rng, normalise=True):
        """Transformed stimuli at ``positions`` of set ``name``: (N, C, H, W) float32 when
        ``normalise``, else the (N, H, W, C) batch before normalisation (for statistics)."""
        if self.streaming:
            from .loader import transform_positions
            return transform_positions(self, name, positions, rng, normalise)
        cache = self.cached(name)
        batch = cache[positions] if isinstance(cache, numpy.ndarray) else [cache[i] for i in positions]
        _, deferred, on_the_fly = self.plan(name)
        for transformation in deferred + on_the_fly:
            batch = transformation.apply_batch(batch, rng)
        if self.channels:
            batch = self.build_channels(name, batch, rng)
        if not normalise:
            return batch
        return self.to_tensor(self.check_size(batch))

    def build_channels(self, name, batch, rng):
        planes = []
        for k, pipeline in enumerate(self.channels):
            plane = batch
            for transformation in pipeline.stages(name):
                plane = transformation.apply_batch(plane, rng)
            plane = self.check_size(plane, channels=1, what=f"channel pipeline {k}")
            planes.append(plane)
        dtype = numpy.result_type(*planes)
        return numpy.concatenate([p.astype(dtype, copy=False) for p in planes], axis=-1)

    def check_size(self, batch, channels=None, what="stimulus"):
        """Stack to (N, H, W, C) and check H, W, C against SizeY, SizeX, NbChannels."""
        batch = stack_if_uniform(batch) if isinstance(batch, list) else batch
        c, h, w = self.size
        c = channels or c
        shapes = [batch.shape[1:]] if isinstance(batch, numpy.ndarray) else [im.shape for im in batch]
        for shape in shapes:
            if tuple(shape) != (h, w, c):
                message = (f"{what} size after transformations is {shape[1]}x{shape[0]} with "
                           f"{shape[2]} channel(s), but the stimuli provider expects SizeX x SizeY "
                           f"= {w}x{h} with {c} channel(s)")
                if self.section is not None:
                    raise self.section.error(message, error=DataError)
                raise DataError(message, section=self.name)
        return batch if isinstance(batch, numpy.ndarray) else numpy.zeros((0, h, w, c), numpy.uint8)

    def to_tensor(self, batch):
        """N2D2's implicit normalisation of an image no transformation made float (/max, or to
        [-1, 1) with ``DataSignedMapping``), quantization, then NCHW float32."""
        if numpy.issubdtype(batch.dtype, numpy.integer):
            top = float(numpy.iinfo(batch.dtype).max)
            x = batch.astype(numpy.float32)
            if self.data_signed_mapping:
                half = (top + 1.0) / 2.0
                x = apply_operator(apply_operator(x, "Minus", [half]), "Divides", [half])
            else:
                x = apply_operator(x, "Divides", [top])
        else:
            x = batch.astype(numpy.float32, copy=False)
        levels, low, high = self.quantization
        if levels > 0:
            span = numpy.float32(high - low)
            q = numpy.rint((numpy.clip(x, low, high) - low) / span * (levels - 1))
            x = (q / (levels - 1) * span + low).astype(numpy.float32)
        return numpy.ascontiguousarray(x.transpose(0, 3, 1, 2))

    # -- reading ------------------------------------------------------------------------------
    def batches(self, name, shuffle=True, rng=None, limit=None):
        """Yield ``(x, labels, ids)`` over set ``name`` (Learn/Validation/Test), shuffled by
        ``rng`` (default: the provider's) when ``shuffle``; at most ``limit`` stimuli."""
        name = set_name(name)
        rng = rng if rng is not None else self.rng
        n = self.nb_stimuli(name)
        order = rng.permutation(n) if shuffle else numpy.arange(n)
        if limit is not None:
            order = order[:limit]
        return self._batches(name, order, rng)

    def random_batches(self, name, count, rng=None):
        """N2D2's ``-learn N``: ``count`` stimuli drawn uniformly *with* replacement from set
        ``name``, in batches of ``batch_size`` (the last one smaller)."""
        name = set_name(name)
        rng = rng if rng is not None else self.rng
        n = self.nb_stimuli(name)
        if n == 0:
            return iter(())
        return self._batches(name, rng.integers(0, n, size=int(count)), rng)

    def _batches(self, name, order, rng):
        if self.streaming:
            from .loader import stream
            return stream(self, name, order, rng)
        return self._memory_batches(name, order, rng)

    def _memory_batches(self, name, order, rng):
        ids = self.database.partition(name) if self.database is not None else order
        for start in range(0, len(order), self.batch_size):
            positions = order[start:start + self.batch_size]
            if self.shard is None:
                batch_ids = ids[positions]
                yield self.transform(name, positions, rng), self.database.labels[batch_ids], batch_ids
                continue
            # a replica's part: augmentations are drawn for the whole batch (the generator
            # moves as for one process, and each stimulus gets the draws it would get there)
            part = self.shard.part(len(positions))
            x = self.transform(name, positions, rng)[part] if self.draws_random(name) \
                else self.transform(name, positions[part], rng)
            batch_ids = ids[positions[part]]
            yield x, self.database.labels[batch_ids], batch_ids

    def draws_random(self, name):
        """Whether transforming set ``name`` at batch time draws random numbers."""
        _, deferred, on_the_fly = self.plan(name)
        stages = deferred + on_the_fly + [t for c in self.channels for t in c.stages(name)]
        return any(t.is_random for t in stages)

    def stimulus(self, name, index, rng=None):
        """One stimulus: (x float32 (C, H, W), label) at position ``index`` of set ``name``."""
        name = set_name(name)
        x = self.transform(name, numpy.array([index]), rng if rng is not None else self.rng)
        return x[0], int(self.database.labels[self.database.partition(name)[index]])

    def summary(self):
        counts = ", ".join(f"{s} {self.nb_stimuli(s)}" for s in SETS)
        c, h, w = self.size
        return (f"StimuliProvider [{self.name}]: {w}x{h}x{c}, batch {self.batch_size}, "
                f"{len(self.static)} static + {len(self.on_the_fly)} on-the-fly transformations, "
                f"{len(self.channels)} channel pipelines ({counts})")


def concat_batches(chunks):
    """Join per-chunk batches: one array when all are uniform arrays of one shape, else a list."""
    if chunks and all(isinstance(c, numpy.ndarray) for c in chunks) \
            and len({(c.shape[1:], c.dtype) for c in chunks}) == 1:
        return numpy.concatenate(chunks)
    images = [im for chunk in chunks for im in chunk]
    return stack_if_uniform(images) if images else numpy.zeros((0, 0, 0, 1), numpy.uint8)
