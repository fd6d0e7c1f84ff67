"""A small, safe evaluator for the Python expressions N2D2 runs inside ``$(...)``
(docs/INI.md §3).

N2D2 pipes the text to ``python -c "print (E)"``. We never call an interpreter: the text is
tokenized and parsed (precedence climbing) into nested tuples, then walked. Supported, with
Python 3 meaning:

* numbers (``3``, ``0.5``, ``1e-3``, ``.5``), ``True``/``False``, parentheses;
* ``+ - * / // % **``, unary ``+ -``, comparisons (chained: ``0 < x < 4``),
  ``and``/``or``/``not`` (returning an operand, as Python does), ``x if c else y``;
* the functions ``int float max min abs round``.

One deliberate difference (N2D2 runs whichever Python is installed): ``/`` of two integers whose
quotient is exact yields an integer, so ``$(${MARGIN} / 2)`` prints ``16`` as Python 2 did, and
integer keys read it. Other quotients are floats and print as Python 3 prints them (``450410.74...``).

Bounds, so that a hostile INI cannot stall the program: the text is at most ``MAX_LENGTH``
characters, nesting at most ``MAX_DEPTH`` levels, and no integer may exceed ``MAX_INT_BITS``
bits (``9**9**9`` is rejected before it is computed). Anything else (names, attribute access,
strings, calls of other functions) raises ``ExpressionError`` with a short reason.
"""
import math
import re

MAX_LENGTH = 4096
MAX_DEPTH = 64
MAX_INT_BITS = 4096


class ExpressionError(ValueError):
    """The text is not an expression we accept; the caller adds file/line/section/key."""


_TOKEN = re.compile(r"""
    \s*(?:
      (?P<number>(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?)
    | (?P<name>[A-Za-z_][A-Za-z_0-9]*)
    | (?P<op>\*\*|//|==|!=|<=|>=|[-+*/%<>(),])
    )""", re.VERBOSE)

ALLOWED = ("expected numbers, + - * / // % **, comparisons, and/or/not, 'x if c else y' and "
           "the functions abs float int max min round")
_WHY = {"'": " (strings are not supported)", '"': " (strings are not supported)",
        ".": " (attribute access is not supported)", "[": " (indexing is not supported)",
        "=": " (assignment is not supported)"}

_KEYWORDS = {"and", "or", "not", "if", "else", "True", "False"}
_COMPARISONS = {"<", ">", "<=", ">=", "==", "!="}
# Binding power of infix operators (higher binds tighter), as in Python's grammar.
_BINARY = {"+": 60, "-": 60, "*": 70, "/": 70, "//": 70, "%": 70}


