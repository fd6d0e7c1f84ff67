"""Ctrl-C and SIGTERM during learning: held back around a step or a folder swap.

The command installs ``raise_terminated`` for SIGTERM, so every place that saves on Ctrl-C
(``KeyboardInterrupt``) saves on SIGTERM too. ``deferred_signals()`` holds both until the block
ends, so a training step (``learn.py``) or a weight-folder swap (``folders.py``) is never cut in
half.
"""
import contextlib
import signal
import threading


class Terminated(KeyboardInterrupt):
    """SIGTERM turned into an exception (the command installs ``raise_terminated``); a
    KeyboardInterrupt, so every place that saves on Ctrl-C saves on SIGTERM too."""


def raise_terminated(signum=None, frame=None):
    raise Terminated()


_deferring = [0]   # depth of nested deferred_signals() blocks (main thread)
_caught = [()]     # the signals the outermost block holds (``held()``)


def _on_main_thread():
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _nested():
    """A block inside another deferred block (or off the main thread): the outer one decides."""
    _deferring[0] += _on_main_thread()
    try:
        yield
    finally:
        if _on_main_thread():
            _deferring[0] -= 1


def _hold(caught):
    """Install handlers that record SIGINT/SIGTERM in ``caught``; returns the previous ones."""
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        if callable(signal.getsignal(signum)):   # ignored or default (SIGTERM: die) stay so
            previous[signum] = signal.signal(signum, lambda s, f: caught.append(s))
    return previous


def _restore(previous):
    _deferring[0] = 0
    _caught[0] = ()
    for signum, handler in previous.items():
        signal.signal(signum, handler)


@contextlib.contextmanager
def deferred_signals():
    """Hold Ctrl-C (and SIGTERM when a Python handler is installed for it) until the block ends:
    a training step or a folder swap is never cut in half. Nested blocks defer to the outermost
    one. On exit, a held SIGTERM raises ``Terminated``, a held Ctrl-C ``KeyboardInterrupt``."""
    if not _on_main_thread() or _deferring[0]:
        with _nested():
            yield
        return
    caught = []
    previous = _hold(caught)
    _deferring[0] = 1
    _caught[0] = caught
    try:
        yield
    except BaseException:
        _restore(previous)
        raise
    _restore(previous)
    if signal.SIGTERM in caught:
        raise Terminated()
    if caught:
        raise KeyboardInterrupt


def held():
    """The signals (SIGINT, SIGTERM) caught and held so far by the enclosing
    ``deferred_signals()`` block: data-parallel replicas share them at every step, so that all
    of them stop after the same one (``distributed/replicas.py``)."""
    return tuple(_caught[0])


deferred_sigint = deferred_signals  # the older name
