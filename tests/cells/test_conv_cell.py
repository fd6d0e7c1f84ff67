"""Conv / Deconv cells from INI snippets: defaults, sizes, forward values, maps, groups."""
import numpy
import pytest
from numpy.testing import assert_allclose

from cell_helpers import build_cells, run
from n2d2py.cells import ConvCell

ATOL = 1e-5  # float32 sums of up to a few hundred products


def conv_ref(x, W, b, stride=1, pad=0):
    """Naive NCHW convolution (float64) as an independent oracle."""
    x = numpy.pad(x.astype(numpy.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, c, h, w = x.shape
    o, _, kh, kw = W.shape
    oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    y = numpy.zeros((n, o, oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
            y += numpy.einsum("nchw,oc->nohw", patch, W[:, :, i, j])
    return y + (0 if b is None else b[None, :, None, None])


def test_conv_defaults_and_size(rng):
    cells = build_cells("[c]\nInput=env\nType=Conv\nKernelDims=3 5\nNbOutputs=4\n",
                        env=(2, 9, 11))
    c = cells["c"]
    assert (c.stride_dims, c.padding_dims, c.dilation_dims) == ((1, 1), (0, 0), (1, 1))
    assert c.activation is None and not c.no_bias and c.back_propagate
    assert c.weights[0].shape == (4, 2, 5, 3)          # KernelDims is X Y: width 3, height 5
    assert c.out_shape == (4, 9 - 5 + 1, 11 - 3 + 1)
    # default filler N(0, 0.05) for weights and biases (N2D2)
    assert abs(float(c.weights[0].data.std()) - 0.05) < 0.02
    assert c.section.get("_OutputsWidth") == "9" and c.section.get("_NbChannels") == "2"


def test_conv_size_formula_stride_padding_dilation():
    cells = build_cells("[c]\nInput=env\nType=Conv\nKernelSize=3\nNbOutputs=2\nStride=2\n"
                        "PaddingX=1\nPaddingY=2\nDilation=2\n", env=(1, 13, 10))
    # floor((in + 2p - (d(k-1)+1) + s) / s)
    assert cells["c"].out_shape == (2, (13 + 4 - 5 + 2) // 2, (10 + 2 - 5 + 2) // 2)


def test_conv_forward_value(rng):
    cells = build_cells("[c]\nInput=env\nType=Conv\nKernelWidth=3\nKernelHeight=3\n"
                        "NbOutputs=3\nStride=2\nPadding=1\nActivationFunction=Rectifier\n",
                        env=(2, 7, 7))
    c = cells["c"]
    x = rng.standard_normal((2, 2, 7, 7)).astype(numpy.float32)
    y = run(cells, x)["c"]
    ref = numpy.maximum(conv_ref(x, c.weights[0].data, c.bias.data, 2, 1), 0)
    assert y.shape == (2, 3, 4, 4)
    assert_allclose(y, ref, atol=ATOL)


def test_depthwise_is_grouped(rng):
    cells = build_cells("[c]\nInput=env\nType=Conv\nKernelDims=3 3\nNbOutputs=4\n"
                        "Mapping.ChannelsPerGroup=1\n", env=(4, 5, 5))
    c = cells["c"]
    assert c.groups == [4] and c.weights[0].shape == (4, 1, 3, 3)
    x = rng.standard_normal((1, 4, 5, 5)).astype(numpy.float32)
    y = run(cells, x)["c"]
    full = numpy.zeros((4, 4, 3, 3), numpy.float32)
    full[numpy.arange(4), numpy.arange(4)] = c.weights[0].data[:, 0]
    assert_allclose(y, conv_ref(x, full, c.bias.data), atol=ATOL)


@pytest.mark.parametrize("key, groups", [("Mapping.NbGroups=2", 2), ("Mapping.ChannelsPerGroup=3", 2)])
def test_groups(key, groups):
    cells = build_cells(f"[c]\nInput=env\nType=Conv\nKernelDims=1 1\nNbOutputs=4\n{key}\n",
                        env=(6, 3, 3))
    c = cells["c"]
    assert c.groups == [groups] and c.weights[0].shape == (4, 3, 1, 1)
    # fan-in for fillers uses C/groups (N2D2); outputs 0,1 see channels 0-2
    mask = numpy.zeros((4, 6), bool)
    mask[:2, :3] = mask[2:, 3:] = True
    assert numpy.array_equal(c.full_kernels()[1], mask)


LENET_C3 = """
[c3]
Input=env
Type=Conv
KernelDims=5 5
NbOutputs=16
NoBias=1
Mapping(env)=\\
1 0 0 0 1 1 1 0 0 1 1 1 1 0 1 1 \\
1 1 0 0 0 1 1 1 0 0 1 1 1 1 0 1 \\
1 1 1 0 0 0 1 1 1 0 0 1 0 1 1 1 \\
0 1 1 1 0 0 1 1 1 1 0 0 1 0 1 1 \\
0 0 1 1 1 0 0 1 1 1 1 0 1 1 0 1 \\
0 0 0 1 1 1 0 0 1 1 1 1 0 1 1 1
"""


def lenet_table():
    rows = [l.strip(" \\").split() for l in LENET_C3.splitlines() if l.strip().startswith(("0 ", "1 "))]
    return numpy.array(rows, dtype=int).astype(bool)   # (6 channels, 16 outputs)


def test_lenet_mapping_zeroes_kernels_and_exports_variable_lines(tmp_path, rng):
    cells = build_cells(LENET_C3, env=(6, 10, 10))
    c = cells["c3"]
    table = lenet_table()
    assert numpy.array_equal(c.masks[0], table.T) and c.groups == [1]
    W = c.weights[0].data
    assert (W[~table.T] == 0).all() and (W[table.T] != 0).all()
    x = rng.standard_normal((1, 6, 10, 10)).astype(numpy.float32)
    W[~table.T] = 7.0   # a value that leaked into an unconnected kernel must not count
    y = run(cells, x)["c3"]
    assert_allclose(y, conv_ref(x, W * table.T[:, :, None, None], c.bias.data), atol=1e-4)
    c.export_weights(tmp_path)
    lines = (tmp_path / "c3_weights.syntxt").read_text().splitlines()
    assert [len(l.split()) for l in lines] == [25 * n for n in table.sum(axis=0)]
    assert [len(l.split()) for l in lines][:6] == [75, 75, 75, 75, 75, 75]
    # NoBias=1 written in the cell section is ignored as in N2D2, with a warning
    assert (tmp_path / "c3_biases.syntxt").exists()
    assert any("ignored: NoBias=1 in [c3]" in w for w in c.warnings)


def test_pattern_maps():
    text = ("[c]\nInput=env\nType=Conv\nKernelDims=1 1\nNbOutputs=6\nMapping.Size=1\n"
            "Mapping.NbIterations=3\nMapping.OffsetX=2\n")
    mask = build_cells(text, env=(4, 2, 2))["c"].masks[0]
    expected = numpy.zeros((6, 4), bool)
    expected[[2, 3, 4], [0, 1, 2]] = True  # start (x=2, y=0), stride 1, three steps
    assert numpy.array_equal(mask, expected)
    # Mapping.Size=1 with O = C is the identity: a depthwise (grouped) conv
    cells = build_cells("[c]\nInput=env\nType=Conv\nKernelDims=1 1\nNbOutputs=4\nMapping.Size=1\n",
                        env=(4, 2, 2))
    assert cells["c"].groups == [4]


def test_multi_parent_conv_sums_per_parent(rng):
    text = ("[a]\nInput=env\nType=Conv\nKernelDims=1 1\nNbOutputs=2\n"
            "[b]\nInput=env\nType=Conv\nKernelDims=1 1\nNbOutputs=3\n"
            "[c]\nInput=a,b\nType=Conv\nKernelDims=3 3\nNbOutputs=4\nPadding=1\n")
    cells = build_cells(text, env=(1, 5, 5))
    c = cells["c"]
    assert [w.shape for w in c.weights] == [(4, 2, 3, 3), (4, 3, 3, 3)]
    x = rng.standard_normal((2, 1, 5, 5)).astype(numpy.float32)
    out = run(cells, x)
    cat = numpy.concatenate([out["a"], out["b"]], axis=1)
    W = numpy.concatenate([w.data for w in c.weights], axis=1)
    assert_allclose(out["c"], conv_ref(cat, W, c.bias.data, 1, 1), atol=ATOL)


def test_deconv_size_and_value(torch, rng):
    cells = build_cells("[d]\nInput=env\nType=Deconv\nKernelDims=3 3\nNbOutputs=2\nStride=2\n"
                        "Padding=1\n", env=(3, 4, 5))
    d = cells["d"]
    assert d.out_shape == (2, 4 * 2 + 3 - 2 - 2, 5 * 2 + 3 - 2 - 2)
    x = rng.standard_normal((1, 3, 4, 5)).astype(numpy.float32)
    y = run(cells, x)["d"]
    ref = torch.nn.functional.conv_transpose2d(torch.tensor(x), torch.tensor(d.weights[0].data),
                                               torch.tensor(d.bias.data), stride=2, padding=1)
    assert_allclose(y, ref.numpy(), atol=ATOL)


def test_python_constructed_conv(rng):
    c = ConvCell("c", ["env"], nb_outputs=2, kernel_dims=(3, 3)).build([(1, 4, 4)], rng)
    assert c.out_shape == (2, 2, 2) and len(c.parameters()) == 2
    assert all(p.solver is not None for p in c.parameters())
