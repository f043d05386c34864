"""VNN-LIB: VNN-COMP-style files to their exact cases, the lowering's meaning checked against
a direct evaluation, the writer's round trip, and errors with their line numbers."""
from __future__ import annotations

import gzip
import re
import time

import numpy as np
import pytest

from common.errors import DataError, ParseError
from ir.property import Conjunction, Constraint
from ir.vnnlib import (MAX_DISJUNCTS, Case, format_vnnlib, load_vnnlib, parse_vnnlib,
                       robustness_cases)


def declarations(n_inputs: int, n_outputs: int) -> str:
    return "".join(f"(declare-const {v}_{i} Real)\n"
                   for v, n in (("X", n_inputs), ("Y", n_outputs)) for i in range(n))


def y_le_y(i: int, j: int) -> Constraint:
    """``y[i] <= y[j]`` as the parser writes it."""
    return Constraint(tuple(sorted(((i, 1.0), (j, -1.0)))), "<=", 0.0)


def only(*constraints: Constraint) -> Conjunction:
    return Conjunction(constraints)


def assert_same_cases(got: tuple[Case, ...], expected: tuple[Case, ...]) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.lower.dtype == np.float64 and g.upper.dtype == np.float64
        assert g.lower.tobytes() == np.asarray(e.lower, np.float64).tobytes()
        assert g.upper.tobytes() == np.asarray(e.upper, np.float64).tobytes()
        assert g.output == e.output


ACASXU_PROPERTY_1 = """\
; ACAS Xu property 1
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const X_2 Real)
(declare-const X_3 Real)
(declare-const X_4 Real)

(declare-const Y_0 Real)
(declare-const Y_1 Real)
(declare-const Y_2 Real)
(declare-const Y_3 Real)
(declare-const Y_4 Real)

; Unscaled Input 0: (55947.691, 60760)
(assert (<= X_0 0.679857769))
(assert (>= X_0 0.6))
(assert (<= X_1 0.5))
(assert (>= X_1 -0.5))
(assert (<= X_2 0.5))
(assert (>= X_2 -0.5))
(assert (<= X_3 0.5))
(assert (>= X_3 0.45))
(assert (<= X_4 -0.45))
(assert (>= X_4 -0.5))

; unsafe if COC >= 1500: scaled (1500 - 7.5188840201005975) / 373.94992
(assert (>= Y_0 3.991125645861615))
"""


def test_acasxu_property_1_field_by_field():
    spec = parse_vnnlib(ACASXU_PROPERTY_1, n_inputs=5, n_outputs=5, source="prop_1.vnnlib")
    assert (spec.n_inputs, spec.n_outputs, spec.source) == (5, 5, "prop_1.vnnlib")
    (case,) = spec.cases
    assert case.lower.tolist() == [0.6, -0.5, -0.5, 0.45, -0.5]
    assert case.upper.tolist() == [0.679857769, 0.5, 0.5, 0.5, -0.45]
    (conjunction,) = case.output
    (constraint,) = conjunction.constraints
    assert constraint == Constraint(((0, 1.0),), ">=", 3.991125645861615)
    # plain Python and numpy values only: nothing of lark's
    assert type(constraint.sense) is str and type(constraint.rhs) is float
    assert all(type(i) is int and type(c) is float for i, c in constraint.coeffs)
    assert type(spec.n_inputs) is int and type(spec.source) is str
    assert type(case.lower) is np.ndarray and type(case.output) is tuple


ACASXU_PROPERTY_6 = """\
; ACAS Xu property 6: the input region is a union of two boxes
""" + declarations(5, 5) + """\
(assert (or
    (and (<= X_0 0.700434925) (>= X_0 -0.129289109) (<= X_1 -0.308785154)
         (>= X_1 -0.499999896) (<= X_2 -0.499204121) (>= X_2 -0.499999896)
         (<= X_3 0.5) (>= X_3 -0.5) (<= X_4 0.5) (>= X_4 -0.5))
    (and (<= X_0 0.700434925) (>= X_0 -0.129289109) (<= X_1 0.499999896)
         (>= X_1 0.308785154) (<= X_2 -0.499204121) (>= X_2 -0.499999896)
         (<= X_3 0.5) (>= X_3 -0.5) (<= X_4 0.5) (>= X_4 -0.5))
))

; unsafe if COC is not minimal
(assert (or
    (and (<= Y_1 Y_0))
    (and (<= Y_2 Y_0))
    (and (<= Y_3 Y_0))
    (and (<= Y_4 Y_0))
))
"""


