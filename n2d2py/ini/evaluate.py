"""Evaluating an INI value when it is read: ``[S]K``, ``${VAR}``, ``$(...)`` (docs/INI.md §3).

Three passes over the raw text, in N2D2's order:

1. **References** ``[Section]Key``: the key runs to the next whitespace; the whole reference
   becomes the key's fully evaluated value, evaluated in the context of ``Section``. Text in
   brackets that is not a section name is left as is; so is a ``[`` with no ``]`` (N2D2 loops
   forever there). A missing key is an IniError naming where the reference was written.
2. **Variables** ``${NAME}``: ``SECTION_NAME`` (the section being read), ``PREV_SECTION_NAME``
   (the section before it in file order, skipping its template-including parent), else the key
   ``$NAME`` of the section being read, then of the global section. Unknown: left unchanged.
   Environment variables are not read here (see ``expand_env``).
3. **Expressions** ``$(...)`` (matching parenthesis by counting): evaluated by our own
   ``expression`` module and printed as Python 3 prints the value.

References and variables evaluate recursively; a cycle (``$A=${B}``, ``$B=${A}``) is an
IniError listing the chain, never a RecursionError. Within one read, an entry is evaluated once
per reading section (memoised), and every replacement is charged to the document's
``ExpansionBudget`` (``limits.py``): definitions that multiply each other stop at the limit,
at the place of the key being read, before their text is built.

Integer keys and ``$()`` floats: N2D2 models written for Python 2 compute integers with ``/``
(``$([sp]_EpochSize * ${EPOCHS} / ${BATCH_SIZE})``). Exact integer quotients stay integers (see
``expression``); when a ``$()`` still yields a float, the value is returned as
``FloatExpressionText`` (a ``str``), and ``Section.convert`` lets an integer converter accept it
**truncated toward zero, with a warning** (``truncate_floats``).
"""
import os
import re

from ..errors import IniError
from .expression import ExpressionError, evaluate as evaluate_expression, format_value

