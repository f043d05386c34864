"""Output-constraint relaxation: target equalities become inequalities by the neuron's mark.

``z == c`` becomes ``z >= c`` for an increment neuron (``Relax.UP``), ``z <= c`` for a
decrement neuron (``Relax.DOWN``), and ``z <= 0`` for a neuron the patched run left inactive
(``Relax.INACTIVE``); neutral neurons (``Relax.KEEP``) keep ``z == c`` (or
``|z - c| <= tolerance``).  Rows without ``RowBlock.relax`` are untouched.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.passes.base import Pass
from compiler.problem import Relax


@dataclass(frozen=True)
class Relaxation(Pass):
    tolerance: float = 0.0
    name = "relaxation"
    help = "target equalities become inequalities by mark; inactive targets z <= 0"
    switch = "--no-relaxation"

    def accepts(self, problem, capabilities) -> bool:
        return any(block.relax is not None for block in problem.row_blocks)

    def apply(self, problem):
        lower, upper = problem.row_lower.copy(), problem.row_upper.copy()
        for block in problem.row_blocks:
            if block.relax is None:
                continue
            rows, relax = block.indices, block.relax
            upper[rows[relax == Relax.UP]] = np.inf
            lower[rows[relax == Relax.DOWN]] = -np.inf
            inactive = rows[relax == Relax.INACTIVE]
            lower[inactive], upper[inactive] = -np.inf, 0.0
            keep = rows[relax == Relax.KEEP]
            lower[keep] -= self.tolerance
            upper[keep] += self.tolerance
        return problem.with_(row_lower=lower, row_upper=upper), None