def test_input_disjunction_gives_one_case_per_box():
    spec = parse_vnnlib(ACASXU_PROPERTY_6, n_inputs=5, n_outputs=5)
    output = tuple(only(y_le_y(j, 0)) for j in (1, 2, 3, 4))
    assert output[0] == only(Constraint(((0, -1.0), (1, 1.0)), "<=", 0.0))
    expected = (
        Case(np.array([-0.129289109, -0.499999896, -0.499999896, -0.5, -0.5]),
             np.array([0.700434925, -0.308785154, -0.499204121, 0.5, 0.5]), output),
        Case(np.array([-0.129289109, 0.308785154, -0.499999896, -0.5, -0.5]),
             np.array([0.700434925, 0.499999896, -0.499204121, 0.5, 0.5]), output))
    assert_same_cases(spec.cases, expected)


def test_boxes_each_anded_with_their_own_output():
    text = declarations(2, 2) + """\
(assert (or
    (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1) (>= Y_0 Y_1))
    (and (>= X_0 2) (<= X_0 3) (>= X_1 0) (<= X_1 1) (<= Y_0 -1) (>= Y_1 (- 0.5)))
))
"""
    expected = (
        Case([0.0, 0.0], [1.0, 1.0], (only(Constraint(((0, 1.0), (1, -1.0)), ">=", 0.0)),)),
        Case([2.0, 0.0], [3.0, 1.0], (only(Constraint(((0, 1.0),), "<=", -1.0),
                                           Constraint(((1, 1.0),), ">=", -0.5)),)))
    assert_same_cases(parse_vnnlib(text).cases, expected)


def test_top_level_box_and_an_or_of_nine_clauses():
    text = declarations(3, 10) + """\
(assert (<= X_0 0.25))
(assert (>= X_0 0.0))
(assert (<= X_1 1.0))
(assert (>= X_1 0.5))
(assert (<= X_2 0.75))
(assert (>= X_2 0.25))
(assert (or
""" + "".join(f"    (and (<= Y_4 Y_{j}))\n" for j in range(10) if j != 4) + "))\n"
    (case,) = parse_vnnlib(text, n_inputs=3, n_outputs=10).cases
    assert case.lower.tolist() == [0.0, 0.5, 0.25] and case.upper.tolist() == [0.25, 1.0, 0.75]
    assert len(case.output) == 9
    assert case.output == robustness_cases([0.125, 0.75, 0.5], 0.25, 4, 10)[0].output
    assert case.output[0] == only(Constraint(((0, -1.0), (4, 1.0)), "<=", 0.0))


def test_literals_comments_and_ignored_commands():
    text = declarations(1, 4) + """\
(assert (>= X_0 -2.5E+01)) ; a comment (with parentheses)
(assert (<= X_0 .5))
(assert (and (<= 1e-3 Y_0) (>= (- 1.5) Y_1) (<= Y_2 -0.0) (>= Y_3 7)))
(check-sat)
(get-model)
(exit)
"""
    (case,) = parse_vnnlib(text).cases
    assert case.lower.tolist() == [-25.0] and case.upper.tolist() == [0.5]
    (conjunction,) = case.output
    assert conjunction.constraints == (Constraint(((0, 1.0),), ">=", 0.001),
                                       Constraint(((1, 1.0),), "<=", -1.5),
                                       Constraint(((2, 1.0),), "<=", 0.0),
                                       Constraint(((3, 1.0),), ">=", 7.0))
    assert np.signbit(conjunction.constraints[2].rhs)  # -0.0 read as written


def test_self_comparison_is_true_and_an_unconstrained_output_absorbs_others():
    box = "(assert (>= X_0 0))\n(assert (<= X_0 1))\n"
    (case,) = parse_vnnlib(declarations(1, 2) + box +
                           "(assert (and (<= Y_1 Y_1) (>= Y_0 1)))").cases
    assert case.output == (only(Constraint(((0, 1.0),), ">=", 1.0)),)
    (case,) = parse_vnnlib(declarations(1, 2) + box + "(assert (or (>= Y_0 1) (<= Y_1 Y_1)))").cases
    assert case.output == (Conjunction(()),)
    (case,) = parse_vnnlib(declarations(1, 2) + box).cases  # no output assert at all
    assert case.output == (Conjunction(()),) and case.output[0].holds(np.array([-5.0, 9.0]))


