"""VNN-LIB properties, the subset VNN-COMP uses: reader (grammar: ``vnnlib.lark``), lowering
to input boxes and output disjunctions, and writer.

The language:

* ``(declare-const X_i Real)`` declares input ``x[i]``, ``(declare-const Y_j Real)`` output
  ``y[j]`` (0-based, contiguous from 0, each declared once, before its first use).
* ``(assert F)``, where ``F`` is ``(<= A B)``, ``(>= A B)``, ``(and F ...)`` or ``(or F ...)``;
  ``A`` and ``B`` are declared variables or finite numbers (``-1``, ``.5``, ``2.5E+01``, also the
  SMT-LIB negation ``(- 1.5)``).  A comparison relates a variable to a number (either side), or
  two outputs; an input ``X_i`` is only ever bounded by a number.
* ``(check-sat)``, ``(get-model)`` and ``(exit)`` are accepted and ignored; ``;`` comments.

Meaning: the asserts together describe the counterexamples: a point ``(x, y = f(x))``
violates the property iff every assert holds.  ``parse_vnnlib`` lowers their conjunction to
disjunctive normal form (at most ``MAX_DISJUNCTS`` disjuncts, counted before expanding) and
splits each disjunct into a box on ``x`` (its input bounds intersected, starting from
``(-inf, +inf)``) and a ``Conjunction`` over ``y`` (its output comparisons as ``Constraint``s:
``(<= Y_0 Y_1)`` is ``y[0] - y[1] <= 0``, ``(<= 0.5 Y_2)`` is ``y[2] >= 0.5``, a comparison of an
output with itself always holds and is dropped).  Disjuncts with an empty box are dropped; the
others are grouped by bit-identical box, in order of first appearance, into ``Case``s.

Every error is an ``common.errors.ParseError`` with line, column and a caret; ``load_vnnlib``
turns a file it cannot read into a ``common.errors.DataError``.  ``format_vnnlib`` writes cases
back, numbers as ``repr(float(v))``: for cases as ``parse_vnnlib`` returns them (distinct
boxes, distinct conjunctions), ``parse_vnnlib(format_vnnlib(cases, ...)).cases`` equals
``cases`` bit for bit.
"""
from __future__ import annotations

import functools
import gzip
import math
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Union

import numpy as np
from lark import Lark, Token, Transformer, UnexpectedInput
from lark.exceptions import VisitError

from common.errors import DataError, ParseError
from ir.property import Conjunction, Constraint
from ir.text import syntax_error

MAX_DISJUNCTS = 100_000

# How the grammar's regular-expression terminals are named in error messages.
_TERMINAL_NAMES = {"NUMBER": "a number", "SYMBOL": "a symbol"}

_VARIABLE = re.compile(r"([XY])_(0|[1-9][0-9]*)")
_NON_FINITE = re.compile(r"[+-]?(inf(inity)?|nan)", re.IGNORECASE)
# Some published files end with the last three; they are accepted and ignored.
_COMMANDS = ("declare-const", "assert", "check-sat", "get-model", "exit")
_FLIPPED = {"<=": ">=", ">=": "<="}


@dataclass(frozen=True, eq=False)
class Case:
    """The counterexamples ``x`` in ``[lower, upper]`` (float64, shape ``(n_inputs,)``, every
    bound finite) for which some conjunction of ``output`` holds at ``y = f(x)``.

    ``output`` is never empty.  ``Conjunction(())``, with no constraint, holds for every ``y``:
    then every ``x`` in the box is a counterexample, and it is the only conjunction.
    """

    lower: np.ndarray
    upper: np.ndarray
    output: tuple[Conjunction, ...]


@dataclass(frozen=True, eq=False)
class VnnlibSpec:
    """A property: it is violated iff some case has a counterexample.  No case (``cases == ()``)
    means every disjunct had an empty box: the property can never be violated."""

    n_inputs: int
    n_outputs: int
    cases: tuple[Case, ...]
    source: str


# ---- reading ----------------------------------------------------------------------------

