"""The ``.ini.tpl`` template engine used by ``[name@file.ini.tpl]`` sections
(docs/INI.md §4).

Works on raw text, before INI comments are stripped (so a tag inside a ``;`` line still runs).
Parameters are a ``{name: text}`` dict; the tags:

* ``{{NAME}}``: the parameter's value; an unknown name is an error. Inside a block,
  ``{{#}}`` is the iteration index and ``{{.field}}`` reads ``ARR[i].field``.
* ``{% if VAR == VALUE %}``, ``!=`` (exact string comparison, VAR must exist), ``exists``,
  ``not_exists``; optional ``{% else %}``; ``{% endif %}``.
* ``{% for I in range(END) %}`` / ``range(START, END)`` ... ``{% endfor %}``: START and END are
  parameter names or numbers; ``I`` runs over START, START+1, ... < END and prints as C++'s
  default stream format (``0``, ``1``, ``2.5``); ``I`` must not already exist.
* ``{% block ARR %}`` ... ``{% endblock %}``: the body repeated ``ARR`` times.
* ``{% set VAR %}text{% endset %}``: renders ``text`` into ``VAR`` for the rest of the rendering.
* ``{% include FILE %}``: splices in another template. N2D2 opens FILE relative to the current
  directory; we try that first, then the including template's directory.

The text of a control tag is split on spaces, ``(``, ``)`` and ``,``. The newline after ``%}``
is kept, as in N2D2.

**Fixed N2D2 bug**: N2D2 implements ``else`` by re-emitting the ``if``
with the negated operator, so an ``else`` of an ``if`` nested inside another ``if`` closes the
outer one. Here tags are parsed into a tree first, and every ``else``/``endif`` belongs to the
innermost open ``if``.
"""
import math
import os
import re

from ..errors import IniError
from .limits import ExpansionBudget

MAX_INCLUDE_DEPTH = 16
MAX_ITERATIONS = 100_000           # per loop / block: a typo must not render forever
# In all, what the templates of one document render is bounded by its ExpansionBudget
# (``limits.py``: TEMPLATE_CHARACTERS, TEMPLATE_STEPS), nested loops and includes included.

_TAG = re.compile(r"\{\{(.*?)\}\}|\{%(.*?)%\}", re.DOTALL)
_SPLIT = re.compile(r"[ \t\r\n(),]+")
_CLOSERS = {"if": ("else", "endif"), "for": ("endfor",), "block": ("endblock",), "set": ("endset",)}


class _Source:
    """Template text with its file name, to turn an offset into ``file:line``."""

    def __init__(self, text, file):
        self.text, self.file = text, file

    def error(self, message, offset):
        return IniError(message, file=self.file, line=self.text.count("\n", 0, offset) + 1)


def _tokens(source):
    """``(kind, value, offset)`` with kind ``text``, ``var`` or ``tag`` (tag value: word list)."""
    pos = 0
    for match in _TAG.finditer(source.text):
        if match.start() > pos:
            yield "text", source.text[pos:match.start()], pos
        if match.group(1) is not None:
            yield "var", match.group(1).strip(), match.start()
        else:
            words = [w for w in _SPLIT.split(match.group(2)) if w]
            if not words:
                raise source.error("empty {% %} tag", match.start())
            yield "tag", words, match.start()
        pos = match.end()
    if pos < len(source.text):
        yield "text", source.text[pos:], pos


def parse(source):
    """The template as a node list; unbalanced or unknown tags raise IniError."""
    tokens = list(_tokens(source))
    nodes, pos, closer = _parse_nodes(source, tokens, 0, ())
    assert closer is None and pos == len(tokens)
    return nodes


def _parse_nodes(source, tokens, pos, closers):
    nodes = []
    while pos < len(tokens):
        kind, value, offset = tokens[pos]
        pos += 1
        if kind != "tag":
            nodes.append((kind, value, offset))
            continue
        word = value[0]
        if word in closers:
            return nodes, pos, (word, value, offset)
        if word not in _CLOSERS and word != "include":
            expected = f" (expected {' or '.join(closers)})" if closers else ""
            raise source.error(f"unexpected template tag '{word}'{expected}", offset)
        if word == "include":
            nodes.append(("include", _arguments(source, value, 1, offset)[0], offset))
            continue
        body, pos, end = _parse_nodes(source, tokens, pos, _CLOSERS[word])
        if end is None:
            raise source.error(f"'{{% {word} %}}' is never closed "
                               f"(expected {{% {_CLOSERS[word][-1]} %}})", offset)
        other = []
        if end[0] == "else":
            other, pos, end = _parse_nodes(source, tokens, pos, ("endif",))
            if end is None:
                raise source.error("'{% if %}' is never closed (expected {% endif %})", offset)
        nodes.append((word, value, offset, body, other))
    return nodes, pos, None


def _arguments(source, words, count, offset):
    if len(words) - 1 < count:
        raise source.error(f"'{{% {words[0]} %}}' expects {count} argument(s), "
                           f"got {' '.join(words[1:]) or 'none'}", offset)
    return words[1:]


