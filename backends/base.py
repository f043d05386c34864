"""What every backend shares: the result type, statuses, and the Backend contract.

A backend knows only the problem IR (``compiler.problem.Problem``).  It declares what it can
do (capability flags), whether it is available here, and solves or writes a problem.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np


class Status(str, enum.Enum):
    OPTIMAL = "optimal"
    FEASIBLE = "feasible"          # a solution, optimality not proven (gap or limit)
    INFEASIBLE = "infeasible"      # a proof, under the passes that were on
    TIME_LIMIT = "time_limit"      # no solution within the time limit
    UNBOUNDED = "unbounded"
    ERROR = "error"

    @property
    def has_solution(self) -> bool:
        return self in (Status.OPTIMAL, Status.FEASIBLE)


@dataclass
class Result:
    status: Status
    objective: float | None = None
    x: np.ndarray | None = None      # one value per problem variable
    build_s: float = 0.0             # from problem IR to the solver's model
    solve_s: float = 0.0
    solver: str = ""
    version: str = ""
    message: str = ""
    info: dict = field(default_factory=dict)


class Backend:
    """One solver.  Subclasses set the flags and implement ``solve`` (and ``write``)."""

    name = "base"
    MIP_CAPABLE = True
    NATIVE_RELU = False           # accepts ReluBlocks without big-M lowering
    FILE_FORMATS: tuple[str, ...] = ()
    SIZE_NOTE = ""                # what sizes it handles, for --help

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        """(available, reason when not)."""
        return True, ""

    def solve(self, problem, time_limit: float | None = None, mip_start=None) -> Result:
        raise NotImplementedError

    def write(self, problem, path) -> None:
        raise NotImplementedError(f"backend {self.name} cannot write model files")
