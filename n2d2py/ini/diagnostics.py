"""Unknown keys, unused sections and other INI diagnostics (docs/INI.md §5, §10): N2D2's
strictness, which varies by section, with warnings where N2D2 stays silent.

N2D2's strictness depends on the kind of section; the generators ask ``unknown_key_policy``
which rule applies and call ``check_unknown_keys`` when they are done with a section:

=========================================  ==========================================
Section                                    Policy
=========================================  ==========================================
global ``""``                              ``FATAL`` (``check_global_keys``)
``[database]``, ``[sp]``/``[env]``/cenv    ``FATAL``
``sp.*Transformation*``, ``sp.StimuliData*``  ``FATAL``
``<cell>.Target*``                         ``FATAL``
config sections (``ConfigSection=``)       ``FATAL``
Conv, Deconv, BatchNorm, Unpool cells      ``AFTER_BUILD``: fatal, unless the section has a
                                           key whose generator reads the whole section
                                           (``ActivationFunction``, ``Solvers``, ``QWeight``,
                                           ...), which N2D2 marks all read: then ``WARN``
other cells, ONNX sections                 ``WARN`` (N2D2 ignores them silently; we tell)
=========================================  ==========================================

Warnings and notices are collected in ``document.warnings`` as ``IniWarning``s; nothing is
printed here (the command line prints them).
"""
from ..errors import IniError, close_matches

FATAL, AFTER_BUILD, WARN = "fatal", "after_build", "warn"

GLOBAL_KEYS = ("DefaultModel", "DefaultDataType", "InsertBatchNormAfterConv",
               "CheckWeightRange", "ProgramMethod(RRAM)", "ProgramMethod(PCM)")
STIMULI_SECTIONS = ("sp", "env", "cenv")
CHECKED_CELL_TYPES = ("Conv", "Deconv", "BatchNorm", "Unpool")
# Keys whose N2D2 generators call getSection(section), which marks every key read.
WHOLE_SECTION_READERS = ("ActivationFunction", "Solvers", "WeightsSolver", "BiasSolver",
                         "ScaleSolver", "QWeight", "QAct")


class IniWarning:
    """A non-fatal diagnostic with its place; ``str()`` reads like an ``IniError``."""
    __slots__ = ("message", "file", "line", "section", "key")

    def __init__(self, message, file=None, line=None, section=None, key=None):
        self.message, self.file, self.line = message, file, line
        self.section, self.key = section, key

    def __str__(self):
        return str(IniError(self.message, self.file, self.line, self.section, self.key))

    def __repr__(self):
        return f"IniWarning({str(self)!r})"


def unknown_key_policy(section, cell_type=None, config=False):
    """``FATAL``, ``AFTER_BUILD`` or ``WARN`` for ``section`` (see the module table).

    ``cell_type`` is the cell's ``Type`` when the section is a cell; ``config`` is True for a
    section named by some cell's ``ConfigSection=``."""
    name = section.name
    if config or name == "" or name == "database" or name in STIMULI_SECTIONS:
        return FATAL
    head, _, tail = name.partition(".")
    if head in STIMULI_SECTIONS and ("Transformation" in tail or tail.startswith("StimuliData")):
        return FATAL
    if ".Target" in name and cell_type is None:
        return FATAL
    if cell_type in CHECKED_CELL_TYPES:
        if any(key in section.entries for key in WHOLE_SECTION_READERS):
            return WARN
        return AFTER_BUILD
    return WARN


def check_unknown_keys(section, policy, known=()):
    """Apply ``policy`` to the keys of ``section`` that nobody read.

    ``FATAL``/``AFTER_BUILD``: IniError "Unknown property K in section [S]" naming the key's
    line, with close matches among ``known`` (the keys the reader accepts). ``WARN``: one
    warning per key in ``section.document.warnings``. Returns the unread keys."""
    unread = section.unread_keys()
    for key in unread:
        message = f"Unknown property {key} in section [{section.name}]"
        hint = close_matches(key, known)
        if policy in (FATAL, AFTER_BUILD):
            raise section.error(message + hint, key=key)
        section.document.warn(message + " (ignored, as N2D2 does)" + hint, section, key)
    return unread


def check_global_keys(document):
    """N2D2 rejects any non-``$`` global key other than ``GLOBAL_KEYS`` (docs/INI.md §5).
    Marks the known ones read."""
    section = document.global_section
    for key in list(section.entries):
        if key.startswith("$"):
            continue
        if key not in GLOBAL_KEYS:
            raise section.error(f"Unknown property {key} in section []"
                                f"{close_matches(key, GLOBAL_KEYS)}", key=key)
        section.mark_read(key)


def unused_sections(document):
    """Names of the sections in which no key was ever read, in file order (N2D2 prints
    ``Notice: Unused section NAME in INI file`` for each; the only sign of a misspelt ONNX
    override section). ``$`` keys count as read, so a global section holding variables is
    used."""
    return [s.name for s in document if not any(s.is_read(key) for key in s.entries)]


def report_unused_sections(document):
    """Add one "Unused section" notice per unused section to ``document.warnings``."""
    names = unused_sections(document)
    for name in names:
        section = document.sections[name]
        document.warn(f"Notice: Unused section {name or '(global)'} in INI file", section)
    return names
