"""Integer-only C export (``qat/export_c.py``) of the fused network in the four integer modes
(Fixed-point16, Fixed-point32, Single-shift, Double-shift):

1. N2D2's ten trained LeNets and a LeNet n2d2py trains: ``network.c`` compiles with ``gcc
   -std=c99 -O2 -Wall -Werror -mgeneral-regs-only`` (no floating-point register or operation),
   and one run over the 1000 bundled test digits gives, for every layer, the integer engine's
   codes (``-DNETWORK_TRACE``), its classes, and ``expected.txt`` (what ``make check`` diffs).
   Each network runs each mode once, the weight rounding alternating (NONE / RINTF) so that every
   mode meets both.
2. The user's two commands: ``--export C --export-stimuli 1000`` then ``make run`` and ``make
   check``: the C program's accuracy equals ``--test --qat-sat``'s "Final recognition rate".
3. ``--pack-weights``: the 4-bit LeNet-bn-SAT stores its weights in the bytes ``--report``
   gives (31,230), with the same classes as unpacked; 1-, 3- and 5-bit grids too.
4. Cortex-M0 (``arm-none-eabi-gcc``, skipped when absent): no soft-float helper in the integer
   modes' object (the Floating-point export has them, so the check can fail), the sizes; with
   ``qemu-arm``, the Cortex-M0 code scores the 1000 digits through semihosting as on the host.
5. Networks the integer export cannot express: one ``n2d2py: error:`` line naming the cell,
   exit status 2, nothing written.

Measured (1000 digits; accuracy % in Floating-point | Fixed-point16 | Fixed-point32 | Single-shift
| Double-shift, weights NONE; the C program equals the engine on every layer in all of them):
LeNet-bn-SAT 99.9|99.9|99.9|98.3|99.6, -8b 100|100|100|96.6|99.8, 4b 99.8|99.8|99.8|97.8|99.9,
w1_a2 98.8|98.9|98.9|91.0|98.6, w1_a4 99.5|99.4|99.4|96.4|99.1, w1_a8 99.4|99.4|99.4|98.2|99.3,
w3_a4 99.8|99.8|99.8|95.0|99.7, w4_a8 100|100|100|94.5|99.9, w5_a8 100|100|100|99.4|99.9,
wMix_a4 99.8|99.8|99.8|93.5|99.8. LeNet_SAT4 after two epochs (Fixed-point16 NONE | Fixed-point32
RINTF | Single-shift NONE | Double-shift RINTF): 94.9|94.2|92.2|94.1.
"""
import pathlib
import re
import shutil
import subprocess

import numpy
import pytest

from n2d2py import cli
from n2d2py.errors import N2D2Error
from n2d2py.qat import fuse_qat
from n2d2py.qat.export_c import CProgram, export_c, read_run_output
from n2d2py.stats import cost_table

from c_helpers import (FLAGS, INTEGER_FLAGS, check_c_layers, compile_program, read_trace,
                       run_program)
from qat_helpers import CONFIGS, MNIST_MODEL, load

ROOT = pathlib.Path(__file__).resolve().parents[2]
DIGITS = 1000
INTEGER_MODES = ["Fixed-point16", "Fixed-point32", "Single-shift", "Double-shift"]
ARM_GCC = shutil.which("arm-none-eabi-gcc")
#: libgcc's soft-float helpers (the issue's patterns): __aeabi_f*, __aeabi_d*, __*sf*, __*df*
SOFT_FLOAT = re.compile(r"^__aeabi_[fd]|^__.*sf|^__.*df")


def digits(net):
    net.sp.batch_size = DIGITS
    x, labels, _ = next(net.sp.batches("Test", False, None, DIGITS))
    return x, numpy.asarray(labels)


def check_layers(net, mode, rnd, x, labels, tmp_path, name):
    """Export, compile once (integer flags, traced), run once on the digits: every layer's
    codes, the classes and the printed lines equal the engine's. Returns (accuracy, program)."""
    fused = fuse_qat(net, mode, rnd, rnd, rnd)
    program, classes = check_c_layers(fused, fused.input_codes(x), labels,
                                      tmp_path / f"{name}_{mode}", name=f"{name} {mode}")
    return 100 * (classes == labels).mean(), program


