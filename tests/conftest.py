"""Shared fixtures: ``xp`` (numpy, and cupy when a GPU is usable), a seeded ``rng``, ``torch``
(skips the test when PyTorch is not installed), and paths to the shared corpus."""
import os
import pathlib

import numpy
import pytest

from n2d2py import backend

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = pathlib.Path(os.environ.get("N2D2PY_SHARED", ROOT.parent / "shared"))
N2D2_INI = SHARED / "n2d2-ini"


def pytest_addoption(parser):
    parser.addoption("--backend", default="auto", choices=["auto", "numpy", "cupy"],
                     help="array backends for the xp fixture (auto: numpy, plus cupy on a GPU)")


def pytest_generate_tests(metafunc):
    if "xp" in metafunc.fixturenames:
        choice = metafunc.config.getoption("--backend")
        names = {"numpy": ["numpy"], "cupy": ["cupy"],
                 "auto": ["numpy"] + (["cupy"] if backend.cupy_available else [])}[choice]
        metafunc.parametrize("xp", names, indirect=True)


@pytest.fixture
def xp(request):
    if request.param == "cupy":
        if not backend.cupy_available:
            pytest.skip("cupy backend requested but no GPU/cupy available")
        import cupy
        return cupy
    return numpy


@pytest.fixture
def rng():
    return numpy.random.default_rng(12345)


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.fixture
def n2d2_ini():
    """Path to ../shared/n2d2-ini (N2D2's INI corpus); skips if the shared folder is absent."""
    if not N2D2_INI.is_dir():
        pytest.skip(f"shared corpus not found at {N2D2_INI}")
    return N2D2_INI
