"""What every pass is: a named reduction ``Problem -> (Problem, inverse)``.

As in CVXPY's reductions, a pass never mutates its input; ``inverse`` maps a solution of the
new problem back to the old problem's variables (None when the variables did not change).
``accepts`` says whether the pass applies to a problem for a backend with the given
capabilities; a pass that does not apply is skipped (and says so in the sizes table).
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from compiler.problem import Capabilities, Problem

Inverse = Optional[Callable[[np.ndarray], np.ndarray]]


class Pass:
    """A named reduction.  Subclasses set ``name`` and ``help`` and implement ``apply``;
    ``switch`` names the command-line shortcut that turns the pass off, if any."""

    name = "pass"
    help = ""
    switch: str | None = None

    def accepts(self, problem: Problem, capabilities: Capabilities) -> bool:
        return True

    def apply(self, problem: Problem) -> tuple[Problem, Inverse]:
        raise NotImplementedError