def test_disjuncts_grouped_by_box_and_empty_boxes_dropped():
    box_a = "(>= X_0 0) (<= X_0 1)"
    box_b = "(>= X_0 2) (<= X_0 3)"
    empty = "(>= X_0 1) (<= X_0 0.5)"
    text = declarations(1, 2) + f"""\
(assert (or (and {box_a} (>= Y_0 1)) (and {box_b} (>= Y_0 1)) (and {empty} (<= Y_1 2))
            (and {box_a} (<= Y_1 0)) (and {box_a} (>= Y_0 1))))
"""
    y0_ge_1, y1_le_0 = Constraint(((0, 1.0),), ">=", 1.0), Constraint(((1, 1.0),), "<=", 0.0)
    assert_same_cases(parse_vnnlib(text).cases, (
        Case([0.0], [1.0], (only(y0_ge_1), only(y1_le_0))),
        Case([2.0], [3.0], (only(y0_ge_1),))))
    never = parse_vnnlib(declarations(1, 1) + f"(assert (and {empty} (>= Y_0 1)))")
    assert never.cases == () and never.n_inputs == 1


def test_overlapping_bounds_intersect():
    text = declarations(2, 1) + """\
(assert (>= X_0 -1)) (assert (>= X_0 -0.5)) (assert (<= X_0 2)) (assert (<= 1.5 X_1))
(assert (and (<= X_0 1) (>= 3 X_1) (<= X_1 2.5)))
"""
    (case,) = parse_vnnlib(text).cases
    assert case.lower.tolist() == [-0.5, 1.5] and case.upper.tolist() == [1.0, 2.5]


# ---- meaning: the cases against a direct evaluation of the formula ----------------------

def random_formula(rng, depth: int, n_inputs: int, n_outputs: int):
    """A nested tuple: ("and"|"or", [children]) or (sense, a, b), a term being ("X", i),
    ("Y", j) or a float."""
    if depth > 0 and rng.random() < 0.6:
        connective = "and" if rng.random() < 0.5 else "or"
        return connective, [random_formula(rng, depth - 1, n_inputs, n_outputs)
                            for _ in range(rng.integers(1, 4))]
    number = float(rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0]))
    kind = rng.choice(["X", "Y", "YY"])
    if kind == "YY":  # two outputs, possibly the same one
        a, b = ("Y", int(rng.integers(n_outputs))), ("Y", int(rng.integers(n_outputs)))
    else:
        a, b = (kind, int(rng.integers(n_inputs if kind == "X" else n_outputs))), number
        if rng.random() < 0.5:
            a, b = b, a
    return ("<=" if rng.random() < 0.5 else ">="), a, b


def render(formula) -> str:
    if formula[0] in ("and", "or"):
        return f"({formula[0]} {' '.join(render(child) for child in formula[1])})"
    sense, a, b = formula
    return f"({sense} {render_term(a)} {render_term(b)})"


def render_term(term) -> str:
    if isinstance(term, tuple):
        return f"{term[0]}_{term[1]}"
    return f"(- {-term!r})" if term < 0 else repr(term)


def evaluate(formula, x: np.ndarray, y: np.ndarray) -> bool:
    if formula[0] == "and":
        return all(evaluate(child, x, y) for child in formula[1])
    if formula[0] == "or":
        return any(evaluate(child, x, y) for child in formula[1])
    sense, a, b = formula
    value = {"X": x, "Y": y}
    va, vb = (value[t[0]][t[1]] if isinstance(t, tuple) else t for t in (a, b))
    return va <= vb if sense == "<=" else va >= vb


def violated(cases: tuple[Case, ...], x: np.ndarray, y: np.ndarray) -> bool:
    return any(np.all(case.lower <= x) and np.all(x <= case.upper)
               and any(conjunction.holds(y) for conjunction in case.output) for case in cases)


