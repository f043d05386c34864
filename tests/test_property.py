"""The property language: each form to its exact IR, `holds`, errors with positions, candidates."""
from __future__ import annotations

import numpy as np
import pytest

from common.errors import ParseError
from ir.property import (DEFAULT_MARGIN, ArgmaxIs, ArgmaxIsNot, ArgminIs, Conjunction,
                         Constraint, beats, holds, parse_property, targeted_candidates)


def conj(*constraints: tuple) -> Conjunction:
    return Conjunction(tuple(Constraint(*c) for c in constraints))


@pytest.mark.parametrize("text, expected", [
    ("y[1] >= y[0] + 0.01", conj((((0, -1.0), (1, 1.0)), ">=", 0.01))),
    ("2*y[3] - y[1] <= 0.5", conj((((1, -1.0), (3, 2.0)), "<=", 0.5))),
    ("y[0] == 1", conj((((0, 1.0),), "==", 1.0))),
    ("y[1] >= y[0] and y[2] >= y[0]",
     conj((((0, -1.0), (1, 1.0)), ">=", 0.0), (((0, -1.0), (2, 1.0)), ">=", 0.0))),
    # numbers and terms on both sides, duplicates merged, zeros dropped, sorted by index
    ("y[4]*2 + 3 >= y[4] - y[2] + 1 + 0*y[7]", conj((((2, 1.0), (4, 1.0)), ">=", -2.0))),
    ("-y[0] + 0.5 <= -y[0] + y[1] - 1.5", conj((((1, -1.0),), "<=", -2.0))),
    ("y[2] + y[2] - 3*y[2] == 1e-3", conj((((2, -1.0),), "==", 0.001))),
    # a left side without terms: the sides swap
    ("1 <= y[0]", conj((((0, 1.0),), ">=", 1.0))),
    ("0 >= 2*y[3] - y[1]", conj((((1, -1.0), (3, 2.0)), "<=", 0.0))),
    # strict comparisons: the default margin in the strict direction
    ("y[1] > y[0]", conj((((0, -1.0), (1, 1.0)), ">=", DEFAULT_MARGIN))),
    ("y[0] < 2", conj((((0, 1.0),), "<=", 2.0 - DEFAULT_MARGIN))),
    ("3 > y[0]", conj((((0, 1.0),), "<=", 3.0 - DEFAULT_MARGIN))),
    # layout and comments
    ("y[0] >= 0   # first\n  and y[1]<=.5",
     conj((((0, 1.0),), ">=", 0.0), (((1, 1.0),), "<=", 0.5))),
    # sugar
    ("argmax(y) == 5", ArgmaxIs(5, DEFAULT_MARGIN)),
    ("argmax(y) != 3", ArgmaxIsNot(3, DEFAULT_MARGIN)),
    ("argmin(y) == 0", ArgminIs(0, DEFAULT_MARGIN)),
    ("argmin(y) == 0 by 0.001", ArgminIs(0, 0.001)),
    ("argmax(y) != 3 by 0.25", ArgmaxIsNot(3, 0.25)),
    ("argmax(y) == 2 by 0", ArgmaxIs(2, 0.0)),
])
def test_each_form_parses_to_its_exact_ir(text, expected):
    assert parse_property(text) == expected
    assert parse_property(text, n_outputs=10) == expected


def test_numbers_are_read_exactly():
    (c,) = parse_property("0.1*y[0] >= 0.30000000000000004").constraints
    assert c.coeffs == ((0, 0.1),) and c.rhs == 0.1 + 0.2


def test_conjunction_holds():
    prop = parse_property("y[1] >= y[0] + 0.5 and 2*y[2] - y[1] <= 1")
    assert holds(prop, np.array([0.0, 0.5, 0.75]))
    assert not holds(prop, np.array([0.0, 0.49, 0.5]))      # first fails
    assert not holds(prop, np.array([0.0, 1.0, 1.01]))      # second fails
    assert holds(prop, np.array([0.0, 0.49, 0.5]), tol=0.02)


def test_equality_holds_only_at_the_value():
    prop = parse_property("y[0] == 1")
    assert holds(prop, np.array([1.0])) and not holds(prop, np.array([1.0 + 1e-12]))


def test_strict_comparison_needs_the_margin():
    prop = parse_property("y[1] > y[0]")
    assert not holds(prop, np.array([1.0, 1.0]))
    assert not holds(prop, np.array([1.0, 1.0 + DEFAULT_MARGIN / 2]))
    assert holds(prop, np.array([1.0, 1.0 + 2 * DEFAULT_MARGIN]))


