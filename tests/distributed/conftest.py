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
    from tiny_nets import quick_runs
    quick_runs(monkeypatch)
