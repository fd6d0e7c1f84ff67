"""Every INI of N2D2's corpus parses and every key evaluates, and every
``ini_examples/*.ini`` is a LeNet-like MNIST network."""
import pathlib

import pytest

from n2d2py.ini import load_ini, parse_mapping_matrix, to_int, to_uint

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "ini_examples"
EPOCH_SIZE = 1000
BUILD_VALUE = 7        # stands for _OutputsWidth & co., written by the build
BUILD_KEYS = ("_NbChannels", "_ChannelsWidth", "_ChannelsHeight", "_NbOutputs",
              "_OutputsWidth", "_OutputsHeight")
STIMULI_DATA_KEYS = ("_GlobalValue.minVal", "_GlobalValue.maxVal", "_GlobalValue.mean",
                     "_GlobalValue.stdDev", "_MeanData", "_StdDevData")
# N2D2's corpus in tests/data/n2d2 (N2D2's 86 *.ini/*.ini.tpl, of which 76 *.ini here):
# sections after template expansion, key lines (inherited copies included), template sections
# and values holding a $() expression, counted when this test was written.
EXPECTED_INI_FILES = 76
EXPECTED_SECTIONS = 2191
EXPECTED_ENTRIES = 16228
EXPECTED_TEMPLATE_SECTIONS = 383
EXPECTED_EXPRESSIONS = 675


def preset_build_keys(document):
    """Write what N2D2's build would write before the keys that reference it are read."""
    for section in document:
        if section.name in ("sp", "env", "cenv"):
            section.set("_EpochSize", EPOCH_SIZE)
        if "Input" in section:
            for key in BUILD_KEYS:
                section.set(key, BUILD_VALUE)
        if ".StimuliData" in section.name:
            for key in STIMULI_DATA_KEYS:
                section.set(key, BUILD_VALUE)


def evaluate_all(document):
    preset_build_keys(document)
    return sum(len([section.get(key) for key in section.keys()]) for section in document)


def test_every_corpus_file_parses_and_evaluates(n2d2_ini):
    files = sorted(n2d2_ini.rglob("*.ini"))
    sections = entries = templated = expressions = 0
    for path in files:
        document = load_ini(path, env={})
        sections += len(document.sections)
        entries += sum(len(s.entries) for s in document)
        templated += sum("$PARENT_SECTION_NAME" in s for s in document)
        expressions += sum("$(" in e.raw for s in document for e in s.entries.values())
        evaluate_all(document)          # raises IniError on any reference/expression failure
    assert len(files) == EXPECTED_INI_FILES
    assert (sections, entries) == (EXPECTED_SECTIONS, EXPECTED_ENTRIES)
    assert (templated, expressions) == (EXPECTED_TEMPLATE_SECTIONS, EXPECTED_EXPRESSIONS)


def test_resnet18_templates_and_python2_division(n2d2_ini):
    document = load_ini(n2d2_ini / "models" / "ResNet-18.ini", env={})
    assert [n for n in document.sections if n.startswith("conv2.1")] == [
        "conv2.1", "conv2.1_3x3_1", "conv2.1_3x3_2", "conv2.1_1x1_proj", "conv2.1_sum"]
    assert "conv2.2_1x1_proj" not in document
    assert document.section("conv2.2_sum").get("Input") == "conv2.2_3x3_2,conv2.1_sum"
    document.section("sp").set("_EpochSize", 1281167)
    config = document.section("common.config")
    iterations = config.get("Solvers.MaxIterations")
    assert iterations == "450410.2734375"
    assert config.convert(iterations, to_uint, "Solvers.MaxIterations") == 450410
    assert document.section("conv3.1_3x3_1").get_as("NbOutputs", to_int) == 128
    assert float(document.section("conv2.1_3x3_1").get("WeightsFiller.Scaling")) == \
        pytest.approx(8 ** -0.5)


def test_tests_data_resnet_relative_template(n2d2_ini):
    document = load_ini(n2d2_ini / "tests_data" / "ResNet-18.ini", env={})
    assert "conv5.2_sum" in document


def test_lenet_mapping_table(n2d2_ini):
    document = load_ini(n2d2_ini / "models" / "LeNet.ini", env={})
    table = parse_mapping_matrix(document.section("conv2"), "Mapping(pool1)", 6, 16)
    assert sum(map(sum, table)) == 60 and table[0][:4] == [True, False, False, False]


def test_crlf_onnx_files(n2d2_ini):
    for path in sorted((n2d2_ini / "models" / "ONNX").glob("*.ini")):
        document = load_ini(path, env={})
        assert all("\r" not in entry.raw for s in document for entry in s.entries.values())


NOT_MNIST_EXAMPLES = {"All-CNN-C.ini"}  # CIFAR-10, for the size/BitOps report (Wess et al.)


@pytest.mark.parametrize("path", sorted(p for p in EXAMPLES.glob("*.ini")
                                        if p.name not in NOT_MNIST_EXAMPLES), ids=lambda p: p.name)
def test_examples_are_lenet_like_mnist_networks(path):
    document = load_ini(path, env={})
    assert evaluate_all(document) > 0
    assert document.section("database").get("Type") == "MNIST_IDX_Database"
    sp = document.section("sp")
    assert (sp.get_as("SizeX", to_int), sp.get_as("SizeY", to_int)) in ((28, 28), (32, 32))
    cells = [s for s in document if "Input" in s]
    types = [c.get("Type") for c in cells]
    assert ("Conv" in types and "Fc" in types or "ONNX" in types)   # imported cells
    assert types[-1] == "Softmax"
    assert cells[-1].get("WithLoss") == "1" and f"{cells[-1].name}.Target" in document
