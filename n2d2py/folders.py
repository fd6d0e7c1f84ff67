"""Atomic writing of weight folders and result files: a reader, a crash or a kill never sees
half of one.

``write_folder_atomically`` is the one way weight folders (``weights/``, ``net_state/``...) are
written: a temporary ``<folder>.tmp-<pid>``, fsync, then two renames with signals held back
(``signals.deferred_signals``). ``recover_folder`` undoes what a kill between the two renames
left. ``output_atomically`` / ``replace_file_atomically`` do the same for one file.
"""
import os
import shutil

from .errors import N2D2Error
from .signals import deferred_signals


def _fsync_tree(folder):
    for root, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(root)


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories
    finally:
        os.close(fd)


def write_folder_atomically(folder, write):
    """Call ``write(tmp)`` on a fresh ``folder + ".tmp-<pid>"``, fsync it, then swap it in.

    Any exception (a crash, Ctrl-C) during ``write`` removes the temporary folder and leaves
    ``folder`` as it was. The swap itself (two renames: a folder cannot replace a non-empty
    one in a single rename) runs with Ctrl-C held back.
    """
    folder = os.path.normpath(os.fspath(folder))
    tmp, old = f"{folder}.tmp-{os.getpid()}", f"{folder}.old-{os.getpid()}"
    recover_folder(folder, clean=True)
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise N2D2Error("exists and is not a folder: cannot write the folder here", file=folder)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        os.makedirs(tmp)
        write(tmp)
        _fsync_tree(tmp)
        with deferred_signals():   # a Ctrl-C held here is raised after the old copy is removed:
            if os.path.isdir(folder):  # left behind, it would block this process's next swap
                os.replace(folder, old)
            os.replace(tmp, folder)
            _fsync_dir(os.path.dirname(os.path.abspath(folder)))
            shutil.rmtree(old, ignore_errors=True)
    except N2D2Error as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.file and os.fspath(exc.file).startswith(tmp):   # name the file as it will be
            exc.file = folder + os.fspath(exc.file)[len(tmp):]
            exc.args = (str(exc),)
        raise
    except OSError as exc:         # disk full, permissions: name the file being written
        shutil.rmtree(tmp, ignore_errors=True)
        name = os.fspath(exc.filename) if exc.filename else folder
        if name.startswith(tmp):
            name = folder + name[len(tmp):]
        raise N2D2Error(f"cannot write ({exc.strerror or exc})", file=name) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _stale_folders(parent, name, entries):
    """``[(".old-" | ".tmp-", path)]`` left beside ``name`` by processes that no longer run."""
    stale = []
    for entry in entries:
        for kind in (".old-", ".tmp-"):
            head, _, pid = entry.rpartition(kind)
            if head == name and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                stale.append((kind, os.path.join(parent, entry)))
    return stale


def recover_folder(folder, clean=False):
    """Undo what a kill (SIGKILL, power loss) inside ``write_folder_atomically`` left behind.

    Killed between its two renames, ``folder`` is missing and its previous, complete version is
    ``folder.old-<pid>``: rename it back. With ``clean``, the ``.tmp-<pid>``/``.old-<pid>``
    folders of processes that no longer run are removed. Returns True if ``folder`` exists."""
    folder = os.path.normpath(os.fspath(folder))
    parent, name = os.path.split(folder)
    try:
        entries = os.listdir(parent or ".")
    except OSError:
        return os.path.isdir(folder)
    stale = _stale_folders(parent, name, entries)
    if not os.path.isdir(folder):
        olds = sorted((p for kind, p in stale if kind == ".old-"), key=os.path.getmtime)
        if olds:
            os.replace(olds[-1], folder)
            stale = [(k, p) for k, p in stale if p != olds[-1]]
    if clean:
        for _, path in stale:
            shutil.rmtree(path, ignore_errors=True)
    return os.path.isdir(folder)


def _tmp_beside(path):
    folder, name = os.path.split(os.fspath(path))
    return os.path.join(folder, f".tmp-{os.getpid()}-{name}")


def output_atomically(path, write):
    """``write(tmp)`` to a temporary path beside ``path`` (same extension), then rename it over
    ``path``: a reader (or a kill) never sees half a file."""
    tmp = _tmp_beside(path)
    try:
        write(tmp)
        if os.path.exists(tmp):
            os.replace(tmp, path)
    except OSError as exc:       # disk full, a folder where the file goes: name the file
        raise N2D2Error(f"cannot write ({exc.strerror or exc})", file=path) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def replace_file_atomically(path, write, mode="w"):
    """``write(f)`` into a temporary file beside ``path``, fsync, then rename over ``path``."""
    tmp = _tmp_beside(path)
    try:
        with open(tmp, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise N2D2Error(f"cannot write ({exc.strerror or exc})", file=path) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
