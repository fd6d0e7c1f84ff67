"""N2D2's stats (n2d2py/stats/n2d2_stats.py): counters against naive loops and hand counts."""
import pathlib

import pytest

from n2d2py.deepnet import DeepNet
from n2d2py.ini import parse_ini_text
from n2d2py.stats import n2d2_stats, stats_log_text
from n2d2py.stats.n2d2_stats import (conv_taps, deconv_taps, pool_window_sum,
                                     stats_dat_text, stats_relative_text, write_n2d2_stats)

ROOT = pathlib.Path(__file__).resolve().parents[2]


def naive_conv_taps(size_in, kernel, stride, padding, dilation):
    """Count (output position, kernel tap) pairs whose input index is inside the input."""
    extent = dilation * (kernel - 1) + 1
    size_out = (size_in + 2 * padding - extent) // stride + 1
    return sum(0 <= o * stride - padding + t * dilation < size_in
               for o in range(size_out) for t in range(kernel))


def naive_deconv_taps(size_in, size_out, kernel, stride, padding, dilation):
    return sum(0 <= i * stride - padding + t * dilation < size_out
               for i in range(size_in) for t in range(kernel))


@pytest.mark.parametrize("size_in, kernel, stride, padding, dilation", [
    (5, 3, 1, 1, 1), (32, 3, 2, 1, 1), (7, 5, 1, 2, 1), (9, 3, 1, 2, 2), (8, 1, 1, 0, 1),
    (6, 3, 3, 0, 1), (11, 3, 2, 2, 2),
])
def test_conv_taps_exclude_padding(size_in, kernel, stride, padding, dilation):
    assert conv_taps(size_in, kernel, stride, padding, dilation) == \
        naive_conv_taps(size_in, kernel, stride, padding, dilation)


@pytest.mark.parametrize("size_in, kernel, stride, padding", [
    (4, 3, 2, 1), (5, 4, 2, 1), (3, 3, 1, 0), (6, 2, 2, 0)])
def test_deconv_taps(size_in, kernel, stride, padding):
    size_out = size_in * stride + kernel - 2 * padding - stride
    assert deconv_taps(size_in, size_out, kernel, stride, padding, 1) == \
        naive_deconv_taps(size_in, size_out, kernel, stride, padding, 1)


def test_pool_window_sum():
    # 5 wide, window 2, stride 2 -> outputs at 0, 2 (full) and none past the edge
    assert pool_window_sum(5, 2, 2, 2) == 4
    # 5 wide, window 3, stride 2, output 3 (one padded position): 3 + 3 + 1
    assert pool_window_sum(5, 3, 3, 2) == 7


SMALL = """
[sp]
SizeX=7
SizeY=5
NbChannels=2
[conv]
Input=sp
Type=Conv
KernelDims=3 1
Padding=1
NbOutputs=4
ActivationFunction=Rectifier
[bn]
Input=conv
Type=BatchNorm
NbOutputs=4
[pool]
Input=bn
Type=Pool
PoolDims=2 2
Stride=2
Pooling=Max
NbOutputs=4
Mapping.Size=1
[fc]
Input=pool
Type=Fc
NbOutputs=3
[soft]
Input=fc
Type=Softmax
NbOutputs=3
WithLoss=1
[soft.Target]
"""


