"""Names the user chose (INI sections, ONNX node outputs) as file names and C identifiers.

A cell's name is text from a file we did not write: ``../x``, ``/etc/cron.d/x``, a NUL, 10 000
characters, ``/layer1/layer1.0/conv1/Conv_output_0`` (every PyTorch export). Every file named
after a cell, target or node (weights, quantizer state, ``weights_quantized/``, histograms,
confusion matrices, ``<cell>.cfg``) goes through ``file_stem``; every C identifier through
``c_identifiers``.

**File names.** ``file_stem(name)`` is a relative path, always inside its folder:

* a *plain* name keeps N2D2's exact file name (``Utils::filePath``: ``/`` makes sub-folders), so
  N2D2's weight folders load as they are. Plain: components between ``/`` non-empty, none ``.``
  or ``..``, no control character, none of ``< > : " | ? * \\ %``, at most ``COMPONENT_BYTES``
  bytes of UTF-8 each, at most ``MAX_DEPTH`` of them, ``MAX_BYTES`` in all;
* any other name is one file name: every byte outside printable ASCII, every ``/ \\ % < > : " |
  ? *`` and a leading ``.`` written ``%XX`` (``/a/../b`` -> ``%2Fa%2F..%2Fb``). Reversible
  (``name_of_stem``), and never equal to a plain stem (it holds a ``%``, plain names hold none);
* a name too long even so keeps a readable prefix and ends with ``%~`` and 16 hex digits of its
  SHA-256 (``%~`` never occurs in the escaped form), so distinct names still get distinct files.

Readers (``find_cell_file``) also find N2D2's own file for the names it writes differently
(``/x`` -> ``x``, the invalid characters -> ``_``) when that file lies inside the folder.

**C identifiers.** ``c_identifier`` is N2D2's ``Utils::CIdentifier`` (every character but ASCII
letters, digits and ``_`` becomes ``_``) behind a prefix; ``c_identifiers`` checks that no two
names give the same one, and raises an ``N2D2Error`` naming both.
"""
import hashlib
import os
import re

from ..errors import N2D2Error

COMPONENT_BYTES = 180     # a suffix (``_weights_quant.distrib.png``...) must still fit NAME_MAX 255
MAX_DEPTH = 16            # sub-folders a plain name may create
MAX_BYTES = 1024          # all components of a plain name together
HASH_DIGITS = 16

# N2D2's Utils::isNotValidFilePath (iscntrl and < > : " | ? *), plus "\\" (a separator on
# Windows, N2D2's dirName splits on it too) and "%" (our escape character)
_NOT_PLAIN = re.compile(r'[\x00-\x1f\x7f<>:"|?*\\%]')
_N2D2_INVALID = re.compile(r'[\x00-\x1f\x7f<>:"|?*]')
_KEEP = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                  b" !#$&'()+,-.;=@[]^_`{}~")
_ESCAPE = re.compile(rb"%([0-9A-F]{2})")


def _utf8(text):
    return text.encode("utf-8", "surrogatepass")


def is_plain(name):
    """Whether ``name`` is its own file name (N2D2's, inside the folder)."""
    if not name or _NOT_PLAIN.search(name) or len(_utf8(name)) > MAX_BYTES:
        return False
    parts = name.split("/")
    if len(parts) > MAX_DEPTH:
        return False
    try:
        return all(p and p not in (".", "..") and len(p.encode("utf-8")) <= COMPONENT_BYTES
                   for p in parts)
    except UnicodeEncodeError:       # a lone surrogate: no file system takes it as is
        return False


def _escaped(name):
    data = _utf8(name)
    out = []
    for index, byte in enumerate(data):
        if byte in _KEEP and not (index == 0 and byte == ord(".")):
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02X}")
    return "".join(out) or "%"


def file_stem(name):
    """The relative path (``/``-separated) that files named after ``name`` start with."""
    name = str(name)
    if is_plain(name):
        return name
    stem = _escaped(name)
    if len(stem) <= COMPONENT_BYTES:
        return stem
    keep = COMPONENT_BYTES - HASH_DIGITS - 2
    cut = stem.rfind("%", keep - 2, keep)
    prefix = stem[:cut] if cut >= 0 else stem[:keep]
    return f"{prefix}%~{hashlib.sha256(_utf8(name)).hexdigest()[:HASH_DIGITS]}"


def name_of_stem(stem):
    """The name ``file_stem`` was given (None for a hashed stem of a very long name)."""
    if "%~" in stem:
        return None
    if stem == "%":
        return ""
    if "%" not in stem:
        return stem
    return _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), stem.encode("ascii")) \
        .decode("utf-8", "surrogatepass")


