"""Converters for INI values, as N2D2's ``getProperty<T>`` reads them (docs/INI.md §3:
integers as integers, booleans as 0/1, lists separated by spaces).

Each converter takes the evaluated string and returns the value or raises ``ValueError`` with a
short "expected ..." text; ``Section.get_as`` turns that into an ``IniError`` naming the place.
"""
import math


INT64 = 2 ** 63     # N2D2 reads integers into C++ integer types: none is wider


def to_int(text):
    """A whole number: ``"32"``; ``"32.0"`` is rejected as N2D2 does (use $(int(...))); one
    that no 64-bit integer holds is refused."""
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"expected an integer, got {text[:60]!r}") from None
    if not -INT64 <= value < INT64:
        raise ValueError(f"expected an integer that fits 64 bits, got {text.strip()[:60]}")
    return value


def to_uint(text):
    value = to_int(text)
    if value < 0:
        raise ValueError(f"expected a non-negative integer, got {text!r}")
    return value


def to_float(text):
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None
    if math.isnan(value):
        raise ValueError(f"expected a number, got {text!r}")
    return value


def to_bool(text):
    """Only ``0`` or ``1``, as N2D2's ``operator>>`` for bool."""
    value = text.strip()
    if value not in ("0", "1"):
        raise ValueError(f"expected 0 or 1, got {text!r}")
    return value == "1"


def to_str(text):
    return text


def to_word(text):
    """A single whitespace-free word (string parameters set through config sections)."""
    value = text.strip()
    if not value or len(value.split()) != 1:
        raise ValueError(f"expected a single word, got {text!r}")
    return value


def list_of(convert, length=None):
    """Space-separated list (``KernelDims=3 3``); ``length`` fixes the count if given."""
    def to_list(text):
        items = [convert(item) for item in text.split()]
        if length is not None and len(items) != length:
            raise ValueError(f"expected {length} values, got {len(items)} in {text!r}")
        return items
    to_list.__name__ = f"list_of_{getattr(convert, '__name__', 'value')}"
    return to_list


def enum(*names):
    """One word among ``names``, matched exactly (case included)."""
    def to_enum(text):
        value = text.strip()
        if value not in names:
            raise ValueError(f"expected one of {', '.join(names)}, got {text!r}")
        return value
    to_enum.__name__ = "enum"
    to_enum.names = names
    return to_enum
