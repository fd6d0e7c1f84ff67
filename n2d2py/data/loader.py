"""The streaming loader: batches of a file-backed database (``database.streaming``) decoded and
transformed one stimulus at a time in worker processes, assembled in shared memory.

What it guarantees:

* **Same batches whatever the worker count.** The order is drawn in the main process; every
  stimulus gets its own random generator, seeded from (a number drawn from a *copy* of the
  stream's generator, the stimulus's distance to the end of the stream), and is written into its
  own row of the batch. 0 workers (in-process), 1 or 8 give the same bits. Using a copy leaves
  the run's generator untouched, and counting positions from the end makes a stream restarted on
  the tail of its order (``-l`` resuming mid-epoch on ``order[done:]``) draw the same
  augmentations as the uninterrupted one.
* **Bounded memory.** The file list is read up front (``image_files.FileList``); pixels exist
  only in the ``Prefetch`` batch slots (one anonymous shared mapping made before the workers are
  forked) and in the batch handed to the trainer.
* **Clean shutdown.** Workers ignore Ctrl-C and SIGTERM (the main process saves its state, then
  stops them: ``close``), die with their parent
  (``PR_SET_PDEATHSIG`` and a parent check every second), and are stopped at exit, when the
  command ends (``close_all``), or when the provider's configuration changes. A worker's error
  (a file that cannot be decoded, a transformation that fails) comes back as one ``DataError``
  naming the file; a worker that dies is reported with its exit code.
* ``SkipBadImages`` (``--skip-bad-images``): unreadable images are left out of their batch and
  counted (``provider.skipped``) instead of stopping the run.

Workers are forked (Linux); where ``fork`` is unavailable the loader runs in-process.
"""
import atexit
import mmap
import multiprocessing
import os
import queue
import signal
import time
import weakref

import numpy

from ..errors import DataError, N2D2Error
from .transformation import hwc

DEFAULT_PREFETCH = 2
MAX_CHUNK = 32
POLL_SECONDS = 0.5
CLOSE_SECONDS = 1.0
_POOLS = weakref.WeakSet()