def parse_vnnlib(text: str, n_inputs: int | None = None, n_outputs: int | None = None,
                 source: str = "<vnnlib>") -> VnnlibSpec:
    """The property written in ``text``.  When the network's ``n_inputs`` / ``n_outputs`` are
    given, the file must declare exactly that many inputs / outputs.

    Raises ParseError for bad syntax, an unknown command, operator or sort, a variable name
    other than ``X_i`` / ``Y_j``, one declared twice or not declared before its use, a gap in
    the indices, a count other than the network's, a comparison outside the subset, a number
    that is not finite, more than ``MAX_DISJUNCTS`` disjuncts, or an input without a lower or
    upper bound in some case.
    """
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as err:
        raise syntax_error(_parser(), err, text, source, _TERMINAL_NAMES) from None
    try:
        builder = _build(tree, text, source)
        declared = list(builder.declarations.values())
        inputs = _count_declared(declared, "X", n_inputs, text, source)
        outputs = _count_declared(declared, "Y", n_outputs, text, source)
        cases = _lower(builder.asserts, inputs, text, source)
    except RecursionError:
        raise ParseError("the formulas are nested too deeply for this reader (some hundreds of "
                         "levels)", text, 1, 1, source) from None
    _check_bounded(cases, builder.declarations, text, source)
    return VnnlibSpec(inputs, outputs, cases, source)


def load_vnnlib(path: str | Path, n_inputs: int | None = None,
                n_outputs: int | None = None) -> VnnlibSpec:
    """Read a ``.vnnlib`` file, or a gzip-compressed one whose name ends in ``.gz``."""
    path = Path(path)
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        text = data.decode("utf-8")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read this VNN-LIB file: {err}") from None
    return parse_vnnlib(text, n_inputs, n_outputs, source=str(path))


def _build(tree, text: str, source: str) -> _VnnlibBuilder:
    """The builder after reading every command, in file order; each command's name is checked
    before its arguments, so an unknown command is named whatever its arguments hold."""
    builder = _VnnlibBuilder(text, source)
    for command in tree.children:
        head = command.children[0]
        if head not in _COMMANDS:
            raise _error_at(f"unknown command '{head}': a VNN-LIB property holds declare-const "
                            f"and assert", head, text, source)
        try:
            builder.transform(command)
        except VisitError as err:
            if isinstance(err.orig_exc, (ParseError, RecursionError)):
                raise err.orig_exc from None
            raise
    return builder


@functools.cache
def _parser() -> Lark:
    grammar = Path(__file__).with_name("vnnlib.lark").read_text()
    return Lark(grammar, parser="lalr", lexer="basic")


class _Declaration(NamedTuple):
    name: str
    is_output: bool
    index: int
    line: int
    column: int


class _Bound(NamedTuple):
    """``x[index] <= value`` when ``upper``, else ``x[index] >= value``."""

    index: int
    upper: bool
    value: float


@dataclass(frozen=True)
class _And:
    children: tuple[_Formula, ...]


@dataclass(frozen=True)
class _Or:
    children: tuple[_Formula, ...]


_Formula = Union[_Bound, Constraint, _And, _Or]
_FORMULAS = (_Bound, Constraint, _And, _Or)
_TRUE = _And(())


def _error_at(message: str, at: Token | _Declaration, text: str, source: str) -> ParseError:
    return ParseError(message, text, at.line, at.column, source)


