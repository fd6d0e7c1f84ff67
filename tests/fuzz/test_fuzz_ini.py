"""Fuzzing the INI dialect with mutations of real N2D2 files (``tests/data/n2d2``, read in place).

Each case takes one corpus file, applies 1-6 mutations (lines deleted, duplicated, swapped or
inserted; keys misspelt; values replaced by hostile numbers, references, variables, ``$()``
expressions, paths; section headers broken, renamed, given bases or templates; Mapping tables
damaged; raw characters inserted or the text truncated), then:

1. parses it (``parse_ini_text`` with the file's own path, so templates resolve as for the file);
2. evaluates every key of every section (build-time keys preset as tests/ini/test_corpus.py does);
3. builds the network without data (``DeepNet.from_ini(document, load_data=False)``).

Each stage must end in a result or an ``N2D2Error`` naming a place (``fuzzing.outcome``). The
build runs under an address-space limit so that a mutated size (``NbOutputs=4294967296``) fails
with ``MemoryError`` instead of exhausting the machine; that outcome is counted separately (the
command line turns it into one error line through ``n2d2py.guard``).
"""
import contextlib
import functools
import os
import pathlib
import re

from hypothesis import given, strategies as st

from fuzzing import OUTCOMES, budget, count_case, outcome
from n2d2py.errors import N2D2Error
from n2d2py.ini import parse_ini_text

ROOT = pathlib.Path(__file__).resolve().parents[2]
N2D2_INI = ROOT / "tests" / "data" / "n2d2"
BUILD_HEADROOM = 512 << 20        # bytes of address space a build may add (see module docstring;
                                  # the long run must stay under 1 GB of memory, issue 12)

NUMBERS = ["0", "-1", "1", "2", "3", "255", "0.5", "-0", "1e-3", "1e30", "-1e30", "nan", "inf",
           "-inf", "4294967296", "18446744073709551617", "99999", "2 2", "1 2 3 4 5", "0x10",
           "1,2", "", " ", "\t", "true", "yes", "1.5", "-3", "007", "1_000"]
WORDS = ["Rectifier", "Tanh", "Linear", "Softmax", "Saturation", "Max", "Average", "SGD", "Adam",
         "SAT", "LSQ", "Prune", "Frame", "Frame_CUDA", "Conv", "Fc", "Pool", "BatchNorm", "ONNX",
         "ElemWise", "Dropout", "Padding", "Resize", "Reshape", "Scaling", "Sum", "Prod",
         "MNIST_IDX_Database", "CIFAR10_Database", "Unknown", "Float16", "Spike", "env", "sp",
         "Mapping", "LeCun", "Xavier", "He", "Normal", "Constant", "Uniform", "Poly", "Step"]
EXPRESSIONS = ["$(1/0)", "$(9**9**9)", "$(2**4096)", "$(((((((1)))))))", "$(", "$(1+)", "$()",
               "$(__import__('os').system('true'))", "$(().__class__)", "$(int(1e308*10))",
               "$(max())", "$(1 if 0 else 2)", "$(open('x'))", "$(10**300 * 10**300)",
               "$(-1**0.5)", "$(int(float('nan')))", "$(3 // 0)", "$(2.5)", "$(1e400)",
               "$(" + "(" * 200 + "1" + ")" * 200 + ")", "$(" + "1+" * 3000 + "1)",
               "$(round(1e308*10))", "$(0 ** -1)", "$(${X} * 2)", "$([sp]SizeX / 3)",
               "$(x.y)", "$(lambda: 1)", "$([1,2])", "$('a')", "$(1 < 2 < 3)", "$(not 1)"]
VARIABLES = ["${X}", "${SECTION_NAME}", "${PREV_SECTION_NAME}", "${", "${}", "$Y", "$${X}",
             "${${X}}", "$", "${HOME}", "${N2D2_DATA}"]
PATHS = ["/dev/zero", "/etc/passwd", "../../../../../../etc", "${HOME}/x", "no/such/dir",
         "/dev/null", ".", "/", "\x00", "C:\\x", "~"]
BROKEN = ["[", "]", "[]", "[[", "=", "==", "=x", "x=", "\\", '"', '"unmatched', ";", "#", "\ufeff",
          "[x] no_such_base", "[sp]", "[env]", "Input=env", "Input=", "Type=", "\\\\", "\r",
          "a=b\\", "[x@no_such.ini.tpl]", "[x@/etc/passwd]", "[x@../../../../etc/hostname]",
          "[x@${HOME}/t.tpl]", "{{X}}", "{% for i in range(9999999999) %}", "{% endfor %}"]


