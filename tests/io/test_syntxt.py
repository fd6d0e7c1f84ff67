"""The .syntxt weight format and N2D2's own weight folders."""
import filecmp

import numpy
import pytest

from cell_helpers import build_cells, run
from n2d2py.errors import WeightsError
from n2d2py.io import syntxt
from n2d2py.ini import load_ini


def test_number_format_like_cpp():
    assert [syntxt.format_number(v) for v in (0.0432, -1.234567e-05, 1.0, 120.70812, 0.0)] == \
        ["0.0432", "-1.23457e-05", "1", "120.708", "0"]
    assert syntxt.format_number(numpy.float32(0.1), 10) == "0.1000000015"


def test_plain_names_keep_n2d2_layout_and_others_are_escaped(tmp_path):
    path = syntxt.weights_path(str(tmp_path), "MobilenetV1/Conv2d_0", "weights", create=True)
    assert path.endswith("MobilenetV1/Conv2d_0_weights.syntxt") and (tmp_path / "MobilenetV1").is_dir()
    assert syntxt.weights_path("w", "conv2.1_sum", "biases") == "w/conv2.1_sum_biases.syntxt"
    # N2D2 would write conv_1__x (two names could share it): ours is one escaped file name
    path = syntxt.weights_path(str(tmp_path), 'Mobilenet/conv:1?"x', "weights", create=True)
    assert path == str(tmp_path / "Mobilenet%2Fconv%3A1%3F%22x_weights.syntxt")


def test_reading_finds_n2d2s_own_file_for_names_it_writes_differently(tmp_path):
    (tmp_path / "Mobilenet").mkdir()
    (tmp_path / "Mobilenet" / "conv_1__x_weights.syntxt").write_text("1 ")
    path = syntxt.weights_path(str(tmp_path), 'Mobilenet/conv:1?"x', "weights")
    assert path == str(tmp_path / "Mobilenet" / "conv_1__x_weights.syntxt")


def test_layout_and_strict_counts(tmp_path):
    path = str(tmp_path / "a.syntxt")
    syntxt.write_rows(path, [[1.5, -2], [3e-7]])
    assert open(path).read() == "1.5 -2 \n3e-07 \n"
    assert syntxt.read_numbers(path, 3).tolist() == pytest.approx([1.5, -2, 3e-7])
    with pytest.raises(WeightsError, match=r"a.syntxt: .*too few numbers, expected 4"):
        syntxt.read_numbers(path, 4)
    with pytest.raises(WeightsError, match=r"larger than expected: expected 2"):
        syntxt.read_numbers(path, 2)
    with pytest.raises(WeightsError, match="missing"):
        syntxt.read_numbers(str(tmp_path / "none.syntxt"), 1)
    assert syntxt.read_numbers(str(tmp_path / "none.syntxt"), 1, ignore_missing=True) is None
    syntxt.write_column(path, [1, 2])
    assert open(path).read() == "1\n2\n"


MODEL = "tests_data/mnist_model"


def test_import_n2d2_model_weights_and_rewrite_identically(n2d2_ini, tmp_path, rng):
    folder = n2d2_ini / MODEL / "weights"
    cells = build_cells(None, doc=load_ini(str(n2d2_ini / MODEL / "model.ini")))
    for cell in cells.values():
        cell.import_weights(str(folder))
    # depthwise: 8 lines of 9 numbers, first line from the file text
    first = (folder / "conv_dw_2_weights.syntxt").read_text().split("\n")[0].split()
    assert len(first) == 9
    assert cells["conv_dw_2"].weights[0].data[0, 0].ravel().tolist() == \
        pytest.approx([float(v) for v in first])
    fc2 = (folder / "fc_2_weights.syntxt").read_text().split("\n")
    assert cells["fc_2"].weights[0].data[3, 15] == pytest.approx(float(fc2[3].split()[15]))
    assert cells["fc_1"].bias.data[0] == pytest.approx(
        float((folder / "fc_1_biases.syntxt").read_text().split()[0]))
    for cell in cells.values():
        cell.export_weights(str(tmp_path))
    for f in folder.iterdir():   # 6 significant digits: N2D2's files come back byte for byte
        assert filecmp.cmp(f, tmp_path / f.name, shallow=False), f.name
    y = run(cells, rng.random((2, 1, 28, 28)))["softmax"]
    assert y.shape == (2, 10, 1, 1) and numpy.allclose(y.sum(axis=1), 1, atol=1e-5)


def test_import_lenet_w4_a8(n2d2_ini, tmp_path):
    folder = n2d2_ini / MODEL / "weights_LeNet_w4_a8"
    cells = build_cells(None, doc=load_ini(str(n2d2_ini / MODEL / "LeNet_w4_a8.ini")))
    for cell in cells.values():
        cell.import_weights(str(folder))
    text = (folder / "conv2_weights.syntxt").read_text().split("\n")
    assert cells["conv2"].weights[0].data[5].ravel()[37] == pytest.approx(float(text[5].split()[37]))
    assert cells["bn1"].variance[2] == pytest.approx(1.6678)
    assert cells["bn1"].qact.alpha == pytest.approx(
        float((folder / "bn1_QAct_SAT_Alpha.syntxt").read_text()))
    assert cells["fc1"].qact is not None and cells["fc2"].qact is None
    for cell in cells.values():
        cell.export_weights(str(tmp_path))
    for f in folder.iterdir():
        if "_quant_" in f.name:   # written from the last forward before the final update (by N2D2)
            assert (tmp_path / f.name).exists()
        else:   # 10 digits for quantized cells, 6 for BatchNorm, as N2D2
            assert filecmp.cmp(f, tmp_path / f.name, shallow=False), f.name