class _VnnlibBuilder(Transformer):
    """Parse tree -> declarations and asserted formulas, checked as they come (in file order,
    so a variable must be declared before its use)."""

    def __init__(self, text: str, source: str):
        super().__init__(visit_tokens=False)
        self.text, self.source = text, source
        self.declarations: dict[str, _Declaration] = {}  # in file order
        self.asserts: list[tuple[_Formula, Token]] = []  # each with its `assert` token

    def error_at(self, message: str, at: Token) -> ParseError:
        return _error_at(message, at, self.text, self.source)

    # ---- commands ----------------------------------------------------------------------
    def command(self, children):
        head, *args = children
        if head == "declare-const":
            self.declare(head, args)
        elif head == "assert":
            if len(args) != 1 or not isinstance(args[0], _FORMULAS):
                raise self.error_at("assert takes one formula: a comparison (<= or >=), an and "
                                    "or an or", head)
            self.asserts.append((args[0], head))

    def declare(self, head: Token, args: list) -> None:
        if len(args) != 2 or not all(isinstance(a, Token) and a.type == "SYMBOL" for a in args):
            raise self.error_at("declare-const takes a name and a sort, as in "
                                "(declare-const X_0 Real)", head)
        name, sort = args
        match = _VARIABLE.fullmatch(name)
        if match is None:
            raise self.error_at(f"variable '{name}' is neither an input X_<i> nor an output "
                                f"Y_<j> (i, j = 0, 1, ...)", name)
        if sort != "Real":
            raise self.error_at(f"sort '{sort}' is not supported: VNN-LIB variables are Real",
                                sort)
        if name in self.declarations:
            raise self.error_at(f"{name} is declared twice (first on line "
                                f"{self.declarations[name].line})", name)
        self.declarations[str(name)] = _Declaration(str(name), match[1] == "Y", int(match[2]),
                                                    name.line, name.column)

    # ---- formulas and terms ------------------------------------------------------------
    def application(self, children):
        opening, *items = children
        if not items or not (isinstance(items[0], Token) and items[0].type == "SYMBOL"):
            raise self.error_at("this list has no operator: it should read like (<= X_0 1)",
                                opening)
        head, *args = items
        if head in _FLIPPED:
            return self.comparison(head, args)
        if head == "and":
            return _And(self.formulas(head, args))
        if head == "or":
            return _Or(self.formulas(head, args))
        if head == "-":
            if len(args) != 1 or not isinstance(args[0], (Token, float)):
                raise self.error_at("'-' is read only as the negation of a number, as in "
                                    "(- 1.5): arithmetic is not part of VNN-LIB properties", head)
            return -self.constant(head, args[0])
        raise self.error_at(f"unknown operator '{head}': a VNN-LIB property uses <=, >=, and, "
                            f"or (and - to negate a number)", head)

    def formulas(self, head: Token, args: list) -> tuple[_Formula, ...]:
        if not args:
            raise self.error_at(f"'{head}' needs at least one formula", head)
        for arg in args:
            if not isinstance(arg, _FORMULAS):
                found = f"'{arg}'" if isinstance(arg, Token) else "a number"
                raise self.error_at(f"'{head}' takes formulas, not {found}",
                                    arg if isinstance(arg, Token) else head)
        return tuple(args)

    def comparison(self, head: Token, args: list) -> _Formula:
        if len(args) != 2:
            raise self.error_at(f"'{head}' compares two terms, here {len(args)}", head)
        a, b = (self.term(head, arg) for arg in args)
        sense = str(head)
        if isinstance(a, float):
            if isinstance(b, float):
                raise self.error_at(f"'{head}' compares two numbers: one side must be a "
                                    f"variable", head)
            a, b, sense = b, a, _FLIPPED[sense]
        if isinstance(b, float):
            if a.is_output:
                return Constraint(((a.index, 1.0),), sense, b)
            return _Bound(a.index, sense == "<=", b)
        if not (a.is_output and b.is_output):
            raise self.error_at(f"'{head}' compares {a.name} with {b.name}: an input X_i may "
                                f"only be compared with a number (a bound), outputs Y_j also "
                                f"with each other", head)
        if a.index == b.index:
            return _TRUE
        return Constraint(tuple(sorted(((a.index, 1.0), (b.index, -1.0)))), sense, 0.0)

    def term(self, head: Token, arg) -> _Declaration | float:
        if isinstance(arg, Token) and arg.type == "SYMBOL":
            declared = self.declarations.get(arg)
            if declared is not None:
                return declared
            if _NON_FINITE.fullmatch(arg):
                raise self.error_at(f"non-finite number '{arg}': every value must be finite",
                                    arg)
            raise self.error_at(f"undeclared variable '{arg}'", arg)
        if isinstance(arg, (Token, float)):
            return self.constant(head, arg)
        raise self.error_at(f"'{head}' compares variables and numbers, not formulas", head)

    def constant(self, head: Token, arg: Token | float) -> float:
        """A NUMBER token, or the value of a negation ``(- c)``; a symbol is refused."""
        if isinstance(arg, float):
            return arg
        if arg.type != "NUMBER":
            raise self.error_at(f"'{head}' here takes a number, not '{arg}'", arg)
        value = float(arg)
        if not math.isfinite(value):
            raise self.error_at(f"number {arg} is out of the float64 range", arg)
        return value