def test_small_network_counters():
    net = DeepNet.from_ini(parse_ini_text(SMALL), device="cpu", load_data=False)
    total, per_cell = n2d2_stats(net)
    # conv: KernelDims=3 1 is X=3, Y=1; Padding=1 on both axes -> output 4 x 7 x 7
    assert net.cells["conv"].out_shape == (4, 7, 7)
    taps = naive_conv_taps(7, 3, 1, 1, 1) * naive_conv_taps(5, 1, 1, 1, 1)
    assert taps == 19 * 5   # X: 7 outputs x 3 taps minus 2 on padding; Y: 5 of 7 rows are real
    conv = per_cell["conv"]
    assert (conv.neurons, conv.nodes) == (196, 196)
    assert conv.synapses == 4 * 2 * 3 + 4                    # kernels + one bias per output
    assert conv.connections == conv.virtual_synapses == 4 * 2 * taps + 4
    assert (per_cell["bn"].neurons, per_cell["bn"].nodes, per_cell["bn"].connections) == (0, 196, 0)
    pool = per_cell["pool"]                                  # 7x7 -> 3x3 windows of 2x2, 4 maps
    assert net.cells["pool"].out_shape == (4, 3, 3)
    assert (pool.nodes, pool.connections) == (36, 4 * 9 * 4)
    fc = per_cell["fc"]
    assert fc.synapses == fc.connections == 3 * (36 + 1)
    assert (per_cell["soft"].neurons, per_cell["soft"].nodes) == (3, 3)
    assert total.neurons == 196 + 3 + 3
    assert total.nodes == 196 * 2 + 36 + 3 + 3
    assert total.synapses == 28 + 111
    assert total.connections == 4 * 2 * taps + 4 + 144 + 111
    assert stats_dat_text(per_cell).splitlines()[1:3] == [f"conv 28 {4 * 2 * taps + 4} 196",
                                                           "bn 0 0 196"]
    relative = stats_relative_text(total, per_cell).splitlines()
    assert relative[0] == "Cell ParamMemory(%) Computing(%) DataMemory(%)"
    assert relative[3] == "pool 0.00 14.13 8.29"   # 144/1019 connections, 36/434 nodes


def test_resnet20_stats_log(tmp_path):
    net = DeepNet.from_ini(ROOT / "models" / "ResNet-20.ini", device="cpu", load_data=False)
    total, per_cell = n2d2_stats(net)
    assert total.neurons == 7 * 16384 + 6 * 8192 + 6 * 4096 + 10 + 10   # convs, fc, softmax
    assert total.synapses == 268_336 + 10
    # per (out, in) pair, taps on real input: 94^2 at 32x32, 47^2 stride 2 to 16x16, 46^2,
    # 23^2 stride 2 to 8x8, 22^2; plus the Fc (with bias) and one bias per Fc output
    virtual = (3 * 16 * 94 ** 2 + 6 * 16 * 16 * 94 ** 2 + 16 * 32 * 47 ** 2
               + 5 * 32 * 32 * 46 ** 2 + 32 * 64 * 23 ** 2 + 5 * 64 * 64 * 22 ** 2 + 10 * 65)
    assert total.virtual_synapses == virtual == 36_957_514
    # pools: global 8x8 (64 maps), 1x1/s2 shortcut subsampling (16 maps 16x16, 32 maps 8x8)
    assert total.connections == virtual + 64 * 64 + 16 * 256 + 32 * 64
    text = stats_log_text(total, net.input_shape)
    lines = text.splitlines()
    assert lines[:6] == ["[Global stats]", "Total number of neurons: 188436",
                         "Total number of nodes: 487508", "Total number of synapses: 268346",
                         "Total number of virtual synapses: 36957514",
                         "Total number of connections: 36967754"]
    assert "Input data (int-8 bits): 3.072 kB   (3 KiB)" in lines
    assert "Free parameters (float-32 bits): 1073.38 kB   (1048.23 KiB)" in lines
    assert "Layers data (float-16 bits): 975.016 kB   (952.164 KiB)" in lines
    assert lines[-1] == "MACS / input data: 36.9678M"
    write_n2d2_stats(net, tmp_path / "stats")
    assert (tmp_path / "stats" / "stats.log").read_text() == text
    dat = (tmp_path / "stats" / "stats.dat").read_text().splitlines()
    assert dat[1] == f"conv1 432 {3 * 16 * 94 ** 2} 16384"
    assert len(dat) == 1 + len(net.cells)