def test_roundtrip_exact_as_written_and_precision9(tmp_path, rng):
    text = "[c]\nInput=env\nType=Conv\nKernelDims=3 3\nNbOutputs=4\nMapping.NbGroups=2\n" \
           "[f]\nInput=c\nType=Fc\nNbOutputs=3\n[bn]\nInput=f\nType=BatchNorm\nNbOutputs=3\n"
    a = build_cells(text, env=(4, 5, 5), seed=1)
    b = build_cells(text, env=(4, 5, 5), seed=2)
    a["bn"].variance[...] = rng.random(3)
    for precision, exact in ((6, False), (9, True)):
        for cell in a.values():
            cell.export_weights(str(tmp_path / str(precision)), precision=precision)
            b[cell.name].import_weights(str(tmp_path / str(precision)))
        w_a, w_b = a["c"].weights[0].data, b["c"].weights[0].data
        assert numpy.array_equal(w_a, w_b) == exact
        assert numpy.allclose(w_a, w_b, rtol=1e-5, atol=1e-7)
        # what was written reads back to the same text
        for cell in b.values():
            cell.export_weights(str(tmp_path / f"again{precision}"), precision=precision)
        assert filecmp.cmp(tmp_path / str(precision) / "c_weights.syntxt",
                           tmp_path / f"again{precision}" / "c_weights.syntxt", shallow=False)
    assert numpy.array_equal(a["bn"].variance, b["bn"].variance)


def test_legacy_single_file_and_errors(tmp_path):
    text = "[c]\nInput=env\nType=Conv\nKernelDims=1 1\nNbOutputs=2\n" \
           "[bn]\nInput=c\nType=BatchNorm\nNbOutputs=2\n"
    cells = build_cells(text, env=(3, 2, 2))
    (tmp_path / "c.syntxt").write_text("1 2 3 0.5\n4 5 6 -0.5\n")   # per output: kernels, bias
    (tmp_path / "bn.syntxt").write_text("1 0 0 1\n2 0.5 0.1 4\n")  # scale bias mean variance
    cells["c"].import_weights(str(tmp_path))
    cells["bn"].import_weights(str(tmp_path))
    assert cells["c"].weights[0].data[:, :, 0, 0].tolist() == [[1, 2, 3], [4, 5, 6]]
    assert cells["c"].bias.data.tolist() == [0.5, -0.5]
    assert cells["bn"].variance.tolist() == [1, 4] and cells["bn"].scale.data.tolist() == [1, 2]
    (tmp_path / "c.syntxt").write_text("1 2 3 0.5\n4 5 6 -0.5 7\n")
    with pytest.raises(WeightsError, match="larger than expected"):
        cells["c"].import_weights(str(tmp_path))
    (tmp_path / "bn.syntxt").write_text("1 0 0 1\n2 0.5 0.1 -4\n")
    with pytest.raises(WeightsError, match="negative variance"):
        cells["bn"].import_weights(str(tmp_path))
    with pytest.raises(WeightsError, match="c_weights.syntxt"):
        build_cells(text, env=(3, 2, 2))["c"].import_weights(str(tmp_path / "nowhere"))


def test_fc_co_and_conv_hwco_flip(tmp_path):
    text = ("[c]\nInput=env\nType=Conv\nKernelDims=2 1\nNbOutputs=2\nConfigSection=k\n"
            "[k]\nWeightsExportFormat=HWCO\nWeightsExportFlip=1\n"
            "[f]\nInput=c\nType=Fc\nNbOutputs=2\nConfigSection=g\n[g]\nWeightsExportFormat=CO\n")
    cells = build_cells(text, env=(1, 1, 3))
    c, f = cells["c"], cells["f"]
    c.weights[0].data[...] = numpy.array([1, 2, 3, 4], numpy.float32).reshape(2, 1, 1, 2)
    f.weights[0].data[...] = numpy.arange(8, dtype=numpy.float32).reshape(2, 4)
    c.export_weights(str(tmp_path))
    f.export_weights(str(tmp_path))
    # HWCO: a line per kernel position, flipped kernels; CO: a line per input
    assert (tmp_path / "c_weights.syntxt").read_text() == "2 4 \n1 3 \n"
    assert (tmp_path / "f_weights.syntxt").read_text().splitlines()[1] == "1 5 "
    again = build_cells(text, env=(1, 1, 3), seed=5)
    again["c"].import_weights(str(tmp_path))
    again["f"].import_weights(str(tmp_path))
    assert numpy.array_equal(again["c"].weights[0].data, c.weights[0].data)
    assert numpy.array_equal(again["f"].weights[0].data, f.weights[0].data)
