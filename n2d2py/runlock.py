"""One run per run folder: the lock a command takes on its working directory.

A learning run writes ``seed.dat``, ``weights/``, ``net_state/``... in the current directory, and
swaps whole folders atomically (``folders.py``). Two runs started in the same directory would
swap each other's folders away and lose the work, so every command that writes there holds an
exclusive lock on ``.n2d2py.lock`` for its whole life; a second one stops at once with one line
naming the run that holds it (PID, host, start time, command), read from ``.n2d2py.lock.json``.

The lock is ``filelock.FileLock``: an OS lock (``flock`` on POSIX, ``msvcrt`` on Windows) that
the kernel releases when the process dies, SIGKILL included, so a killed run never leaves a
stale lock behind (its ``.json`` is simply overwritten by the next run).
"""
import datetime
import json
import os
import socket
import sys

from .errors import N2D2Error

LOCK_FILE = ".n2d2py.lock"
OWNER_FILE = ".n2d2py.lock.json"


class RunFolderBusy(N2D2Error):
    """Another n2d2py run holds the lock of this run folder."""


def _describe(owner_path):
    try:
        with open(owner_path, encoding="utf-8") as handle:
            owner = json.loads(handle.read(4096))
        return (f"run by PID {int(owner['pid'])} on {str(owner['host'])[:100]}, started "
                f"{str(owner['start'])[:40]} ({str(owner['command'])[:200]})")
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return "by another n2d2py run (its details are not readable)"


class RunLock:
    """``with RunLock(folder):`` the block runs holding the folder's lock, else RunFolderBusy."""

    def __init__(self, folder="."):
        self.folder = os.fspath(folder)
        self.path = os.path.join(self.folder, LOCK_FILE)
        self.owner_path = os.path.join(self.folder, OWNER_FILE)
        self.lock = None

    def __enter__(self):
        from filelock import FileLock, Timeout
        lock = FileLock(self.path, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise RunFolderBusy(f"this folder is in use: {_describe(self.owner_path)}; wait for "
                                f"it to end, or run in another folder", file=self.path) from None
        except OSError as exc:
            raise N2D2Error(f"cannot lock the run folder ({exc.strerror or exc})",
                            file=self.path) from None
        self.lock = lock
        owner = {"pid": os.getpid(), "host": socket.gethostname(),
                 "start": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                 "command": " ".join(["n2d2py", *sys.argv[1:]])}
        try:
            with open(self.owner_path, "w", encoding="utf-8") as handle:
                json.dump(owner, handle)
        except OSError:
            pass              # the lock holds without its description
        return self

    def __exit__(self, *exc):
        try:
            os.remove(self.owner_path)
        except OSError:
            pass
        self.lock.release()
        self.lock = None
        return False


__all__ = ["RunLock", "RunFolderBusy", "LOCK_FILE", "OWNER_FILE"]
