"""Cross-layer equalization (``n2d2py/ptq/equalization.py``), N2D2's first ``-calib`` step:

* the equalized float network computes what the original does (float32 tolerance) on a chain
  with everything N2D2 equalizes across (a ReLU, a folded BatchNorm, a Padding, a Dropout, a
  depthwise Conv, a Conv read by an Fc, N2D2's identity Conv before a BatchNorm on the input),
  and the parameters come back bit for bit;
* nothing is equalized across what N2D2 does not cross (a Pool, an ElemWise, an activation
  cell, a second reader, a Tanh, a BatchNorm N2D2 cannot fold, a Padding read by an Fc);
* the scales are N2D2's: one sweep gives each channel of a pair the range sqrt(r1·r2) on both
  sides (a dead channel with a bias kept, one without zeroed), the same weights as a
  channel-by-channel transcription of N2D2's loops on its ``mnist_model``, the stop rule
  (|r1 - r2| <= 1.0: one sweep for usual weights), a clipped ReLU unclipped and restored;
* ``-calib`` with and without ``-no-cle`` on N2D2's ``mnist_model``: both score, the log and
  ``calibration.json`` say which ran, and ``--calib-reload`` refuses the other setting's
  statistics.

N2D2 has no oracle with equalization: its PTQ unit test and its stored ranges are without it.
"""
import json
import pathlib
import re
import types

import numpy
import pytest

from n2d2py.autograd import Variable, no_grad
from n2d2py.build import build_cells_from
from n2d2py.deepnet import DeepNet
from n2d2py.ini import parse_ini_text
from n2d2py.ptq.equalization import MAX_RANGE_DELTA, equalization_pairs, equalize

from cli_runner import assert_error, error_line, run_subprocess

N2D2 = pathlib.Path(__file__).resolve().parents[1] / "data" / "n2d2" / "tests_data"

CHAIN = """
[bn0]
Input=sp
Type=BatchNorm
NbOutputs=2
ActivationFunction=Rectifier

[conv1]
Input=bn0
Type=Conv
KernelDims=3 3
NbOutputs=6
ActivationFunction=Rectifier

[conv2]
Input=conv1
Type=Conv
KernelDims=3 3
NbOutputs=8
NoBias=1
ActivationFunction=Linear

[bn2]
Input=conv2
Type=BatchNorm
NbOutputs=8
ActivationFunction=Rectifier

[pad2]
Input=bn2
Type=Padding
NbOutputs=8
TopPadding=1
BottomPadding=1
LeftPadding=1
RightPadding=1

[dw3]
Input=pad2
Type=Conv
KernelDims=3 3
NbOutputs=8
Mapping.ChannelsPerGroup=1
ActivationFunction=Rectifier

[drop3]
Input=dw3
Type=Dropout
NbOutputs=8

[pw4]
Input=drop3
Type=Conv
KernelDims=1 1
NbOutputs=5
ActivationFunction=Rectifier

[fc5]
Input=pw4
Type=Fc
NbOutputs=7
ActivationFunction=Rectifier

[fc6]
Input=fc5
Type=Fc
NbOutputs=3
ActivationFunction=Linear
"""
CHAIN_PAIRS = [("bn0", "conv1"), ("conv1", "conv2"), ("conv2", "dw3"), ("dw3", "pw4"),
               ("pw4", "fc5"), ("fc5", "fc6")]

NOT_CROSSED = """
[c1]
Input=sp
Type=Conv
KernelDims=3 3
NbOutputs=4
ActivationFunction=Rectifier

[pool]
Input=c1
Type=Pool
PoolDims=2 2
Stride=2
NbOutputs=4
Pooling=Max

[c2]
Input=pool
Type=Conv
KernelDims=1 1
NbOutputs=4
ActivationFunction=Rectifier

[c3]
Input=c2
Type=Conv
KernelDims=1 1
NbOutputs=4
ActivationFunction=Tanh

[c4]
Input=c3
Type=Conv
KernelDims=1 1
NbOutputs=4
ActivationFunction=Rectifier

[c5a]
Input=c4
Type=Conv
KernelDims=1 1
NbOutputs=4
ActivationFunction=Rectifier

[c5b]
Input=c4
Type=Conv
KernelDims=1 1
NbOutputs=4
ActivationFunction=Rectifier

[sum]
Input=c5a,c5b
Type=ElemWise
NbOutputs=4
Operation=Sum

[c6]
Input=sum
Type=Conv
KernelDims=1 1
NbOutputs=4
ActivationFunction=Linear

[act]
Input=c6
Type=Activation
NbOutputs=4
ActivationFunction=Rectifier

[c7]
Input=act
Type=Conv
KernelDims=1 1
NbOutputs=4
ActivationFunction=Rectifier

[bn7]
Input=c7
Type=BatchNorm
NbOutputs=4
ActivationFunction=Linear

[c8]
Input=bn7
Type=Conv
KernelDims=1 1
NbOutputs=4
ActivationFunction=Rectifier

[pad8]
Input=c8
Type=Padding
NbOutputs=4
TopPadding=1
BottomPadding=1
LeftPadding=1
RightPadding=1

[fc9]
Input=pad8
Type=Fc
NbOutputs=3
ActivationFunction=Linear
"""