def default_workers():
    """Cores available to this process, minus one for the trainer."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(0, cores - 1)


def fork_available():
    return "fork" in multiprocessing.get_all_start_methods()


# -- one stimulus ------------------------------------------------------------------------------
def transform_one(sp, name, image, rng):
    """Stimulus ``image`` through set ``name``'s chain (static, on-the-fly, channel pipelines):
    (H, W, C) before the implicit normalisation."""
    image = hwc(image)
    for transformation in sp.static + sp.on_the_fly:
        if transformation.applies(name):
            image = hwc(transformation.apply(image, rng))
    if sp.channels:
        image = sp.build_channels(name, image[None], rng)[0]
    return image


def sample_tensor(sp, name, stimulus, base, key):
    """(C, H, W) float32 of one stimulus, with its own generator ``[base, key]``."""
    rng = numpy.random.default_rng([base, key])
    image = transform_one(sp, name, sp.database.image(stimulus), rng)
    return sp.to_tensor(sp.check_size(image[None]))[0]


def transform_positions(sp, name, positions, rng, normalise=True):
    """The in-memory path's ``transform`` for a streaming database (statistics, ``stimulus``):
    stimuli at ``positions`` of set ``name`` with ``rng`` used in turn."""
    ids = sp.database.partition(name)[numpy.asarray(positions, numpy.int64)]
    images = [transform_one(sp, name, sp.database.image(i), rng) for i in ids]
    if not normalise:
        return images
    c, h, w = sp.size
    if not images:
        return numpy.zeros((0, c, h, w), numpy.float32)
    return sp.to_tensor(sp.check_size(images))


def stream_seed(rng):
    """A number drawn from a copy of ``rng`` (``rng`` itself does not move)."""
    copy = type(rng.bit_generator)()
    copy.state = rng.bit_generator.state
    return int(numpy.random.Generator(copy).integers(0, 2 ** 63))


# -- the stream --------------------------------------------------------------------------------
def stream(sp, name, order, rng):
    """``(x, labels, ids)`` batches of set ``name`` in ``order`` (positions in the set)."""
    order = numpy.asarray(order, numpy.int64)
    base = stream_seed(rng)
    workers = sp.workers if sp.workers is not None else default_workers()
    if workers > 0 and not fork_available():
        workers = 0
    if workers == 0 or len(order) == 0:
        return in_process(sp, name, order, base)
    return pool_for(sp, workers).batches(name, order, base)


def batch_positions(sp, order):
    """``[(positions, keys)]`` of the batches read from ``order``: positions in the set and
    each stimulus's key (its distance to the end of the stream); a data-parallel replica
    (``sp.shard``) reads its part of every batch, with the keys the stimuli have in the whole."""
    b, total = sp.batch_size, len(order)
    batches = []
    for start in range(0, total, b):
        positions = order[start:start + b]
        keys = total - start - numpy.arange(len(positions))
        if sp.shard is not None:
            part = sp.shard.part(len(positions))
            positions, keys = positions[part], keys[part]
        batches.append((positions, keys))
    return batches


def batch_rows(sp):
    """The most stimuli one batch of this process holds."""
    return sp.batch_size if sp.shard is None else sp.shard.rows(sp.batch_size)


def in_process(sp, name, order, base):
    ids_of_set = sp.database.partition(name)
    c, h, w = sp.size
    for positions, keys in batch_positions(sp, order):
        ids = ids_of_set[positions]
        rows, kept = [], []
        for k, (i, key) in enumerate(zip(ids, keys)):
            try:
                rows.append(sample_tensor(sp, name, i, base, key))
                kept.append(k)
            except N2D2Error as exc:
                kind, message, path, line = describe_failure(sp, i, exc)
                if kind != "data" or not sp.skip_bad_images:
                    raise DataError(message, file=path, line=line) from None
                sp.skipped.setdefault(path, message)
        if kept:
            yield numpy.stack(rows), sp.database.labels[ids[kept]], ids[kept]
        elif sp.shard is not None:      # a replica's empty part: the batch still counts
            yield numpy.zeros((0, c, h, w), numpy.float32), ids[:0], ids[:0]


# -- worker processes --------------------------------------------------------------------------
def _die_with_parent():
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)      # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass                              # the parent check below still applies


def _worker(sp, tasks, results, buffer, shape, parent):
    # Ctrl-C and a SIGTERM sent to the whole process group are the main process's to handle
    # (it saves its state, then stops us); PR_SET_PDEATHSIG covers a main process killed
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()
    slots = numpy.frombuffer(buffer, numpy.float32).reshape(shape)
    while True:
        try:
            task = tasks.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:
                return
            continue
        if task is None:
            return
        generation, slot, name, first, ids, keys, base, skip = task
        failures = []
        for row, (stimulus, key) in enumerate(zip(ids, keys), first):
            try:
                slots[slot, row] = sample_tensor(sp, name, stimulus, base, key)
            except BaseException as exc:      # reported, never raised here: the main decides
                failures.append((row,) + describe_failure(sp, stimulus, exc))
                if not (skip and failures[-1][1] == "data"):
                    break
        results.put((generation, slot, failures))


def describe_failure(sp, stimulus, exc):
    """("data" | "other", message, file, line) of an exception raised for one stimulus."""
    file_name = getattr(sp.database, "file_name", None)
    path = file_name(stimulus) if file_name is not None else f"stimulus {int(stimulus)}"
    if isinstance(exc, DataError) and exc.section is None and exc.file is not None:
        return ("data", exc.message, str(exc.file), exc.line)
    if isinstance(exc, N2D2Error):
        return ("other", f"{exc} (while reading {path})", None, None)
    return ("other", f"{type(exc).__name__}: {exc}", path, None)


class WorkerPool:
    """``workers`` forked processes sharing ``slots`` batch buffers with the main process."""

    def __init__(self, sp, workers, slots):
        self.sp = sp
        c, h, w = sp.size
        self.shape = (slots, batch_rows(sp), c, h, w)
        self.signature = signature(sp, workers)
        self.buffer = mmap.mmap(-1, max(1, int(numpy.prod(self.shape)) * 4))
        self.slots = numpy.frombuffer(self.buffer, numpy.float32).reshape(self.shape)
        context = multiprocessing.get_context("fork")
        self.tasks, self.results = context.Queue(), context.Queue()
        self.processes = [context.Process(target=_worker, daemon=True, name=f"n2d2py-loader-{k}",
                                          args=(sp, self.tasks, self.results, self.buffer,
                                                self.shape, os.getpid()))
                          for k in range(workers)]
        # OpenCV's thread pool must not cross the fork: a child calling into a pool whose threads
        # stayed behind waits forever on its locks (seen as a hung worker). One thread while
        # forking: the workers keep one, this process gets its own count back.
        import cv2
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            for process in self.processes:
                process.start()
        finally:
            cv2.setNumThreads(threads)
        self.inflight = {}             # generation -> chunks submitted, not reported yet
        self.generation = 0
        self.closed = False
        _POOLS.add(self)
        # a pool dropped without close (its provider garbage-collected) must not leave its
        # workers behind: they ignore SIGTERM, so multiprocessing's exit, which terminates
        # daemonic children and then joins them, would wait for them forever
        weakref.finalize(self, _kill, list(self.processes))
        # and close_all must run before multiprocessing's own exit handler, which is registered
        # when multiprocessing.util is first imported (possibly by this very pool): exit
        # handlers run last registered first
        atexit.unregister(close_all)
        atexit.register(close_all)

    # -- messages ----------------------------------------------------------------------------
    def receive(self):
        """The next worker report; a DataError as soon as a worker is found dead (its chunk
        would never come)."""
        while True:
            self.check_workers()
            try:
                generation, slot, failures = self.results.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            self.inflight[generation] -= 1
            return generation, slot, failures

    def check_workers(self):
        for process in self.processes:
            if not process.is_alive():
                code = process.exitcode
                self.close()
                raise DataError(f"a data loader worker died (exit code {code}"
                                f"{'; out of memory?' if code == -signal.SIGKILL else ''})")

    def drain(self):
        """Wait for every chunk of earlier streams: their rows must not be overwritten late."""
        while any(self.inflight.values()):
            self.receive()
        self.inflight.clear()

    # -- one stream --------------------------------------------------------------------------
    def batches(self, name, order, base):
        self.drain()
        self.generation += 1
        generation = self.generation
        self.inflight[generation] = 0
        return self._batches(name, order, base, generation)

    def _batches(self, name, order, base, generation):
        sp = self.sp
        ids_of_set, labels = sp.database.partition(name), sp.database.labels
        batches = batch_positions(sp, order)
        free = list(range(self.shape[0]))[::-1]
        chunk = max(1, min(MAX_CHUNK, -(-self.shape[1] // (2 * len(self.processes)))))
        pending = {}                  # batch index -> [slot, chunks left, failures]
        submitted = 0
        for k in range(len(batches)):
            if generation != self.generation or self.closed:
                raise RuntimeError("this batch iterator was superseded by a newer one on the "
                                   "same StimuliProvider (or its workers were stopped)")
            while free and submitted < len(batches):
                slot = free.pop()
                positions, keys = batches[submitted]
                ids = ids_of_set[positions]
                parts = range(0, len(positions), chunk)
                for first in parts:
                    self.tasks.put((generation, slot, name, first, ids[first:first + chunk],
                                    keys[first:first + chunk], base, sp.skip_bad_images))
                self.inflight[generation] += len(parts)
                pending[submitted] = [slot, len(parts), []]
                submitted += 1
            while pending[k][1]:
                self.collect(generation, pending)
            slot, _, failures = pending.pop(k)
            ids = ids_of_set[batches[k][0]]
            keep = self.check(sp, failures, len(ids))
            rows = self.slots[slot, :len(ids)]
            x = rows.copy() if keep is None else rows[keep]
            free.append(slot)
            if keep is not None:
                ids = ids[keep]
                if not len(ids) and sp.shard is None:
                    continue          # every image of the batch skipped
            yield x, labels[ids], ids

    def collect(self, generation, pending):
        got, slot, failures = self.receive()
        if got != generation:
            return
        for entry in pending.values():
            if entry[0] == slot and entry[1]:
                entry[1] -= 1
                entry[2].extend(failures)
                return

    @staticmethod
    def check(sp, failures, count):
        """None when every row is good, else the mask of the rows kept (skipped images); an
        error that is not skipped is raised as one DataError."""
        if not failures:
            return None
        for _, kind, message, path, line in sorted(failures, key=lambda f: f[0]):
            if kind != "data" or not sp.skip_bad_images:
                raise DataError(message, file=path, line=line)
        keep = numpy.ones(count, bool)
        for row, _, message, path, _ in failures:
            keep[row] = False
            sp.skipped.setdefault(path, message)
        return keep

    # -- shutdown ----------------------------------------------------------------------------
    def close(self):
        """Stop the workers: work still queued is dropped, each gets a stop message, and one
        that has not exited within ``CLOSE_SECONDS`` (busy on a large image) is killed: a
        worker holds nothing that needs cleaning up (anonymous shared memory, no files)."""
        if self.closed:
            return
        self.closed = True
        try:
            while True:
                self.tasks.get_nowait()
        except (queue.Empty, OSError, ValueError, EOFError):
            pass
        for _ in self.processes:
            try:
                self.tasks.put(None)
            except (OSError, ValueError):
                break
        deadline = time.monotonic() + CLOSE_SECONDS
        for process in self.processes:
            process.join(timeout=max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        for q in (self.tasks, self.results):
            q.cancel_join_thread()
            q.close()


def signature(sp, workers):
    """What the forked workers copied: a change means new workers."""
    return (id(sp), workers, batch_rows(sp), tuple(sp.size), sp.prefetch,
            tuple(map(id, sp.static)), tuple(map(id, sp.on_the_fly)), len(sp.channels))


def pool_for(sp, workers):
    pool = getattr(sp, "_pool", None)
    if pool is not None and (pool.closed or pool.signature != signature(sp, workers)):
        pool.close()
        pool = None
    if pool is None:
        pool = WorkerPool(sp, workers, max(1, sp.prefetch or DEFAULT_PREFETCH))
        sp._pool = pool
    return pool


def close_all():
    """Stop every worker pool of this process (end of a command, interpreter exit)."""
    for pool in list(_POOLS):
        pool.close()
    _kill([p for p in multiprocessing.active_children() if p.name.startswith("n2d2py-loader-")])


def _kill(processes):
    """Kill and reap loader workers that are still running (they hold nothing to clean up)."""
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join()


atexit.register(close_all)