def tokenize(text):
    """List of ``(kind, value)`` with kind in number/name/op, ending with ``("end", "")``."""
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            char = text[pos:].lstrip()[:1]
            raise ExpressionError(f"unexpected character {char!r} at column {pos + 1}"
                                  f"{_WHY.get(char, '')}; {ALLOWED}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    tokens.append(("end", ""))
    return tokens


class _Parser:
    """Precedence climbing over the token list; produces ``(op, *operands)`` tuples."""

    def __init__(self, tokens):
        self.tokens, self.pos, self.depth = tokens, 0, 0

    def peek(self):
        return self.tokens[self.pos]

    def take(self, value=None):
        token = self.tokens[self.pos]
        if value is not None and token[1] != value:
            found = token[1] or "end of expression"
            raise ExpressionError(f"expected {value!r}, found {found!r}")
        self.pos += 1
        return token

    def nest(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"expression nested deeper than {MAX_DEPTH} levels")

    def expression(self):
        """test: or_test ['if' or_test 'else' test]"""
        self.nest()
        value = self.boolean("or")
        if self.peek() == ("name", "if"):
            self.take()
            condition = self.boolean("or")
            self.take("else")
            value = ("ifelse", condition, value, self.expression())
        self.depth -= 1
        return value

    def boolean(self, op):
        operand = (lambda: self.boolean("and")) if op == "or" else self.negation
        values = [operand()]
        while self.peek() == ("name", op):
            self.take()
            values.append(operand())
        return values[0] if len(values) == 1 else (op, *values)

    def negation(self):
        if self.peek() == ("name", "not"):
            self.take()
            self.nest()
            value = ("not", self.negation())
            self.depth -= 1
            return value
        return self.comparison()

    def comparison(self):
        first = self.arithmetic(0)
        pairs = []
        while self.peek()[0] == "op" and self.peek()[1] in _COMPARISONS:
            pairs.append((self.take()[1], self.arithmetic(0)))
        return ("compare", first, pairs) if pairs else first

    def arithmetic(self, min_power):
        left = self.unary()
        while True:
            kind, op = self.peek()
            power = _BINARY.get(op) if kind == "op" else None
            if power is None or power <= min_power:
                return left
            self.take()
            left = (op, left, self.arithmetic(power))

    def unary(self):
        kind, op = self.peek()
        if kind == "op" and op in "+-":
            self.take()
            self.nest()
            value = ("neg" if op == "-" else "pos", self.unary())
            self.depth -= 1
            return value
        base = self.atom()
        if self.peek() == ("op", "**"):
            self.take()
            self.nest()
            base = ("**", base, self.unary())   # right-associative; -2**2 == -4, 2**-1 == 0.5
            self.depth -= 1
        return base

    def atom(self):
        kind, value = self.take()
        if kind == "number":
            return ("const", _number(value))
        if value == "(":
            inner = self.expression()
            self.take(")")
            return inner
        if kind == "name" and value in ("True", "False"):
            return ("const", value == "True")
        if kind == "name" and value in FUNCTIONS and self.peek() == ("op", "("):
            self.take()
            args = []
            if self.peek() != ("op", ")"):
                args.append(self.expression())
                while self.peek() == ("op", ","):
                    self.take()
                    args.append(self.expression())
            self.take(")")
            return ("call", value, args)
        if kind == "name":
            raise ExpressionError(f"unknown name {value!r} (allowed functions: "
                                  f"{', '.join(sorted(FUNCTIONS))})")
        raise ExpressionError(f"unexpected {value or 'end of expression'!r}")


def _number(text):
    clean = text.replace("_", "")
    try:
        return float(clean) if any(c in clean for c in ".eE") else int(clean)
    except ValueError:
        raise ExpressionError(f"malformed number {text!r}") from None


def _check_int(value):
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise ExpressionError(f"integer result larger than {MAX_INT_BITS} bits")
    return value


def _power(base, exponent):
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
        # Bound the result before computing it: bits(base**e) <= e * bits(base).
        if abs(base) > 1 and exponent * (abs(base).bit_length() - 1) > MAX_INT_BITS:
            raise ExpressionError(f"integer result larger than {MAX_INT_BITS} bits")
    if base == 0 and exponent < 0:
        raise ExpressionError("0 cannot be raised to a negative power")
    result = base ** exponent
    if isinstance(result, complex):
        raise ExpressionError("negative number raised to a fractional power")
    return result


def _divide(a, b):
    if b == 0:
        raise ExpressionError("division by zero")
    if isinstance(a, int) and isinstance(b, int) and a % b == 0:
        return a // b              # exact integer quotient stays an integer (module docstring)
    return a / b


def _modulo(op):
    def apply(a, b):
        if b == 0:
            raise ExpressionError("integer division or modulo by zero")
        return op(a, b)
    return apply


def _int(value):
    if isinstance(value, float) and not math.isfinite(value):
        raise ExpressionError(f"cannot convert {value} to int")
    return int(value)


def _round(value, digits=None):
    if isinstance(value, float) and not math.isfinite(value):
        raise ExpressionError(f"cannot round {value}")
    if isinstance(digits, int) and digits < -MAX_INT_BITS:
        digits = -MAX_INT_BITS     # same result (0), without computing 10**-digits
    return round(value) if digits is None else round(value, digits)


def _extreme(pick):
    def apply(*values):
        if not values:
            raise ExpressionError(f"{pick.__name__}() expects at least one argument")
        return pick(values)
    return apply


FUNCTIONS = {"int": _int, "float": float, "abs": abs, "round": _round,
             "max": _extreme(max), "min": _extreme(min)}

_ARITHMETIC = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": _divide, "//": _modulo(lambda a, b: a // b), "%": _modulo(lambda a, b: a % b),
    "**": _power,
}
_COMPARE = {"<": lambda a, b: a < b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b,
            ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}


def _walk(node):
    op = node[0]
    if op == "const":
        return node[1]
    if op in _ARITHMETIC:
        a, b = _walk(node[1]), _walk(node[2])
        if isinstance(a, int) and isinstance(b, int) and op == "*" and \
                a.bit_length() + b.bit_length() > MAX_INT_BITS + 1:
            raise ExpressionError(f"integer result larger than {MAX_INT_BITS} bits")
        try:
            return _check_int(_ARITHMETIC[op](a, b))
        except OverflowError:
            raise ExpressionError(f"numeric overflow in '{op}'") from None
    if op == "neg":
        return -_walk(node[1])
    if op == "pos":
        return +_walk(node[1])
    if op == "not":
        return not _walk(node[1])
    if op == "and" or op == "or":
        value = None
        for operand in node[1:]:
            value = _walk(operand)
            if bool(value) == (op == "or"):
                return value
        return value
    if op == "ifelse":
        return _walk(node[2]) if _walk(node[1]) else _walk(node[3])
    if op == "compare":
        left = _walk(node[1])
        for cmp, operand in node[2]:
            right = _walk(operand)
            if not _COMPARE[cmp](left, right):
                return False
            left = right
        return True
    if op == "call":
        args = [_walk(arg) for arg in node[2]]
        try:
            return _check_int(FUNCTIONS[node[1]](*args))
        except TypeError as exc:
            raise ExpressionError(f"{node[1]}(): {exc}") from None
        except OverflowError:
            raise ExpressionError(f"numeric overflow in {node[1]}()") from None
    raise AssertionError(f"unknown node {op!r}")


def parse(text):
    """The expression tree of ``text`` (tuples), or ``ExpressionError``."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_LENGTH} characters")
    parser = _Parser(tokenize(text))
    if parser.peek()[0] == "end":
        raise ExpressionError("empty expression")
    tree = parser.expression()
    if parser.peek()[0] != "end":
        raise ExpressionError(f"unexpected {parser.peek()[1]!r} after the expression")
    return tree


def evaluate(text):
    """The value of ``text``: int, float or bool."""
    try:
        return _walk(parse(text))
    except RecursionError:         # a long chain (1+1+...+1) makes a deep left-leaning tree
        raise ExpressionError("expression too long to evaluate (too many operators)") from None


def format_value(value):
    """The text Python 3's ``print`` writes for ``value`` (``1.0``, ``0.5``, ``True``, ``16``)."""
    return repr(value)


def evaluate_to_text(text):
    """``format_value(evaluate(text))``: what replaces ``$(text)`` in an INI value."""
    return format_value(evaluate(text))