# -- 1. N2D2's ten LeNets and a LeNet n2d2py trains ------------------------------------------------
@pytest.mark.parametrize("index", range(len(CONFIGS)), ids=[c[0] for c in CONFIGS])
def test_lenet_c_codes_equal_the_engine_layer_by_layer(index, tmp_path):
    ini, weights, _ = CONFIGS[index]
    net = load(ini, weights, batch_size=DIGITS)
    x, labels = digits(net)
    results = []
    for k, mode in enumerate(INTEGER_MODES):
        rnd = ("NONE", "RINTF")[(index + k) % 2]
        accuracy, program = check_layers(net, mode, rnd, x, labels, tmp_path, ini)
        results.append(f"{mode} {rnd} {accuracy:.1f} %")
        assert accuracy >= (88.0 if mode == "Single-shift" else 98.0)
        source = (pathlib.Path(program.folder) / "network.c").read_text()
        assert ("int64_t" in source) == (mode == "Fixed-point32")     # its z*M products only
    print(f"{ini}: C = engine on every layer; " + ", ".join(results))


@pytest.fixture(scope="module")
def trained_sat4():
    """ini_examples/LeNet_SAT4.ini (4-bit SAT) after two epochs of the bundled Learn set
    (6,400 stimuli, seed 1; about 3 s): 92-95 % on the test digits in the integer modes."""
    from n2d2py.deepnet import DeepNet
    net = DeepNet.from_ini(ROOT / "ini_examples" / "LeNet_SAT4.ini", device="cpu", seed=1)
    net.weight_histograms = False
    rng = numpy.random.default_rng(1)
    for _ in range(2):
        for xb, lb, _ in net.sp.batches("Learn", True, rng, None):
            net.learn_batch(xb, lb)
    return net


@pytest.mark.parametrize("mode, rnd", [(m, ("NONE", "RINTF")[k % 2])
                                        for k, m in enumerate(INTEGER_MODES)],
                         ids=INTEGER_MODES)
def test_self_trained_lenet_c_codes_equal_the_engine(trained_sat4, mode, rnd, tmp_path):
    x, labels = digits(trained_sat4)
    accuracy, _ = check_layers(trained_sat4, mode, rnd, x, labels, tmp_path, "LeNet_SAT4")
    print(f"LeNet_SAT4 after two epochs, {mode} {rnd}: {accuracy:.1f} %, C = engine")
    assert accuracy > 85


def test_residual_mobilenet_c_codes_equal_the_engine(tmp_path):
    """ElemWise sums (Q16 operand multipliers), depthwise convs and a global Average pool (its
    window sums in a 16-bit buffer) in an integer mode, 300 digits."""
    from qat_helpers import MULTIBRANCH
    net = load("MobileNet_v2_mini", "mobilenet-v2-weights-8b", folder=MULTIBRANCH,
               batch_size=300)
    x, labels, _ = next(net.sp.batches("Test", False, None, 300))
    fused = fuse_qat(net, "Double-shift", "RINTF", "RINTF", "RINTF")
    codes = fused.input_codes(x)
    program = export_c(fused, tmp_path / "c", stimuli=(codes, labels))
    binary = compile_program(tmp_path / "c", tmp_path / "network", INTEGER_FLAGS, trace=True)
    classes, _, accuracy, stdout = run_program(binary, tmp_path / "c" / "stimuli.bin",
                                               tmp_path / "trace")
    assert stdout == program.expected
    engine = fused.forward(codes, keep="all")
    for name, got in read_trace(program, tmp_path / "trace", 300).items():
        assert numpy.array_equal(got, numpy.asarray(engine[name]).reshape(300, -1)), name
    kinds = {type(n).__name__ for n in program.nodes}
    assert {"IntegerElemWise", "IntegerPool", "IntegerConv", "IntegerFc"} <= kinds
    assert any(program.buffers[n.name].ctype == "uint16_t" for n in program.nodes)
    print(f"MobileNet_v2_mini Double-shift RINTF: {accuracy}; {program.memory_line()}")
    assert (classes == labels).mean() > 0.95


