"""Acceptance of the ``n2d2py`` command's user errors (issue "INI interpreter, data pipeline and
``n2d2py`` command"): each class of mistake, run through the real command on a small INI, ends
with exit status 2 and exactly one ``n2d2py: error:`` line on stderr that names the place (file
and line, section, key or cell) and what was expected -- never a traceback.

Most cases call ``cli.main`` in-process (fast); the ones that depend on the process itself
(missing file, argparse, the ``-m`` entry point) run ``python -m n2d2py.cli``.
"""
import functools
import gzip
import os
import shutil

import numpy
import pytest
from cli_runner import assert_error, error_line, run_main, run_subprocess
from tiny_nets import TWO_CONV_28 as NET  # 28x28 digits, no Rescale: builds in milliseconds
from tiny_nets import write_ini

from n2d2py import backend
from n2d2py.data.idx import write_idx
from n2d2py.data.mnist import BUNDLED_MNIST


def line_of(text, fragment):
    """1-based number of the first line of ``text`` containing ``fragment``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if fragment in line:
            return number
    raise AssertionError(f"{fragment!r} not in the INI")


@pytest.fixture
def run(tmp_path, monkeypatch, capsys):
    """``run(*argv)`` -> (status, stdout, stderr) of ``cli.main`` in ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("N2D2PY_DEBUG", raising=False)

    def call(*argv):
        capsys.readouterr()
        status = run_main(*argv)
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return status, out, err
    return call


@pytest.fixture
def write(tmp_path):
    """``write(text, name="net.ini")`` -> path of the INI written in ``tmp_path``."""
    return functools.partial(write_ini, tmp_path)


def fails(run, *argv):
    status, out, err = run(*argv)
    assert status == 2, (status, out, err)
    return error_line(err)


def subprocess_cli(cwd, *argv):
    status, out, err = run_subprocess(cwd, *argv, timeout=60)
    assert "Traceback" not in out + err, err
    return status, out, err


# -- the INI file itself ------------------------------------------------------------------------
def test_missing_ini_file(tmp_path):
    status, _, err = subprocess_cli(tmp_path, "no_such_net.ini", "--test")
    assert status == 2
    assert_error(error_line(err), "no_such_net.ini", "No such file")
    assert os.listdir(tmp_path) == [] or "seed.dat" in os.listdir(tmp_path)


def test_ini_that_is_a_directory(run, tmp_path):
    (tmp_path / "dir.ini").mkdir()
    line = fails(run, tmp_path / "dir.ini", "--build-only")
    assert_error(line, "dir.ini")


def test_ini_that_is_a_directory_says_so(run, tmp_path):
    (tmp_path / "dir.ini").mkdir()
    assert_error(fails(run, tmp_path / "dir.ini", "--build-only"), "is a directory")


def test_empty_ini_file(run, write):
    line = fails(run, write(""), "--build-only")
    assert_error(line, "net.ini", "Missing [sp] section")


RANDOM = numpy.random.default_rng(3)
GARBAGE = {
    "random bytes": RANDOM.integers(0, 256, 4096, dtype=numpy.uint8).tobytes(),
    "no NUL byte": RANDOM.integers(1, 256, 4096, dtype=numpy.uint8).tobytes(),
    "control characters": b"[sp\x1b[31m\r\x0b\x0c\x85 x\ny\x1b]2;title\x07=1\r\n\xe2\x80\xa8",
    "gzip": gzip.compress(NET.encode()),
    "UTF-16": NET.encode("utf-16"),
}


@pytest.mark.parametrize("kind", list(GARBAGE))
def test_binary_garbage_ini(run, tmp_path, kind):
    path = tmp_path / "net.ini"
    path.write_bytes(GARBAGE[kind])
    line = fails(run, path, "--build-only")
    assert_error(line, "net.ini:")
    assert len(line) < 400 and "\x1b" not in line and "\r" not in line, line


# -- mistakes placed by the line: file:line, section and key, what was expected ---------------
MAPPED = NET.replace("NbOutputs=6\n", "NbOutputs=6\nMapping(conv1)=\\\n{rows}\n")
GOOD_ROWS = [" ".join("1" if (r + c) % 2 else "0" for c in range(6)) for r in range(4)]


def mapped(rows):
    """NET with a ``Mapping(conv1)`` table of ``rows`` in [conv2]."""
    return MAPPED.format(rows=" \\\n".join(rows))


