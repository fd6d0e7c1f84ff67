"""Tests of data-parallel training import ``fake`` (ranks as threads) from this folder; the
bundled MNIST subset; no pictures (they take most of a tiny run's time)."""
import pathlib
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "data"))      # image_folders


@pytest.fixture(autouse=True)
def bundled_mnist(monkeypatch):
    monkeypatch.setenv("N2D2_DATA", "/nonexistent")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    from n2d2py.report import plots
    for name in ("network_graph_png", "confusion_matrix_png", "learning_curves_png"):
        monkeypatch.setattr(plots, name, lambda *a, **k: None)
