"""The parsed INI: ``IniDocument`` (ordered sections) and ``Section`` (ordered keys with places).

Values are stored raw and evaluated on every read (references ``[S]K``, ``${VAR}``, ``$(...)``),
as N2D2 does (docs/INI.md §3). Every error names file, line, section and key.
"""
import fnmatch
import os

from ..errors import IniError, close_matches
from .limits import ExpansionBudget

MISSING = object()


class Entry:
    """One ``key=value`` line: raw text and where it was written (after inheritance copies)."""
    __slots__ = ("key", "raw", "file", "line", "read")

    def __init__(self, key, raw, file, line, read=False):
        self.key, self.raw, self.file, self.line, self.read = key, raw, file, line, read


class Section:
    """An INI section: ``name``, its header place (``file``, ``line``), ``bases``, and ``entries``
    (key -> Entry, in file order, inherited keys first). The global section is named ``""``.

    Inherited entries are the base section's own ``Entry`` objects, shared, not copied (a long
    chain of bases would otherwise copy quadratically); whether a key was read is kept per
    section (``mark_read``, ``is_read``), so an inherited key nobody reads here is still
    reported here."""

    def __init__(self, document, name, file=None, line=None, bases=()):
        self.document, self.name, self.file, self.line = document, name, file, line
        self.bases = list(bases)
        self.entries = {}
        self.inherited = set()     # keys of ``entries`` that are a base's entry
        self.inherited_read = set()

    def inherit(self, base):
        """Add the keys of ``base`` this section does not have yet (first base listed wins)."""
        for key, entry in base.entries.items():
            if key not in self.entries:
                self.entries[key] = entry
                self.inherited.add(key)

    def own(self, entry):
        """Write ``entry`` as this section's own line for its key."""
        self.entries[entry.key] = entry
        self.inherited.discard(entry.key)
        self.inherited_read.discard(entry.key)

    def mark_read(self, key):
        if key in self.inherited:
            self.inherited_read.add(key)
        elif key in self.entries:
            self.entries[key].read = True

    def is_read(self, key):
        if key in self.inherited:
            return key.startswith("$") or key in self.inherited_read
        return self.entries[key].read

    def __contains__(self, key):
        return key in self.entries

    def __repr__(self):
        return f"<Section [{self.name}] {self.file}:{self.line}>"

    def keys(self):
        return list(self.entries)

    def raw(self, key):
        return self.entries[key].raw

    def place(self, key=None):
        """(file, line) of ``key`` if present, else of the section header."""
        entry = self.entries.get(key)
        return (entry.file, entry.line) if entry else (self.file, self.line)

    def error(self, message, key=None, error=IniError):
        file, line = self.place(key)
        return error(message, file=file, line=line, section=self.name, key=key)

    def get(self, key, default=MISSING):
        """The evaluated value of ``key`` as a string; marks it read. Missing and no default:
        IniError "missing required key"."""
        entry = self.entries.get(key)
        if entry is None:
            if default is MISSING:
                raise self.error(f"missing required key '{key}'"
                                 f"{close_matches(key, self.entries)}", key=None)
            return default
        self.mark_read(key)
        return self.document.evaluate(self, entry.raw, entry)

    def get_as(self, key, convert, default=MISSING):
        """``convert(get(key))``; a conversion failure is an IniError naming the place."""
        entry = self.entries.get(key)
        if entry is None and default is not MISSING:
            return default
        return self.convert(self.get(key), convert, key)

    def convert(self, text, convert, key=None):
        """``convert(text)``; a failure is an IniError naming the place. A value in which a
        ``$()`` produced a float (``FloatExpressionText``) that ``convert`` rejects is retried
        with its numbers truncated toward zero, with a warning (models written for Python 2;
        see ``ini/evaluate.py``). Config-section readers call this with the evaluated text."""
        try:
            return convert(text)
        except ValueError as exc:
            if getattr(text, "from_float_expression", False):
                from .evaluate import truncate_floats
                try:
                    value = convert(truncate_floats(text))
                except ValueError:
                    pass
                else:
                    self.document.warn(f"value '{text}' computed by $(...) is not a whole "
                                       f"number; truncated to {value}", self, key)
                    return value
            raise self.error(str(exc), key=key) from None

    def get_path(self, key, default=MISSING):
        """``get(key)`` with environment variables expanded (DataPath, File, ...: the only
        keys where N2D2 expands them), using the document's ``env``."""
        value = self.get(key, default)
        return self.document.expand_env(value) if isinstance(value, str) else value

    def prefixed(self, prefix):
        """``{subkey: evaluated value}`` for keys ``prefix + subkey`` (``"QWeight."`` ->
        ``{"Range": "15"}``), marking them read."""
        return {k[len(prefix):]: self.get(k) for k in list(self.entries) if k.startswith(prefix)}

    def set(self, key, value, read=True):
        """Write a key (used for build-time keys such as ``_OutputsWidth``, ``_EpochSize``)."""
        self.own(Entry(key, str(value), self.file, self.line, read=read))

    def mark_all_read(self):
        for key in self.entries:
            self.mark_read(key)

    def unread_keys(self):
        return [k for k in self.entries if not k.startswith("$") and not self.is_read(k)]


class IniDocument:
    """All sections of one INI file (templates expanded), in file order.

    ``evaluate`` (``n2d2py.ini.evaluate``) resolves references, variables and expressions;
    ``path`` is the top-level file, ``main_dir`` its directory (template paths are relative to
    it), ``env`` the environment used for template paths and ``expand_env`` (with
    ``N2D2_MODELS`` defaulting to ``main_dir``), ``warnings`` the ``IniWarning``s collected
    while parsing and reading (never printed here).
    """

    def __init__(self, path, env=None):
        self.path = path
        self.main_dir = os.path.dirname(str(path)) or "."
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("N2D2_MODELS", os.path.abspath(self.main_dir))
        self.warnings = []
        self.sections = {}
        self.budget = ExpansionBudget()
        self.global_section = self.add_section("", path, 0)

    def add_section(self, name, file, line, bases=()):
        if name in getattr(self, "sections", {}):
            previous = self.sections[name]
            raise IniError(f"section [{name}] already exists (first at "
                           f"{previous.file}:{previous.line})", file=file, line=line)
        section = Section(self, name, file, line, bases)
        self.sections[name] = section
        return section

    def __contains__(self, name):
        return name in self.sections

    def __iter__(self):
        return iter(self.sections.values())

    def section(self, name):
        try:
            return self.sections[name]
        except KeyError:
            raise IniError(f"no section [{name}]{close_matches(name, self.sections)}",
                           file=self.path) from None

    def matching(self, pattern):
        """Sections whose names match a glob (``"sp.*"``, ``"conv1.Target*"``), in file order."""
        return [s for s in self.sections.values() if s.name and fnmatch.fnmatchcase(s.name, pattern)]

    def warn(self, message, section=None, key=None, file=None, line=None):
        """Record an ``IniWarning`` (place from ``section``/``key`` unless given)."""
        from .diagnostics import IniWarning
        if section is not None and file is None:
            file, line = section.place(key)
        name = section.name if section is not None else None
        self.warnings.append(IniWarning(message, file, line, name, key))

    def expand_env(self, text):
        """Environment expansion with this document's ``env``."""
        from .evaluate import expand_env
        return expand_env(text, self.env)

    def evaluate(self, section, text, entry=None):
        """Evaluate a raw value in the context of ``section``; replaced by the parser."""
        from .evaluate import evaluate
        return evaluate(self, section, text, entry)