# -- 2. the user's two commands --------------------------------------------------------------------
def cli_run(argv, capsys):
    status = cli.main(argv)
    captured = capsys.readouterr()
    return status, captured.out + captured.err


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_export_stimuli_then_make_run(tmp_path, monkeypatch, capsys):
    ini, weights = MNIST_MODEL / "LeNet_w1_a4.ini", MNIST_MODEL / "weights_LeNet_w1_a4"
    monkeypatch.chdir(tmp_path)
    options = ["-w", str(weights), "--qat-sat", "--act-rescaling-mode", "Double-shift"]
    status, out = cli_run([str(ini), *options, "--export", "C", "--export-stimuli", "1000"],
                          capsys)
    assert status == 0, out
    assert "1000 test stimuli written to 'export_C_int8/stimuli.bin'" in out
    assert re.search(r"C export memory: flash \d+ bytes .* RAM \d+ bytes", out)
    make = subprocess.run(["make", "-s", "-C", "export_C_int8", "run", "CC=" + (shutil.which("gcc")
                                                                            or "cc")],
                          capture_output=True, text=True)
    assert make.returncode == 0, make.stderr
    classes, labels, accuracy = read_run_output(make.stdout)
    assert len(classes) == 1000 and (labels >= 0).all()
    check = subprocess.run(["make", "-s", "-C", "export_C_int8", "check"], capture_output=True,
                           text=True)
    assert check.returncode == 0 and "on every stimulus" in check.stdout, check.stdout
    status, out = cli_run([str(ini), *options, "--test"], capsys)
    final = re.search(r"Final recognition rate: .*\((\d+)/(\d+) images", out)
    correct, total = int(final.group(1)), int(final.group(2))
    print(f"make run: {accuracy}; --test --qat-sat: {final.group(0)}")
    assert total == 1000 and f"({correct}/{total})" in accuracy
    assert correct == int((classes == labels).sum())


# -- 3. packed weights -----------------------------------------------------------------------------
def test_packed_4bit_lenet_flash_equals_the_report(tmp_path):
    net = load("LeNet-bn-SAT", "weights_test_SAT", batch_size=DIGITS)
    x, labels = digits(net)
    report = int(cost_table(net).size_bytes)
    classes = {}
    for rnd in ("NONE", "RINTF"):
        fused = fuse_qat(net, "Fixed-point32", rnd, rnd, rnd)
        codes = fused.input_codes(x)
        for pack in (False, True):
            folder = tmp_path / f"{rnd}_{pack}"
            program = export_c(fused, folder, pack, stimuli=(codes, labels))
            binary = compile_program(folder, folder / "network", INTEGER_FLAGS)
            classes[rnd, pack], _, _, stdout = run_program(binary, folder / "stimuli.bin")
            assert stdout == program.expected
            memory = program.memory()
            if pack:
                print(program.weight_line())
                print(program.memory_line())
                assert memory["weights"] == report == 31230        # no odd-sized row here
                header = (folder / "network.h").read_text()
                assert f"#define NETWORK_WEIGHTS_BYTES {report}" in header
                assert f"#define NETWORK_FLASH_BYTES {memory['flash']}" in header
            else:
                assert memory["weights"] > report
        assert numpy.array_equal(classes[rnd, True], classes[rnd, False])


@pytest.mark.parametrize("ini, weights, bits", [("LeNet_w1_a2", "weights_LeNet_w1_a2", 1),
                                                ("LeNet_w3_a4", "weights_LeNet_w3_a4", 3),
                                                ("LeNet_w5_a8", "weights_LeNet_w5_a8", 5)])
