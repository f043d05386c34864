"""Fixing variables to zero from the query's hints.

* ``drop_inert`` (exact): a weight change whose source neuron is 0 on every input changes
  nothing.
* ``sign_pruning`` (a heuristic; may lose optimality): the increment/decrement marking fixes
  the sign of each weight change into a marked neuron, so the other half of its
  ``eps_pos - eps_neg`` pair is fixed to 0.
"""
from __future__ import annotations


def _fix_to_zero(problem, hint: str):
    mask = problem.hints.get(hint)
    if mask is None or not mask.any():
        return problem, None
    lower, upper = problem.lower.copy(), problem.upper.copy()
    lower[mask] = 0.0
    upper[mask] = 0.0
    return problem.with_(lower=lower, upper=upper), None


def drop_inert(problem):
    return _fix_to_zero(problem, "inert")


def sign_pruning(problem):
    return _fix_to_zero(problem, "wrong_sign")