def network(text, input_shape, seed=0, spread=1.5):
    """The cells of ``text`` with random weights whose output channels differ in scale by
    up to 10^spread either way (what equalization is for), and random BatchNorm statistics."""
    rng = numpy.random.default_rng(seed)
    built = build_cells_from(parse_ini_text(text, "net.ini"), input_shape)
    for cell in built.cells.values():
        for w in getattr(cell, "weights", []):
            W = rng.normal(0.0, 0.5, w.data.shape)
            W *= 10.0 ** rng.uniform(-spread, spread, (len(W),) + (1,) * (W.ndim - 1))
            w.data[...] = W
        if getattr(cell, "bias", None) is not None and hasattr(cell, "weights"):
            cell.bias.data[...] = rng.normal(0.0, 0.3, cell.bias.data.shape)
        if hasattr(cell, "variance"):
            c = len(cell.mean)
            cell.scale.data[...] = rng.uniform(0.2, 3.0, c) * rng.choice([-1, 1], c)
            cell.bias.data[...] = rng.normal(0.0, 0.5, c)
            cell.mean[...] = rng.normal(0.0, 0.5, c)
            cell.variance[...] = rng.uniform(0.05, 4.0, c)
            cell.variance[0] = 0.0     # N2D2's zero-variance fix applies
    return types.SimpleNamespace(cells=built.cells, targets=[], input_shape=input_shape)


def outputs(net, x):
    values = {"env": Variable(x)}
    with no_grad():
        for name, cell in net.cells.items():
            values[name] = cell.forward([values[p] for p in cell.parents], False)
    return {name: values[name].data.copy() for name in net.cells}


def parameters(net):
    return {f"{name}.{k}": numpy.array(p.data) for name, cell in net.cells.items()
            for k, p in enumerate(cell.own_parameters())}


def assert_same_function(before, after, names):
    for name in names:
        scale = float(numpy.abs(before[name]).max())
        assert numpy.abs(after[name] - before[name]).max() <= 2e-5 * max(scale, 1.0), name


def test_the_float_network_computes_the_same_function():
    net = network(CHAIN, (2, 10, 10))
    x = numpy.random.default_rng(1).uniform(-1, 1, (16, 2, 10, 10)).astype(numpy.float32)
    assert equalization_pairs(net) == CHAIN_PAIRS
    before, params = outputs(net, x), parameters(net)
    done = equalize(net)
    after = outputs(net, x)
    assert [p.names for p in done.pairs] == CHAIN_PAIRS
    assert done.sweeps > 1 and done.delta <= MAX_RANGE_DELTA   # weights up to ~30: sweeps
    # the outputs of every pair's parent are scaled per channel; what reads them is not
    assert_same_function(before, after, ["conv2", "fc6"])
    assert not numpy.allclose(after["dw3"], before["dw3"], rtol=1e-3)   # P's outputs moved
    changed = [k for k, v in parameters(net).items() if not numpy.array_equal(v, params[k])]
    assert {k.split(".")[0] for k in changed} == {"bn0", "conv1", "conv2", "bn2", "dw3",
                                                  "pw4", "fc5", "fc6"}
    done.restore()
    assert all(numpy.array_equal(v, params[k]) for k, v in parameters(net).items())
    assert_same_function(before, outputs(net, x), net.cells)


def test_nothing_is_equalized_across_what_n2d2_does_not_cross():
    """Only c2 -> c3 is a pair: a Pool, a Tanh, a second reader, an ElemWise, an activation
    cell, a BatchNorm after a ReLU (not folded) and a Padding read by an Fc end the chains."""
    net = network(NOT_CROSSED, (3, 8, 8))
    x = numpy.random.default_rng(2).uniform(0, 1, (8, 3, 8, 8)).astype(numpy.float32)
    assert equalization_pairs(net) == [("c2", "c3")]
    before, params = outputs(net, x), parameters(net)
    done = equalize(net)
    changed = {k.split(".")[0] for k, v in parameters(net).items()
               if not numpy.array_equal(v, params[k])}
    assert changed == {"c2", "c3"}
    assert_same_function(before, outputs(net, x), [n for n in net.cells if n != "c2"])
    done.restore()