def test_cases_mean_what_the_formula_says():
    rng = np.random.default_rng(7)
    grid = np.array([-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5])
    outcomes = {True: 0, False: 0}
    for _ in range(40):
        n_inputs, n_outputs = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        box = [(">=", ("X", i), -1.0) for i in range(n_inputs)]
        box += [(">=", 1.0, ("X", i)) for i in range(n_inputs)]  # constant on the left
        asserts = box + [random_formula(rng, 3, n_inputs, n_outputs)
                         for _ in range(rng.integers(1, 4))]
        text = declarations(n_inputs, n_outputs) + "".join(f"(assert {render(f)})\n"
                                                           for f in asserts)
        cases = parse_vnnlib(text).cases
        for _ in range(150):
            x, y = rng.choice(grid, n_inputs), rng.choice(grid, n_outputs)
            expected = all(evaluate(f, x, y) for f in asserts)
            assert violated(cases, x, y) == expected, (text, x, y)
            outcomes[expected] += 1
    assert min(outcomes.values()) > 500, outcomes  # both sides well sampled


# ---- writer -------------------------------------------------------------------------------

def test_robustness_file_reads_back_bit_exactly():
    rng = np.random.default_rng(3)
    x = rng.random(784)
    (case,) = robustness_cases(x, 0.03, 7, 10)
    assert np.array_equal(case.lower, np.maximum(0.0, x - 0.03))
    assert np.array_equal(case.upper, np.minimum(1.0, x + 0.03))
    assert case.output == tuple(only(y_le_y(7, j)) for j in range(10) if j != 7)
    text = format_vnnlib((case,), 784, 10, comment="mnist robustness\nlabel 7")
    assert text.startswith("; mnist robustness\n; label 7\n(declare-const X_0 Real)\n")
    spec = parse_vnnlib(text, n_inputs=784, n_outputs=10)
    assert_same_cases(spec.cases, (case,))
    assert format_vnnlib(spec.cases, 784, 10, comment="mnist robustness\nlabel 7") == text


def test_parse_time_of_a_3072_input_file():
    x = np.random.default_rng(4).random(3072)
    text = format_vnnlib(robustness_cases(x, 2 / 255, 3, 10), 3072, 10)
    parse_vnnlib("(declare-const X_0 Real)(declare-const Y_0 Real)(assert (<= 0 X_0 ))"
                 "(assert (<= X_0 1))")  # builds the parser
    start = time.perf_counter()
    spec = parse_vnnlib(text, n_inputs=3072, n_outputs=10)
    print(f"\nparsed a 3072-input robustness file ({len(text) / 1e3:.0f} kB) in "
          f"{time.perf_counter() - start:.3f} s")
    assert len(spec.cases) == 1 and len(spec.cases[0].output) == 9


def test_single_case_text_is_the_usual_form():
    case = Case(np.array([0.0, -0.5]), np.array([1.0, 0.1]),
                (only(Constraint(((0, 1.0), (1, -1.0)), "<=", 0.0)),
                 only(Constraint(((1, 1.0),), ">=", 0.25), Constraint(((0, -1.0),), "<=", 2.0))))
    assert format_vnnlib([case], 2, 2) == """\
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)

(assert (<= X_0 1.0))
(assert (>= X_0 0.0))
(assert (<= X_1 0.1))
(assert (>= X_1 -0.5))

(assert (or
    (<= Y_0 Y_1)
    (and (>= Y_1 0.25) (>= Y_0 -2.0))
))
"""
    one = Case(case.lower, case.upper, (only(Constraint(((0, -1.0), (1, 1.0)), ">=", 0.0)),))
    assert format_vnnlib([one], 2, 2).endswith("(assert (>= X_1 -0.5))\n\n(assert (>= Y_1 Y_0))\n")


def test_several_cases_round_trip():
    spec = parse_vnnlib(ACASXU_PROPERTY_6)
    free = Case(np.array([-1.0, 0, 0, 0, 0]), np.ones(5), (Conjunction(()),))
    cases = spec.cases + (free,)
    text = format_vnnlib(cases, 5, 5)
    assert text.count("(and ") == 4 + 4 + 1
    assert_same_cases(parse_vnnlib(text, n_inputs=5, n_outputs=5).cases, cases)
    for case in cases:  # each case alone, in the single-case form
        assert_same_cases(parse_vnnlib(format_vnnlib([case], 5, 5)).cases, (case,))


@pytest.mark.parametrize("constraint", [
    Constraint(((0, 1.0), (1, -1.0), (2, 1.0)), "<=", 0.0),   # three terms
    Constraint(((0, 2.0),), ">=", 1.0),                        # non-unit coefficient
    Constraint(((0, 1.0), (1, 1.0)), "<=", 0.0),               # y0 + y1
    Constraint(((0, 1.0), (1, -1.0)), ">=", 0.5),              # two outputs and a constant
    Constraint(((0, 1.0),), "==", 1.0),                        # no == in VNN-LIB
])
def test_writer_refuses_what_vnnlib_cannot_say(constraint):
    case = Case(np.zeros(1), np.ones(1), (only(constraint),))
    with pytest.raises(ValueError, match="cannot be written in VNN-LIB"):
        format_vnnlib([case], 1, 3)


