"""Output properties: conjunctions of linear inequalities over a network's outputs ``y``.

Output indices are 0-based (``y[0]`` is the first output), like class labels.

* ``Constraint``: ``sum_i coeffs[i] * y[i]  (>= | <= | ==)  rhs``.
* ``Conjunction``: all of its constraints hold.
* ``ArgmaxIs(c)`` / ``ArgminIs(c)``: output c is the largest / smallest by ``margin``
  (a conjunction once expanded).
* ``ArgmaxIsNot(t)``: misclassification, a disjunction: ``targeted_candidates`` turns it into
  one ``y[j] >= y[t] + margin`` per ``j != t``, ordered by the logit gap ``y[t] - y[j]``.

The text form (``y[1] >= y[0] + 0.01``, ``and``, ``argmax(y) != 3``) is parsed by
``parse_property`` with the grammar in ``property.lark``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np

# Large enough that a float64 re-simulation confirms a strict inequality the solver met
# only up to its feasibility tolerance (HiGHS: 1e-7 absolute).
DEFAULT_MARGIN = 1e-3

SENSES = (">=", "<=", "==")


@dataclass(frozen=True)
class Constraint:
    """``sum(c * y[i] for i, c in coeffs) sense rhs``; ``coeffs`` sorted by index."""

    coeffs: tuple[tuple[int, float], ...]
    sense: str
    rhs: float

    def __post_init__(self):
        if self.sense not in SENSES:
            raise ValueError(f"unknown sense {self.sense!r}")

    def lhs(self, y: np.ndarray) -> float:
        return float(sum(c * y[i] for i, c in self.coeffs))

    def slack(self, y: np.ndarray) -> float:
        """How far the constraint is from failing: >= 0 when it holds (``==``: minus |gap|)."""
        gap = self.lhs(y) - self.rhs
        return {">=": gap, "<=": -gap, "==": -abs(gap)}[self.sense]

    def holds(self, y: np.ndarray, tol: float = 0.0) -> bool:
        return self.slack(y) >= -tol

    def max_index(self) -> int:
        return max(i for i, _ in self.coeffs)


@dataclass(frozen=True)
class Conjunction:
    constraints: tuple[Constraint, ...]

    def holds(self, y: np.ndarray, tol: float = 0.0) -> bool:
        return all(c.holds(y, tol) for c in self.constraints)

    def slack(self, y: np.ndarray) -> float:
        return min(c.slack(y) for c in self.constraints)


@dataclass(frozen=True)
class ArgmaxIs:
    label: int
    margin: float = DEFAULT_MARGIN


@dataclass(frozen=True)
class ArgminIs:
    label: int
    margin: float = DEFAULT_MARGIN


@dataclass(frozen=True)
class ArgmaxIsNot:
    label: int
    margin: float = DEFAULT_MARGIN


Property = Union[Conjunction, ArgmaxIs, ArgminIs, ArgmaxIsNot]


def beats(winner: int, loser: int, margin: float) -> Constraint:
    """``y[winner] >= y[loser] + margin``."""
    return Constraint(tuple(sorted(((winner, 1.0), (loser, -1.0)))), ">=", float(margin))


def as_conjunction(prop: Property, n_outputs: int) -> Conjunction:
    """A conjunctive property as a Conjunction; ``ArgmaxIsNot`` is a disjunction: refused."""
    if isinstance(prop, Conjunction):
        return prop
    if isinstance(prop, ArgmaxIs):
        return Conjunction(tuple(beats(prop.label, j, prop.margin)
                                 for j in range(n_outputs) if j != prop.label))
    if isinstance(prop, ArgminIs):
        return Conjunction(tuple(beats(j, prop.label, prop.margin)
                                 for j in range(n_outputs) if j != prop.label))
    raise TypeError("argmax(y) != t is a disjunction: use targeted_candidates")


def targeted_candidates(prop: Property, y: np.ndarray) -> list[tuple[int | None, Conjunction]]:
    """The conjunctions to try, in order, with the target class each stands for.

    A conjunctive property is its own single candidate (target None).  ``argmax(y) != t``
    gives ``y[j] >= y[t] + margin`` for each ``j != t``, smallest gap ``y[t] - y[j]`` first.
    """
    y = np.asarray(y, dtype=np.float64)
    if not isinstance(prop, ArgmaxIsNot):
        return [(None, as_conjunction(prop, len(y)))]
    t = prop.label
    others = sorted((j for j in range(len(y)) if j != t), key=lambda j: (y[t] - y[j], j))
    return [(j, Conjunction((beats(j, t, prop.margin),))) for j in others]


def holds(prop: Property, y: np.ndarray, tol: float = 0.0) -> bool:
    """Whether output vector ``y`` satisfies the property."""
    y = np.asarray(y, dtype=np.float64)
    if isinstance(prop, ArgmaxIsNot):
        t = prop.label
        return any(y[j] >= y[t] + prop.margin - tol for j in range(len(y)) if j != t)
    return as_conjunction(prop, len(y)).holds(y, tol)


def parse_property(text: str, n_outputs: int | None = None) -> Property:
    """Parse the property language; indices are checked against ``n_outputs`` when given."""
    from ir.property_parser import parse
    return parse(text, n_outputs)
