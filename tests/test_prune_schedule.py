"""QWeight=Prune with PruningMode=Gradual: the training step advances the schedule,
so the zero fraction grows by GammaThreshold every StepSizeThreshold stimuli, up to Threshold."""
import textwrap

import pytest

from n2d2py.deepnet import DeepNet

NET = textwrap.dedent("""\
    [database]
    Type=MNIST_IDX_Database
    Validation=0.2
    [sp]
    SizeX=28
    SizeY=28
    BatchSize=32
    [conv1]
    Input=sp
    Type=Conv
    KernelDims=5 5
    NbOutputs=8
    ActivationFunction=Rectifier
    QWeight=Prune
    QWeight.PruningMode=Gradual
    QWeight.PruningFiller=IterNonStruct
    QWeight.StartThreshold=0.1
    QWeight.Threshold=0.5
    QWeight.GammaThreshold=0.1
    QWeight.StepSizeThreshold=64
    [fc]
    Input=conv1
    Type=Fc
    NbOutputs=10
    [softmax]
    Input=fc
    Type=Softmax
    NbOutputs=10
    WithLoss=1
    [softmax.Target]
    """)
FRACTION_TOLERANCE = 0.02  # IterNonStruct thresholds |w| in Delta steps: the fraction lands just above


def test_gradual_pruning_follows_its_schedule(tmp_path):
    path = tmp_path / "net.ini"
    path.write_text(NET)
    net = DeepNet.from_ini(str(path), seed=1)
    quantizer = net.cells["conv1"].qweight
    x, labels, _ = next(net.sp.batches("Learn", shuffle=False))
    fractions = []
    for _ in range(10):  # 32 stimuli per step: the target rises every 2 steps
        net.learn_batch(x, labels)
        fractions.append(quantizer.zero_fraction)
    targets = [0.1, 0.2, 0.2, 0.3, 0.3, 0.4, 0.4, 0.5, 0.5, 0.5]
    assert fractions == pytest.approx(targets, abs=FRACTION_TOLERANCE)
    assert all(f >= t for f, t in zip(fractions, targets))
