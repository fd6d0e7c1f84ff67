"""The ``.ini.tpl`` engine and ``[name@file.ini.tpl]`` includes (docs/INI.md §4)."""
import os

import pytest

from n2d2py.errors import IniError
from n2d2py.ini import load_ini, render_template


def test_variables_and_kept_newlines():
    assert render_template("[{{A}}_x]\n{% if A exists %}\nK={{A}}\n{% endif %}\n", {"A": "c"}) \
        == "[c_x]\n\nK=c\n\n"


def test_undefined_variable_is_an_error():
    with pytest.raises(IniError, match="Undefined variable name 'B'") as info:
        render_template("x\n\n{{B}}", {}, "t.tpl")
    assert (info.value.file, info.value.line) == ("t.tpl", 3)


@pytest.mark.parametrize("condition, expected", [
    ("A == 1", "yes"), ("A == 2", "no"), ("A != 2", "yes"), ("A != 1", "no"),
    ("A exists", "yes"), ("Z exists", "no"), ("Z not_exists", "yes"), ("A not_exists", "no"),
])
def test_if_operators(condition, expected):
    text = f"{{% if {condition} %}}yes{{% else %}}no{{% endif %}}"
    assert render_template(text, {"A": "1"}) == expected


def test_comparison_needs_the_variable():
    with pytest.raises(IniError, match="Undefined variable name 'Z'"):
        render_template("{% if Z == 1 %}x{% endif %}", {})


@pytest.mark.parametrize("a, b, expected", [
    ("1", "1", "A1B1-after"), ("1", "0", "A1B0-after"), ("0", "1", "A0-after"),
])
def test_nested_if_else_is_correct(a, b, expected):
    # N2D2's engine lets the inner else close the outer if; ours nests properly.
    text = ("{% if A == 1 %}A1{% if B == 1 %}B1{% else %}B0{% endif %}"
            "{% else %}A0{% endif %}-after")
    assert render_template(text, {"A": a, "B": b}) == expected


def test_for_loops():
    assert render_template("{% for I in range(3) %}{{I}},{% endfor %}", {}) == "0,1,2,"
    assert render_template("{% for I in range(N, 4) %}{{I}}{% endfor %}", {"N": "2"}) == "23"
    assert render_template("{% for I in range(0.5, 2) %}{{I}} {% endfor %}", {}) == "0.5 1.5 "
    with pytest.raises(IniError, match="loop variable 'I' already exists"):
        render_template("{% for I in range(2) %}{% endfor %}", {"I": "0"})
    with pytest.raises(IniError, match="expected a number"):
        render_template("{% for I in range(X) %}{% endfor %}", {})
    with pytest.raises(IniError, match="more than"):
        render_template("{% for I in range(1e12) %}{% endfor %}", {})


def test_loop_variable_does_not_leak():
    with pytest.raises(IniError, match="Undefined variable name 'I'"):
        render_template("{% for I in range(1) %}{% endfor %}{{I}}", {})


def test_block_index_and_fields():
    params = {"L": "2", "L[0].name": "a", "L[1].name": "b"}
    assert render_template("{% block L %}{{#}}={{.name}};{% endblock %}", params) == "0=a;1=b;"


def test_set_endset_persists_after_the_if():
    text = ("{% if P exists %}{% set INPUT %}{{S}}_proj{% endset %}{% endif %}"
            "Input={{INPUT}}")
    assert render_template(text, {"P": "1", "S": "c2", "INPUT": "pool"}) == "Input=c2_proj"
    assert render_template(text, {"S": "c2", "INPUT": "pool"}) == "Input=pool"


def test_include(tmp_path):
    (tmp_path / "part.tpl").write_text("[{{N}}_part]\n")
    main = tmp_path / "main.tpl"
    main.write_text("{% include part.tpl %}X")
    from n2d2py.ini.template import render_file
    assert render_file(str(main), {"N": "a"}) == "[a_part]\nX"
    (tmp_path / "self.tpl").write_text("{% include self.tpl %}")
    with pytest.raises(IniError, match="deeper than"):
        render_file(str(tmp_path / "self.tpl"), {})
    main.write_text("{% include missing.tpl %}")
    with pytest.raises(IniError, match="not found"):
        render_file(str(main), {})