def test_sugar_holds():
    y = np.array([0.2, 3.0, 2.5, -1.0])
    assert holds(parse_property("argmax(y) == 1"), y)
    assert not holds(parse_property("argmax(y) == 1 by 0.6"), y)
    assert holds(parse_property("argmax(y) != 2"), y)
    assert not holds(parse_property("argmax(y) != 1"), y)
    assert holds(parse_property("argmin(y) == 3"), y)
    assert not holds(parse_property("argmin(y) == 0"), y)


def test_targeted_candidates_order_by_logit_gap():
    y = np.array([0.1, 2.0, 1.5, -1.0, 1.9, 1.5])
    prop = parse_property("argmax(y) != 1 by 0.01")
    candidates = targeted_candidates(prop, y)
    # gaps y[1] - y[j]: j=4 0.1, j=2 0.5, j=5 0.5 (tie: lower index first), j=0 1.9, j=3 3.0
    assert [j for j, _ in candidates] == [4, 2, 5, 0, 3]
    assert [c for _, c in candidates] == [Conjunction((beats(j, 1, 0.01),))
                                          for j in [4, 2, 5, 0, 3]]
    (target, conjunction), = targeted_candidates(parse_property("y[0] >= 1"), y)
    assert target is None and conjunction == parse_property("y[0] >= 1")


def error_of(text: str, n_outputs: int | None = None) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_property(text, n_outputs)
    return info.value


@pytest.mark.parametrize("text, n_outputs, line, column, message", [
    ("y[1] >= ", None, 1, 8, "unexpected end of file; expected a name, a number or a sign"),
    ("y[1] => y[0]", None, 1, 6, "unexpected character '='"),
    ("y[0] >= 0 adn y[1] >= 0", None, 1, 11, "unexpected 'adn'; expected '*', 'and', a sign"),
    ("y[0] >= 0 and", None, 1, 14, "unexpected end of file"),
    ("", None, 1, 1, "unexpected end of file"),
    ("z[1] >= 0", None, 1, 1, "unknown name 'z': outputs are written y[i]"),
    ("y[0] >= 2*x[3]", None, 1, 11, "unknown name 'x'"),
    ("foo(y) == 1", None, 1, 1, "unknown function 'foo': use argmax(y) or argmin(y)"),
    ("argmax(x) == 1", None, 1, 8, "unknown name 'x': write argmax(y)"),
    ("y[12] >= 0", 10, 1, 3, "output index 12 is out of range: the network has 10 outputs"),
    ("y[0] >= y[1]\n  and y[0] <= y[10]", 10, 2, 17, "output index 10 is out of range"),
    ("argmax(y) == 10", 10, 1, 14, "class 10 is out of range"),
    ("y[1.5] >= 0", None, 1, 3, "output index must be a whole number, got 1.5"),
    ("1 >= 0", None, 1, 1, "no output term y[i]"),
    ("y[0] >= 1 and 2 >= 1", None, 1, 15, "no output term y[i]"),
    ("y[0] - y[0] >= 1", None, 1, 1, "no output term y[i] (or its terms cancel)"),
    ("y[0]*y[1] >= 0", None, 1, 6, "non-linear term: y[0]*y[1] multiplies two outputs"),
    ("y[0] >= 2*y[3]*y[3]", None, 1, 16, "non-linear term: y[3]*y[3]"),
    ("argmax(y) == 1 and y[0] >= 0", None, 1, 1,
     "argmax(y) is a whole property: it cannot be combined with 'and'"),
    ("y[0] >= 0 and argmin(y) == 1", None, 1, 15,
     "argmin(y) is a whole property: it cannot be combined with 'and'"),
    ("argmin(y) != 2", None, 1, 11, "argmin(y) takes ==, not !="),
    ("argmax(y) >= 2", None, 1, 11, "argmax(y) takes == or !=, not >="),
    ("y[0] != 2", None, 1, 6, "'!=' only appears in argmax(y) != t"),
    ("y[0] >= 1e999", None, 1, 9, "number 1e999 is out of the float64 range"),
    ("y[0] >= nan", None, 1, 9, "non-finite number 'nan'"),
    ("y[0] >= -inf", None, 1, 10, "non-finite number 'inf'"),
    ("y[0] >= x + 1", None, 1, 9, "unknown name 'x': outputs are written y[i]"),
])
def test_errors_point_at_the_fault(text, n_outputs, line, column, message):
    err = error_of(text, n_outputs)
    assert (err.line, err.column) == (line, column)
    assert message in str(err)
    shown = text.splitlines()[line - 1] if text else ""
    assert str(err).startswith(f"<property>:{line}:{column}: ")
    assert str(err).endswith(f"\n  {shown}\n  {' ' * (column - 1)}^")
