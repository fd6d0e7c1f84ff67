"""The pictures a run writes, checked on the matplotlib objects (no screenshots): the learning
curves per epoch (loss, training and validation scores, best epoch marked), the labelled weight
histograms and the network graph."""
import numpy
import pytest

pytest.importorskip("matplotlib")

from n2d2py.deepnet import DeepNet  # noqa: E402
from n2d2py.progress import LearnHistory  # noqa: E402
from n2d2py.report import plots  # noqa: E402
from n2d2py.report.histograms import histogram_figure  # noqa: E402

from cli_runner import ROOT  # noqa: E402


def history_of(validation, metric="RecognitionRate"):
    history = LearnHistory(metric)
    best = None
    for epoch, score in enumerate(validation, 1):
        is_best = best is None or score > best
        best = score if is_best else best
        history.log.append({"label": f"epoch {epoch}/{len(validation)}", "step": 3200 * epoch,
                            "loss": 1.0 / epoch, "training": 50.0 + 10 * epoch,
                            "validation": score, "best": is_best})
    return history


def legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_learning_curves_per_epoch_with_loss_scores_and_best_epoch():
    fig = plots.learning_curves_figure(history_of([80.0, 93.0, 91.5]), "softmax: learning curves")
    scores, losses = fig.axes
    assert scores.get_title() == "softmax: learning curves"
    assert scores.get_ylabel() == "recognition rate (%)"
    assert losses.get_xlabel() == "epoch" and losses.get_ylabel() == "loss"
    assert legend_texts(scores) == ["training (images learnt in the epoch)", "validation",
                                    "best: 93.00% (epoch 2)"]
    assert legend_texts(losses) == ["training loss (mean over the epoch)"]
    training, validation, best = scores.get_lines()
    assert list(training.get_xdata()) == [1, 2, 3]
    assert list(training.get_ydata()) == [60.0, 70.0, 80.0]
    assert list(validation.get_ydata()) == [80.0, 93.0, 91.5]
    assert (list(best.get_xdata()), list(best.get_ydata())) == ([2], [93.0])
    (loss,) = losses.get_lines()
    numpy.testing.assert_allclose(loss.get_ydata(), [1.0, 0.5, 1 / 3])


def test_learning_curves_name_another_validation_metric_and_count_images_with_learn_n():
    history = history_of([70.0, 75.0], metric="F1Score")
    for entry in history.log:
        entry["label"] = f"{entry['step']}/6400 images"
    scores, losses = plots.learning_curves_figure(history).axes
    assert scores.get_ylabel() == "F1Score (%)"
    assert losses.get_xlabel() == "images learnt"
    assert legend_texts(scores)[-1] == "best: 75.00% (6400)"


def test_weight_histogram_has_title_and_axis_labels():
    values = numpy.random.default_rng(0).uniform(-1, 1, 500)
    fig = histogram_figure(values, "conv1: quantized weights")
    (ax,) = fig.axes
    assert ax.get_title() == "conv1: quantized weights"
    assert ax.get_xlabel().startswith("weight value") and ax.get_ylabel() == "number of weights"
    assert "Average: " in ax.texts[0].get_text()


def test_network_graph_names_every_cell_with_its_type_and_size():
    net = DeepNet.from_ini(str(ROOT / "models" / "LeNet.ini"), load_data=False)
    fig = plots.network_graph_figure(net)
    (ax,) = fig.axes
    assert ax.get_title().startswith("LeNet.ini: 9 cells, 60570 weights")
    boxes = [t for t in ax.texts if type(t).__name__ == "Text"]
    arrows = [t for t in ax.texts if type(t).__name__ == "Annotation"]
    labels = [t.get_text() for t in boxes]
    assert "env (input)\n1x32x32" in labels and "conv1 [Conv]\n6x28x28" in labels
    assert len(labels) == 1 + len(net.cells)
    assert min(t.get_fontsize() for t in boxes) >= 9          # legible at 100 dpi
    assert len(arrows) == sum(len(cell.parents) for cell in net.cells.values())   # one per edge
