"""CPU threads: the batch split across cores by n2d2py itself, BLAS kept to one thread each.

OpenBLAS threads every GEMM on its own; ours are small (cache-sized im2col chunks of a few
batch items), so its threads spend their time waking and waiting: on a 2-core machine a
ResNet-20 step took 5x longer with OpenBLAS's 2 threads than with one (tools/bench/README.md).
Instead the convolution kernels (``functions/conv.py``, ``_depthwise.py``) and the element-wise
passes that dominate the rest of a step give each thread a contiguous part of the batch
(``split``, ``elementwise``), and BLAS runs single-threaded inside each (set once,
process-wide, through threadpoolctl, the first time a kernel runs on NumPy). NumPy releases
the GIL in its copies, ufuncs and BLAS calls, so Python threads suffice.

How many threads: ``N2D2PY_THREADS``, else ``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS``
(what users already set to pin BLAS), else the CPUs this process may run on. One thread: the
kernels run inline, exactly as without this module. The work is split by batch ranges fixed by
the thread count, and per-thread partial sums (weight gradients) are added in thread order, so
results are reproducible for a given thread count (not across thread counts: float sums
in another order). CuPy arrays never go through the pool.
"""
import os
import threading

__all__ = ["threads", "set_threads", "in_worker", "split", "per_thread", "elementwise", "added",
           "sum_of"]

#: below this many elements per thread an element-wise pass is not worth a thread's wake-up
MIN_ELEMENTS_PER_THREAD = 1 << 17
#: elements per chunk of ``elementwise``: a few arrays of 256 KiB stay in a core's L2
CHUNK_ELEMENTS = 1 << 16

_lock = threading.Lock()
_state = {"threads": None, "pool": None, "blas_limited": False, "pid": None}
_local = threading.local()  # marks the pool's worker threads (no nested splitting)


def _from_environment():
    for name in ("N2D2PY_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def threads():
    """The number of threads ``split`` uses (read once from the environment)."""
    if _state["threads"] is None:
        _state["threads"] = max(1, _from_environment())
    return _state["threads"]


def set_threads(n):
    """Use ``n`` threads from now on (the environment's count otherwise; tests, benchmarks)."""
    with _lock:
        pool, _state["pool"] = _state["pool"], None
        _state["threads"] = max(1, int(n))
    if pool is not None:
        pool.shutdown(wait=True)


class _Worker:
    """One extra thread of ``split``, handed one range at a time through two plain locks.

    A ``concurrent.futures`` pool (queue, future, condition) took ~50 µs from the hand-over to
    the range's start on the 2-core Xeon of tools/bench/README.md, two locks ~35 µs; a
    ResNet-20 step splits ~150 times."""

    def __init__(self):
        self._go, self._done = threading.Lock(), threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._task = self._result = self._error = None
        self._thread = threading.Thread(target=self._loop, name="n2d2py-split", daemon=True)
        self._thread.start()

    def _loop(self):
        _local.worker = True
        while True:
            self._go.acquire()
            task, self._task = self._task, None
            if task is None:   # stop
                self._done.release()
                return
            body, lo, hi = task
            try:
                self._result, self._error = body(lo, hi), None
            except BaseException as e:   # handed to the caller, raised there
                self._result, self._error = None, e
            self._done.release()

    def start(self, body, lo, hi):
        self._task = (body, lo, hi)
        self._go.release()

    def wait(self):
        """(result, exception) of the range handed over by ``start``, once it has ended."""
        self._done.acquire()
        outcome = self._result, self._error
        self._result = self._error = None
        return outcome

    def stop(self):
        self._task = None
        self._go.release()
        self._done.acquire()
        self._thread.join()


class _Pool:
    """``threads() - 1`` workers; one caller at a time hands them ranges (``busy``)."""

    def __init__(self, count):
        self.workers = [_Worker() for _ in range(count)]
        self.busy = threading.Lock()

    def shutdown(self, wait=True):
        with self.busy:
            for w in self.workers:
                w.stop()


def _pool():
    with _lock:
        if _state["pid"] != os.getpid():   # a forked child has none of its parent's threads
            _state["pool"], _state["pid"] = None, os.getpid()
        if _state["pool"] is None:
            _state["pool"] = _Pool(threads() - 1)
        return _state["pool"]


def in_worker():
    """Whether the calling thread is running one range of a ``split`` (no nested splitting)."""
    return getattr(_local, "worker", False)


def _limit_blas():
    """One BLAS thread per calling thread (each of ours runs its own GEMMs)."""
    if _state["blas_limited"]:
        return
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1, user_api="blas")
    except ImportError:  # BLAS keeps its own threads: slower, still correct
        pass
    _state["blas_limited"] = True


