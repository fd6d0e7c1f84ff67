"""Input files must be regular files: a FIFO, a device or a socket given where a file is read
would block forever (``/dev/stdin``, a named pipe) or never end (``/dev/zero``).

``regular_file_problem(path)`` checks with ``os.stat`` (no ``open``: opening a FIFO blocks) and
says what is wrong; the readers turn it into their own error naming the file.
"""
import os
import stat


def regular_file_problem(path):
    """``None`` for a regular file (symbolic links followed), else what it is: ``"not found"``,
    ``"is a directory"``, ``"is not a regular file (a FIFO, device or socket)"``."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "not found"
    except (OSError, ValueError) as exc:     # ValueError: a NUL in the path
        return f"cannot be read ({getattr(exc, 'strerror', None) or exc})"
    if stat.S_ISDIR(mode):
        return "is a directory"
    if not stat.S_ISREG(mode):
        return "is not a regular file (a FIFO, device or socket)"
    return None


__all__ = ["regular_file_problem"]
