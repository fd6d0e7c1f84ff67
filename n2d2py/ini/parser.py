"""Reading INI text into an ``IniDocument`` (docs/INI.md §1, §2, §4).

Per physical line, in N2D2's order: drop a UTF-8 BOM; glue a line whose *raw* text ends with
``\\`` to the next one (only the backslash is removed, so the space before it separates the
numbers of a Mapping matrix; a backslash followed by spaces or ``\\r`` does not continue, which
we report as a warning); cut the first ``;`` or ``#`` outside double quotes; trim; then a
section header ``[name] base1 base2`` or a ``key=value`` property.

Inheritance is a parse-time view of the bases' entries (first base wins; the Entry objects are
shared, see ``Section``); the section's own lines then override, each override recorded as a
warning. What templates and inheritance add is bounded per document (``limits.py``). ``$``-keys are variables, flagged
read. A header ``[name@path.ini.tpl]`` includes a template: the path is environment-expanded and
relative to the **top-level** INI's directory; the expansion waits for the next header so the
section's keys are complete, and its sections are inserted right after it, each with the key
``$PARENT_SECTION_NAME``.

Deviations: a header with no ``]`` or a line with no ``=`` is an IniError naming file:line
(N2D2 raises too); a rendered template's line numbers count lines of the rendered text.
"""
import os

from ..errors import IniError, close_matches
from .document import Entry, IniDocument
from .limits import place_error
from .template import render_file

MAX_TEMPLATE_DEPTH = 16
_SPACE = " \t\n\v\f\r"           # C isspace


def load_ini(path, env=None):
    """Parse the INI file ``path``; ``env`` replaces ``os.environ`` for template paths and
    ``expand_env`` (``N2D2_MODELS`` defaults to the file's directory)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IniError("is a directory, expected an INI file", file=path)
    if not os.path.isfile(path):
        raise IniError(f"INI file not found: {path}", file=path)
    document = IniDocument(path, env)
    _Parser(document).feed(_read(path), path)
    return document


def parse_ini_text(text, path="<string>", env=None):
    """Parse INI ``text`` as if read from ``path`` (used by tests and generated INIs)."""
    document = IniDocument(path, env)
    _Parser(document).feed(text, path)
    return document


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as stream:
            return stream.read()
    except OSError as exc:
        raise IniError(f"cannot read INI file: {exc.strerror}", file=path) from None


def _show(line, limit=60):
    """``line`` as quoted in an error: at most ``limit`` characters (binary junk can be long)."""
    return line if len(line) <= limit else line[:limit] + "..."


def is_ini_name(path):
    """Whether ``path`` is named as INI text: only such files are read as templates, so an
    include of ``secret.txt`` is refused unread and nothing of it reaches a message."""
    return str(path).lower().endswith((".ini", ".tpl"))


def logical_lines(text, file, warn=None):
    """``(line_number, text)`` per logical line: BOM dropped, continuations joined, comments
    cut, trimmed; empty lines skipped. ``line_number`` is the first physical line."""
    pending, first = None, None
    for number, raw in enumerate(text.split("\n"), start=1):
        if raw.startswith("\ufeff"):
            raw = raw[1:]
        if pending is None:
            first = number
        if raw.endswith("\\"):
            pending = (pending or "") + raw[:-1]
            continue
        if warn is not None and raw.rstrip(" \t\r").endswith("\\"):
            warn("backslash followed by whitespace: the line is not continued", file, number)
        line = (pending or "") + raw
        pending = None
        line = _strip_comment(line, file, first).strip(_SPACE)
        if line:
            yield first, line
    if pending is not None:
        line = _strip_comment(pending, file, first).strip(_SPACE)
        if line:
            yield first, line


def _strip_comment(line, file, number):
    """Cut at the first ``;``/``#`` outside double quotes; an unmatched quote is an error."""
    pos = 0
    while pos < len(line):
        char = line[pos]
        if char == '"':
            close = line.find('"', pos + 1)
            if close < 0:
                raise IniError("Malformed property: unmatched double quote", file=file, line=number)
            pos = close + 1
            continue
        if char in ";#":
            return line[:pos]
        pos += 1
    return line


