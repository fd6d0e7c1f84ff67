"""Building and running the C export in the tests (tests/qat, tests/ptq, tests/cells): compile
once, run every stimulus in one process, read the classes (and, built with -DNETWORK_TRACE,
every layer's codes)."""
import pathlib
import shutil
import subprocess

import numpy
import pytest

from n2d2py.qat.export_c import export_c, read_run_output, run_output, write_stimuli

COMPILER = shutil.which("gcc") or shutil.which("cc")
#: the acceptance flags: C99, warnings as errors; integer exports also without FP registers
FLAGS = ["-std=c99", "-O2", "-Wall", "-Werror"]
INTEGER_FLAGS = FLAGS + ["-mgeneral-regs-only"]


def compile_program(folder, binary, flags=FLAGS, trace=False):
    if COMPILER is None:
        pytest.skip("no C compiler (gcc or cc) on PATH")
    folder = pathlib.Path(folder)
    command = [COMPILER, *flags, *(["-DNETWORK_TRACE"] if trace else []), "-o", str(binary),
               str(folder / "main.c"), str(folder / "network.c"), "-lm"]
    build = subprocess.run(command, capture_output=True, text=True)
    assert build.returncode == 0 and not build.stderr, build.stderr
    return str(binary)


def run_program(binary, stimuli, trace=None):
    """(classes, labels, accuracy line, stdout) of one run over the stimuli file."""
    run = subprocess.run([binary, str(stimuli)] + ([str(trace)] if trace else []),
                         capture_output=True, text=True, check=True)
    classes, labels, accuracy = read_run_output(run.stdout)
    return classes, labels, accuracy, run.stdout


def read_trace(program, path, count):
    """{layer: codes (count, values)} from a NETWORK_TRACE run over ``count`` stimuli."""
    layers = [program.buffers[node.name] for node in program.nodes]
    raw = numpy.fromfile(path, numpy.uint8).reshape(count, sum(b.bytes for b in layers))
    out, offset = {}, 0
    for buf in layers:
        part = numpy.ascontiguousarray(raw[:, offset:offset + buf.bytes])
        out[buf.name] = part.view(numpy.dtype(buf.dtype).newbyteorder("<")).reshape(count, -1)
        offset += buf.bytes
    return out


def c_classes(fused, codes, tmp_path, labels=None, flags=FLAGS, pack_weights=False):
    """Export, compile once and run once on all the stimuli; returns (classes, program)."""
    program = export_c(fused, tmp_path / "export", pack_weights)
    binary = compile_program(tmp_path / "export", tmp_path / "network", flags)
    write_stimuli(tmp_path / "stimuli.bin", codes, labels)
    classes, _, _, _ = run_program(binary, tmp_path / "stimuli.bin")
    return classes, program


def check_c_layers(fused, codes, labels, folder, flags=INTEGER_FLAGS, name=""):
    """Export ``fused`` into ``folder`` with ``codes`` (and ``labels``, or None) as stimuli,
    compile once (traced) and run once: every exported layer's codes, the classes and the
    printed lines equal the integer engine's. Returns (program, classes)."""
    folder, count = pathlib.Path(folder), len(codes)
    engine = fused.forward(codes, keep="all")
    program = export_c(fused, folder, stimuli=(codes, labels))
    binary = compile_program(folder, folder / "network", flags, trace=True)
    classes, _, _, stdout = run_program(binary, folder / "stimuli.bin", folder / "trace")
    trace = read_trace(program, folder / "trace", count)
    for node in program.nodes:
        want = numpy.asarray(engine[node.name]).reshape(count, -1)
        differ = int((trace[node.name] != want).sum())
        assert differ == 0, f"{name} [{node.name}]: {differ} codes differ from the engine"
    expected = numpy.asarray(engine[program.output.name]).reshape(count, -1).argmax(axis=1)
    assert numpy.array_equal(classes, expected)
    assert stdout == program.expected == run_output(expected, labels)
    return program, classes
