"""Parser of the property language (grammar: ``property.lark``) into ``ir.property`` nodes.

Forms (outputs ``y[i]`` are 0-based):

* Linear constraints joined by ``and``: ``y[1] >= y[0] + 0.01 and 2*y[3] - y[1] <= 0.5``.
  Either side may hold numbers and terms ``c*y[i]`` (also ``y[i]*c``, ``-y[i]``).  Each
  constraint becomes ``Constraint(coeffs, sense, rhs)``: every term moved to the left and every
  number to the right, duplicate indices merged, zero coefficients dropped, sorted by index.
  When the left side holds no term, the sides are swapped first, so ``1 <= y[0]`` reads
  ``y[0] >= 1``.  The result is a ``Conjunction``, even for one constraint.
* Strict ``>`` and ``<`` are ``>=`` and ``<=`` with ``DEFAULT_MARGIN`` added to the right side
  in the strict direction: ``y[1] > y[0]`` is ``-y[0] + y[1] >= DEFAULT_MARGIN`` and
  ``y[0] < 2`` is ``y[0] <= 2 - DEFAULT_MARGIN``.
* Sugar, each a whole property (not combinable with ``and``), with an optional margin
  ``by m`` (default ``DEFAULT_MARGIN``): ``argmax(y) == c`` (``ArgmaxIs``), ``argmax(y) != t``
  (``ArgmaxIsNot``), ``argmin(y) == c`` (``ArgminIs``).

Errors are ``ParseError`` with line, column and a caret: bad syntax, unknown names, an index
out of range (when ``n_outputs`` is given), a constraint without an output term, a product of
two outputs.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from lark import Lark, Token, Transformer, UnexpectedInput, v_args
from lark.exceptions import VisitError

from common.errors import ParseError
from ir.property import (DEFAULT_MARGIN, ArgmaxIs, ArgmaxIsNot, ArgminIs, Conjunction,
                         Constraint, Property)
from ir.text import syntax_error

SOURCE = "<property>"

# How the grammar's regular-expression terminals are named in error messages.
_TERMINAL_NAMES = {"NUMBER": "a number", "NAME": "a name", "SIGN": "a sign (+, -)",
                   "COMPARE": "a comparison (>=, <=, ==, >, <)"}

_STRICT = {">": (">=", 1.0), "<": ("<=", -1.0)}  # sense, direction of the margin
_SWAPPED = {">=": "<=", "<=": ">=", "==": "==", ">": "<", "<": ">", "!=": "!="}


def parse(text: str, n_outputs: int | None = None) -> Property:
    """The property written in ``text``; output indices checked against ``n_outputs``."""
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as err:
        raise syntax_error(_parser(), err, text, SOURCE, _TERMINAL_NAMES) from None
    try:
        return _PropertyBuilder(text, n_outputs).transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, ParseError):
            raise err.orig_exc from None
        raise


@functools.cache
def _parser() -> Lark:
    grammar = Path(__file__).with_name("property.lark").read_text()
    return Lark(grammar, parser="lalr", lexer="basic", propagate_positions=True,
                maybe_placeholders=True)


@dataclass(frozen=True)
class _Output:
    index: int
    token: Token  # the name, for errors


@dataclass(frozen=True)
class _Affine:
    """``sum(coeffs[i] * y[i]) + constant`` for one side of a comparison."""

    coeffs: dict[int, float]
    constant: float


class _PropertyBuilder(Transformer):
    """Parse tree -> ``ir.property`` nodes."""

    def __init__(self, text: str, n_outputs: int | None):
        super().__init__()
        self.text, self.n_outputs = text, n_outputs
        self.sugar_name: Token | None = None  # the function name of a sugar clause, if any

    def error_at(self, message: str, line: int, column: int) -> ParseError:
        return ParseError(message, self.text, line, column, SOURCE)

    def to_float(self, token: Token) -> float:
        value = float(token)
        if value == float("inf"):
            raise self.error_at(f"number {token} is out of the float64 range", token.line,
                                token.column)
        return value

    def to_index(self, token: Token, what: str) -> int:
        if not token.isdigit():
            raise self.error_at(f"{what} must be a whole number, got {token}", token.line,
                                token.column)
        i = int(token)
        if self.n_outputs is not None and i >= self.n_outputs:
            raise self.error_at(f"{what} {i} is out of range: the network has {self.n_outputs} "
                                f"outputs, y[0] .. y[{self.n_outputs - 1}]", token.line,
                                token.column)
        return i

    # ---- linear constraints ------------------------------------------------------------
    def output(self, children):
        name, index = children
        if name != "y":
            raise self.error_at(f"unknown name {str(name)!r}: outputs are written y[i]",
                                name.line, name.column)
        return _Output(self.to_index(index, "output index"), name)

    def bare_name(self, children):
        (name,) = children
        if name.lower() in ("inf", "infinity", "nan"):
            message = f"non-finite number {str(name)!r}: every number must be finite"
        else:
            message = f"unknown name {str(name)!r}: outputs are written y[i]"
        raise self.error_at(message, name.line, name.column)

    def product(self, factors):
        coeff, output = 1.0, None
        for factor in factors:
            if isinstance(factor, _Output):
                if output is not None:
                    raise self.error_at(f"non-linear term: y[{output.index}]*y[{factor.index}] "
                                        f"multiplies two outputs; a property is linear",
                                        factor.token.line, factor.token.column)
                output = factor
            else:
                coeff *= self.to_float(factor)
        if output is None:
            return _Affine({}, coeff)
        return _Affine({output.index: coeff}, 0.0)

    def sum(self, children):
        coeffs: dict[int, float] = {}
        constant = 0.0
        signs = [children[0]] + children[2::2]
        for sign, term in zip(signs, children[1::2]):
            factor = -1.0 if sign == "-" else 1.0
            constant += factor * term.constant
            for i, c in term.coeffs.items():
                coeffs[i] = coeffs.get(i, 0.0) + factor * c
        return _Affine(coeffs, constant)

    @v_args(meta=True)
    def comparison(self, meta, children):
        lhs, sense, rhs = children
        if sense == "!=":
            raise self.error_at("'!=' only appears in argmax(y) != t; a constraint uses >=, <=, "
                                "==, > or <", sense.line, sense.column)
        if not lhs.coeffs:
            lhs, rhs, sense = rhs, lhs, _SWAPPED[str(sense)]
        coeffs = dict(lhs.coeffs)
        for i, c in rhs.coeffs.items():
            coeffs[i] = coeffs.get(i, 0.0) - c
        terms = tuple(sorted((i, c) for i, c in coeffs.items() if c != 0.0))
        if not terms:
            raise self.error_at("this constraint has no output term y[i] (or its terms cancel)",
                                meta.line, meta.column)
        bound = rhs.constant - lhs.constant
        if sense in _STRICT:
            sense, direction = _STRICT[str(sense)]
            bound += direction * DEFAULT_MARGIN
        return Constraint(terms, str(sense), bound)

    # ---- sugar -------------------------------------------------------------------------
    def sugar(self, children):
        function, argument, relation, label, margin = children
        self.sugar_name = self.sugar_name or function
        if function not in ("argmax", "argmin"):
            raise self.error_at(f"unknown function {str(function)!r}: use argmax(y) or argmin(y)",
                                function.line, function.column)
        if argument != "y":
            raise self.error_at(f"unknown name {str(argument)!r}: write {function}(y)",
                                argument.line, argument.column)
        allowed = ("==", "!=") if function == "argmax" else ("==",)
        if relation not in allowed:
            raise self.error_at(f"{function}(y) takes {' or '.join(allowed)}, not {relation}",
                                relation.line, relation.column)
        c = self.to_index(label, "class")
        m = DEFAULT_MARGIN if margin is None else self.to_float(margin)
        if function == "argmin":
            return ArgminIs(c, m)
        return ArgmaxIs(c, m) if relation == "==" else ArgmaxIsNot(c, m)

    def start(self, clauses):
        if len(clauses) > 1 and self.sugar_name is not None:
            raise self.error_at(f"{self.sugar_name}(y) is a whole property: it cannot be combined "
                                f"with 'and' (write its inequalities out instead)",
                                self.sugar_name.line, self.sugar_name.column)
        if len(clauses) == 1 and not isinstance(clauses[0], Constraint):
            return clauses[0]
        return Conjunction(tuple(clauses))
