"""Evaluating values on read: ``[S]K``, ``${VAR}``, ``$(...)`` (docs/INI.md §3)."""
import pytest

from n2d2py.errors import IniError
from n2d2py.ini import (FloatExpressionText, expand_env, list_of, load_ini, parse_ini_text,
                        to_float, to_int, to_uint, truncate_floats)


def value(text, section, key):
    return parse_ini_text(text).section(section).get(key)


def test_reference_to_another_section():
    text = "[sp]\nSizeX=28\n[t]\nWidth=[sp]SizeX\nBoth=[sp]SizeX [sp]SizeX\n"
    doc = parse_ini_text(text)
    assert doc.section("t").get("Width") == "28"
    assert doc.section("t").get("Both") == "28 28"


def test_reference_is_fully_evaluated_in_the_referenced_section():
    text = "[a]\n$V=1\nK=${V}-${SECTION_NAME}\n[b]\n$V=2\nR=[a]K\n"
    assert value(text, "b", "R") == "1-a"


def test_reference_key_ends_at_whitespace():
    text = "[fc]\nNbOutputs=10\n[s]\nGood=$([fc]NbOutputs * 2)\nBad=$([fc]NbOutputs*2)\n"
    doc = parse_ini_text(text, path="n.ini")
    assert doc.section("s").get("Good") == "20"
    with pytest.raises(IniError, match=r"Property NbOutputs\*2\) not found in section \[fc\]"
                       r".*whitespace") as info:
        doc.section("s").get("Bad")
    assert (info.value.file, info.value.line, info.value.key) == ("n.ini", 5, "Bad")


def test_brackets_that_are_not_sections_stay():
    doc = parse_ini_text("[s]\nA=[not a section] x\nB=a[1]\nC=[\nD=[] x\nE=x ] [ y\n")
    section = doc.section("s")
    assert [section.get(k) for k in "ABCDE"] == ["[not a section] x", "a[1]", "[", "[] x",
                                                 "x ] [ y"]


def test_missing_key_names_where_the_reference_was_written():
    doc = parse_ini_text("[sp]\nSizeX=1\n[base]\nW=[sp]_EpochSize\n[c] base\n", path="n.ini")
    with pytest.raises(IniError, match=r"Property _EpochSize not found in section \[sp\]") as e:
        doc.section("c").get("W")
    assert (e.value.file, e.value.line, e.value.section) == ("n.ini", 4, "c")


def test_build_keys_become_visible_after_set():
    doc = parse_ini_text("[sp]\n[c]\nI=$([sp]_EpochSize * 90 / 256)\n")
    doc.section("sp").set("_EpochSize", 1281167)
    assert doc.section("c").get("I") == "450410.2734375"


def test_variables_local_then_global_then_unchanged():
    text = "$A=global\n$B=gb\n[s]\n$A=local\nK=${A} ${B} ${C} ${}\n"
    assert value(text, "s", "K") == "local gb ${C} ${}"


def test_variables_are_not_environment_variables(monkeypatch):
    monkeypatch.setenv("HOME_N2D2PY_TEST", "/x")
    assert value("[s]\nK=${HOME_N2D2PY_TEST}\n", "s", "K") == "${HOME_N2D2PY_TEST}"


def test_section_name_is_the_reading_section():
    text = "[base]\nCfg=${SECTION_NAME}.config\n[conv1] base\n"
    doc = parse_ini_text(text)
    assert doc.section("conv1").get("Cfg") == "conv1.config"
    assert doc.section("base").get("Cfg") == "base.config"


def test_prev_section_name():
    doc = parse_ini_text("[a]\n[b]\nP=${PREV_SECTION_NAME}\n[c]\n$PARENT_SECTION_NAME=b\n"
                         "P=${PREV_SECTION_NAME}\n")
    assert doc.section("b").get("P") == "a"
    assert doc.section("c").get("P") == "a"      # skips its template-including parent [b]


