"""Shared machinery of the fuzz tests (imported as ``fuzzing``; ``conftest.py`` prints the counts): case budgets, per-case time bound, outcome counting.

Property checked by every fuzz test: an input ends in a working result or in an
``n2d2py.errors.N2D2Error`` whose text names a place; never another exception type, never a hang.

Budget: ``N2D2PY_FUZZ_EXAMPLES`` (default ``DEFAULT_EXAMPLES``) is the number of INI mutations;
each other file kind runs a tenth of it (at least ``MIN_EXAMPLES``). The long run is
``N2D2PY_FUZZ_EXAMPLES=10000 python -m pytest tests/fuzz`` (``tools/fuzz_long.sh``): 10 000 INI
mutations and 1 000 cases of every other kind. CI derandomizes (the same cases every run); the long
run draws new ones, and a failure prints the ``@reproduce_failure`` blob that replays it. The count of cases each test ran, and how
many ended in an N2D2Error, is printed at the end of the session, with the slowest case of each
stage, the files written outside their run folder (``watched_case``; must be 0) and the
process's peak memory (``ru_maxrss``).
"""
import collections
import contextlib
import os
import pathlib
import resource
import signal
import sys
import tempfile
import time
import traceback

from hypothesis import HealthCheck, settings

from n2d2py.errors import N2D2Error

DEFAULT_EXAMPLES = 600
MIN_EXAMPLES = 100
CASE_SECONDS = 20            # hard per-case bound (SIGALRM): beyond it the case is a hang
DEADLINE_MS = 10_000         # hypothesis deadline: a slow case is reported with its input

EXAMPLES = int(os.environ.get("N2D2PY_FUZZ_EXAMPLES", DEFAULT_EXAMPLES))
LONG_RUN = EXAMPLES >= 5000

#: {stage: Counter(outcome -> count)} and {kind: cases}, printed by pytest_terminal_summary
OUTCOMES = collections.defaultdict(collections.Counter)
CASES = collections.Counter()
SLOWEST = {}                 # stage -> seconds of its slowest case
SLOWEST_REFUSAL = {}         # stage -> seconds of its slowest case that ended in an N2D2Error
ESCAPED = collections.Counter()   # kind -> files written outside the run folder


def count_case(kind):
    """Count one generated input of ``kind`` (one hypothesis example)."""
    CASES[kind] += 1


def budget(share=1.0, minimum=MIN_EXAMPLES):
    """Hypothesis settings for ``share`` of the INI budget (other kinds use share=0.1), at
    least ``minimum`` cases."""
    count = max(minimum, int(EXAMPLES * share))
    return settings(max_examples=count, deadline=DEADLINE_MS, database=None,
                    derandomize=not LONG_RUN,
                    suppress_health_check=list(HealthCheck), print_blob=True)


class Hang(Exception):
    """A case ran longer than ``CASE_SECONDS`` (not an N2D2Error: the test fails)."""


