"""Property tests of the ``$(...)`` evaluator (``n2d2py.ini.expression``) over random token strings.

Properties: every text evaluates to an int/float/bool or raises ``ExpressionError``; results stay
within ``MAX_INT_BITS``; each case ends within a second (no ``9**9**9``, no ``round(5, -2**31)``);
a name other than the few allowed words never evaluates (no attribute access, no builtins, no
strings, no environment variables); inside an INI, a failure is an IniError naming the key.
"""
import re
import time

from hypothesis import given, strategies as st

from fuzzing import budget, count_case, outcome
from n2d2py.errors import IniError
from n2d2py.ini import parse_ini_text
from n2d2py.ini.expression import MAX_INT_BITS, ExpressionError, evaluate

ALLOWED = {"int", "float", "max", "min", "abs", "round", "and", "or", "not", "if", "else",
           "True", "False"}
TOKENS = ["0", "1", "2", "3", "7", "10", "255", "4096", "0.5", "1e3", "1e308", "1.e5", ".5",
          "1_0", "9", "-", "+", "*", "/", "//", "%", "**", "(", ")", ",", "<", ">", "==", "!=",
          "<=", ">=", "and", "or", "not", "if", "else", "True", "False", "int", "float", "max",
          "min", "abs", "round", ".", "[", "]", "'", '"', "__import__", "os", "x", "lambda", ":",
          "__class__", "open", "eval", "getattr", "${X}", "$", "{", "}", ";", "=", "\\", " "]
SECONDS = 1.0
IDENTIFIER = re.compile(r"(?<![\w.])[A-Za-z_]\w*")


def check(text):
    start = time.perf_counter()
    try:
        value = evaluate(text)
    except ExpressionError as exc:
        assert str(exc)
        value = exc
    assert time.perf_counter() - start < SECONDS, f"$({text}) took too long"
    if not isinstance(value, ExpressionError):
        assert type(value) in (int, float, bool), f"$({text}) gave {type(value).__name__}"
        if type(value) is int:
            assert value.bit_length() <= MAX_INT_BITS + 1
        names = set(IDENTIFIER.findall(text))
        assert names <= ALLOWED, f"$({text}) evaluated although it names {names - ALLOWED}"
    return value


@budget(0.1)
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=40).map(" ".join))
def test_random_token_strings(text):
    count_case("expression token strings")
    check(text)


@budget(0.1)
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=30).map("".join))
def test_random_glued_token_strings(text):
    count_case("expression glued tokens")
    check(text)


NUMBER = st.one_of(st.integers(-10 ** 6, 10 ** 6).map(str), st.sampled_from(
    ["9", "99", "4096", "2**31", "10**7", "1e308", "0.5", "-1", "0"]))


@st.composite
def nested(draw, depth=0):
    """Random well-formed expressions, including deep, huge and slow-looking ones."""
    if depth > 6 or draw(st.booleans()):
        return draw(NUMBER)
    kind = draw(st.sampled_from(["binary", "unary", "call", "chain", "paren"]))
    if kind == "binary":
        op = draw(st.sampled_from(["+", "-", "*", "/", "//", "%", "**", "<", "==", "and", "or"]))
        return f"({draw(nested(depth + 1))} {op} {draw(nested(depth + 1))})"
    if kind == "unary":
        return draw(st.sampled_from(["-", "+", "not "])) * draw(st.integers(1, 100)) + \
            draw(nested(depth + 1))
    if kind == "call":
        name = draw(st.sampled_from(["int", "float", "max", "min", "abs", "round"]))
        args = draw(st.lists(nested(depth + 1), min_size=0, max_size=3))
        return f"{name}({', '.join(args)})"
    if kind == "chain":
        op = draw(st.sampled_from(["+", "*", "**", " if 1 else ", " and "]))
        return op.join([draw(NUMBER)] * draw(st.integers(2, 1500)))
    return "(" * draw(st.integers(1, 100)) + draw(nested(depth + 1)) + ")" * 100


@budget(0.1)
@given(nested())
def test_structured_expressions_are_bounded(text):
    count_case("expression structured")
    check(text[:4096])


@budget(0.05)
@given(st.sampled_from(["PATH", "HOME", "X", "SECTION_NAME"]), st.sampled_from(TOKENS[:20]))
def test_ini_expressions_see_only_the_ini_variables(name, tail):
    """Environment variables are not INI variables: ``$(${PATH} + 1)`` never reads os.environ."""
    count_case("expression INI variables")
    text = f"[a]\nk=$(${{{name}}} {tail} 1)\n"
    document = parse_ini_text(text, "/tmp/fuzz.ini", env={name: "1", "X": "2"})
    value = outcome("expression: INI key", document.section("a").get, "k")
    if name != "SECTION_NAME":
        assert isinstance(value, IniError), f"${{{name}}} was read from the environment: {value}"