@pytest.mark.parametrize("text, marker, fragments", [
    # the INI file itself
    pytest.param(NET.replace("[conv2]", "[conv2"), "[conv2", ("[conv2", "expected ']'"),
                 id="unterminated_section_header"),
    pytest.param(NET.replace("NbOutputs=6", "NbOutputs=[conv1"), "NbOutputs=[conv1",
                 ("[conv2] NbOutputs", "expected an integer", "[conv1"),
                 id="unterminated_bracket_in_a_value"),
    # cells and their graph
    pytest.param(NET.replace("Input=conv1", "Input=conv"), "Input=conv",
                 ("[conv2] Input", "unknown parent 'conv'", "did you mean", "'conv1'"),
                 id="unknown_section_in_input_has_a_close_match"),
    pytest.param(NET.replace("NbOutputs=4", "NbOutputs=1O"), "NbOutputs=1O",
                 ("[conv1] NbOutputs", "expected an integer", "'1O'"), id="bad_number"),
    pytest.param(NET.replace("Type=Conv\nKernelDims=3 3", "Type=Convv\nKernelDims=3 3"),
                 "Type=Convv", ("[conv2] Type", "'Convv'", "did you mean 'Conv'"),
                 id="unknown_type_has_a_close_match"),
    pytest.param(NET.replace("Solvers.Momentum=0.9", "Solvers.Momentun=0.9"), "Momentun",
                 ("[common.config]", "Solvers.Momentun", "Momentum"),
                 id="unknown_key_in_config_section_is_fatal"),
    pytest.param(NET.replace("NbOutputs=6", "NbOutputs=[conv1]NbOutput"), "[conv1]NbOutput",
                 ("[conv2] NbOutputs", "NbOutput not found in section [conv1]"),
                 id="reference_to_a_missing_key"),
    pytest.param(mapped(GOOD_ROWS[:3]), "Mapping(conv1)",
                 ("[conv2] Mapping(conv1)", "4 rows", "6 columns", "= 24 values", "got 18"),
                 id="mapping_table_with_a_wrong_count"),
    pytest.param(mapped(GOOD_ROWS[:2] + ["0 1 2 1 0 1"] + GOOD_ROWS[3:]), "Mapping(conv1)",
                 ("[conv2] Mapping(conv1)", "'2'", "row 3, column 3", "0 or 1"),
                 id="mapping_table_with_a_value_other_than_0_or_1"),
    # $() expressions
    pytest.param(NET.replace("NbOutputs=6", "NbOutputs=$(9**9**9)"), "9**9**9",
                 ("[conv2] NbOutputs", "$(9**9**9)"), id="huge_power_is_rejected_not_computed"),
])
def test_mistake_names_its_line(run, write, text, marker, fragments):
    line = fails(run, write(text), "--build-only")
    assert_error(line, f"net.ini:{line_of(text, marker)}", *fragments)


# -- cells and their graph ----------------------------------------------------------------------
def test_cycle_is_reported_with_its_chain(run, write):
    text = NET.replace("Input=sp", "Input=conv2")
    line = fails(run, write(text), "--build-only")
    assert_error(line, "net.ini:", "Input", "cycle", "conv1 -> conv2 -> conv1")


def test_mapping_table_is_accepted(run, write):
    status, out, err = run(write(mapped(GOOD_ROWS)), "--build-only")
    assert status == 0, err


# -- $() expressions ----------------------------------------------------------------------------
@pytest.mark.parametrize("expression", ["__import__('os')",
                                        "__import__('os').system('touch pwned')",
                                        "open('pwned', 'w')", "os.getcwd()"])
def test_names_in_expressions_are_never_executed(run, write, tmp_path, expression):
    text = NET.replace("NbOutputs=6", f"NbOutputs=$({expression})")
    line = fails(run, write(text), "--build-only")
    assert_error(line, f"net.ini:{line_of(text, expression)}", "[conv2] NbOutputs",
                 "cannot evaluate")
    assert not (tmp_path / "pwned").exists()


# -- options ------------------------------------------------------------------------------------
def test_unknown_option(tmp_path):
    path = tmp_path / "net.ini"
    path.write_text(NET)
    status, _, err = subprocess_cli(tmp_path, path, "--lern-epoch", "3")
    assert status == 2
    line = error_line(err)
    assert_error(line, "unrecognized option '--lern-epoch'", "did you mean '--learn-epoch'?")
    assert err.count("\n") == 1 and "usage:" not in err     # one line, not the whole usage


@pytest.mark.skipif(backend.cupy_available, reason="a GPU is usable here")
def test_device_gpu_without_cupy(run, write):
    line = fails(run, write(NET), "--build-only", "--device", "gpu")
    assert_error(line, "--device gpu", "CuPy")


# -- data ---------------------------------------------------------------------------------------
@pytest.fixture
def mnist_root(tmp_path, monkeypatch):
    """``$N2D2_DATA`` with a copy of the bundled MNIST subset in ``mnist/`` (gzip files)."""
    root = tmp_path / "data"
    shutil.copytree(BUNDLED_MNIST, root / "mnist")
    monkeypatch.setenv("N2D2_DATA", str(root))
    return root / "mnist"


def test_idx_file_with_a_bad_magic_number(run, write, mnist_root):
    (mnist_root / "train-images-idx3-ubyte").write_bytes(b"this is not an IDX file at all")
    line = fails(run, write(NET), "--test")
    assert_error(line, "train-images-idx3-ubyte", "not an IDX file", "magic number")