def test_writer_refuses_bad_cases():
    with pytest.raises(ValueError, match="no case"):
        format_vnnlib([], 1, 1)
    with pytest.raises(ValueError, match="non-finite"):
        format_vnnlib([Case(np.array([-np.inf]), np.ones(1), (Conjunction(()),))], 1, 1)
    with pytest.raises(ValueError, match="shapes"):
        format_vnnlib([Case(np.zeros(2), np.ones(2), (Conjunction(()),))], 1, 1)
    with pytest.raises(ValueError, match="output index"):
        format_vnnlib([Case(np.zeros(1), np.ones(1), (only(y_le_y(0, 3)),))], 1, 2)


def test_robustness_box_is_clipped_and_checked():
    (case,) = robustness_cases(np.array([[0.0, 0.5], [0.99, 1.0]]), 0.1, 0, 3)
    assert case.lower.tolist() == [0.0, 0.4, 0.89, 0.9]
    assert case.upper.tolist() == [0.1, 0.6, 1.0, 1.0]
    assert case.output == (only(y_le_y(0, 1)), only(y_le_y(0, 2)))
    with pytest.raises(ValueError, match="label"):
        robustness_cases(np.zeros(2), 0.1, 3, 3)
    with pytest.raises(ValueError, match="empty"):
        robustness_cases(np.array([2.0]), 0.1, 0, 2)


# ---- errors -------------------------------------------------------------------------------

BOUNDED = declarations(2, 2) + """\
(assert (>= X_0 0))
(assert (<= X_0 1))
(assert (>= X_1 0))
(assert (<= X_1 1))
"""  # declarations on lines 1-4, bounds on lines 5-8


@pytest.mark.parametrize("text, kwargs, fragments, line", [
    # an input without a bound: at its declaration
    (BOUNDED.replace("(assert (>= X_1 0))", ""), {}, ["X_1", "no lower bound",
                                                     "must bound every input"], 2),
    (BOUNDED.replace("(assert (<= X_0 1))", "(assert (<= Y_0 1))"), {},
     ["X_0", "no upper bound"], 1),
    (declarations(1, 1) + "(assert (or (and (>= X_0 0) (<= X_0 1)) (and (>= X_0 2))))", {},
     ["X_0", "no upper bound in input box 2 of 2"], 1),
    # unknown operators and commands, named
    (BOUNDED + "(assert (= X_0 1))", {}, ["unknown operator '='"], 9),
    (BOUNDED + "(assert (or (>= Y_0 1)\n  (< Y_1 2)))", {}, ["unknown operator '<'"], 10),
    (BOUNDED + "(assert (not (>= Y_0 1)))", {}, ["unknown operator 'not'"], 9),
    (BOUNDED + "(assert (<= (+ Y_0 Y_1) 1))", {}, ["unknown operator '+'"], 9),
    (BOUNDED + "(define-fun f () Real 1.0)", {}, ["unknown command 'define-fun'"], 9),
    (BOUNDED + "(set-logic QF_LRA)", {}, ["unknown command 'set-logic'"], 9),
    (BOUNDED + "(assert (<= (- Y_0) 1))", {}, ["'-' here takes a number, not 'Y_0'"], 9),
    (BOUNDED + "(assert (>= Y_0 ()))", {}, ["no operator"], 9),
    # variables
    (BOUNDED + "(assert (<= Y_0 Y_2))", {}, ["undeclared variable 'Y_2'"], 9),
    ("(assert (<= X_0 1))\n" + declarations(1, 1), {}, ["undeclared variable 'X_0'"], 1),
    (BOUNDED + "(assert (<= X_0 Y_0))", {}, ["compares X_0 with Y_0", "input X_i"], 9),
    (BOUNDED + "(assert (>= X_1 X_0))", {}, ["compares X_1 with X_0"], 9),
    (BOUNDED + "(assert (<= 1 2))", {}, ["two numbers"], 9),
    (BOUNDED + "(declare-const Y_1 Real)", {}, ["Y_1 is declared twice (first on line 4)"], 9),
    ("(declare-const input Real)", {}, ["variable 'input'", "X_<i>"], 1),
    ("(declare-const X_0 Int)", {}, ["sort 'Int'", "Real"], 1),
    ("(declare-const X_0)", {}, ["declare-const takes a name and a sort"], 1),
    # declared counts
    (declarations(6, 2), {"n_inputs": 5},
     ["X_5 is declared", "network has 5 inputs", "X_0 .. X_4", "declares 6"], 6),
    (BOUNDED, {"n_inputs": 784}, ["declares 2 inputs (X_0 .. X_1)", "network has 784"], 2),
    (BOUNDED, {"n_outputs": 1}, ["Y_1 is declared", "network has 1 outputs"], 4),
    ("(declare-const X_0 Real)\n(declare-const X_2 Real)\n(declare-const Y_0 Real)\n", {},
     ["X_1 is not declared, but X_2 is"], 2),
    (declarations(1, 0) + "(assert (>= X_0 0))", {}, ["declares no outputs"], 1),
    # syntax and numbers
    (BOUNDED + "(assert (<= Y_0 1)", {}, ["unexpected end of file"], 9),
    (BOUNDED + "(assert (<= Y_0 1)))", {}, ["unexpected ')'"], 9),
    (BOUNDED + "(assert (<= Y_0 #b101))", {}, ["unexpected character '#'"], 9),
    (BOUNDED + "(assert (<= Y_0 1e999))", {}, ["1e999", "float64 range"], 9),
    (BOUNDED + "(assert (<= Y_0 -inf))", {}, ["non-finite number '-inf'"], 9),
    (BOUNDED + "(assert (<= Y_0 NaN))", {}, ["non-finite number 'NaN'"], 9),
    # too many disjuncts, at the assert that crosses the limit (2 ** 17 > 100,000)
    (BOUNDED + "".join(f"(assert (or (<= Y_0 {k}) (>= Y_1 {k})))\n" for k in range(20)), {},
     [f"more than {MAX_DISJUNCTS:,} disjuncts"], 9 + 16),
])
def test_errors_name_the_problem_and_its_line(text, kwargs, fragments, line):
    with pytest.raises(ParseError) as caught:
        parse_vnnlib(text, **kwargs)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message
    assert caught.value.line == line, message


