"""User-facing errors: each names the place (file, line, section, key, node) and what was expected.

The command line prints ``n2d2py: error: <where>: <message>`` for any ``N2D2Error`` and never a
traceback from deep inside NumPy. Code that reads user input raises one of these where it reads
it (the INI's file:line, section and key; the weight file; the ONNX node). A check inside a
function or cell that finds shapes or types it cannot take (``ShapeError``, ``expect``'s
default) is an ``InternalError``: the input was accepted where it was read, so the check found
a bug in n2d2py; the command says so and shows the traceback under ``--debug``.
"""
import difflib
import re

# Characters that would break the one-line error or drive the terminal (carriage return,
# vertical tab, form feed, escape, Unicode line separators); "\n" and "\t" are left to the caller.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text):
    """``text`` with control characters written as escapes (``\\x1b``), so that a name or value
    taken from a binary file cannot split the error line or drive the terminal."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(text))


class N2D2Error(Exception):
    """An error in what the user gave us (INI, weights, data, ONNX, options)."""

    def __init__(self, message, file=None, line=None, section=None, key=None):
        self.message, self.file, self.line = message, file, line
        self.section, self.key = section, key
        super().__init__(self.__str__())

    @property
    def where(self):
        parts = []
        if self.file:
            parts.append(f"{self.file}:{self.line}" if self.line else str(self.file))
        if self.section is not None:
            parts.append(f"[{self.section}]")
        if self.key:
            parts.append(self.key)
        return " ".join(parts)

    def __str__(self):
        return printable(f"{self.where}: {self.message}" if self.where else self.message)


class IniError(N2D2Error):
    """Malformed or inconsistent INI text, section or key."""


class InternalError(Exception):
    """A check inside n2d2py that failed: a bug, not bad input."""


class ShapeError(InternalError):
    """Array shapes or types that do not fit a function (``Function.check_inputs``)."""


class DataError(N2D2Error):
    """Unreadable, truncated or inconsistent data file (IDX, CIFAR, images)."""


class WeightsError(N2D2Error):
    """Unreadable or inconsistent weight file (.syntxt)."""


class OnnxError(N2D2Error):
    """ONNX model that cannot be imported (unsupported op, bad shapes, unsafe path)."""


class NumericalError(N2D2Error):
    """A NaN or an infinity in a loss, an activation or a gradient during training (what the
    user sees: the cell, epoch and batch, and where the last good state was saved)."""


class NumericalFault(ArithmeticError):
    """A NaN/Inf found by ``DeepNet.learn_batch`` before its updates, for the training loop to
    turn into a ``NumericalError``: ``where`` is "loss" or "gradient", ``kind`` "NaN" or "Inf",
    ``param`` the Parameter's name and ``cell`` its cell."""

    def __init__(self, where, kind, param=None, cell=None):
        super().__init__(f"{kind} in the {where}" + (f" of {param}" if param else ""))
        self.where, self.kind, self.param, self.cell = where, kind, param, cell


def close_matches(word, candidates, n=3):
    """``" (did you mean 'A', 'B'?)"`` or ``""``: appended to unknown-name messages."""
    hits = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=n, cutoff=0.6)
    return f" (did you mean {', '.join(repr(h) for h in hits)}?)" if hits else ""


def expect(condition, message, error=ShapeError):
    """Raise ``error(message)`` unless condition holds (declarative checks; the default error
    is internal: pass a user error class where ``message`` is about the user's input)."""
    if not condition:
        raise error(message)