class _Renderer:
    def __init__(self, params, depth, budget):
        self.params, self.depth, self.budget = params, depth, budget
        self.parsed = {}     # path -> (source, nodes): a file included many times is read once

    def spend(self, name, amount, source, offset):
        self.budget.spend(name, amount, lambda message: source.error(message, offset))

    def render(self, source, nodes, out, block=None):
        for node in nodes:
            kind, value, offset = node[:3]
            self.spend("TEMPLATE_STEPS", 1, source, offset)
            if kind == "text":
                self.emit(source, out, value, offset)
            elif kind == "var":
                self.emit(source, out, self.variable(source, value, offset, block), offset)
            elif kind == "include":
                self.include(source, value, offset, out, block)
            else:
                getattr(self, "tag_" + kind)(source, value, offset, node[3], node[4], out, block)

    def emit(self, source, out, text, offset):
        self.spend("TEMPLATE_CHARACTERS", len(text), source, offset)
        out.append(text)

    def variable(self, source, name, offset, block):
        if block is not None and name == "#":
            return str(block[1])
        if block is not None and name.startswith("."):
            name = f"{block[0]}[{block[1]}]{name}"
        if name not in self.params:
            raise source.error(f"Undefined variable name '{name}' in template", offset)
        return self.params[name]

    def tag_if(self, source, words, offset, body, other, out, block):
        name, op = _arguments(source, words, 2, offset)[:2]
        if op in ("exists", "not_exists"):
            taken = (name in self.params) == (op == "exists")
        elif op in ("==", "!="):
            value = words[3] if len(words) > 3 else ""
            actual = self.variable(source, name, offset, block)
            taken = (actual == value) == (op == "==")
        else:
            raise source.error(f"unknown if operator '{op}' (expected ==, !=, exists, "
                               "not_exists)", offset)
        self.render(source, body if taken else other, out, block)

    def tag_for(self, source, words, offset, body, other, out, block):
        args = _arguments(source, words, 4, offset)
        if args[1] != "in" or args[2] != "range" or len(args) not in (4, 5):
            raise source.error("expected {% for I in range(END) %} or range(START, END)", offset)
        var = args[0]
        if var in self.params:
            raise source.error(f"loop variable '{var}' already exists", offset)
        start = self.number(source, args[3], offset) if len(args) == 5 else 0.0
        end = self.number(source, args[-1], offset)
        # I = START, START+1, ... < END: counted, not incremented (at 1e17, I + 1 == I)
        count = max(0, math.ceil(end - start))
        if count > MAX_ITERATIONS:
            raise source.error(f"loop of more than {MAX_ITERATIONS} iterations", offset)
        for index in range(count):
            self.params[var] = f"{start + index:g}"   # C++ default stream format of a double
            self.render(source, body, out, block)
        self.params.pop(var, None)

    def tag_block(self, source, words, offset, body, other, out, block):
        name = _arguments(source, words, 1, offset)[0]
        count = self.number(source, self.variable(source, name, offset, block), offset)
        if count > MAX_ITERATIONS:
            raise source.error(f"block of more than {MAX_ITERATIONS} iterations", offset)
        for index in range(max(0, int(count))):
            self.render(source, body, out, (name, index))

    def tag_set(self, source, words, offset, body, other, out, block):
        name = _arguments(source, words, 1, offset)[0]
        inner = []
        self.render(source, body, inner, block)
        self.params[name] = "".join(inner)

    def include(self, source, name, offset, out, block):
        if self.depth >= MAX_INCLUDE_DEPTH:
            raise source.error(f"templates included deeper than {MAX_INCLUDE_DEPTH} levels", offset)
        here = os.path.dirname(source.file) if source.file else "."
        candidates = [name] if os.path.isabs(name) else [name, os.path.join(here, name)]
        path = next((p for p in candidates if os.path.isfile(p)), None)
        if path is None:
            raise source.error(f"included template '{name}' not found "
                               f"(looked in the current directory and {here})", offset)
        if not path.lower().endswith((".ini", ".tpl")):
            raise source.error(f"included template '{name}' is not an .ini or .tpl file: not "
                               f"read", offset)
        if path not in self.parsed:
            included = _Source(_read(path), path)
            self.parsed[path] = (included, parse(included))
        self.depth += 1
        self.render(*self.parsed[path], out, block)
        self.depth -= 1

    def number(self, source, text, offset):
        text = self.params.get(text, text)
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise source.error(f"expected a number (finite) or a parameter holding one, got "
                               f"'{text[:60]}'", offset)
        return value


def _read(path):
    with open(path, encoding="utf-8", errors="replace", newline="") as stream:
        return stream.read()


def render_template(text, params, file="<template>", budget=None):
    """Render template ``text`` with ``params`` ({name: str}); returns the INI text.

    ``params`` is copied: ``set`` and loop variables do not leak to the caller. ``budget``: the
    document's ``ExpansionBudget`` (a fresh one when None)."""
    source = _Source(text, file)
    out = []
    _Renderer(dict(params), 0, budget or ExpansionBudget()).render(source, parse(source), out)
    return "".join(out)


def render_file(path, params, budget=None):
    """``render_template`` on the content of ``path`` (errors name that file)."""
    return render_template(_read(path), params, path, budget)
