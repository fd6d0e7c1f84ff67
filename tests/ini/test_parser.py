"""Reading INI text: lines, comments, sections, inheritance (docs/INI.md §1-§2)."""
import pytest

from n2d2py.errors import IniError
from n2d2py.ini import load_ini, parse_ini_text


def raw_values(document, name):
    return {k: e.raw for k, e in document.section(name).entries.items()}


def test_global_keys_sections_and_order():
    doc = parse_ini_text("$A=1\nDefaultModel=Frame\n[b]\nx=1\n[a]\ny = 2 \n")
    assert list(doc.sections) == ["", "b", "a"]
    assert raw_values(doc, "") == {"$A": "1", "DefaultModel": "Frame"}
    assert raw_values(doc, "a") == {"y": "2"}
    assert doc.section("a").line == 5 and doc.section("a").file == "<string>"


def test_names_and_keys_are_case_sensitive():
    doc = parse_ini_text("[Conv]\nType=1\ntype=2\n[conv]\n")
    assert raw_values(doc, "Conv") == {"Type": "1", "type": "2"}
    assert "conv" in doc and "CONV" not in doc


def test_bom_crlf_and_whitespace():
    doc = parse_ini_text("\ufeff[s]\r\n\tK =  v w \r\n\ufeffL=1\r\n")
    assert raw_values(doc, "s") == {"K": "v w", "L": "1"}


def test_comments_anywhere_outside_quotes():
    text = '[s]\n; full line\n# also\nA=1 ; after\nB=x#y\nC="a;b#c"\nD="q" ; c\nE=a "b;c" d\n'
    assert raw_values(parse_ini_text(text), "s") == {
        "A": "1", "B": "x", "C": "a;b#c", "D": "q", "E": 'a "b;c" d'}


def test_outer_quotes_removed_inner_kept_empty_allowed():
    doc = parse_ini_text('[s]\nA="x y"\nB=\nC="a"b"\nD=""\n'.replace('"a"b"', '"a""b"'))
    assert raw_values(doc, "s") == {"A": "x y", "B": "", "C": 'a""b', "D": ""}


def test_unmatched_quote_is_an_error():
    with pytest.raises(IniError, match=r"<string>:2: .*unmatched double quote"):
        parse_ini_text('[s]\nA="oops\n')


def test_continuation_keeps_the_space_before_the_backslash():
    doc = parse_ini_text("[s]\nM=\\\n1 0 \\\n0 1\nN=2\n")
    assert raw_values(doc, "s") == {"M": "1 0 0 1", "N": "2"}
    assert doc.section("s").entries["M"].line == 2


def test_continuation_then_comment_swallows_next_lines():
    # Joining happens before comments are cut, as in N2D2.
    doc = parse_ini_text("[s]\nA=1 ; note \\\nB=2\nC=3\n")
    assert raw_values(doc, "s") == {"A": "1", "C": "3"}


@pytest.mark.parametrize("ending", ["\\ ", "\\\r", "\\\t"])
def test_backslash_then_whitespace_does_not_continue(ending):
    doc = parse_ini_text(f"[s]\nA=1 {ending}\nB=2\n")
    assert raw_values(doc, "s") == {"A": "1 \\", "B": "2"}
    assert any("not continued" in str(w) and ":2:" in str(w) for w in doc.warnings)


def test_backslash_at_end_of_file():
    assert raw_values(parse_ini_text("[s]\nA=1 \\"), "s") == {"A": "1"}


def test_inheritance_copy_first_base_wins_and_own_lines_override():
    doc = parse_ini_text("[a]\nX=a\nY=a\n[b]\nX=b\nZ=b\n[c] a b\nY=c\n")
    assert raw_values(doc, "c") == {"X": "a", "Y": "c", "Z": "b"}
    assert doc.section("c").bases == ["a", "b"]
    (warning,) = doc.warnings
    assert warning.line == 8 and warning.section == "c" and warning.key == "Y"
    assert 'overriding property Y (previous value was "a"' in str(warning)


def test_header_without_space_before_base():
    doc = parse_ini_text("[ReluQ_def]\nQAct=SAT\n[1309]ReluQ_def\n")
    assert doc.section("1309").bases == ["ReluQ_def"]
    assert raw_values(doc, "1309") == {"QAct": "SAT"}


def test_inheritance_is_a_copy_at_parse_time():
    doc = parse_ini_text("[a]\nX=1\n[b] a\n")
    doc.section("a").set("Y", "2")
    assert "Y" not in doc.section("b")
    assert doc.section("b").entries["X"].line == 2       # place of the inherited line


def test_duplicate_key_in_one_section_warns_and_replaces():
    doc = parse_ini_text("[s]\nA=1\nA=2\n")
    assert raw_values(doc, "s") == {"A": "2"}
    assert len(doc.warnings) == 1 and doc.warnings[0].line == 3


def test_dollar_keys_are_flagged_read():
    doc = parse_ini_text("$G=1\n[s]\n$V=1\nK=2\n")
    assert doc.section("s").unread_keys() == ["K"]
    assert doc.section("s").entries["$V"].read


@pytest.mark.parametrize("text, message, line", [
    ("[a] nope\n", r"Inherited section \[nope\] does not exist", 1),
    ("[x]\n[a] x y\n", r"Inherited section \[y\] does not exist", 2),
    ("[b] a\n[a]\n", r"Inherited section \[a\] does not exist", 1),   # must come earlier
    ("[a]\nK=1\n[a]\n", r"section \[a\] already exists", 3),
    ("[s]\njust text\n", "expected key=value", 2),
    ("[s\nK=1\n", "unterminated section header", 1),
    ("[]\n", "empty section name", 1),
    ("[s]\n=1\n", "empty key", 2),
])
def test_errors_name_file_and_line(text, message, line):
    with pytest.raises(IniError, match=message) as info:
        parse_ini_text(text, path="net.ini")
    assert info.value.file == "net.ini" and info.value.line == line
    assert str(info.value).startswith(f"net.ini:{line}")


def test_unknown_base_suggests_close_matches():
    with pytest.raises(IniError, match="did you mean 'conv_def'"):
        parse_ini_text("[conv_def]\n[c] conv_deff\n")


def test_load_ini_missing_file(tmp_path):
    missing = tmp_path / "nope.ini"
    with pytest.raises(IniError, match="INI file not found") as info:
        load_ini(missing)
    assert info.value.file == str(missing)


def test_load_ini_reads_file_and_places(tmp_path):
    path = tmp_path / "net.ini"
    path.write_bytes(b"\xef\xbb\xbf$X=1\r\n[sp]\r\nSizeX=28\r\n")
    doc = load_ini(path)
    assert doc.path == str(path) and doc.main_dir == str(tmp_path)
    assert doc.section("sp").get("SizeX") == "28"
    assert doc.section("sp").place("SizeX") == (str(path), 3)
