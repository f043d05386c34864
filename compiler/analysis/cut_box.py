r"""A box cut by linear inequalities, ``{x : lower <= x <= upper, A x + b >= 0}``, and the
largest value of a linear function over it (a HiGHS LP).

Branch and bound on ReLU phases (``attacks.relu_split``) fixes a ReLU's side, ``z >= 0`` or
``z <= 0``; a linear upper bound ``a x + c >= s z`` of the signed pre-activation (``s`` the
side's sign), valid on the set, then gives the cut ``a x + c >= 0``, which no input of that
side violates.  The box's own concretization ignores the cuts; this one does not.

Soundness: a value is taken only from an LP that HiGHS proves optimal, loosened by
``1e-7 * (1 + |value|)`` for the solver's tolerances; otherwise the box's interval bound is
kept.  Emptiness is reported only when HiGHS proves the LP infeasible (assumed: its
feasibility tolerance, 1e-7 by default, hides no point).
"""
from __future__ import annotations

import numpy as np

from common.highs import new_highs
from compiler.analysis.bounds import affine_interval

SAFETY = 1e-7


class CutBox:
    """``{x : lower <= x <= upper, cuts @ x + offsets >= 0}`` as one HiGHS model; only the
    objective changes between questions, so each solve starts from the last basis."""

    def __init__(self, lower: np.ndarray, upper: np.ndarray, cuts: np.ndarray,
                 offsets: np.ndarray):
        import highspy
        self.lower, self.upper = np.asarray(lower, float), np.asarray(upper, float)
        self.n = len(self.lower)
        self.h = new_highs()
        self.h.addVars(self.n, self.lower, self.upper)
        cuts, rows = np.atleast_2d(np.asarray(cuts, float)), len(offsets)
        if rows:
            self.h.addRows(rows, -np.asarray(offsets, float), np.full(rows, np.inf), cuts.size,
                           (np.arange(rows) * self.n).astype(np.int32),
                           np.tile(np.arange(self.n, dtype=np.int32), rows), cuts.ravel())
        self.h.changeObjectiveSense(highspy.ObjSense.kMaximize)
        self.status = highspy.HighsModelStatus

    def maximize(self, c: np.ndarray, d: float):
        """``(bound, point)``: ``bound >= max c x + d`` over the cut box and a point of the
        box reaching it (the box's best corner when the LP is not proved optimal, with the
        box's bound), or None when the cut box is proved empty."""
        c = np.asarray(c, float)
        bound = float(affine_interval(c[None, :], np.array([d]), self.lower, self.upper)[1][0])
        corner = np.where(c > 0, self.upper, self.lower)
        self.h.changeColsCost(self.n, np.arange(self.n, dtype=np.int32), c)
        self.h.run()
        status = self.h.getModelStatus()
        if status == self.status.kInfeasible:
            return None
        if status != self.status.kOptimal:
            return bound, corner
        value = self.h.getInfo().objective_function_value + d
        point = np.clip(np.array(self.h.getSolution().col_value), self.lower, self.upper)
        return min(bound, value + SAFETY * (1 + abs(value))), point
