"""Errors of the Python API (N2D2's ``n2d2.error_handler`` names): wrong use raises a Python
exception that names the object (the cell, solver, transformation ...) and the argument, before
any array code runs."""
from ..errors import close_matches


class WrongInputType(TypeError):
    """An argument of the wrong type, or a keyword the object does not take."""


class WrongValue(ValueError):
    """A value the object cannot take, a wrong input size included."""


def unknown_argument(owner, name, known):
    """The error for a keyword ``owner`` does not take (with the closest spellings)."""
    return WrongInputType(f"{owner}: unknown argument '{name}'{close_matches(name, known)}; "
                          f"it takes: {', '.join(sorted(known)) or 'none'}")


def check_type(owner, name, value, expected, what):
    """Raise ``WrongInputType`` unless ``value`` is an instance of ``expected``."""
    if not isinstance(value, expected):
        raise WrongInputType(f"{owner}: {name} must be {what}, got {type(value).__name__}")
    return value
