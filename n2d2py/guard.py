"""The one place where an exception escaping from user-input processing becomes an ``N2D2Error``.

Users run n2d2py on files they did not write (INI files, weight folders, data, ONNX models). The
readers raise ``N2D2Error`` naming the place; anything else that escapes (a ``ValueError`` deep
in NumPy, a protobuf ``DecodeError``, a ``RecursionError``, an allocation too large for memory)
must still end as one ``n2d2py: error: <place>: <message>`` line, never a traceback:

    from n2d2py.guard import user_input_errors

    with user_input_errors(place=args.ini):       # or: @user_input_errors()
        net = DeepNet.from_ini(args.ini)

``N2D2Error`` passes through unchanged; ``KeyboardInterrupt``, ``SystemExit`` and
``GeneratorExit`` are never caught. Other exceptions are mapped by ``to_n2d2_error``: the classes
a file or an allocation gives (file system, text decoding, a truncated stream, memory, recursion,
ONNX/protobuf decoding) to a sentence about the input; everything else (``ShapeError`` and the
other ``InternalError``s, ``IndexError``, ``KeyError``, ``ValueError``, ``TypeError``: a check
inside n2d2py, since readers report bad input themselves) to "internal error", a bug in n2d2py:
the message says how to see the traceback (``--debug`` or ``N2D2PY_DEBUG=1`` re-raise the
original exception).
"""
import contextlib
import os

from .errors import DataError, N2D2Error, OnnxError

DEBUG_VARIABLE = "N2D2PY_DEBUG"


def _onnx_classes():
    """ONNX/protobuf exception classes (empty when those packages are not installed)."""
    classes = []
    try:
        from google.protobuf.message import DecodeError
        classes.append(DecodeError)
    except ImportError:
        pass
    try:
        from onnx.checker import ValidationError
        classes.append(ValidationError)
    except ImportError:
        pass
    return tuple(classes)


def _describe(exc):
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def to_n2d2_error(exc, place=None):
    """The ``N2D2Error`` that reports ``exc`` (an exception raised while reading user input);
    ``place`` (a path or a phrase such as "[conv1]") is used when ``exc`` names none."""
    if isinstance(exc, N2D2Error):
        return exc
    file = os.fspath(place) if place is not None else None
    if isinstance(exc, OSError):
        file = exc.filename or file
        return N2D2Error(exc.strerror or _describe(exc), file=file)
    if isinstance(exc, _onnx_classes()):
        return OnnxError(f"not a valid ONNX model ({_describe(exc)})", file=file)
    if isinstance(exc, UnicodeError):
        return N2D2Error(f"not valid text ({_describe(exc)})", file=file)
    if isinstance(exc, MemoryError):
        return N2D2Error("not enough memory: the input describes arrays too large to allocate "
                         "(check the sizes: NbOutputs, dimensions, batch size)", file=file)
    if isinstance(exc, RecursionError):
        return N2D2Error("input nested too deeply to process", file=file)
    if isinstance(exc, EOFError):
        return DataError(f"truncated input ({_describe(exc)})", file=file)
    return N2D2Error(f"internal error while processing this input ({_describe(exc)}); please "
                     f"report it, with the traceback --debug shows", file=file)


@contextlib.contextmanager
def user_input_errors(place=None, debug=False):
    """Context manager (and decorator): re-raise any non-``N2D2Error`` exception of the block
    as the ``N2D2Error`` of ``to_n2d2_error`` (chained, so a debugger still sees the cause).
    With ``debug`` or the environment variable ``N2D2PY_DEBUG=1`` the original exception
    propagates (its traceback)."""
    try:
        yield
    except N2D2Error:
        raise
    except Exception as exc:
        if debug or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
            raise
        raise to_n2d2_error(exc, place) from exc