def _check_bounded(cases: tuple[Case, ...], declarations: dict[str, _Declaration], text: str,
                   source: str) -> None:
    """Every input of every case has finite bounds; else an error at the input's declaration."""
    for k, case in enumerate(cases):
        for bound, missing in (("lower", case.lower == -np.inf), ("upper", case.upper == np.inf)):
            if missing.any():
                name = f"X_{int(np.argmax(missing))}"
                where = f" in input box {k + 1} of {len(cases)}" if len(cases) > 1 else ""
                raise _error_at(f"input {name} has no {bound} bound{where}: a VNN-LIB property "
                                f"must bound every input", declarations[name], text, source)


def _count_declared(declared: list[_Declaration], kind: str, network: int | None, text: str,
                    source: str) -> int:
    """How many ``kind`` variables (X or Y) are declared: indices 0 .. n-1 without a gap, and n
    equal to the network's count when given."""
    noun = "outputs" if kind == "Y" else "inputs"
    mine = [d for d in declared if d.name[0] == kind]
    if network is not None:
        beyond = [d for d in mine if d.index >= network]
        if beyond:
            raise _error_at(f"{beyond[0].name} is declared, but the network has {network} {noun} "
                            f"({kind}_0 .. {kind}_{network - 1}); the property declares "
                            f"{len(mine)}", beyond[0], text, source)
    if not mine:
        has = f", but the network has {network}" if network is not None else ""
        raise ParseError(f"the property declares no {noun} ({kind}_0, {kind}_1, ...){has}",
                         text, 1, 1, source)
    indices = {d.index for d in mine}
    n = max(indices) + 1
    if len(indices) < n:
        missing = min(set(range(n)) - indices)
        after = min((d for d in mine if d.index > missing), key=lambda d: d.index)
        raise _error_at(f"{kind}_{missing} is not declared, but {after.name} is: the {noun} "
                        f"must be {kind}_0 .. {kind}_{n - 1} without a gap", after, text, source)
    if network is not None and n < network:
        last = max(mine, key=lambda d: d.index)
        raise _error_at(f"the property declares {n} {noun} ({kind}_0 .. {last.name}), but the "
                        f"network has {network}", last, text, source)
    return n


# ---- lowering ---------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _Part:
    """The atoms of one ``and`` (or a lone atom): input bounds as index and value arrays, and
    the output constraints."""

    lower_index: np.ndarray
    lower: np.ndarray
    upper_index: np.ndarray
    upper: np.ndarray
    outputs: tuple[Constraint, ...]

    @staticmethod
    def of(atoms: Iterable[_Formula]) -> _Part:
        bounds: tuple[list[_Bound], list[_Bound]] = ([], [])  # lower, upper
        outputs = []
        for atom in atoms:
            if isinstance(atom, _Bound):
                bounds[atom.upper].append(atom)
            else:
                outputs.append(atom)
        (lower_index, lower), (upper_index, upper) = (
            (np.array([b.index for b in side], dtype=np.intp),
             np.array([b.value for b in side], dtype=np.float64)) for side in bounds)
        return _Part(lower_index, lower, upper_index, upper, tuple(outputs))


def _lower(asserts: list[tuple[_Formula, Token]], n_inputs: int, text: str,
           source: str) -> tuple[Case, ...]:
    """The conjunction of ``asserts`` as cases (unbounded inputs not yet refused)."""
    size = 1
    for formula, token in asserts:
        size *= _count(formula)
        if size > MAX_DISJUNCTS:
            raise _error_at(f"with this assert, the property's disjunctive normal form has more "
                            f"than {MAX_DISJUNCTS:,} disjuncts (the limit)", token, text, source)
    boxes: dict[bytes, tuple[np.ndarray, np.ndarray, dict[Conjunction, None]]] = {}
    for parts in _dnf(_And(tuple(formula for formula, _ in asserts))):
        lower, upper = np.full(n_inputs, -np.inf), np.full(n_inputs, np.inf)
        for part in parts:
            np.maximum.at(lower, part.lower_index, part.lower)
            np.minimum.at(upper, part.upper_index, part.upper)
        if np.any(lower > upper):
            continue
        conjunction = Conjunction(tuple(c for part in parts for c in part.outputs))
        _, _, outputs = boxes.setdefault(lower.tobytes() + upper.tobytes(), (lower, upper, {}))
        outputs[conjunction] = None
    return tuple(Case(lower, upper, _absorbed(tuple(outputs)))
                 for lower, upper, outputs in boxes.values())