def corpus():
    """Corpus INI files: N2D2's (``tests/data/n2d2``) and the repository's examples."""
    files = sorted(N2D2_INI.rglob("*.ini"))
    files += sorted((ROOT / "models").glob("*.ini")) + sorted((ROOT / "ini_examples").glob("*.ini"))
    return files


FILES = corpus()


@functools.lru_cache(maxsize=None)
def read_text(path):
    return pathlib.Path(path).read_text(encoding="utf-8", errors="replace")


@functools.lru_cache(maxsize=None)
def names_in(path):
    """(section names, keys) written in a file: material for references and renames."""
    text = read_text(path)
    sections = re.findall(r"^\[([^\]\s@]+)", text, re.M) or ["sp"]
    keys = re.findall(r"^([A-Za-z_$][\w.()$]*)\s*=", text, re.M) or ["Type"]
    return sorted(set(sections)), sorted(set(keys))


# -- mutations -------------------------------------------------------------------------------
def value_strategy(sections, keys):
    reference = st.builds(lambda s, k: f"[{s}]{k}", st.sampled_from(sections), st.sampled_from(keys))
    return st.one_of(
        st.sampled_from(NUMBERS), st.sampled_from(WORDS), st.sampled_from(EXPRESSIONS),
        st.sampled_from(VARIABLES), st.sampled_from(PATHS), reference,
        st.builds(",".join, st.lists(st.sampled_from(sections + ["env", "sp", "nowhere"]),
                                     min_size=1, max_size=3)),
        st.builds(lambda r: f"$({r} * 2)", reference),
        st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12),
    )


def mutate(draw, lines, path):
    sections, keys = names_in(path)
    if not lines:
        lines.append("")
    index = draw(st.integers(0, max(0, len(lines) - 1)))
    kind = draw(st.sampled_from(["delete", "duplicate", "swap", "value", "key", "header",
                                 "insert", "chars", "truncate", "mapping", "input"]))
    line = lines[index] if lines else ""
    if kind == "delete" and lines:
        del lines[index]
    elif kind == "duplicate" and lines:
        lines.insert(draw(st.integers(0, len(lines))), line)
    elif kind == "swap" and lines:
        other = draw(st.integers(0, len(lines) - 1))
        lines[index], lines[other] = lines[other], line
    elif kind == "value" and "=" in line:
        key = line.split("=", 1)[0]
        lines[index] = f"{key}={draw(value_strategy(sections, keys))}"
    elif kind == "key" and "=" in line:
        key, value = line.split("=", 1)
        key = draw(st.one_of(
            st.sampled_from(keys), st.just(key.upper()), st.just(key[:-1]), st.just(key + "x"),
            st.just("$" + key.strip()), st.just(key.strip() + "." + key.strip()),
            st.text(alphabet="ab.$()[]_ \t", min_size=0, max_size=6)))
        lines[index] = f"{key}={value}"
    elif kind == "header" and line.startswith("["):
        name = line[1:].split("]", 1)[0]
        lines[index] = draw(st.sampled_from([
            f"[{name}", f"{name}]", "[]", f"[{sections[0]}]", f"[{name}] {name}",
            f"[{name}] {draw(st.sampled_from(sections))}", f"[{name}] nosuchbase",
            f"[{name}@{draw(st.sampled_from(PATHS + ['ResNet-block.ini.tpl', 'x.tpl']))}]",
            f"[{name}.Target]", f"[{name}] [{name}]", f"[ {name} ]", f"[{name}]]"]))
    elif kind == "insert":
        text = draw(st.one_of(
            st.sampled_from(BROKEN),
            st.builds(lambda k, v: f"{k}={v}", st.sampled_from(keys), value_strategy(sections, keys)),
            st.builds(lambda s: f"[{s}]", st.sampled_from(sections + ["new", "new.Target"]))))
        lines.insert(index, text)
    elif kind == "chars":
        position = draw(st.integers(0, len(line)))
        junk = draw(st.one_of(st.sampled_from(BROKEN + EXPRESSIONS + VARIABLES),
                              st.text(max_size=4)))
        lines[index] = line[:position] + junk + line[position:]
    elif kind == "truncate" and lines:
        del lines[index:]
        if line:
            lines.append(line[:draw(st.integers(0, len(line)))])
    elif kind == "mapping":
        rows = [i for i, l in enumerate(lines) if re.fullmatch(r"[\s01\\]+", l) and "1" in l]
        if rows:
            row = draw(st.sampled_from(rows))
            action = draw(st.sampled_from(["flip", "two", "drop", "extra", "unglue"]))
            text = lines[row]
            if action == "flip":
                lines[row] = text.replace("1", "0", 1) if "1" in text else text.replace("0", "1", 1)
            elif action == "two":
                lines[row] = text.replace("0", "2", 1)
            elif action == "drop":
                del lines[row]
            elif action == "extra":
                lines[row] = "1 " + text
            else:
                lines[row] = text.rstrip("\\ ")
    elif kind == "input":
        inputs = [i for i, l in enumerate(lines) if l.startswith("Input")]
        if inputs:
            row = draw(st.sampled_from(inputs))
            parents = draw(st.lists(st.sampled_from(sections + ["env", "sp", "nowhere"]),
                                    min_size=0, max_size=3))
            lines[row] = "Input=" + ",".join(parents)
    return kind