MAX_DEPTH = 64                   # nested references/variables; far beyond any real model
_KEY_END = re.compile(r"\S*")
_FLOAT_TOKEN = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.])")
_ENV = re.compile(r"\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class FloatExpressionText(str):
    """An evaluated value in which some ``$(...)`` produced a float (see module docstring)."""
    from_float_expression = True


class _Context:
    """State of one top-level evaluation: the chain being evaluated (for cycles), whether an
    expression produced a float, the values already computed ({(section, entry): text})."""

    def __init__(self, document):
        self.document, self.chain, self.float_result = document, [], False
        self.memo = {}

    def spend(self, name, amount, section, entry):
        self.document.budget.spend(name, amount, lambda m: _error(m, section, entry))


def evaluate(document, section, text, entry=None):
    """The evaluated value of ``text`` (raw) read in ``section``; ``entry`` names the place."""
    context = _Context(document)
    context.spend("EXPANSION_STEPS", 1, section, entry)      # every read is work too
    if entry is not None:
        value = _evaluate_entry(context, section, entry, entry)
    else:
        value = _resolve(context, section, text, entry)
    return FloatExpressionText(value) if context.float_result else value


def _evaluate_entry(context, section, entry, where, owner=None):
    """Evaluate ``entry`` read in ``section``; ``owner`` names the section that holds it when
    that is not ``section`` (a global ``$VAR``), for the cycle chain."""
    owner = section.name if owner is None else owner
    memo = (id(section), id(entry))
    if memo in context.memo:
        return context.memo[memo]
    link = (owner, id(entry))
    if any(link == (name, ident) for name, ident, _ in context.chain):
        chain = " -> ".join(f"[{name}]{key}" for name, _, key in context.chain)
        raise _error(f"reference cycle: {chain} -> [{owner}]{entry.key}", section, where)
    if len(context.chain) >= MAX_DEPTH:
        raise _error(f"references nested deeper than {MAX_DEPTH} levels", section, where)
    context.chain.append((owner, id(entry), entry.key))
    try:
        value = _resolve(context, section, entry.raw, entry)
    finally:
        context.chain.pop()
    context.memo[memo] = value
    return value


def _error(message, section, entry):
    if entry is None:
        return IniError(message, file=section.file, line=section.line, section=section.name)
    return IniError(message, file=entry.file, line=entry.line, section=section.name, key=entry.key)


def _resolve(context, section, text, entry):
    text = _references(context, section, text, entry)
    text = _variables(context, section, text, entry)
    return _expressions(context, section, text, entry)


def _references(context, section, text, entry):
    sections = context.document.sections
    out, pos = [], 0
    while True:
        start = text.find("[", pos)
        end = text.find("]", start + 1) if start >= 0 else -1
        if end < 0:
            break
        name = text[start + 1:end]
        if not name or name not in sections:
            out.append(text[pos:start + 1])       # not a reference: keep the bracket
            pos = start + 1
            continue
        match = _KEY_END.match(text, end + 1)
        target, key = sections[name], match.group()
        if key not in target.entries:
            hint = ("; the key of a reference ends at whitespace, write a space after it"
                    if any(c in key for c in "()*/+-,%") else "")
            raise _error(f"Property {key} not found in section [{name}] (referenced as "
                         f"[{name}]{key}{hint})", section, entry)
        out.append(text[pos:start])
        context.spend("EXPANSION_STEPS", 1, section, entry)
        value = _evaluate_entry(context, target, target.entries[key], entry)
        context.spend("EXPANSION_CHARACTERS", len(value), section, entry)
        out.append(value)
        pos = match.end()
    out.append(text[pos:])
    return "".join(out)


def previous_section_name(section):
    """``${PREV_SECTION_NAME}``: the section before ``section`` in file order, skipping the
    template-including parent (so the first section of a template sees what preceded it)."""
    names = list(section.document.sections)
    index = names.index(section.name)
    parent = section.entries.get("$PARENT_SECTION_NAME")
    previous = names[index - 1] if index > 0 else ""
    if parent is not None and previous == parent.raw and index > 1:
        previous = names[index - 2]
    return previous


def _variables(context, section, text, entry):
    out, pos = [], 0
    while True:
        start = text.find("${", pos)
        end = text.find("}", start + 2) if start >= 0 else -1
        if end < 0:
            break
        name = text[start + 2:end]
        out.append(text[pos:start])
        pos = end + 1
        if name == "SECTION_NAME":
            out.append(section.name)
            continue
        if name == "PREV_SECTION_NAME":
            out.append(previous_section_name(section))
            continue
        owner = section if "$" + name in section.entries else context.document.global_section
        variable = owner.entries.get("$" + name)
        if variable is None:
            out.append(text[start:end + 1])         # unknown: left unchanged (N2D2)
            continue
        # Evaluated where it is used: ${SECTION_NAME} inside it names the reading section.
        context.spend("EXPANSION_STEPS", 1, section, entry)
        value = _evaluate_entry(context, section, variable, entry, owner=owner.name)
        context.spend("EXPANSION_CHARACTERS", len(value), section, entry)
        out.append(value)
    out.append(text[pos:])
    return "".join(out)


def _expressions(context, section, text, entry):
    out, pos = [], 0
    while True:
        start = text.find("$(", pos)
        if start < 0:
            break
        depth, end = 0, -1
        for index in range(start + 1, len(text)):
            depth += {"(": 1, ")": -1}.get(text[index], 0)
            if depth == 0:
                end = index
                break
        if end < 0:
            raise _error(f"unbalanced parentheses in '{text[start:]}'", section, entry)
        inner = text[start + 2:end]
        context.spend("EXPANSION_STEPS", 1, section, entry)
        try:
            value = evaluate_expression(inner)
        except ExpressionError as exc:
            raise _error(f"cannot evaluate $({inner}): {exc}", section, entry) from None
        if isinstance(value, float):
            context.float_result = True
        out.append(text[pos:start])
        out.append(format_value(value))
        pos = end + 1
    out.append(text[pos:])
    return "".join(out)


def truncate_floats(text):
    """Each decimal number of ``text`` truncated toward zero (``"450410.74 3.0"`` ->
    ``"450410 3"``): what an integer key reads from a Python-2-era ``$()`` (module docstring)."""
    def truncate(match):
        try:
            return str(int(float(match.group())))
        except (ValueError, OverflowError):
            return match.group()
    return _FLOAT_TOKEN.sub(truncate, text)


def expand_env(text, env=None):
    """Environment expansion of ``${VAR}`` and ``$VAR`` (unset -> ``""``), as N2D2 does.

    Only template paths and path keys (DataPath, LabelPath, File, CachePath, LabelsMapping, ...)
    are expanded; generators call this (or ``Section.get_path``). ``env`` defaults to
    ``os.environ``; an ``IniDocument`` passes its own ``env``, in which ``N2D2_MODELS``
    defaults to the top-level INI file's directory."""
    env = os.environ if env is None else env
    return _ENV.sub(lambda m: env.get(m.group(1) if m.group(1) is not None else m.group(2), ""),
                    text)