class _Parser:
    def __init__(self, document):
        self.document = document

    def warn(self, message, file, line, section=None, key=None):
        self.document.warn(message, section, key, file=file, line=line)

    def feed(self, text, file, parent=None, depth=0):
        """Add the sections of ``text``; ``parent`` is the template-including section."""
        document = self.document
        document.budget.add_source(text)
        section, template = document.global_section, None
        if "\x00" in text:
            raise IniError("not an INI text file (binary data: NUL byte)", file=file,
                           line=text.count("\n", 0, text.index("\x00")) + 1)
        for number, line in logical_lines(text, file, self.warn):
            if line.startswith("["):
                if template is not None:
                    self.expand(*template, depth)
                section, template = self.header(line, file, number, parent)
            else:
                self.property(section, line, file, number)
        if template is not None:
            self.expand(*template, depth)

    def header(self, line, file, number, parent):
        close = line.find("]")
        if close < 0:
            raise IniError(f"unterminated section header '{_show(line)}' "
                           f"(expected ']')",
                           file=file, line=number)
        name, bases = line[1:close].strip(_SPACE), line[close + 1:].split()
        if not name:
            raise IniError("empty section name '[]'", file=file, line=number)
        template = None
        if name.count("@") == 1:
            name, path = name.split("@")
            template = (name, path, file, number)
        for base in bases:
            if base not in self.document.sections:
                raise IniError(f"Inherited section [{base}] does not exist (a base must be "
                               f"defined earlier){close_matches(base, self.document.sections)}",
                               file=file, line=number, section=name)
        section = self.document.add_section(name, file, number, bases)
        for base in dict.fromkeys(bases):          # first base listed wins
            inherited = self.document.sections[base].entries
            self.document.budget.spend("INHERITED_ENTRIES", len(inherited),
                                       place_error(file, number, name))
            section.inherit(self.document.sections[base])
        if parent is not None:
            section.own(Entry("$PARENT_SECTION_NAME", parent, file, number, read=True))
        return section, template

    def property(self, section, line, file, number):
        equal = line.find("=")
        if equal < 0:
            raise IniError(f"expected key=value, got '{_show(line)}' (Missing "
                           f"value for property)", file=file, line=number, section=section.name)
        key, value = line[:equal].rstrip(_SPACE), line[equal + 1:].lstrip(_SPACE)
        if not key:
            raise IniError(f"empty key in '{_show(line)}'", file=file,
                           line=number, section=section.name)
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1]
        previous = section.entries.get(key)
        if previous is not None:
            self.warn(f"overriding property {key} (previous value was "
                      f"\"{_show(previous.raw, 200)}\", {previous.file}:{previous.line})",
                      file, number, section, key)
        section.own(Entry(key, value, file, number, read=key.startswith("$")))

    def expand(self, name, path_text, file, number, depth):
        """Render the template of section ``name`` and parse it in place (docs/INI.md §4)."""
        document = self.document
        section = document.sections[name]
        document.budget.spend("TEMPLATE_SECTIONS", 1, place_error(file, number, name))
        if depth >= MAX_TEMPLATE_DEPTH:
            raise IniError(f"templates nested deeper than {MAX_TEMPLATE_DEPTH} levels "
                           "(does a template include itself?)", file=file, line=number,
                           section=name)
        path = document.expand_env(path_text)
        if not os.path.isabs(path):
            path = os.path.join(document.main_dir, path)
        if not os.path.isfile(path):
            raise IniError(f"template file not found: {path} (from '{path_text}'; relative "
                           f"paths start at {document.main_dir})", file=file, line=number,
                           section=name)
        if not is_ini_name(path):
            raise IniError(f"template {path} is not an .ini or .tpl file: not read", file=file,
                           line=number, section=name)
        params = {"SECTION_NAME": name, "SECTION_FILE_NAME": path}
        for key, entry in list(section.entries.items()):
            if key in params:
                raise IniError(f"Parameter already exists: {key} is set by the template include",
                               file=entry.file, line=entry.line, section=name, key=key)
            params[key] = document.evaluate(section, entry.raw, entry)
            section.mark_read(key)
        self.feed(render_file(path, params, document.budget), path, parent=name, depth=depth + 1)
