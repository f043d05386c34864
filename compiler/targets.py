"""What a query asks of the last neuron layer of a (sub)network, and how that becomes rows.

Two kinds of target:

* a ``Conjunction`` of linear constraints over the outputs (the user's property);
* ``NeuronTargets``: "neuron layer p reaches the values c" (divide and conquer's inner
  property), lowered to equalities that carry relaxation hints.  The relaxation pass turns
  ``z_j == c_j`` into ``z_j >= c_j`` for an increment neuron, ``z_j <= c_j`` for a decrement
  neuron, and ``z_j <= 0`` for a neuron that the patched run left inactive.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.analysis.marks import property_marks
from compiler.problem import ProblemBuilder
from ir.property import Conjunction

# Row hints read by compiler.passes.relaxation.
RELAX_KEEP, RELAX_UP, RELAX_DOWN, RELAX_INACTIVE = 0, 1, -1, 2


@dataclass(frozen=True, eq=False)
class NeuronTargets:
    """Pre-activation values to reach; ``marks`` (+1/-1/0) and ``inactive`` guide relaxation."""

    values: np.ndarray
    marks: np.ndarray
    inactive: np.ndarray

    def holds(self, z: np.ndarray, relaxed: bool = True, tol: float = 0.0) -> bool:
        """Whether pre-activations ``z`` meet the targets (relaxed as the pass would)."""
        z = np.asarray(z, dtype=np.float64)
        if not relaxed:
            return bool(np.all(np.abs(z - self.values) <= tol))
        ok_inactive = z <= tol
        ok_up = z >= self.values - tol
        ok_down = z <= self.values + tol
        ok_keep = np.abs(z - self.values) <= tol
        ok = np.where(self.inactive, ok_inactive,
                      np.where(self.marks > 0, ok_up, np.where(self.marks < 0, ok_down, ok_keep)))
        return bool(np.all(ok))


Target = Conjunction | NeuronTargets


def target_marks(target: Target, n: int) -> np.ndarray:
    """Increment/decrement marks of the constrained neurons."""
    if isinstance(target, NeuronTargets):
        return np.where(target.inactive, -1, target.marks).astype(int)
    return property_marks(target, n)


def lower_target(b: ProblemBuilder, y: np.ndarray, target: Target, name: str) -> None:
    """Rows that make the values ``x[y]`` satisfy ``target``."""
    if isinstance(target, NeuronTargets):
        n = len(y)
        relax = np.where(target.inactive, RELAX_INACTIVE,
                         np.sign(target.marks).astype(int))
        b.add_rows(name, np.arange(n), y, np.ones(n), target.values, target.values, n,
                   relax=relax)
        return
    rows, cols, vals, lo, hi = [], [], [], [], []
    for r, constraint in enumerate(target.constraints):
        for i, c in constraint.coeffs:
            rows.append(r)
            cols.append(y[i])
            vals.append(c)
        lo.append(constraint.rhs if constraint.sense in (">=", "==") else -np.inf)
        hi.append(constraint.rhs if constraint.sense in ("<=", "==") else np.inf)
    b.add_rows(name, rows, cols, vals, lo, hi, len(target.constraints))
