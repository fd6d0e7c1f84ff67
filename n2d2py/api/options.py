"""Keyword arguments of N2D2's Python API -> the ``Key``s of our objects (``params.Key``).

Every value goes through the INI converter of its Key (``0.05`` -> ``"0.05"`` -> 0.05, ``[5, 5]``
-> ``"5 5"`` -> (5, 5), ``True`` -> ``"1"``): an object configured from Python holds exactly the
value the same INI key gives, and a wrong value fails on the Key's own check, as a
``WrongValue`` naming the object and the argument. Python names are the Keys' attribute names,
which follow N2D2's Python spellings; ``renamed`` maps the few that differ.
"""
import numbers

from ..params import REQUIRED
from .errors import WrongInputType, WrongValue, unknown_argument


def python_keys(cls, renamed=None, skip=()):
    """``{python name: Key}`` of a ``Parameterizable`` class; ``renamed`` is ``{N2D2 name:
    attribute}`` for the arguments N2D2 spells differently; ``skip`` attributes are not offered."""
    keys = {key.attr: key for key in cls.keys().values() if key.attr not in skip}
    for name, attr in (renamed or {}).items():
        keys[name] = keys.pop(attr)
    return keys


def _kind(key):
    """The Python type a Key's value has (from its default), None when unknown."""
    default = key.default
    if default is REQUIRED or default is None:
        return None
    for kind in (bool, int, float, str):
        if isinstance(default, kind):
            return kind
    return list if isinstance(default, (list, tuple)) else None


def _text(owner, name, value):
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "1" if value else "0"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and not any(isinstance(v, (list, tuple, dict)) for v in value):
        return " ".join(_text(owner, name, v) for v in value)
    raise WrongInputType(f"{owner}: {name} must be a number, a bool, a string or a list of "
                         f"them, got {type(value).__name__}")


def _check_kind(owner, name, key, value):
    if getattr(key, "prefix", None) is not None:      # DimsKey: N2D2 wants the list [X, Y]
        if not isinstance(value, (list, tuple)):
            raise WrongInputType(f"{owner}: {name} must be a list [X, Y], got {value!r}")
        return
    kind = _kind(key)
    is_bool = isinstance(value, bool) or type(value).__name__ == "bool_"
    problems = {
        bool: not is_bool,
        int: is_bool or not isinstance(value, numbers.Integral),
        float: is_bool or not isinstance(value, numbers.Real),
        str: not isinstance(value, str),
        list: not isinstance(value, (list, tuple, numbers.Real)) or is_bool,
    }
    if kind is not None and problems[kind]:
        what = {bool: "True or False", int: "an int", float: "a number", str: "a string",
                list: "a list"}[kind]
        raise WrongInputType(f"{owner}: {name} must be {what}, got {value!r} "
                             f"({type(value).__name__})")


def convert(owner, name, key, value):
    """``value`` as the Key stores it (the INI converter's result); errors name ``owner.name``."""
    _check_kind(owner, name, key, value)
    text = _text(owner, name, value)
    try:
        converted = key.convert(text)
    except ValueError as exc:
        raise WrongValue(f"{owner}: {name}={value!r}: {exc}") from None
    prefix = getattr(key, "prefix", None)   # DimsKey: (X, Y), one value meaning both
    if prefix is not None:
        if len(converted) not in (1, 2):
            raise WrongValue(f"{owner}: {name}={value!r}: expected [X, Y] (2 values)")
        converted = tuple(converted) * (2 // len(converted))
    return converted


def set_options(owner, obj, options, keys):
    """Set ``options`` (``{python name: value}``; None means "not given") on ``obj`` through
    ``keys`` (``python_keys``); an unknown name is a ``WrongInputType``."""
    for name, value in options.items():
        key = keys.get(name)
        if key is None:
            raise unknown_argument(owner, name, keys)
        if value is not None:
            setattr(obj, key.attr, convert(owner, name, key, value))