def split(xp, n, body, min_items=2):
    """Run ``body(start, stop)`` over ``[0, n)`` cut into one contiguous range per thread;
    returns the bodies' results in range order. Inline (one call ``body(0, n)``) with one
    thread, on CuPy, inside a worker, or when ``n`` is too small to share."""
    if xp.__name__ != "numpy" or getattr(_local, "worker", False):
        return [body(0, n)]
    if not _state["blas_limited"]:
        _limit_blas()
    count = min(threads(), n // max(1, min_items))
    if count <= 1:
        return [body(0, n)]
    bounds = [n * i // count for i in range(count + 1)]
    pool = _pool()
    collected = 0   # workers whose range has ended and been collected
    with pool.busy:   # another caller's split waits for this one's workers
        workers = pool.workers[:count - 1]
        try:
            for i, w in enumerate(workers, 1):
                w.start(body, bounds[i], bounds[i + 1])
            _local.worker = True   # the caller runs the first range; no nested split meanwhile
            try:
                first = body(bounds[0], bounds[1])
            finally:
                _local.worker = False
                outcomes = []
                for w in workers:   # never leave a range running past this call
                    outcomes.append(w.wait())
                    collected += 1
            errors = [e for _, e in outcomes if e is not None]
            if errors:
                raise errors[0]
            rest = [r for r, _ in outcomes]
        finally:
            if collected < len(workers):   # a wait interrupted (Ctrl-C): a fresh pool next time
                with _lock:
                    if _state["pool"] is pool:
                        _state["pool"] = None
    return [first] + rest


def per_thread(a):
    """``split``'s ``min_items`` for an element-wise pass over ``a`` (batch on axis 0)."""
    return max(1, MIN_ELEMENTS_PER_THREAD // max(1, a.size // max(1, len(a))))


def elementwise(xp, a, body, chunk_elements=None):
    """``body(lo, hi)`` over batch ranges of ``a`` for a chain of element-wise passes: split
    across threads, and within a thread in chunks of about ``chunk_elements`` so that every
    pass of the chain reads what the previous one wrote from cache (element-wise: the same
    bits as whole-array passes)."""
    if xp.__name__ != "numpy":   # a GPU wants one launch per pass, not cache-sized ones
        return body(0, len(a))
    rows = max(1, (chunk_elements or CHUNK_ELEMENTS) // max(1, a.size // max(1, len(a))))

    def chunks(lo, hi):
        for start in range(lo, hi, rows):
            body(start, min(hi, start + rows))
    split(xp, len(a), chunks, per_thread(a))


def added(parts):
    """The sum of per-thread partial results, added in thread order (reproducible)."""
    total = parts[0]
    for p in parts[1:]:
        total += p
    return total


def sum_of(xp, a, b):
    """``a + b`` as a new array: batch ranges across threads when both have the same shape
    and dtype (residual sums, gradients of a variable used twice), else NumPy's ``+``."""
    if a.shape != b.shape or a.dtype != b.dtype or not a.ndim or xp.__name__ != "numpy":
        return a + b
    y = xp.empty_like(a)
    split(xp, len(a), lambda lo, hi: xp.add(a[lo:hi], b[lo:hi], out=y[lo:hi]), per_thread(a))
    return y
