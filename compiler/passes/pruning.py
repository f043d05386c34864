"""Fixing variables to zero from what the query knew about them.

* ``drop-inert`` (exact): a weight change whose source neuron is 0 on every input changes
  nothing (``Problem.inert``).
* ``sign-pruning`` (a heuristic; may lose optimality): the increment/decrement marking fixes
  the sign of each weight change into a marked neuron, so the other half of its
  ``eps_pos - eps_neg`` pair is fixed to 0 (``Problem.wrong_sign``).
"""
from __future__ import annotations

import numpy as np

from compiler.passes.base import Pass
from compiler.problem import Problem


def _fix_to_zero(problem: Problem, mask: np.ndarray | None):
    if mask is None or not mask.any():
        return problem, None
    lower, upper = problem.lower.copy(), problem.upper.copy()
    lower[mask] = 0.0
    upper[mask] = 0.0
    return problem.with_(lower=lower, upper=upper), None


class DropInert(Pass):
    name = "drop-inert"
    help = "weight changes whose source neuron is 0 are fixed to 0 (exact)"

    def accepts(self, problem, capabilities) -> bool:
        return problem.inert is not None

    def apply(self, problem):
        return _fix_to_zero(problem, problem.inert)


class SignPruning(Pass):
    name = "sign-pruning"
    help = "the increment/decrement marking fixes each weight change's sign (heuristic)"
    switch = "--no-sign-pruning"

    def accepts(self, problem, capabilities) -> bool:
        return problem.wrong_sign is not None

    def apply(self, problem):
        return _fix_to_zero(problem, problem.wrong_sign)
