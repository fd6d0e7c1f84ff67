"""Running the ``n2d2py`` command in tests: ``python -m n2d2py.cli`` in a subprocess with this
checkout importable (``start``, ``run_subprocess``), ``cli.main`` in-process (``run_main``), and
its one-line errors (``error_line``, ``assert_error``)."""
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
ERROR_PREFIX = "n2d2py: error: "


def environment(**extra):
    """``os.environ`` with this checkout first on ``PYTHONPATH``, then ``extra``."""
    paths = [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), **extra}


def command(*argv):
    return [sys.executable, "-m", "n2d2py.cli", *map(str, argv)]


def start(cwd, *argv, env=None, **popen):
    """The command started in ``cwd`` (a ``subprocess.Popen``, text mode; ``env``: extra
    variables; ``popen``: its other arguments, such as ``stdout``)."""
    return subprocess.Popen(command(*argv), cwd=cwd, env=environment(**(env or {})), text=True,
                            **popen)


def run_subprocess(cwd, *argv, env=None, timeout=120):
    """The command run to its end in ``cwd``: (status, stdout, stderr)."""
    proc = subprocess.run(command(*argv), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=environment(**(env or {})))
    return proc.returncode, proc.stdout, proc.stderr


def run_main(*argv):
    """``cli.main`` in-process: its status, argparse's ``SystemExit`` included."""
    from n2d2py import cli
    try:
        return cli.main([str(a) for a in argv])
    except SystemExit as exc:
        return exc.code


def error_line(stderr):
    """The single ``n2d2py: error:`` line of ``stderr`` (asserting no traceback)."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith(ERROR_PREFIX)]
    assert len(lines) == 1, stderr
    return lines[0]


def assert_error(line, *fragments):
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
