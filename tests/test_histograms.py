"""N2D2's weight-distribution files (report/histograms.py): ``<cell>_weights_quant.distrib.dat``
(sorted values) and its histogram PNG, written with the weights of every quantized cell."""
import numpy
import pytest

from n2d2py.deepnet import DeepNet
from n2d2py.report.histograms import BIN_WIDTH, distrib_paths, write_distrib

TINY_QAT = """
[database]
Type=MNIST_IDX_Database
[sp]
SizeX=8
SizeY=8
BatchSize=4
[sp.Transformation_1]
Type=RescaleTransformation
Width=8
Height=8
[conv1]
Input=sp
Type=Conv
KernelDims=3 3
NbOutputs=4
ActivationFunction=Linear
QWeight=SAT
QWeight.Range=15
[pool1]
Input=conv1
Type=Pool
PoolDims=2 2
Stride=2
NbOutputs=4
Pooling=Max
Mapping.Size=1
[fc1]
Input=pool1
Type=Fc
NbOutputs=10
ActivationFunction=Linear
QWeight=LSQ
QWeight.Range=15
[fc2]
Input=fc1
Type=Fc
NbOutputs=10
ActivationFunction=Linear
[fc2.Target]
"""


def test_distrib_file_holds_sorted_values(tmp_path):
    values = numpy.array([0.5, -1.0, 0.25, 1.0, -0.125])
    dat, png = write_distrib(tmp_path, "conv1", values)
    assert (dat, png) == distrib_paths(tmp_path, "conv1")
    assert dat.endswith("conv1_weights_quant.distrib.dat")
    assert png.endswith("conv1_weights_quant.distrib.png")
    assert open(dat).read() == "-1\n-0.125\n0.25\n0.5\n1\n"
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert BIN_WIDTH < 1 / 128


def test_quantized_cells_write_their_histograms_with_the_weights(tmp_path):
    ini = tmp_path / "tiny.ini"
    ini.write_text(TINY_QAT)
    net = DeepNet.from_ini(ini, device="cpu", seed=1)
    net.export_weights(tmp_path / "w")
    names = sorted(p.name for p in (tmp_path / "w").iterdir())
    for cell in ("conv1", "fc1"):        # the quantized cells, and only them
        assert f"{cell}_weights_quant.distrib.dat" in names
        assert f"{cell}_weights_quant.distrib.png" in names
    assert not any(n.startswith("fc2_") and "distrib" in n for n in names)
    assert "conv1_quant_weights.syntxt" in names and "fc1_quant_weights_quant.syntxt" in names
    assert "fc1_alphaW_LSQ.syntxt" in names
    levels = numpy.loadtxt(tmp_path / "w" / "conv1_weights_quant.distrib.dat")
    assert len(levels) == 4 * 3 * 3 and (numpy.diff(levels) >= 0).all()
    assert len(numpy.unique(levels)) <= 16            # SAT Range=15: 16 levels
    numpy.testing.assert_allclose(numpy.unique(levels) * 15 % 2, 1, atol=1e-5)  # (2k-15)/15
    net.export_weights(tmp_path / "w2", histograms=False)
    assert not list((tmp_path / "w2").glob("*distrib*"))
