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

def shipped_files(root=ROOT):
    for name in SHIPPED:
        path = root / name
        paths = [path] if path.is_file() else sorted(path.rglob("*"))
        for p in paths:
            if p.is_file() and p.suffix in TEXT_SUFFIXES and "__pycache__" not in p.parts:
                yield p.relative_to(root).as_posix(), p


def citations(text):
    """(line number, line) of each line citing spec/."""
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)
            if CITATION.search(line)]


def citing_files(root=ROOT):
    found = {}
    for rel, path in shipped_files(root):
        hits = citations(path.read_text(encoding="utf-8", errors="replace"))
        if hits:
            found[rel] = hits
    return found


def test_shipped_files_do_not_cite_spec():
    offending = citing_files()
    lines = [f"{rel}:{n}: {line}" for rel, hits in sorted(offending.items()) for n, line in hits]
    assert not lines, ("say the fact or point at docs/*.md instead of citing spec/ (users do not "
                       "have it):\n" + "\n".join(lines))


def test_the_citation_finder_finds_citations():
    text = ('"""Targets (spec/ini.md §2.6)."""\nx = 1  # see /work/shared/spec/qat.md\n'
            "# spec §5.1: the batch is dim 0\nimport inspect/\n# docs/INI.md §6\n# respec/x\n")
    assert [n for n, _ in citations(text)] == [1, 2, 3]
    assert ("docs/INI.md" in {rel for rel, _ in shipped_files()}
            and "n2d2py/cli.py" in {rel for rel, _ in shipped_files()})


def test_a_citing_file_anywhere_in_what_ships_is_found(tmp_path):
    """No file is exempt: a citation in the package, the docs or a shipped INI is reported."""
    files = {"n2d2py/data/mnist.py": '"""MNIST (spec/ini.md §3.3)."""\n',
             "docs/DATA.md": "# Data\nSee docs/INI.md §7.\n",
             "models/x.ini": "[sp]\n; spec §3.1\nSizeX=28\n"}
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    assert citing_files(tmp_path) == {
        "n2d2py/data/mnist.py": [(1, '"""MNIST (spec/ini.md §3.3)."""')],
        "models/x.ini": [(2, "; spec §3.1")]}
