"""Output-constraint relaxation: target equalities become inequalities by the neuron's mark.

``z == c`` becomes ``z >= c`` for an increment neuron, ``z <= c`` for a decrement neuron,
and ``z <= 0`` for a neuron the patched run left inactive; neutral neurons keep ``z == c``
(or ``|z - c| <= tolerance``).  Rows without a ``relax`` hint are untouched.
"""
from __future__ import annotations

import numpy as np

from compiler.targets import RELAX_DOWN, RELAX_INACTIVE, RELAX_KEEP, RELAX_UP


def relax_targets(problem, tolerance: float = 0.0):
    lower, upper = problem.row_lower.copy(), problem.row_upper.copy()
    touched = False
    for block in problem.row_blocks:
        relax = block.hints.get("relax")
        if relax is None:
            continue
        touched = True
        rows = block.indices
        upper[rows[relax == RELAX_UP]] = np.inf
        lower[rows[relax == RELAX_DOWN]] = -np.inf
        inactive = rows[relax == RELAX_INACTIVE]
        lower[inactive], upper[inactive] = -np.inf, 0.0
        keep = rows[relax == RELAX_KEEP]
        lower[keep] -= tolerance
        upper[keep] += tolerance
    if not touched:
        return problem, None
    return problem.with_(row_lower=lower, row_upper=upper), None