def test_syntax_errors_and_operators_point_at_their_column():
    with pytest.raises(ParseError) as caught:
        parse_vnnlib(BOUNDED + "(assert (<= Y_0\n  (= Y_1 1)))")
    assert (caught.value.line, caught.value.column) == (10, 4)
    assert "^" in str(caught.value) and "(= Y_1 1)" in str(caught.value)
    with pytest.raises(ParseError) as caught:
        parse_vnnlib(BOUNDED + "(assert (<= Y_0 1)")
    assert (caught.value.line, caught.value.column) == (9, 19)


def test_deep_nesting_is_a_parse_error():
    text = BOUNDED + "(assert " + "(and " * 3000 + "(>= Y_0 1)" + ")" * 3001
    with pytest.raises(ParseError, match="nested too deeply"):
        parse_vnnlib(text)


def test_load_plain_gzip_and_unreadable(tmp_path):
    plain = tmp_path / "prop_1.vnnlib"
    plain.write_text(ACASXU_PROPERTY_1)
    packed = tmp_path / "prop_1.vnnlib.gz"
    packed.write_bytes(gzip.compress(ACASXU_PROPERTY_1.encode()))
    for path in (plain, packed):
        spec = load_vnnlib(path, n_inputs=5, n_outputs=5)
        assert spec.source == str(path)
        assert_same_cases(spec.cases, parse_vnnlib(ACASXU_PROPERTY_1).cases)

    missing = tmp_path / "absent.vnnlib"
    fake = tmp_path / "fake.vnnlib.gz"
    fake.write_text(ACASXU_PROPERTY_1)
    latin = tmp_path / "latin.vnnlib"
    latin.write_bytes("; caf\xe9\n".encode("latin-1"))
    for path in (missing, fake, latin):
        with pytest.raises(DataError, match=re.escape(str(path))):
            load_vnnlib(path)
    with pytest.raises(ParseError, match="bad.vnnlib:9:"):
        (tmp_path / "bad.vnnlib").write_text(BOUNDED + "(assert (= Y_0 1))")
        load_vnnlib(tmp_path / "bad.vnnlib")
