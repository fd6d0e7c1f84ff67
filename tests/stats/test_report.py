"""The report's entry points (n2d2py/stats/__init__.py) and renderings (table.py)."""
import csv
import io
import pathlib

import pytest

from n2d2py.deepnet import DeepNet
from n2d2py.errors import N2D2Error
from n2d2py.stats import cost_table, format_text, parse_bits, report_main, write_report
from n2d2py.stats import parse_overrides

ROOT = pathlib.Path(__file__).resolve().parents[2]
RESNET20 = ROOT / "models" / "ResNet-20.ini"


def test_parse_bits():
    assert parse_bits("4/4") == (4, 4)
    assert parse_bits("8/32") == (8, 32)
    assert parse_bits("3") == (3, 3)
    for bad in ("4/", "a/b", "0/4", "4/4/4"):
        with pytest.raises(N2D2Error, match="--report-bits"):
            parse_bits(bad)
    assert parse_overrides(["conv1=8/8", " fc = 2/4"]) == {"conv1": (8, 8), "fc": (2, 4)}
    with pytest.raises(N2D2Error, match="CELL=W/A"):
        parse_overrides(["conv1"])


def test_report_main_prints_and_writes(tmp_path):
    out = io.StringIO()
    csv_path, md_path = tmp_path / "r" / "report.csv", tmp_path / "report.md"
    assert report_main(str(RESNET20), ["--report-bits", "4/4", "--report-csv", str(csv_path),
                                       "--report-md", str(md_path)], out) == 0
    text = out.getvalue()
    assert "Model size: 0.1342 MB (134,168 bytes, 131.02 KiB)" in text
    assert "BitOps: 0.6488 GBitOps (648,816,640)" in text
    assert "first and last weighted layers: no special rule" in text
    assert "network input 4 bits" in text
    assert "Total number of synapses: 268346" in text          # N2D2's stats block
    rows = list(csv.DictReader(csv_path.read_text().splitlines()))
    assert rows[0] == {"layer": "conv1", "type": "Conv", "C": "16", "H": "32", "W": "32",
                       "weights": "432", "MACs": "442368", "w_bits": "4", "a_bits": "4",
                       "size_bytes": "216", "BitOps": "7077888", "out_bits": "4"}
    assert rows[-1]["layer"] == "TOTAL" and rows[-1]["BitOps"] == "648816640"
    assert rows[-1]["weights"] == "268336" and rows[-1]["size_bytes"] == "134168"
    md = md_path.read_text()
    assert "| conv1 | Conv | 16x32x32 | 432 | 442,368 | 4 | 4 | 216 | 7,077,888 |" in md
    assert "* BitOps: 0.6488 GBitOps (648,816,640)" in md


def test_report_first_last_and_override():
    out = io.StringIO()
    report_main(str(RESNET20), ["--report-bits", "4/4", "--report-first-last", "8bit",
                                "--report-override", "s1.1_conv1=2/2"], out)
    text = out.getvalue()
    # 0.6701 G at first/last 8/8, minus s1.1_conv1 going from 4x4 to 2x2 bits
    assert f"({670_081_024 - 2_359_296 * 12:,})" in text
    assert "first and last weighted layers: kept at 8/8 bits" in text
    assert "Per-layer overrides (w/a): s1.1_conv1 2/2." in text


def test_write_report_after_training(tmp_path):
    net = DeepNet.from_ini(RESNET20, device="cpu", load_data=False)
    table = write_report(net, tmp_path)
    assert round(table.gbitops, 2) == 41.52
    assert (tmp_path / "report.csv").read_text().splitlines()[-1] == \
        "TOTAL,,,,,268336,40551040,,,1073344,41524264960,"
    assert "1.0733 MB" in (tmp_path / "report.md").read_text()


def test_text_table_layout():
    net = DeepNet.from_ini(RESNET20, device="cpu", load_data=False)
    lines = format_text(cost_table(net), weighted_only=True).splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("layer"))
    assert lines[header].split() == ["layer", "type", "output", "(C,H,W)", "weights", "MACs",
                                     "w", "bits", "a", "bits", "size", "(bytes)", "BitOps"]
    assert lines[header + 2].split() == ["conv1", "Conv", "16x32x32", "432", "442,368", "32",
                                         "32", "1728", "452,984,832"]
    assert sum(1 for line in lines if " Conv " in line or " Fc " in line) == 20
