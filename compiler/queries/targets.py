"""What a query asks of the last neuron layer of a (sub)network, and how that becomes rows.

Two kinds of target:

* a ``Conjunction`` of linear constraints over the outputs (the user's property);
* ``NeuronTargets``: "neuron layer p reaches the values c" (divide and conquer's inner
  property, the paper's reading), lowered to equalities that say how they may be relaxed
  (``RowBlock.relax``).  The relaxation pass turns ``z_j == c_j`` into ``z_j >= c_j`` for an
  increment neuron, ``z_j <= c_j`` for a decrement neuron, and ``z_j <= 0`` for a neuron that
  the patched run left inactive.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.analysis.marks import marks_at, property_marks
from compiler.problem import ProblemBuilder, Relax
from ir.property import Conjunction


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
        relax = np.where(target.inactive, Relax.INACTIVE, np.sign(target.marks).astype(int))
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


def marks_for(net, k: int, target: Target, x: np.ndarray) -> np.ndarray:
    """Increment/decrement marks of neuron layer k for ``target`` under the phases at ``x``."""
    return marks_at_trace(net, k, target, net.simulate(x))


def marks_at_trace(net, k: int, target: Target, trace) -> np.ndarray:
    """Marks of neuron layer k (0 = the input) under the phases of the trace's first input."""
    phases = [edge.phase(trace.pre[edge.index][0]) for edge in net.edges]
    return marks_at(net, k, target_marks(target, net.n_outputs), phases)