def ranges(pair):
    r1, bias = pair.parent.output_ranges()
    return r1, bias, pair.input_ranges()


TWO_CONVS = """
[p]
Input=sp
Type=Conv
KernelDims=3 3
NbOutputs=6
ActivationFunction=Rectifier

[c]
Input=p
Type=Conv
KernelDims=3 3
NbOutputs=4
ActivationFunction=Linear
"""


def test_one_sweep_gives_both_sides_the_geometric_mean_of_their_ranges():
    """Channel o: r1' = r2' = sqrt(r1·r2); channel 1 (no weight, a bias) untouched; channel 2
    (no weight, no bias) read by no weight of C afterwards; channel 3 (unread by C) zeroed."""
    net = network(TWO_CONVS, (3, 9, 9), spread=0.5)
    P, C = net.cells["p"], net.cells["c"]
    P.weights[0].data[1:3] = 0.0
    P.bias.data[2] = 0.0
    C.weights[0].data[:, 3] = 0.0
    W_C1 = C.weights[0].data[:, 1].copy()
    pair, = equalize(net, max_sweeps=1).pairs
    ref = network(TWO_CONVS, (3, 9, 9), spread=0.5)
    ref.cells["p"].weights[0].data[1:3] = 0.0
    ref.cells["p"].bias.data[2] = 0.0
    ref.cells["c"].weights[0].data[:, 3] = 0.0
    W_P0 = numpy.abs(ref.cells["p"].weights[0].data).reshape(6, -1).max(axis=1)
    W_C0 = numpy.abs(ref.cells["c"].weights[0].data).transpose(1, 0, 2, 3).reshape(6, -1).max(1)
    r1, _, r2 = ranges(pair)
    live = [0, 4, 5]
    target = numpy.sqrt(W_P0[live] * W_C0[live])
    numpy.testing.assert_allclose(r1[live], target, rtol=1e-6)
    numpy.testing.assert_allclose(r2[live], target, rtol=1e-6)
    assert r1[1] == 0 and P.bias.data[1] == ref.cells["p"].bias.data[1]   # kept: r1 = 0, bias
    assert numpy.array_equal(C.weights[0].data[:, 1], W_C1)
    assert r2[2] == 0                                     # no weight, no bias: unread now
    assert r1[3] == 0 and P.bias.data[3] == 0             # unread by C: zeroed
    numpy.testing.assert_allclose(pair.scales[live], target / W_P0[live], rtol=1e-6)
    assert pair.delta == pytest.approx(float(numpy.abs(W_P0 - W_C0).max()), rel=1e-6)


def test_sweeps_stop_at_n2d2s_tolerance_and_converge_below_it():
    """N2D2's rule: one sweep when every |r1 - r2| before it is <= 1.0 (weights below 1); with
    a tighter tolerance the sweeps go on until both sides of every pair have one range."""
    net = network(CHAIN, (2, 10, 10), spread=0.0)
    for cell in net.cells.values():
        for w in getattr(cell, "weights", []):
            w.data[...] *= 0.5 / numpy.abs(w.data).max()
        if hasattr(cell, "variance"):
            cell.scale.data[...] = numpy.clip(cell.scale.data, -0.3, 0.3)
    assert equalize(net).sweeps == 1
    net = network(CHAIN, (2, 10, 10))
    done = equalize(net, max_range_delta=1e-5, max_sweeps=10000)
    assert 1 < done.sweeps < 10000
    for pair in done.pairs:
        r1, _, r2 = ranges(pair)
        assert numpy.abs(r1 - r2).max() <= 1e-5, pair.names