@st.composite
def mutated_ini(draw):
    path = draw(st.sampled_from(FILES))
    lines = read_text(path).split("\n")
    kinds = [mutate(draw, lines, path) for _ in range(draw(st.integers(1, 6)))]
    return path, "\n".join(lines), kinds


# -- stages ----------------------------------------------------------------------------------
BUILD_VALUE = 7
BUILD_KEYS = ("_NbChannels", "_ChannelsWidth", "_ChannelsHeight", "_NbOutputs",
              "_OutputsWidth", "_OutputsHeight")


def parse(path, text):
    return parse_ini_text(text, str(path), env={})


def evaluate_every_key(document):
    """Evaluate each key of each section; each key's N2D2Error is checked and counted."""
    for section in document:
        if section.name in ("sp", "env"):
            section.set("_EpochSize", 1000)
        if "Input" in section:
            for key in BUILD_KEYS:
                section.set(key, BUILD_VALUE)
    for section in document:
        for key in section.keys():
            outcome("ini: evaluate (per key)", section.get, key)


@contextlib.contextmanager
def memory_limit(headroom=BUILD_HEADROOM):
    """Lower RLIMIT_AS to the current address space + ``headroom`` for the block."""
    try:
        import resource
    except ImportError:
        yield
        return
    with open("/proc/self/statm") as f:
        used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = used + headroom if hard == resource.RLIM_INFINITY else min(hard, used + headroom)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def build(document):
    from n2d2py.deepnet import DeepNet
    with memory_limit():
        try:
            return DeepNet.from_ini(document, load_data=False, seed=1)
        except MemoryError:
            OUTCOMES["ini: build"]["MemoryError (guard -> N2D2Error)"] += 1
            return None


@budget(1.0)
@given(mutated_ini())
def test_mutated_ini_parses_evaluates_and_builds_or_fails_cleanly(case):
    path, text, kinds = case
    count_case("ini mutations")
    document = outcome("ini: parse", parse, path, text)
    if isinstance(document, N2D2Error):
        return
    evaluate_every_key(document)
    fresh = outcome("ini: parse", parse, path, text)     # evaluation preset build keys
    if not isinstance(fresh, N2D2Error):
        outcome("ini: build", build, fresh)


# -- never silently wrong: a misspelt key of a cell is an error or a warning naming it ---------
BUILDABLE = ["models/LeNet.ini", "models/cifar-10.ini",
             "models/mnist24_16c4s2_24c5s2_150_10.ini", "tests_data/mnist_model/LeNet_w4_a8.ini",
             "tests_data/mnist_multibranch_model/MobileNet_v2_mini.ini"]


@st.composite
def misspelt_cell_key(draw):
    path = N2D2_INI / draw(st.sampled_from(BUILDABLE))
    lines = read_text(path).split("\n")
    section, candidates = None, []
    for number, line in enumerate(lines):
        if line.startswith("["):
            section = line[1:].split("]")[0]
        elif "=" in line and section and not line.startswith(("$", ";", "#", "Input", "Type")) \
                and not line.split("=")[0].strip().endswith(")") and "." not in section:
            candidates.append(number)
    number = draw(st.sampled_from(candidates))
    key, value = lines[number].split("=", 1)
    key = key.strip()
    typo = draw(st.sampled_from([key + "s", key[:-1] + key[-1].swapcase(), "X" + key,
                                 key[1:] if len(key) > 2 else key + "Z"]))
    lines[number] = f"{typo}={value}"
    return path, "\n".join(lines), typo


@budget(0.1)
@given(misspelt_cell_key())
def test_misspelt_key_is_reported_not_ignored(case):
    path, text, typo = case
    count_case("ini misspelt keys")
    document = parse(path, text)
    net = outcome("ini: misspelt key", build, document)
    if isinstance(net, Exception) or net is None:       # an N2D2Error (or a counted known bug)
        return
    said = [str(w) for w in document.warnings] + [str(w) for w in net.warnings()]
    assert any(typo in line for line in said), \
        f"key {typo!r} was misspelt in {path}, the network built and nothing says so"


def test_unmutated_corpus_is_fine():
    """The corpus itself parses (the mutations start from valid files)."""
    for path in FILES:
        parse(path, read_text(path))