def n2d2_stem(name):
    """N2D2's own file name for ``name`` (``dir + "/" + filePath(name)``), made relative, or None
    when it would leave the folder or cannot be a file name."""
    parts = [p for p in _N2D2_INVALID.sub("_", str(name)).split("/") if p]
    if not parts or any(p in (".", "..") for p in parts) or "\\" in name:
        return None
    try:
        if len(_utf8("/".join(parts))) > MAX_BYTES or \
                any(len(p.encode("utf-8")) > COMPONENT_BYTES for p in parts):
            return None
    except UnicodeEncodeError:
        return None
    return "/".join(parts)


def cell_file(folder, name, suffix):
    """``<folder>/<file_stem(name)><suffix>`` (``suffix`` like ``"_weights.syntxt"``): where a
    file named after ``name`` is written (the writer makes the sub-folders, ``makedirs_for``)."""
    return os.path.join(os.fspath(folder), *file_stem(name).split("/")) + suffix


def find_cell_file(folder, name, suffix):
    """``cell_file`` for reading: when that file is missing but N2D2's own file for ``name``
    exists inside ``folder`` (N2D2 writes ``weights//x_weights.syntxt`` for a cell ``/x``, and
    ``_`` for the characters it replaces), that one."""
    path = cell_file(folder, name, suffix)
    if not os.path.exists(path):
        legacy = n2d2_stem(name)
        if legacy is not None and legacy != file_stem(name):
            candidate = os.path.join(os.fspath(folder), *legacy.split("/")) + suffix
            if os.path.isfile(candidate) and _inside(folder, candidate):
                return candidate
    return path


def makedirs_for(path):
    """Create the folders above the file ``path`` (a plain name's sub-folders)."""
    parent = os.path.dirname(os.fspath(path))
    if parent:
        os.makedirs(parent, exist_ok=True)


def _inside(folder, path):
    folder = os.path.realpath(folder)
    return os.path.commonpath([folder, os.path.realpath(path)]) == folder


def path_inside(folder, relative, links_inside=True):
    """``<folder>/<relative>`` for a path a file we did not write gives relative to ``folder``
    (ONNX external data, ``val.txt``'s image names, a synset's folder), or None when it would
    leave ``folder``: absolute, a ``..`` component, a drive, a NUL, or (``links_inside``) a
    symbolic link that resolves outside. Image databases pass ``links_inside=False``: a link
    the user put in the data folder (images kept elsewhere) is theirs to follow."""
    relative = str(relative)
    parts = relative.replace("\\", "/").split("/")
    if not relative or "\x00" in relative or os.path.isabs(relative) or ".." in parts \
            or re.match(r"[A-Za-z]:", relative):          # a Windows drive
        return None
    full = os.path.join(os.fspath(folder), relative)
    return full if not links_inside or _inside(folder, full) else None


# -- C identifiers -----------------------------------------------------------------------------
def c_identifier(name, prefix="L_"):
    """N2D2's ``Utils::CIdentifier`` (ASCII letters, digits, ``_``; anything else ``_``) after
    ``prefix`` (which makes it start with a letter)."""
    return prefix + "".join(ch if (ch.isascii() and ch.isalnum()) or ch == "_" else "_"
                            for ch in str(name))


def c_identifiers(names, prefix="L_", suffixes=("",), file=None):
    """``{name: identifier}``; two names that give one identifier are an N2D2Error naming both
    (and ``file``, the INI or model that named them, at the second one's section).

    ``suffixes`` are the endings the export appends (``_W``, ``_out``...): ``a`` and ``a_W`` would
    otherwise clash as ``L_a_W`` (the array of ``a``) and ``L_a_W`` (the layer ``a_W``)."""
    identifiers, owner = {}, {}
    for name in names:
        base = c_identifier(name, prefix)
        identifiers[name] = base
        for suffix in suffixes:
            ident = base + suffix
            if ident in owner and owner[ident] != name:
                raise N2D2Error(f"C export: cells '{owner[ident]}' and '{name}' give the same C "
                                f"identifier '{ident}' (every character other than a letter, a "
                                f"digit or '_' becomes '_'): rename one", file=file,
                                section=name if file else None)
            owner[ident] = name
    return identifiers


__all__ = ["file_stem", "name_of_stem", "n2d2_stem", "cell_file", "find_cell_file", "makedirs_for",
           "is_plain", "path_inside",
           "c_identifier", "c_identifiers"]
