"""The safe ``$(...)`` evaluator (n2d2py/ini/expression.py, docs/INI.md §3)."""
import operator

import pytest
from hypothesis import given, strategies as st

from n2d2py.ini.expression import (MAX_INT_BITS, MAX_LENGTH, ExpressionError, evaluate,
                                   evaluate_to_text)


@pytest.mark.parametrize("text, expected", [
    ("1 + 2 * 3", "7"),
    ("(1 + 2) * 3", "9"),
    ("-2**2", "-4"),
    ("2**-1", "0.5"),
    ("2**3**2", "512"),
    ("7 / 2", "3.5"),
    ("32 / 2", "16"),                    # exact integer quotient stays an integer
    ("1000 * 90 / 256", "351.5625"),
    ("7.0 / 7", "1.0"),
    ("7 // 2", "3"), ("-7 // 2", "-4"), ("-7 % 3", "2"), ("7.5 // 2", "3.0"),
    ("1.0", "1.0"), ("0.5", "0.5"), (".5", "0.5"), ("1e-3", "0.001"), ("2.", "2.0"),
    ("0.1 * 3", "0.30000000000000004"),  # printed as Python 3's print does
    ("1 < 2 < 3", "True"), ("1 < 3 < 2", "False"), ("2 == 2.0", "True"), ("1 != 1", "False"),
    ("0 and 3", "0"), ("2 and 3", "3"), ("0 or 4", "4"), ("not 0", "True"),
    ("not 1 == 2", "True"),
    ("1 if 2 > 3 else 0.5", "0.5"),
    ("0.0 if 8 > 0 else 1.0", "0.0"),
    ("8**(-1.0/(2*2-2)) if 8 > 0 else 1.0", "0.3535533905932738"),
    ("int(64 * 0.75)", "48"), ("int(-2.7)", "-2"), ("float(3)", "3.0"),
    ("max(1280, 1280 * 0.75)", "1280"), ("min(3, 1.5, 2)", "1.5"), ("abs(-3)", "3"),
    ("round(2.5)", "2"), ("round(3.5)", "4"), ("round(2.567, 2)", "2.57"),
    ("int(max(1280, 1280 * 1.5))", "1920"),
    ("True + 1", "2"),
])
def test_values_print_like_python3(text, expected):
    assert evaluate_to_text(text) == expected


OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul,
       "//": operator.floordiv, "%": operator.mod}


@given(st.integers(-10**6, 10**6), st.sampled_from(sorted(OPS)), st.integers(-10**6, 10**6))
def test_integer_arithmetic_matches_python(a, op, b):
    if op in ("//", "%") and b == 0:
        with pytest.raises(ExpressionError):
            evaluate(f"{a} {op} {b}")
        return
    # Negative literals are written in parentheses, as a user would.
    assert evaluate(f"({a}) {op} ({b})") == OPS[op](a, b)


@given(st.integers(-10**6, 10**6), st.integers(-1000, 1000).filter(lambda b: b != 0))
def test_division_int_when_exact_else_true_division(a, b):
    value = evaluate(f"({a}) / ({b})")
    if a % b == 0:
        assert isinstance(value, int) and value == a // b
    else:
        assert isinstance(value, float) and value == a / b


@pytest.mark.parametrize("text, message", [
    ("9**9**9", "bits"),
    ("2**100000", "bits"),
    ("(2**4000) * (2**4000)", "bits"),
    ("2.0**10000", "overflow"),
    ("1/0", "division by zero"),
    ("1 % 0", "by zero"),
    ("0**-1", "negative power"),
    ("(-8)**0.5", "fractional power"),
    ("__import__('os')", "unexpected character"),
    ("os.system", "unexpected character"),
    ("x + 1", "unknown name 'x'"),
    ("open(1)", "unknown name 'open'"),
    ("int", "unknown name 'int'"),
    ("(1 + 2", "expected ')'"),
    ("1 +", "unexpected"),
    ("1 2", "after the expression"),
    ("", "empty"),
    ("[1]", "unexpected character"),
    ("lambda: 1", "unexpected character ':'"),
    ("max()", "at least one"),
    ("int(1, 2, 3)", "int()"),
    ("int(float(1e308) * 10)", "cannot convert"),
])
def test_rejected(text, message):
    with pytest.raises(ExpressionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        evaluate(text)


def test_length_and_depth_bounds():
    with pytest.raises(ExpressionError, match="longer than"):
        evaluate("1+" * (MAX_LENGTH // 2) + "1")
    with pytest.raises(ExpressionError, match="nested deeper"):
        evaluate("(" * 200 + "1" + ")" * 200)
    with pytest.raises(ExpressionError, match="nested deeper"):
        evaluate("-" * 200 + "1")
    assert evaluate("(" * 20 + "1" + ")" * 20) == 1


def test_largest_allowed_integer():
    assert evaluate(f"2**{MAX_INT_BITS - 1}") == 2 ** (MAX_INT_BITS - 1)
