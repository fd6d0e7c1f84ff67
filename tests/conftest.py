"""Shared fixtures: ``xp`` (numpy, and cupy when a GPU is usable), a seeded ``rng``, ``torch``
(skips the test when PyTorch is not installed), and ``n2d2_ini``: N2D2's files copied into
``tests/data/n2d2/`` (INI corpus, trained QAT weights, per-layer outputs; see its README)."""
import pathlib
import signal

import numpy
import pytest

from n2d2py import backend

ROOT = pathlib.Path(__file__).resolve().parent.parent
N2D2_INI = ROOT / "tests" / "data" / "n2d2"

# A suite started in the background by a shell without job control (``sh -c 'pytest ... &'``,
# ``nohup``) inherits Ctrl-C ignored, as POSIX asks, and so would every n2d2py command a test
# starts: the Ctrl-C tests would then see a training run to its end. Those tests stand for a user
# at a terminal, so the suite takes Ctrl-C back (the commands it starts inherit the default).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


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
    """Path to ``tests/data/n2d2`` (N2D2's INI corpus, test models and oracle outputs)."""
    return N2D2_INI
