"""How much one INI document may grow while it is read: the ``ExpansionBudget``.

Four features make text out of text: templates (loops, blocks, includes), base sections
(``[b] a``: b has a's keys), ``${VAR}``/``[S]K`` (a value made of other values) and ``$()``.
Each is bounded locally (loop length, nesting depth), and a few lines can still multiply those
bounds: nested loops, a template including itself twice under a guard, ten variables each
using the previous one ten times (10^10 characters), a 10 000-deep chain of base sections.

So every document carries one budget, shared by the parser, the template renderer and the
evaluator, and spent as they go; the first expansion that passes a limit is an ``IniError``
at its place (``file:line [section] key``) that says which limit it hit. The limits scale with
the document's own text, so a large hand-written model is never refused for its size, and a
hostile input under 1 MB stops in well under a second:

=========================  ==========================================================
``TEMPLATE_CHARACTERS``     characters rendered by all templates of the document
``TEMPLATE_STEPS``          tags, text pieces and loop iterations rendered in all
``TEMPLATE_SECTIONS``       ``[name@file.ini.tpl]`` sections expanded (each renders and
                            parses a file; N2D2's largest models have 17)
``INHERITED_ENTRIES``       keys all sections hold through their bases (base entries
                            are shared, not copied, but each still costs a slot)
``EXPANSION_STEPS``         values read, and references, variables and ``$()`` replaced
                            in them (N2D2's largest model: 2 000 when every key is read)
``EXPANSION_CHARACTERS``    characters those replacements insert, in all reads
=========================  ==========================================================
"""
from ..errors import IniError

TEMPLATE_CHARACTERS = 16 * 1024 * 1024
TEMPLATE_STEPS = 250_000
TEMPLATE_SECTIONS = 256
INHERITED_ENTRIES = 1_000_000
EXPANSION_STEPS = 100_000
EXPANSION_CHARACTERS = 64 * 1024 * 1024
#: the limits grow with the document: per character of INI text read
PER_SOURCE_CHARACTER = {"EXPANSION_CHARACTERS": 4, "EXPANSION_STEPS": 0.25,
                        "INHERITED_ENTRIES": 0.25}

_WHAT = {
    "TEMPLATE_CHARACTERS": "characters rendered by templates",
    "TEMPLATE_STEPS": "template steps (tags, loop iterations, includes)",
    "TEMPLATE_SECTIONS": "sections expanded from templates",
    "INHERITED_ENTRIES": "entries inherited through base sections",
    "EXPANSION_STEPS": "values read and references, variables and $() expanded",
    "EXPANSION_CHARACTERS": "characters inserted by references and variables",
}


class ExpansionBudget:
    """What a document has spent (``spent[name]``) against its limits (``limit(name)``)."""

    def __init__(self):
        self.source_characters = 0
        self.spent = dict.fromkeys(_WHAT, 0)

    def add_source(self, text):
        """Count INI text read (the top-level file, rendered templates): the limits grow."""
        self.source_characters += len(text)

    def limit(self, name):
        return int(globals()[name] + PER_SOURCE_CHARACTER.get(name, 0) * self.source_characters)

    def spend(self, name, amount, error):
        """Add ``amount`` to ``name``; past the limit raise ``error(message)`` (a function that
        builds the IniError with the place)."""
        total = self.spent[name] + amount
        self.spent[name] = total
        if total > self.limit(name):
            raise error(f"expansion limit reached: more than {self.limit(name)} "
                        f"{_WHAT[name]} in this document ({name}; does a definition use "
                        f"itself, or multiply another one?)")

    def check(self, name, amount, error):
        """Raise like ``spend`` if ``amount`` more would pass the limit, without spending."""
        if self.spent[name] + amount > self.limit(name):
            self.spend(name, amount, error)


def place_error(file=None, line=None, section=None, key=None):
    """``message -> IniError`` at a place (for ``ExpansionBudget.spend``)."""
    return lambda message: IniError(message, file=file, line=line, section=section, key=key)


__all__ = ["ExpansionBudget", "place_error"]
