"""Unknown keys, unused sections, mapping tables (docs/INI.md §5, §6, §10)."""
import pytest

from n2d2py.errors import IniError
from n2d2py.ini import (AFTER_BUILD, FATAL, WARN, check_global_keys, check_unknown_keys,
                        parse_ini_text, parse_mapping_matrix, report_unused_sections,
                        unknown_key_policy, unused_sections)

NET = """$V=1
DefaultModel=Frame
[database]
Type=MNIST_IDX_Database
[sp]
SizeX=28
[sp.Transformation-1]
Type=PadCropTransformation
[sp.StimuliData-n]
MeanData=1
[conv1]
Input=sp
Type=Conv
Stirde=2
[conv2]
Input=conv1
Type=Conv
ActivationFunction=Rectifier
[pool1]
Input=conv2
Type=Pool
[softmax.Target]
TopN=1
[common.config]
NoBias=1
[empty]
"""


@pytest.mark.parametrize("name, cell_type, config, policy", [
    ("", None, False, FATAL), ("database", None, False, FATAL), ("sp", None, False, FATAL),
    ("sp.Transformation-1", None, False, FATAL), ("sp.StimuliData-n", None, False, FATAL),
    ("softmax.Target", None, False, FATAL), ("common.config", None, True, FATAL),
    ("conv1", "Conv", False, AFTER_BUILD), ("conv2", "Conv", False, WARN),
    ("pool1", "Pool", False, WARN),
])
def test_unknown_key_policy(name, cell_type, config, policy):
    doc = parse_ini_text(NET)
    assert unknown_key_policy(doc.section(name), cell_type, config) == policy


def test_check_unknown_keys_fatal_names_the_key_and_suggests():
    doc = parse_ini_text(NET, path="n.ini")
    conv1 = doc.section("conv1")
    for key in ("Input", "Type"):
        conv1.get(key)
    with pytest.raises(IniError, match=r"Unknown property Stirde in section \[conv1\] "
                                       r"\(did you mean 'Stride'") as info:
        check_unknown_keys(conv1, AFTER_BUILD, known=("Stride", "Padding"))
    assert (info.value.file, info.value.line, info.value.key) == ("n.ini", 14, "Stirde")


def test_check_unknown_keys_warn_collects_warnings():
    doc = parse_ini_text(NET)
    assert check_unknown_keys(doc.section("pool1"), WARN) == ["Input", "Type"]
    assert [w.key for w in doc.warnings] == ["Input", "Type"]
    assert "ignored" in str(doc.warnings[0])


def test_global_keys():
    check_global_keys(parse_ini_text(NET))
    doc = parse_ini_text("DefaultModle=Frame\n[s]\n", path="n.ini")
    with pytest.raises(IniError, match=r"n.ini:1 \[\] DefaultModle: Unknown property "
                                       r"DefaultModle in section \[\].*'DefaultModel'"):
        check_global_keys(doc)


def test_unused_sections():
    doc = parse_ini_text(NET)
    doc.section("conv1").get("Input")
    doc.section("database").get("Type")
    names = unused_sections(doc)
    assert "conv1" not in names and "database" not in names
    assert "" not in names                      # holds a $ variable, flagged read
    assert names[:2] == ["sp", "sp.Transformation-1"] and "empty" in names
    assert report_unused_sections(doc) == names
    assert str(doc.warnings[-1]).endswith("Notice: Unused section empty in INI file")


LENET_C3 = """[conv2]
Mapping(pool1)=\\
1 0 0 \\
0 1 1
Bad=1 0 2 1 1 1
"""


def test_parse_mapping_matrix():
    section = parse_ini_text(LENET_C3, path="n.ini").section("conv2")
    assert parse_mapping_matrix(section, "Mapping(pool1)", 2, 3) == [[True, False, False],
                                                                     [False, True, True]]
    with pytest.raises(IniError, match=r"has 6 values, expected 3 rows .* = 9") as info:
        parse_mapping_matrix(section, "Mapping(pool1)", 3, 3)
    assert (info.value.line, info.value.key) == (2, "Mapping(pool1)")
    with pytest.raises(IniError, match="'2' at row 1, column 3 must be 0 or 1"):
        parse_mapping_matrix(section, "Bad", 2, 3)