@pytest.mark.parametrize("text, message", [
    ("{% if A exists %}x", r"never closed \(expected {% endif %}\)"),
    ("{% endif %}", "unexpected template tag 'endif'"),
    ("{% for I in range(2) %}{% endif %}", "unexpected template tag 'endif'"),
    ("{% while A %}", "unexpected template tag 'while'"),
    ("{% if A like 1 %}{% endif %}", "unknown if operator 'like'"),
    ("{%  %}", "empty"),
    ("{% set %}{% endset %}", "expects 1 argument"),
])
def test_template_syntax_errors(text, message):
    with pytest.raises(IniError, match=message):
        render_template(text, {"A": "1"})


BLOCK_TPL = """[{{SECTION_NAME}}_conv]
Input={{INPUT}}
NbOutputs={{NB}}
Scaling=$(${L} * 2)
Same=[{{INPUT}}]NbOutputs
Prev=${PREV_SECTION_NAME}
{% if PROJ exists %}
[{{SECTION_NAME}}_proj]
Input={{INPUT}}
{% set INPUT %}{{SECTION_NAME}}_proj{% endset %}
{% endif %}
[{{SECTION_NAME}}_sum]
Input={{SECTION_NAME}}_conv,{{INPUT}}
File={{SECTION_FILE_NAME}}
"""

MAIN_INI = """$L=3
[pool1]
NbOutputs=8
[b1@${N2D2_MODELS}/block.ini.tpl]
INPUT=pool1
NB=$([pool1]NbOutputs * 2)
PROJ=1
[b2@block.ini.tpl]
INPUT=b1_sum
NB=4
[fc]
Input=b2_sum
"""


@pytest.fixture
def template_net(tmp_path):
    (tmp_path / "block.ini.tpl").write_text(BLOCK_TPL)
    (tmp_path / "net.ini").write_text(MAIN_INI)
    return tmp_path


def test_template_include_sections_in_place(template_net):
    doc = load_ini(template_net / "net.ini", env={})
    assert list(doc.sections) == ["", "pool1", "b1", "b1_conv", "b1_proj", "b1_sum", "b2",
                                  "b2_conv", "b2_sum", "fc"]
    conv = doc.section("b1_conv")
    assert conv.get("NbOutputs") == "16" and conv.get("Scaling") == "6"
    assert conv.get("Same") == "8" and conv.get("Prev") == "pool1"
    assert conv.get("$PARENT_SECTION_NAME") == "b1"
    assert doc.section("b1_sum").get("Input") == "b1_conv,b1_proj"
    assert doc.section("b2_sum").get("Input") == "b2_conv,b1_sum"
    assert doc.section("b1_sum").get("File") == os.path.join(str(template_net), "block.ini.tpl")
    assert doc.section("b1_conv").file.endswith("block.ini.tpl")
    assert "$PARENT_SECTION_NAME" not in doc.section("fc")


def test_template_path_is_relative_to_the_top_level_ini(template_net, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path.parent)
    doc = load_ini(os.path.relpath(template_net / "net.ini"), env={})
    assert "b2_conv" in doc


def test_template_env_variable_in_path(template_net, tmp_path_factory):
    other = tmp_path_factory.mktemp("models")
    (other / "block.ini.tpl").write_text("[{{SECTION_NAME}}_other]\n")
    doc = load_ini(template_net / "net.ini", env={"N2D2_MODELS": str(other)})
    assert "b1_other" in doc and "b2_conv" in doc


def test_template_parameter_named_section_name_is_an_error(tmp_path):
    (tmp_path / "t.tpl").write_text("")
    (tmp_path / "n.ini").write_text("[a@t.tpl]\nSECTION_NAME=x\n")
    with pytest.raises(IniError, match="Parameter already exists") as info:
        load_ini(tmp_path / "n.ini")
    assert info.value.line == 2


def test_missing_template_and_recursive_template(tmp_path):
    (tmp_path / "n.ini").write_text("[a@nope.tpl]\n")
    with pytest.raises(IniError, match="template file not found") as info:
        load_ini(tmp_path / "n.ini")
    assert info.value.line == 1
    (tmp_path / "loop.tpl").write_text("[{{SECTION_NAME}}x@loop.tpl]\n")
    (tmp_path / "n.ini").write_text("[a@loop.tpl]\n")
    with pytest.raises(IniError, match="nested deeper"):
        load_ini(tmp_path / "n.ini")


def test_template_errors_name_the_template_file(tmp_path):
    (tmp_path / "t.tpl").write_text("\n[{{SECTION_NAME}}_x] nobase\n")
    (tmp_path / "n.ini").write_text("[a@t.tpl]\n")
    with pytest.raises(IniError, match="Inherited section") as info:
        load_ini(tmp_path / "n.ini")
    assert info.value.file.endswith("t.tpl") and info.value.line == 2