def test_truncated_idx_file(run, write, mnist_root):
    images = numpy.zeros((100, 28, 28), numpy.uint8)
    write_idx(str(mnist_root / "train-images-idx3-ubyte"), images)
    path = mnist_root / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:5000])
    line = fails(run, write(NET), "--test")
    assert_error(line, "train-images-idx3-ubyte", "truncated", "needs 78416 bytes", "got 5000")


def test_truncated_gzip_idx_file(run, write, mnist_root):
    path = mnist_root / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:3000])
    line = fails(run, write(NET), "--test")
    assert_error(line, "train-images-idx3-ubyte.gz", "cannot read IDX file")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_idx_file(run, write, mnist_root):
    path = mnist_root / "train-images-idx3-ubyte.gz"
    path.chmod(0)
    line = fails(run, write(NET), "--test")
    assert_error(line, "train-images-idx3-ubyte.gz", "ermission denied")


def test_wrong_image_size(run, write):
    text = NET.replace("SizeX=28\nSizeY=28", "SizeX=32\nSizeY=32")
    line = fails(run, write(text), "--test", "-w", os.devnull, "--nb-test", "16")
    assert_error(line, "net.ini:", "[sp]", "32", "28")


# -- weights ------------------------------------------------------------------------------------
@pytest.fixture
def trained(run, write, tmp_path):
    """Net written, weights exported once into ``tmp_path/w`` (no learning)."""
    from n2d2py.deepnet import DeepNet
    path = write(NET)
    net = DeepNet.from_ini(path, load_data=False)
    net.export_weights(str(tmp_path / "w"))
    return path, tmp_path / "w"


def test_missing_weights_folder_for_test(run, trained, tmp_path):
    path, _ = trained
    line = fails(run, path, "--test", "-w", tmp_path / "nowhere")
    assert_error(line, "nowhere", "does not exist")


def test_missing_weights_file_is_a_notice(run, trained):
    path, folder = trained
    (folder / "conv2_weights.syntxt").unlink()
    status, out, err = run(path, "--test", "-w", folder, "--nb-test", "16")
    assert status == 0, err
    assert f"Notice: Could not open synaptic file: {folder / 'conv2_weights.syntxt'}" in out


@pytest.mark.parametrize("name, edit, fragments", [
    pytest.param("fc1_weights.syntxt", lambda text: text.rsplit("\n", 3)[0] + "\n",
                 ("too few numbers", "expected 1500 ", "found 1200"), id="too_few_numbers"),
    pytest.param("conv1_biases.syntxt", lambda text: text + "0.5\n",
                 ("larger than expected", "expected 4 "), id="too_many_numbers"),
    pytest.param("conv1_biases.syntxt", lambda text: "0.1\nzero\n0.3\n0.4\n",
                 ("'zero' is not a number",), id="a_word"),
])
def test_weights_file_with(run, trained, name, edit, fragments):
    path, folder = trained
    file = folder / name
    file.write_text(edit(file.read_text()))
    line = fails(run, path, "--test", "-w", folder)
    assert_error(line, name, *fragments)


# -- values that used to escape as ZeroDivisionError / ValueError / cv2.error -------------------
@pytest.mark.parametrize("old, new, fragments", [
    ("Stride=2", "Stride=0", ("[conv1] Stride", "at least 1")),
    ("KernelDims=5 5", "KernelDims=5 5\nDilation=0", ("[conv1] Dilation", "at least 1")),
    ("KernelDims=3 3", "KernelDims=3 0", ("[conv2] KernelDims", "at least 1", "3 0")),
    ("KernelDims=5 5", "KernelDims=40 40", ("[conv1]", "output size", "is empty")),
    ("BatchSize=16", "BatchSize=0", ("[sp] BatchSize", "at least 1")),
    ("Validation=0.2", "Validation=1.5", ("[database] Validation", "between 0 and 1")),
    ("BatchSize=16\n", "BatchSize=16\n[sp.Transformation]\nType=RescaleTransformation\n"
                       "Width=0\nHeight=0\n", ("[sp.Transformation]", "at least 1")),
])
def test_out_of_range_values(run, write, old, new, fragments):
    assert old in NET
    text = NET.replace(old, new, 1)
    line = fails(run, write(text), "--test", "-w", os.devnull, "--nb-test", "16")
    assert_error(line, "net.ini:", *fragments)


def test_test_without_a_previous_run(run, write):
    """``--test`` alone reads weights_validation/ of a previous run, as in N2D2."""
    line = fails(run, write(NET), "--test", "--nb-test", "16")
    assert_error(line, "weights_validation", "does not exist")


def test_absurd_size_is_one_line(run, write):
    text = NET.replace("NbOutputs=4", "NbOutputs=4000000000000")
    assert_error(fails(run, write(text), "--build-only"), "[conv1]", "memory")