@contextlib.contextmanager
def time_limit(seconds=CASE_SECONDS):
    """Raise ``Hang`` in the block after ``seconds`` (main thread, POSIX only)."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def alarm(*_):
        raise Hang(f"case took more than {seconds} s")
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


#: Bugs in other modules found by these tests, reproduced in test_found_bugs.py (xfail strict):
#: (exception class, innermost n2d2py file). Such a case is counted as "known bug", not failed,
#: so CI stays usable until the owner fixes it; delete the entry with the fix.
KNOWN_BUGS = set()   # the onnx/runner.py and onnx/importer.py ones are fixed


def known_bug(exc):
    """The KNOWN_BUGS entry ``exc`` matches, or None."""
    frames = [f.filename.replace("\\", "/") for f in traceback.extract_tb(exc.__traceback__)]
    ours = [f[f.rindex("n2d2py/"):] for f in frames if "/n2d2py/" in f and "/tests/" not in f]
    key = (type(exc).__name__, ours[-1] if ours else "")
    return key if key in KNOWN_BUGS else None


def outcome(test, function, *args, **kwargs):
    """Run ``function``; return its result, or the N2D2Error it raised (after checking that it
    names a place). Any other exception propagates and fails the case, unless it is one of
    ``KNOWN_BUGS`` (counted, and returned). Counts the outcome."""
    started = time.perf_counter()
    try:
        with time_limit():
            result = function(*args, **kwargs)
    except N2D2Error as exc:
        _timed(test, started)
        SLOWEST_REFUSAL[test] = max(SLOWEST_REFUSAL.get(test, 0.0), time.perf_counter() - started)
        OUTCOMES[test]["N2D2Error"] += 1
        assert str(exc).strip(), f"{type(exc).__name__} with an empty message"
        assert exc.where or _names_node(exc), \
            f"{type(exc).__name__} names no place (file/section/key/node): {exc}"
        return exc
    except Hang:
        raise
    except Exception as exc:
        if known_bug(exc) is None:
            raise
        OUTCOMES[test][f"known bug {known_bug(exc)}"] += 1
        return exc
    _timed(test, started)
    OUTCOMES[test]["ok"] += 1
    return result


def _timed(test, started):
    SLOWEST[test] = max(SLOWEST.get(test, 0.0), time.perf_counter() - started)


#: folders between the watched root and the run folder: a name with up to this many ``..``
#: still lands inside the watched root, where the escape is seen
RUN_DEPTH = 8


@contextlib.contextmanager
def watched_case(kind):
    """A fresh temporary root for one case: yields ``(root, run)``, ``run`` being the folder
    the case may write in, ``RUN_DEPTH`` levels below ``root``, and the working directory
    during the block. Files the case creates or changes under ``root`` but outside ``run``
    are counted in ``ESCAPED`` and fail the case (check it after inputs are made under
    ``root/inputs``: ``ready()``)."""
    from hostile import snapshot
    with tempfile.TemporaryDirectory(prefix="n2d2py-watch-") as tmp:
        root = pathlib.Path(tmp)
        run = root.joinpath(*[f"d{k}" for k in range(RUN_DEPTH - 1)], "run")
        run.mkdir(parents=True)
        (root / "inputs").mkdir()
        cwd = os.getcwd()
        state = {}

        def ready():
            state["before"] = snapshot(root)
        os.chdir(run)
        try:
            yield root, run, ready
        finally:
            os.chdir(cwd)
            before = state.get("before", {})
            prefix = str(run.relative_to(root)) + "/"
            escaped = [p for p, info in snapshot(root).items()
                       if before.get(p) != info and not p.startswith(prefix)
                       and not p.startswith("inputs/")]
            ESCAPED[kind] += len(escaped)
            assert not escaped, f"{kind}: written outside the run folder: {escaped[:5]}"


def _names_node(exc):
    """An ONNX error may name its place in its text: the node (``node 'conv1' (Conv): ...``),
    tensor or initializer, or the model file."""
    text = str(exc)
    return type(exc).__name__ == "OnnxError" and (
        text.startswith(("node ", "initializer ", "tensor ")) or ".onnx" in text)


def pytest_terminal_summary(terminalreporter):
    if not CASES:
        return
    terminalreporter.section("fuzz cases")
    for kind, cases in sorted(CASES.items()):
        terminalreporter.write_line(f"{kind}: {cases} cases")
    terminalreporter.write_line(f"total: {sum(CASES.values())} fuzz cases "
                                f"(N2D2PY_FUZZ_EXAMPLES={EXAMPLES}); outcomes per stage:")
    for stage, counter in sorted(OUTCOMES.items()):
        detail = ", ".join(f"{k} {v}" for k, v in sorted(counter.items()))
        slowest = f"; slowest {SLOWEST[stage]:.2f} s" if stage in SLOWEST else ""
        if stage in SLOWEST_REFUSAL:
            slowest += f" (slowest refusal {SLOWEST_REFUSAL[stage]:.2f} s)"
        terminalreporter.write_line(f"  {stage}: {detail}{slowest}")
    if ESCAPED or any(k.startswith("hardening") for k in CASES):
        terminalreporter.write_line(f"files written outside the run folder (watched roots): "
                                    f"{sum(ESCAPED.values())}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024     # bytes on macOS, KiB on Linux
    terminalreporter.write_line(f"peak memory of the fuzzing process (ru_maxrss): "
                                f"{peak * scale / 2 ** 20:.0f} MiB")
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if children:
        terminalreporter.write_line(f"peak memory of its largest child process (n2d2py commands "
                                    f"it started): {children * scale / 2 ** 20:.0f} MiB")