def _count(formula: _Formula) -> int:
    """The number of disjuncts of ``formula`` in disjunctive normal form, capped just above
    ``MAX_DISJUNCTS``."""
    if isinstance(formula, _Or):
        return min(sum(_count(child) for child in formula.children), MAX_DISJUNCTS + 1)
    if isinstance(formula, _And):
        size = 1
        for child in formula.children:
            size = min(size * _count(child), MAX_DISJUNCTS + 1)
        return size
    return 1


def _dnf(formula: _Formula) -> list[tuple[_Part, ...]]:
    """``formula`` in disjunctive normal form: each disjunct the conjunction of its parts.

    The atoms directly under one ``and`` form a single part that its disjuncts share, so the
    thousands of top-level input bounds of a VNN-COMP file are sorted once."""
    if isinstance(formula, _Or):
        return [disjunct for child in formula.children for disjunct in _dnf(child)]
    if not isinstance(formula, _And):
        return [(_Part.of((formula,)),)]
    atoms = [child for child in formula.children if not isinstance(child, (_And, _Or))]
    disjuncts = [(_Part.of(atoms),)] if atoms else [()]
    for child in formula.children:
        if isinstance(child, (_And, _Or)):
            disjuncts = [mine + theirs for mine in disjuncts for theirs in _dnf(child)]
    return disjuncts


def _absorbed(output: Sequence[Conjunction]) -> tuple[Conjunction, ...]:
    """``output``, or only ``Conjunction(())`` when it is there: it holds for every y."""
    return (Conjunction(()),) if Conjunction(()) in output else tuple(output)


# ---- writing ----------------------------------------------------------------------------

def format_vnnlib(cases: Sequence[Case], n_inputs: int, n_outputs: int,
                  comment: str | None = None) -> str:
    """The VNN-LIB text of ``cases``, deterministic; ``comment`` heads it as ``;`` lines.

    One case is written the usual VNN-COMP way: an ``(assert (<= X_i hi))`` and
    ``(assert (>= X_i lo))`` per input, then one assert per output constraint when the output is
    one conjunction, else ``(assert (or C1 C2 ...))``.  Several cases become one
    ``(assert (or (and <box> <output>) ...))`` with an ``and`` per case and conjunction.  A
    conjunction of one constraint is written as that atom.

    Raises ValueError for no case (a property that cannot be violated has no VNN-LIB form), a
    case without output conjunction, a box that is not ``(n_inputs,)`` finite values, an
    output index out of range, or a constraint outside VNN-LIB's comparisons (an ``==``, more
    than two terms, coefficients other than +1 and -1, or two outputs with a nonzero right
    side).
    """
    if not cases:
        raise ValueError("no case to write: a property that can never be violated has no "
                         "VNN-LIB form")
    if n_inputs < 1 or n_outputs < 1:
        raise ValueError(f"VNN-LIB needs inputs and outputs, not {n_inputs} and {n_outputs}")
    if not all(case.output for case in cases):
        raise ValueError("a case has no output conjunction (Conjunction(()) stands for any "
                         "output)")
    lines = [f"; {line}" for line in comment.splitlines()] if comment else []
    lines += [f"(declare-const X_{i} Real)" for i in range(n_inputs)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_outputs)]
    boxes = [_box_atoms(case, n_inputs) for case in cases]
    outputs = [[[_atom(c, n_outputs) for c in conjunction.constraints]
                for conjunction in _absorbed(case.output)] for case in cases]
    if len(cases) == 1:
        (box,), (output,) = boxes, outputs
        lines += [""] + [f"(assert {atom})" for atom in box]
        if len(output) > 1:
            lines += ["", "(assert (or"] + [f"    {_and(atoms)}" for atoms in output] + ["))"]
        elif output[0]:
            lines += [""] + [f"(assert {atom})" for atom in output[0]]
    else:
        lines += ["", "(assert (or"]
        lines += [f"    {_and(box + atoms)}" for box, output in zip(boxes, outputs)
                  for atoms in output]
        lines += ["))"]
    return "\n".join(lines) + "\n"


