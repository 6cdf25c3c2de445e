"""``calculate``: arithmetic from a small parser of its own, never ``eval``.

The grammar accepts numbers, + - * / // % ** (and ^ for power, as people
write it), parentheses, a postfix !, the constants pi, e and tau, and a
fixed list of math functions. Anything else (names, attributes, strings,
indexing) is refused with the position of the offending character. Results
that would exhaust the machine (huge powers and factorials, deep nesting,
long input) are refused before they are computed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from assistant.tools.base import BaseTool, ToolError
from assistant.tools.decorator import FunctionTool

MAX_EXPRESSION_CHARS = 500
MAX_DEPTH = 60
MAX_RESULT_BITS = 10_000  # about 3000 decimal digits
MAX_FACTORIAL = 1000
SIGNIFICANT_DIGITS = 12

Number = int | float

CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}


def _log(x: Number, base: Number = 10) -> float:
    return math.log(x, base)


def _round(x: Number, digits: Number = 0) -> Number:
    return round(x, int(digits)) if digits else round(x)


def _factorial(x: Number) -> int:
    if isinstance(x, float):
        if not x.is_integer():
            raise ValueError("factorial needs a whole number")
        x = int(x)
    if x > MAX_FACTORIAL:
        raise ToolError(f"factorial of {x} is too large to compute (limit {MAX_FACTORIAL})")
    return math.factorial(x)


FUNCTIONS: dict[str, Callable[..., Number]] = {
    "sqrt": math.sqrt,
    "cbrt": lambda x: math.copysign(abs(x) ** (1 / 3), x),
    "abs": abs,
    "round": _round,
    "floor": math.floor,
    "ceil": math.ceil,
    "exp": math.exp,
    "ln": math.log,
    "log": _log,
    "log10": math.log10,
    "log2": math.log2,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "sinh": math.sinh,
    "cosh": math.cosh,
    "tanh": math.tanh,
    "degrees": math.degrees,
    "radians": math.radians,
    "factorial": _factorial,
    "min": min,
    "max": max,
    "hypot": math.hypot,
}

TOKEN = re.compile(
    r"\s*(?:(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_]\w*)|(?P<op>\*\*|//|[-+*/%^(),!]))"
)
# Multiplication sign, middle dot, division sign, minus sign, en dash: as people (and ASR) write them.
TYPOGRAPHY = str.maketrans({"\u00d7": "*", "\u00b7": "*", "\u00f7": "/", "\u2212": "-", "\u2013": "-"})


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "number", "name", "op", "end"
    text: str
    position: int  # 1-based character position, for error messages


def tokenize(expression: str) -> list[Token]:
    tokens = []
    position = 0
    while position < len(expression):
        if expression[position:].strip() == "":
            break
        match = TOKEN.match(expression, position)
        if match is None or match.lastgroup is None:
            start = len(expression) - len(expression[position:].lstrip())
            raise ToolError(f"unexpected {expression[start]!r} at character {start + 1}: only arithmetic is allowed")
        tokens.append(Token(match.lastgroup, match.group(match.lastgroup), match.start(match.lastgroup) + 1))
        position = match.end()
    tokens.append(Token("end", "", len(expression) + 1))
    return tokens


class Parser:
    """Recursive descent over the tokens, computing as it goes.

    expression := term (("+" | "-") term)*
    term       := unary (("*" | "/" | "//" | "%") unary)*
    unary      := ("+" | "-") unary | power
    power      := postfix (("**" | "^") unary)?
    postfix    := primary "!"*
    primary    := number | constant | function "(" expression ("," expression)* ")" | "(" expression ")"
    """

    def __init__(self, expression: str) -> None:
        self.tokens = tokenize(expression)
        self.index = 0
        self.depth = 0

    def parse(self) -> Number:
        value = self.expression()
        token = self.peek()
        if token.kind != "end":
            raise ToolError(f"unexpected {token.text!r} at character {token.position}")
        return value

    def peek(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def accept(self, *ops: str) -> str | None:
        token = self.peek()
        if token.kind == "op" and token.text in ops:
            self.index += 1
            return token.text
        return None

    def expect(self, op: str) -> None:
        if self.accept(op) is None:
            token = self.peek()
            found = "the end" if token.kind == "end" else repr(token.text)
            raise ToolError(f"expected {op!r} at character {token.position}, found {found}")

    def expression(self) -> Number:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ToolError("the expression is nested too deeply")
        value = self.term()
        while (op := self.accept("+", "-")) is not None:
            right = self.term()
            value = value + right if op == "+" else value - right
        self.depth -= 1
        return value

    def term(self) -> Number:
        value = self.unary()
        while (op := self.accept("*", "/", "//", "%")) is not None:
            right = self.unary()
            if right == 0 and op != "*":
                raise ToolError("division by zero")
            if op == "*":
                value = value * right
            elif op == "/":
                value = value / right
            elif op == "//":
                value = value // right
            else:
                value = value % right
        return value

    def unary(self) -> Number:
        if (op := self.accept("+", "-")) is not None:
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ToolError("the expression is nested too deeply")
            value = self.unary()
            self.depth -= 1
            return -value if op == "-" else value
        return self.power()

    def power(self) -> Number:
        base = self.postfix()
        if self.accept("**", "^") is None:
            return base
        exponent = self.unary()
        return checked_power(base, exponent)

    def postfix(self) -> Number:
        value = self.primary()
        while self.accept("!") is not None:
            value = _factorial(value)
        return value

    def primary(self) -> Number:
        token = self.take()
        if token.kind == "number":
            return float(token.text) if any(c in token.text for c in ".eE") else int(token.text)
        if token.kind == "op" and token.text == "(":
            value = self.expression()
            self.expect(")")
            return value
        if token.kind == "name":
            name = token.text.lower()
            if name in CONSTANTS:
                return CONSTANTS[name]
            if name in FUNCTIONS:
                return self.call(name, token)
            known = ", ".join([*CONSTANTS, *FUNCTIONS])
            raise ToolError(f"unknown name {token.text!r} at character {token.position}; known names: {known}")
        found = "the end of the expression" if token.kind == "end" else repr(token.text)
        raise ToolError(f"expected a number at character {token.position}, found {found}")

    def call(self, name: str, token: Token) -> Number:
        self.expect("(")
        arguments = [self.expression()]
        while self.accept(",") is not None:
            arguments.append(self.expression())
        self.expect(")")
        try:
            return FUNCTIONS[name](*arguments)
        except TypeError:
            raise ToolError(f"{name} at character {token.position} does not take {len(arguments)} arguments") from None
        except ValueError as exc:
            raise ToolError(f"{name}({', '.join(map(format_number, arguments))}) is undefined ({exc})") from None


def checked_power(base: Number, exponent: Number) -> Number:
    """``base ** exponent``, refused when the result would be absurdly large or complex."""
    if base == 0 and exponent < 0:
        raise ToolError("division by zero (0 to a negative power)")
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if exponent * math.log2(abs(base)) > MAX_RESULT_BITS:
            raise ToolError("the result is too large to compute")
    if base < 0 and isinstance(exponent, float) and not exponent.is_integer():
        raise ToolError("a negative number to a fractional power is not a real number")
    return base**exponent


def format_number(value: Number) -> str:
    return str(tidy(value))


def tidy(value: Number) -> Number:
    """An int when the value is whole, else a float rounded to 12 significant digits (0.1 + 0.2 = 0.3)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if math.isnan(value) or math.isinf(value):
        raise ToolError("the result is not a finite number")
    rounded = float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    if rounded.is_integer() and abs(rounded) < 1e15:
        return int(rounded)
    return rounded


def evaluate(expression: str) -> Number:
    """The value of an arithmetic expression; ``ToolError`` for anything else."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    if not expression.strip():
        raise ToolError("the expression is empty")
    try:
        return tidy(Parser(expression.translate(TYPOGRAPHY)).parse())
    except OverflowError:
        raise ToolError("the result is too large to compute") from None
    except ZeroDivisionError:
        raise ToolError("division by zero") from None


def calculate(expression: str) -> dict[str, object]:
    """Work out an arithmetic expression exactly, instead of guessing.

    Supports + - * / // % ** (or ^), parentheses, n!, pi, e, and sqrt, cbrt, abs,
    round, floor, ceil, exp, ln, log (base 10, or log(x, base)), log2, sin, cos,
    tan (radians), degrees, radians, factorial, min, max, hypot.

    Args:
        expression: The arithmetic to do, in symbols, e.g. "12*7" or "sqrt(2)/3";
            turn words like "times" into symbols first.
    """
    return {"expression": expression, "result": evaluate(expression)}


def calculator_tools() -> list[BaseTool]:
    return [FunctionTool(calculate, timeout=5, read_only=True)]
