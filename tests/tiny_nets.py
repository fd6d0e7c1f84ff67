"""Tiny N2D2 INI networks on the bundled MNIST subset, shared by the command-level tests
(``test_cli``, ``test_deepnet``, ``test_errors``, ``test_reliability``, ``test_resume``,
``test_weights_roundtrip``), and ``write_ini`` to put one in a folder.

The texts are built from one section helper so that the parts every net has ([database], [sp],
the softmax target, the solver config) are written once. Two layouts, as the tests were written:
``compact`` (a leading newline, no blank lines) and ``spaced`` (a blank line between sections;
tests that compute line numbers with ``line_of`` see the real text, whatever the layout).
"""


def section(name, *lines):
    """``[name]`` followed by ``lines``, one per line."""
    return "".join([f"[{name}]\n", *(f"{line}\n" for line in lines)])


def cell(name, parent, kind, *lines):
    """A cell section: ``Input=parent``, ``Type=kind``, then ``lines``."""
    return section(name, f"Input={parent}", f"Type={kind}", *lines)


def conv(name, parent, kernel, outputs, *lines):
    """A Conv cell with ``KernelDims=kernel`` and ``NbOutputs=outputs``, then ``lines``."""
    return cell(name, parent, "Conv", f"KernelDims={kernel}", f"NbOutputs={outputs}", *lines)


def fc(name, parent, outputs, *lines):
    return cell(name, parent, "Fc", f"NbOutputs={outputs}", *lines)


def compact(*sections):
    return "\n" + "".join(sections)


def spaced(*sections):
    return "\n".join(sections)


def head(size, batch, validation="0.2", rescale=False):
    """[database] (MNIST) and [sp] (``size`` x ``size``, ``batch``); with ``rescale``, a
    [sp.Transformation] resizing the 28x28 digits to ``size``."""
    parts = [section("database", "Type=MNIST_IDX_Database", f"Validation={validation}"),
             section("sp", f"SizeX={size}", f"SizeY={size}", f"BatchSize={batch}")]
    if rescale:
        parts.append(section("sp.Transformation", "Type=RescaleTransformation", f"Width={size}",
                             f"Height={size}"))
    return parts


def softmax(parent):
    """A 10-way softmax with loss on ``parent``, and its target."""
    return [cell("softmax", parent, "Softmax", "NbOutputs=10", "WithLoss=1"),
            section("softmax.Target")]


def sgd(name="common.config", rate="0.05", *more):
    """A config section: SGD learning rate and momentum 0.9, then ``more`` keys."""
    return section(name, f"Solvers.LearningRate={rate}", "Solvers.Momentum=0.9", *more)


COMMON = "ConfigSection=common.config"

#: 12x12 (rescaled), Fc 32 + Fc 10 (test_cli).
TWO_FC_12 = compact(
    *head(12, 32, rescale=True),
    fc("fc1", "sp", 32, "ActivationFunction=Rectifier", "WeightsFiller=HeFiller", COMMON),
    fc("fc2", "fc1", 10, "WeightsFiller=XavierFiller", COMMON),
    *softmax("fc2"), sgd())

#: 12x12 (rescaled), Conv 3x3x4 stride 2 + Fc 10 (test_deepnet).
CONV_FC_12 = compact(
    *head(12, 16, rescale=True),
    conv("conv1", "sp", "3 3", 4, "Stride=2", "ActivationFunction=Rectifier",
         "WeightsFiller=HeFiller", COMMON),
    fc("fc", "conv1", 10, "WeightsFiller=XavierFiller", COMMON),
    *softmax("fc"), sgd())

#: 12x12 (rescaled), Conv 3x3x4 (Adam) + BatchNorm with a SAT QAct + Dropout + Fc 10 (SGD with
#: a step-decay schedule): every kind of training state (test_resume).
CONV_BN_SAT_12 = compact(
    *head(12, 32, rescale=True),
    cell("conv1", "sp", "Conv", "KernelWidth=3", "KernelHeight=3", "NbOutputs=4",
         "ActivationFunction=Linear", "Solvers=Adam", "Solvers.LearningRate=0.005"),
    cell("bn1", "conv1", "BatchNorm", "NbOutputs=4", "ActivationFunction=Rectifier", "QAct=SAT",
         "QAct.Range=15"),
    cell("drop1", "bn1", "Dropout", "NbOutputs=4"),
    fc("fc1", "drop1", 10, "ActivationFunction=Linear", "ConfigSection=sgd.config"),
    *softmax("fc1"),
    sgd("sgd.config", "0.05", "Solvers.LearningRatePolicy=StepDecay",
        "Solvers.LearningRateStepSize=1600", "Solvers.LearningRateDecay=0.5"))

#: 28x28 digits, no rescale: Conv 5x5x4 + Conv 3x3x6 (both stride 2) + Fc 10, a net that
#: builds in milliseconds (test_errors).
TWO_CONV_28 = spaced(
    *head(28, 16),
    conv("conv1", "sp", "5 5", 4, "Stride=2", "ActivationFunction=Rectifier", COMMON),
    conv("conv2", "conv1", "3 3", 6, "Stride=2", "ActivationFunction=Rectifier", COMMON),
    fc("fc1", "conv2", 10, COMMON),
    *softmax("fc1"), sgd())

#: 28x28 digits, one Fc 10 layer (test_reliability).
ONE_FC_28 = spaced(
    *head(28, 32),
    fc("fc1", "sp", 10, "ActivationFunction=Linear", "WeightsFiller=XavierFiller",
       "ConfigSection=solver.config"),
    *softmax("fc1"),
    section("solver.config", "WeightsSolver.LearningRate=0.01", "WeightsSolver.Momentum=0.9",
            "BiasSolver.LearningRate=0.01", "BiasSolver.Momentum=0.9"))

#: A LeNet-like net (conv, BatchNorm, pool, grouped conv, two Fc), with ``{qweight}`` and
#: ``{qact}`` to fill by ``str.format`` (test_weights_roundtrip).
LENET_TEMPLATE = spaced(
    *head(28, 32, validation="0.1"),
    conv("conv1", "sp", "5 5", 6, "ActivationFunction=Linear", "{qweight}", COMMON),
    cell("bn1", "conv1", "BatchNorm", "NbOutputs=6", "ActivationFunction=Rectifier", "{qact}",
         "ConfigSection=bn.config"),
    cell("pool1", "bn1", "Pool", "PoolDims=2 2", "Stride=2", "Pooling=Max", "NbOutputs=6"),
    conv("conv2", "pool1", "5 5", 8, "Stride=2", "ActivationFunction=Rectifier", "{qweight}",
         "Mapping.NbGroups=2", COMMON),
    fc("fc1", "conv2", 16, "ActivationFunction=Rectifier", "{qweight}", COMMON),
    fc("fc2", "fc1", 10, COMMON),
    *softmax("fc2"), sgd(rate="0.1"), section("bn.config", "Solvers.LearningRate=0.1"))


def write_ini(folder, text, name="net.ini"):
    """Write ``text`` as ``folder/name`` (``folder`` created if needed); returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def quick_runs(monkeypatch):
    """The bundled MNIST subset and no pictures (they take most of a tiny run's time): for an
    autouse fixture of tests that train tiny nets."""
    monkeypatch.setenv("N2D2_DATA", "/nonexistent")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    from n2d2py.report import plots
    for name in ("network_graph_png", "confusion_matrix_png", "learning_curves_png"):
        monkeypatch.setattr(plots, name, lambda *a, **k: None)