def n2d2_loops(net):
    """One sweep of N2D2's crossLayerEqualization written as its loops (per output channel,
    per connected kernel) on plain float32 arrays: the Conv/Fc pairs of ``mnist_model``."""
    W = {n: numpy.array(c.weights[0].data) for n, c in net.cells.items() if hasattr(c, "weights")}
    b = {n: numpy.array(c.bias.data) for n, c in net.cells.items() if hasattr(c, "weights")}
    for parent, child in equalization_pairs(net):
        groups = net.cells[child].groups[0] if hasattr(net.cells[child], "groups") else 1
        for o in range(W[parent].shape[0]):
            r1 = max(0.0, float(numpy.abs(W[parent][o]).max()))
            bias1 = abs(float(b[parent][o]))
            Wc = W[child]
            if Wc.ndim == 2:
                cols = [Wc[:, o]]
            else:
                per = Wc.shape[1]
                g = o // per
                outs = range(g * Wc.shape[0] // groups, (g + 1) * Wc.shape[0] // groups)
                cols = [Wc[k, o - g * per] for k in outs]
            r2 = max(float(numpy.abs(c).max()) for c in cols)
            if r1 > 0 or bias1 == 0:
                s1 = numpy.sqrt(r1 * r2) / r1 if r1 > 0 else 0.0
                s2 = numpy.sqrt(r1 * r2) / r2 if r2 > 0 else 0.0
                W[parent][o] = W[parent][o] * s1
                b[parent][o] = b[parent][o] * s1
                if Wc.ndim == 2:
                    Wc[:, o] *= s2
                else:
                    for k in outs:
                        Wc[k, o - g * per] *= s2
    return W, b


def test_n2d2s_loops_on_its_mnist_model():
    net = DeepNet.from_ini(N2D2 / "mnist_model" / "model.ini", load_data=False)
    net.import_weights(N2D2 / "mnist_model" / "weights")
    W, b = n2d2_loops(net)
    done = equalize(net, max_sweeps=1)
    assert [p.names for p in done.pairs] == [
        ("conv_1", "conv_dw_2"), ("conv_dw_2", "conv_pw_2"), ("conv_dw_3", "conv_pw_3"),
        ("conv_pw_3", "conv_4"), ("fc_1", "fc_2")]
    for name in W:
        cell = net.cells[name]
        numpy.testing.assert_allclose(cell.weights[0].data, W[name], rtol=1e-5, atol=1e-7)
        numpy.testing.assert_allclose(cell.bias.data, b[name], rtol=1e-5, atol=1e-7)
    assert done.sweeps == 1
    done.restore()


def test_a_clipped_relu_is_unclipped_then_restored():
    text = TWO_CONVS.replace("NbOutputs=6\nActivationFunction=Rectifier",
                             "NbOutputs=6\nActivationFunction=Rectifier\n"
                             "ActivationFunction.Clipping=6")
    net = network(text, (3, 9, 9))
    act = net.cells["p"].activation
    assert act.clipping == 6.0
    x = numpy.random.default_rng(3).uniform(-3, 3, (8, 3, 9, 9)).astype(numpy.float32)
    act.clipping = 0.0
    unclipped = outputs(net, x)
    act.clipping = 6.0
    assert not numpy.allclose(outputs(net, x)["c"], unclipped["c"])   # the clip matters here
    done = equalize(net)
    assert act.clipping == 0.0
    assert_same_function(unclipped, outputs(net, x), ["c"])
    assert "removed the Clipping=6 of [p]'s Rectifier" in done.notices()[0]
    assert done.as_dict()["clipping_removed"] == {"p": 6.0}
    done.restore()
    assert act.clipping == 6.0


# -- the command ------------------------------------------------------------------------------
def calib(folder, *extra):
    model = N2D2 / "mnist_model"
    return run_subprocess(folder, model / "model.ini", "-w", model / "weights", "-calib", 300,
                          "-test", *extra, timeout=300)


def test_calib_with_and_without_cle(tmp_path):
    rates = {}
    for cle, extra in ((True, ()), (False, ("-no-cle",))):
        folder = tmp_path / ("cle" if cle else "no-cle")
        folder.mkdir()
        status, out, err = calib(folder, *extra)
        assert status == 0, err
        scores = [float(v) for v in re.findall(r"Final recognition rate: ([0-9.]+)%", out)]
        assert len(scores) == 3 and scores[1] == scores[2] and scores[2] > 90.0
        rates[cle] = scores
        info = json.loads((folder / "calib_int8" / "calibration.json").read_text())
        assert info["cross_layer_equalization"] is cle
        if cle:
            assert "cross-layer equalization on" in out
            assert "Cross-layer equalization (N2D2's default; --no-cle turns it off): 5 pairs " \
                   "in 1 sweep (conv_1->conv_dw_2, conv_dw_2->conv_pw_2" in out
            assert info["equalization"]["pairs"][-1] == ["fc_1", "fc_2"]
        else:
            assert "cross-layer equalization off (--no-cle)" in out
            assert "Cross-layer equalization (" not in out and "equalization" not in info
    assert rates[True][0] == rates[False][0]             # the float network is given back
    # the other setting's statistics are refused by --calib-reload
    status, out, err = calib(tmp_path / "cle", "-no-cle", "--calib-reload")
    assert status == 2
    assert_error(error_line(err), "calibration.json", "with cross-layer equalization",
                 "omit --no-cle")
    status, out, err = calib(tmp_path / "cle", "--calib-reload")
    assert status == 0 and "reloaded from" in out, err
