"""What ships to users stands alone: no file of the package, the docs, the README or the shipped
INIs cites the developers' private notes (a ``spec/...`` path or a bare "spec §" section), which
a user's clone does not have. A citation says the fact itself, in our words, or points at
``docs/*.md``."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
#: what a user gets: the package, its documentation and the INI files it ships
SHIPPED = ["n2d2py", "docs", "README.md", "ini_examples", "models"]
TEXT_SUFFIXES = {".py", ".md", ".ini", ".tpl", ".txt", ".cfg", ".json", ".rst", ".toml"}
#: ``spec/`` as a path (not ``inspect/``, ``respec/``) or "spec §2.4"
CITATION = re.compile(r"(?<![\w.-])spec/|\bspec\s*§")

#: Files that still cite spec/ because another engineer was changing them when the citations were
#: replaced everywhere else. TEMPORARY: the lead rewrites their citations after merging and removes
#: each file from this set; the set must end up empty (and ``test_allowance_has_no_stale_entry``
#: fails as soon as an entry no longer cites spec/, so that it is removed then).
ALLOWED = {
    "n2d2py/data/__init__.py", "n2d2py/data/cifar.py", "n2d2py/data/color.py",
    "n2d2py/data/database.py", "n2d2py/data/geometric.py",
    "n2d2py/data/idx.py", "n2d2py/data/mnist.py", "n2d2py/data/sp_ini.py",
    "n2d2py/data/stimuli_provider.py", "n2d2py/data/transformation.py",
}


def shipped_files():
    for name in SHIPPED:
        path = ROOT / name
        paths = [path] if path.is_file() else sorted(path.rglob("*"))
        for p in paths:
            if p.is_file() and p.suffix in TEXT_SUFFIXES and "__pycache__" not in p.parts:
                yield p.relative_to(ROOT).as_posix(), p


def citations(text):
    """(line number, line) of each line citing spec/."""
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)
            if CITATION.search(line)]


def citing_files():
    found = {}
    for rel, path in shipped_files():
        hits = citations(path.read_text(encoding="utf-8", errors="replace"))
        if hits:
            found[rel] = hits
    return found


def test_shipped_files_do_not_cite_spec():
    offending = {rel: hits for rel, hits in citing_files().items() if rel not in ALLOWED}
    lines = [f"{rel}:{n}: {line}" for rel, hits in sorted(offending.items()) for n, line in hits]
    assert not lines, ("say the fact or point at docs/*.md instead of citing spec/ (users do not "
                       "have it):\n" + "\n".join(lines))


def test_allowance_has_no_stale_entry():
    stale = sorted(ALLOWED - set(citing_files()))
    assert not stale, f"no longer cite spec/: remove them from ALLOWED: {stale}"


def test_the_citation_finder_finds_citations():
    text = ('"""Targets (spec/ini.md §2.6)."""\nx = 1  # see ../shared/spec/qat.md\n'
            "# spec §5.1: the batch is dim 0\nimport inspect/\n# docs/INI.md §6\n# respec/x\n")
    assert [n for n, _ in citations(text)] == [1, 2, 3]
    assert ("docs/INI.md" in {rel for rel, _ in shipped_files()}
            and "n2d2py/cli.py" in {rel for rel, _ in shipped_files()})