def test_variable_holding_a_reference_and_an_expression():
    text = "$N=[fc]NbOutputs\n$TWICE=$(${N} * 2)\n[fc]\nNbOutputs=5\n[s]\nK=${TWICE}\n"
    assert value(text, "s", "K") == "10"


def test_expressions_after_substitution():
    text = ("$SIZE=224\n$MARGIN=32\n$ALPHA=0.75\n[s]\nW=$(${SIZE} + ${MARGIN})\n"
            "O=$(${MARGIN} // 2)\nH=$(${MARGIN} / 2)\nN=$(int(64 * ${ALPHA}))\n"
            "Two=$(1+1) and $(2*(3+4))\n")
    section = parse_ini_text(text).section("s")
    assert [section.get(k) for k in ("W", "O", "H", "N", "Two")] == ["256", "16", "16", "48",
                                                                       "2 and 14"]


@pytest.mark.parametrize("raw, message", [
    ("$(1 +", "unbalanced parentheses"),
    ("$(foo(1))", "unknown name 'foo'"),
    ("$(9**9**9)", "bits"),
])
def test_expression_errors_name_the_key(raw, message):
    doc = parse_ini_text(f"[s]\n\nK={raw}\n", path="n.ini")
    with pytest.raises(IniError, match=message) as info:
        doc.section("s").get("K")
    assert (info.value.file, info.value.line, info.value.key) == ("n.ini", 3, "K")


@pytest.mark.parametrize("text", [
    "[s]\nA=[s]B\nB=[s]A\n",
    "[s]\nA=[s]A\n",
    "$X=${Y}\n$Y=${X}\n[s]\nA=${X}\n",
    "[s]\n$X=${X}\nA=${X}\n",
])
def test_reference_cycles_are_errors(text):
    with pytest.raises(IniError, match="reference cycle"):
        parse_ini_text(text).section("s").get("A")


def test_deep_chain_is_an_error_not_a_recursion_error():
    lines = ["[s]"] + [f"K{i}=[s]K{i + 1}" for i in range(500)] + ["K500=end"]
    with pytest.raises(IniError, match="nested deeper"):
        parse_ini_text("\n".join(lines)).section("s").get("K0")
    assert parse_ini_text("\n".join(lines)).section("s").get("K480") == "end"


def test_same_variable_twice_is_not_a_cycle():
    assert value("$A=1\n[s]\nK=${A}${A}[s]L [s]L\nL=${A}\n", "s", "K") == "111 1"


def test_float_expression_truncated_for_integer_keys_with_warning():
    doc = parse_ini_text("[s]\nI=$(7 / 2)\nF=$(7 / 2)\nL=$(7 / 2) 4\nExact=$(8 / 2)\nP=3.5\n")
    section = doc.section("s")
    assert isinstance(section.get("I"), FloatExpressionText)
    assert section.get_as("I", to_int) == 3
    assert section.get_as("F", to_float) == 3.5
    assert section.get_as("L", list_of(to_uint)) == [3, 4]
    assert section.get_as("Exact", to_int) == 4
    assert len(doc.warnings) == 2 and "truncated to 3" in str(doc.warnings[0])
    with pytest.raises(IniError, match="expected an integer"):
        section.get_as("P", to_int)                   # written by hand: N2D2 rejects it too


def test_truncate_floats():
    assert truncate_floats("450410.74 -2.5 3 1e3 a1.5") == "450410 -2 3 1000 a1.5"


def test_expand_env():
    env = {"N2D2_MODELS": "/m", "A": "x"}
    assert expand_env("${N2D2_MODELS}/t.tpl $A/${UNSET}/$UNSET.", env) == "/m/t.tpl x//."


def test_document_env_defaults_n2d2_models_to_the_ini_directory(tmp_path):
    path = tmp_path / "net.ini"
    path.write_text("[database]\nDataPath=${N2D2_MODELS}/mnist\n")
    doc = load_ini(path, env={})
    assert doc.section("database").get_path("DataPath") == f"{tmp_path}/mnist"
    doc = load_ini(path, env={"N2D2_MODELS": "/models"})
    assert doc.section("database").get_path("DataPath") == "/models/mnist"