def test_packed_1_3_5_bit_weights_give_the_engine_classes(ini, weights, bits, tmp_path):
    net = load(ini, weights, batch_size=DIGITS)
    x, labels = digits(net)
    fused = fuse_qat(net, "Single-shift")
    codes = fused.input_codes(x)
    program = export_c(fused, tmp_path / "export", True, stimuli=(codes, labels))
    assert f"conv2 2400x{bits} bits" in program.weight_line()
    binary = compile_program(tmp_path / "export", tmp_path / "network", INTEGER_FLAGS)
    _, _, _, stdout = run_program(binary, tmp_path / "export" / "stimuli.bin")
    assert stdout == program.expected
    # the report's bytes, give or take each layer's last partial byte and guard byte
    assert 0 <= program.memory()["weights"] - cost_table(net).size_bytes <= 2 * 5


# -- 4. Cortex-M0 ----------------------------------------------------------------------------------
def arm_object(folder, mode):
    command = [ARM_GCC, "-std=c99", "-O2", "-Wall", "-Werror", "-mcpu=cortex-m0", "-mthumb",
               "-mfloat-abi=soft", "-c", str(folder / "network.c"), "-o",
               str(folder / "network_m0.o")]
    build = subprocess.run(command, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    nm = subprocess.run([shutil.which("arm-none-eabi-nm"), "-u", str(folder / "network_m0.o")],
                        capture_output=True, text=True, check=True)
    undefined = [line.split()[-1] for line in nm.stdout.splitlines() if line.strip()]
    size = subprocess.run([shutil.which("arm-none-eabi-size"), str(folder / "network_m0.o")],
                          capture_output=True, text=True, check=True)
    text, data, bss = (int(v) for v in size.stdout.splitlines()[1].split()[:3])
    print(f"{mode}: arm-none-eabi-size network.o: text {text} data {data} bss {bss}; helpers "
          f"{undefined}")
    return undefined, (text, data, bss)


@pytest.mark.skipif(ARM_GCC is None, reason="no arm-none-eabi-gcc (Debian: apt-get install "
                                            "gcc-arm-none-eabi; CI installs it when it can)")
def test_cortex_m0_objects_have_no_soft_float_helpers(tmp_path):
    net = load("LeNet-bn-SAT", "weights_test_SAT", batch_size=DIGITS)
    x, labels = digits(net)
    for mode in INTEGER_MODES + ["Floating-point"]:
        fused = fuse_qat(net, mode)
        folder = tmp_path / mode
        codes = fused.input_codes(x)
        program = export_c(fused, folder, stimuli=(codes, labels))
        undefined, (text, data, bss) = arm_object(folder, mode)
        soft_float = [s for s in undefined if SOFT_FLOAT.search(s)]
        if mode == "Floating-point":      # the check finds them where they are
            assert soft_float and "__aeabi_dmul" in soft_float
            continue
        assert soft_float == [], f"{mode}: soft-float helpers {soft_float}"
        assert set(undefined) <= {"__aeabi_lmul"} and ("__aeabi_lmul" in undefined) == \
            (mode == "Fixed-point32")          # the one int64 operation: z*M
        assert bss == program.memory()["ram"] and text >= program.memory()["flash"]
        if mode in ("Fixed-point16", "Fixed-point32") and shutil.which("qemu-arm") and \
                has_semihosting():
            check_qemu(folder, program)


def has_semihosting():
    """Whether newlib's semihosting runtime (rdimon.specs, libnewlib-arm-none-eabi) is there:
    the qemu-arm run needs it and is left out without it."""
    found = subprocess.run([ARM_GCC, "-print-file-name=rdimon.specs"], capture_output=True,
                           text=True).stdout.strip()
    if not pathlib.Path(found).is_absolute():
        print("qemu-arm run left out: no rdimon.specs (Debian: libnewlib-arm-none-eabi)")
        return False
    return True


def check_qemu(folder, program):
    """The Cortex-M0 object (Thumb-1 code, its libgcc's helpers) linked with newlib's
    semihosting runtime (rdimon) and run by qemu-arm: the same output as on the host. qemu-arm
    (user mode) cannot load an M-profile ELF (Debian 12's 7.2 asserts), so the start-up and
    main.c are ARM-state code from the default multilib; every instruction of the network is
    the Cortex-M0 object's."""
    v6m_libgcc = subprocess.run([ARM_GCC, "-mcpu=cortex-m0", "-mthumb", "-mfloat-abi=soft",
                                 "-print-libgcc-file-name"], capture_output=True, text=True,
                                check=True).stdout.strip()
    elf = str(folder / "network_m0.elf")
    subprocess.run([ARM_GCC, "-std=c99", "-O2", "-mfloat-abi=soft", "--specs=rdimon.specs", "-o",
                    elf, str(folder / "main.c"), str(folder / "network_m0.o"), v6m_libgcc],
                   check=True, capture_output=True, cwd=folder)
    run = subprocess.run(["qemu-arm", elf, "stimuli.bin"], capture_output=True, text=True,
                         timeout=300, cwd=folder)
    assert run.returncode == 0, run.stderr
    assert run.stdout == program.expected
    print(f"qemu-arm, Cortex-M0 code: {run.stdout.splitlines()[-1]}")


# -- 5. networks the integer export cannot express -------------------------------------------------
def refused(argv, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    status, out = cli_run(argv, capsys)
    errors = [line for line in out.splitlines() if line.startswith("n2d2py: error:")]
    assert status == 2 and len(errors) == 1, out
    written = sorted(p.name for p in work.iterdir())
    assert not [n for n in written if n.startswith(("export_C", "weights")) or
                n.endswith(".qat.png")], written
    return errors[0]


@pytest.mark.parametrize("test", [False, True], ids=["export", "test-export"])
def test_floating_point_fc_is_refused(test, tmp_path, monkeypatch, capsys):
    """--n2d2-compat keeps N2D2's floating-point Fc rescaling: a float-only cell."""
    ini, weights = MNIST_MODEL / "LeNet_w1_a2.ini", MNIST_MODEL / "weights_LeNet_w1_a2"
    argv = [str(ini), "-w", str(weights), "--qat-sat", "--act-rescaling-mode", "Fixed-point32",
            "--wt-round-mode", "RINTF", "--b-round-mode", "RINTF", "--c-round-mode", "RINTF",
            "--n2d2-compat", "--export", "C"] + (["--test"] if test else [])
    line = refused(argv, tmp_path, monkeypatch, capsys)
    assert re.search(r"\[fc1\] the integer C export \(Fixed-point32\) cannot express this layer: "
                     r"it rescales in floating point", line), line
    if not test:     # in Python too (run_qat_sat: before the picture and weights_quantized/)
        import argparse
        import io
        from n2d2py.qat import run_qat_sat
        net = load("LeNet_w1_a2", "weights_LeNet_w1_a2")
        args = argparse.Namespace(workdir=str(tmp_path / "api"), export=str(tmp_path / "c"),
                                  act_rescaling_mode="Fixed-point16", n2d2_compat=True)
        with pytest.raises(N2D2Error, match=r"\[conv1\] .*floating-point number"):
            run_qat_sat(net, args, io.StringIO())
        assert not (tmp_path / "api").exists() and not (tmp_path / "c").exists()


def scaled_bn(tmp_path, factor):
    """weights_test_SAT with bn1's first scale multiplied by ``factor``."""
    folder = tmp_path / "weights"
    shutil.copytree(MNIST_MODEL / "weights_test_SAT", folder)
    path = folder / "bn1_scales.syntxt"
    values = path.read_text().split()
    values[0] = repr(float(values[0]) * factor)
    path.write_text("\n".join(values) + "\n")
    return folder


@pytest.mark.parametrize("mode, factor, message", [
    ("Single-shift", 1e5, r"\[conv1\] rescale factor [\d.e+]+ of channel 0 per accumulator unit "
                          r"is above 1: Single-shift only divides by powers of two"),
    ("Double-shift", 1e5, r"\[conv1\] rescale factor [\d.e+]+ of channel 0 .* Double-shift"),
    ("Fixed-point16", 1e9, r"\[conv1\] rescale factor [\d.e+]+ per accumulator unit does not fit "
                           r"Fixed-point16")])
def test_scale_overflowing_the_mode_is_refused(mode, factor, message, tmp_path, monkeypatch,
                                               capsys):
    weights = scaled_bn(tmp_path, factor)
    argv = [str(MNIST_MODEL / "LeNet-bn-SAT.ini"), "-w", str(weights), "--qat-sat",
            "--act-rescaling-mode", mode, "--export", "C", "--export-stimuli", "10"]
    line = refused(argv, tmp_path, monkeypatch, capsys)
    assert re.search(message, line), line


def test_colliding_c_identifiers_are_refused(tmp_path, monkeypatch, capsys):
    text = (ROOT / "ini_examples" / "LeNet_SAT4.ini").read_text()
    text = text.replace("[pool1]", "[conv.1]").replace("Input=pool1", "Input=conv.1")
    text = text.replace("[conv1]", "[conv_1]").replace("Input=conv1", "Input=conv_1")
    assert "[conv.1]" in text and "[conv_1]" in text
    ini = tmp_path / "names.ini"
    ini.write_text(text)
    line = refused([str(ini), "--qat-sat", "--export", "C"], tmp_path, monkeypatch, capsys)
    assert re.search(r"cells 'conv_1' and 'conv.1' give the same C identifier 'L_conv_1", line), \
        line


def test_c_options_need_export_c(tmp_path, monkeypatch, capsys):
    ini = MNIST_MODEL / "LeNet_w1_a2.ini"
    line = refused([str(ini), "--qat-sat", "--export", "ONNX", "--pack-weights"], tmp_path,
                   monkeypatch, capsys)
    assert "--pack-weights go with --export C" in line


def test_softmax_inside_the_network_is_refused():
    net = load("LeNet_w1_a2", "weights_LeNet_w1_a2")
    fused = fuse_qat(net, "Fixed-point16")
    from n2d2py.qat.engine import SoftmaxNode
    fc1 = fused.nodes["fc1"]
    fused.nodes["fc1"] = SoftmaxNode("fc1", fc1.parents, fc1.out_shape, fc1.R, fc1.alpha)
    with pytest.raises(N2D2Error, match=r"\[fc1\] C export: a Softmax inside the network"):
        CProgram(fused)


def test_the_c_shift_helpers_floor_negative_values(tmp_path):
    """asr32/asr64 (portable C99) are floors like NumPy's >> on negative values too."""
    values = [-2 ** 31, -65537, -5, -4, -1, 0, 1, 5, 2 ** 31 - 1]
    shifts = [0, 1, 3, 16, 30]
    literal = ", ".join(f"{v}" if v > -2 ** 31 else "-2147483647 - 1" for v in values)
    source = tmp_path / "asr.c"
    source.write_text(
        "#include <stdio.h>\n#include <stdint.h>\n" + CProgram.HELPERS["asr32"]
        + CProgram.HELPERS["asr64"] + f"static const int32_t V[] = {{{literal}}};\n"
        + f"static const int S[] = {{{', '.join(map(str, shifts))}}};\n"
        + "int main(void) {\n    unsigned i, j;\n"
        + f"    for (i = 0; i < {len(values)}; ++i) for (j = 0; j < {len(shifts)}; ++j)\n"
        + "        printf(\"%ld %lld\\n\", (long)asr32(V[i], S[j]), "
        + "(long long)asr64((int64_t)V[i] * 3, S[j]));\n    return 0;\n}\n")
    binary = compile_single(source, tmp_path / "asr")
    got = [tuple(map(int, line.split())) for line in
           subprocess.run([binary], capture_output=True, text=True, check=True).stdout.split("\n")
           if line]
    assert got == [(v >> s, (3 * v) >> s) for v in values for s in shifts]


def compile_single(source, binary):
    from c_helpers import COMPILER
    if COMPILER is None:
        pytest.skip("no C compiler")
    build = subprocess.run([COMPILER, *FLAGS, "-o", str(binary), str(source)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    return str(binary)