def _box_atoms(case: Case, n_inputs: int) -> list[str]:
    lower, upper = (np.asarray(b, dtype=np.float64) for b in (case.lower, case.upper))
    if lower.shape != (n_inputs,) or upper.shape != (n_inputs,):
        raise ValueError(f"a case's box has shapes {lower.shape} and {upper.shape}, not "
                         f"({n_inputs},)")
    if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
        raise ValueError("a case's box has a non-finite bound: VNN-LIB bounds every input")
    return [atom for i, (lo, hi) in enumerate(zip(lower.tolist(), upper.tolist()))
            for atom in (f"(<= X_{i} {_number(hi)})", f"(>= X_{i} {_number(lo)})")]


def _atom(constraint: Constraint, n_outputs: int) -> str:
    coeffs, sense, rhs = constraint.coeffs, constraint.sense, constraint.rhs
    if any(not 0 <= i < n_outputs for i, _ in coeffs):
        raise ValueError(f"{constraint} uses an output index outside 0 .. {n_outputs - 1}")
    if sense in _FLIPPED and len(coeffs) == 1 and abs(coeffs[0][1]) == 1.0:
        ((i, c),) = coeffs
        return (f"({sense} Y_{i} {_number(rhs)})" if c == 1.0
                else f"({_FLIPPED[sense]} Y_{i} {_number(-rhs)})")
    if sense in _FLIPPED and len(coeffs) == 2 and rhs == 0.0:
        (i, a), (j, b) = coeffs
        if {a, b} == {1.0, -1.0}:
            plus, minus = (i, j) if a == 1.0 else (j, i)
            return f"({sense} Y_{plus} Y_{minus})"
    raise ValueError(f"{constraint} cannot be written in VNN-LIB: an atom there compares one "
                     f"output with a number, or two outputs (coefficients +1 and -1, right "
                     f"side 0), with <= or >=")


def _and(atoms: list[str]) -> str:
    return atoms[0] if len(atoms) == 1 else f"(and {' '.join(atoms)})"


def _number(value: float) -> str:
    return repr(float(value))


# ---- properties -------------------------------------------------------------------------

def robustness_cases(x: np.ndarray, eps: float, label: int, n_outputs: int,
                     lower: float = 0.0, upper: float = 1.0) -> tuple[Case]:
    """VNN-COMP's local robustness property around ``x`` (flattened row-major): the box
    ``[max(lower, x - eps), min(upper, x + eps)]`` and the output "some other class beats
    ``label``", one conjunction ``y[label] <= y[j]`` per ``j != label``, ``j`` ascending.

    Raises ValueError for a label outside ``0 .. n_outputs - 1``, fewer than two outputs, or a
    box that is empty or not finite.
    """
    if not 0 <= label < n_outputs or n_outputs < 2:
        raise ValueError(f"label {label} must be one of {n_outputs} >= 2 outputs")
    x = np.asarray(x, dtype=np.float64).ravel()
    box_lower, box_upper = np.maximum(lower, x - eps), np.minimum(upper, x + eps)
    if not (np.all(np.isfinite(box_lower)) and np.all(np.isfinite(box_upper))
            and np.all(box_lower <= box_upper)):
        raise ValueError(f"the box around x with eps {eps} in [{lower}, {upper}] is empty or "
                         f"not finite")
    output = tuple(Conjunction((Constraint(tuple(sorted(((label, 1.0), (j, -1.0)))), "<=", 0.0),))
                   for j in range(n_outputs) if j != label)
    return (Case(box_lower, box_upper, output),)
