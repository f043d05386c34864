"""What every backend shares: the result type, the shared statuses, and the Backend contract.

A backend knows only the problem IR (``compiler.problem``).  It declares what it can do
(capability flags, the file formats it writes), whether it is available here, maps its
solver's native statuses to the shared ones through one table (``STATUS_MAP``), and solves
or writes a problem.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.errors import NetpatchError
from compiler.problem import Capabilities


class Status(str, enum.Enum):
    OPTIMAL = "optimal"
    FEASIBLE = "feasible"          # a solution, optimality not proven (gap or limit)
    INFEASIBLE = "infeasible"      # a proof, under the passes that were on
    TIME_LIMIT = "time_limit"      # a limit stopped the solver before any solution
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


# How each model-file format starts a comment line (LP, as CPLEX and HiGHS read it: a
# backslash; MPS: an asterisk in the first column; SMT-LIB: a semicolon).
COMMENT_PREFIX = {".lp": "\\", ".mps": "*", ".smt2": ";"}


class Backend:
    """One solver.  Subclasses set the flags and ``STATUS_MAP`` and implement ``solve`` and
    ``_write``."""

    name = "base"
    MIP_CAPABLE = True
    NATIVE_RELU = False           # accepts ReluBlocks without big-M lowering
    NATIVE_MAX = False            # accepts MaxBlocks likewise
    FILE_FORMATS: tuple[str, ...] = ()
    SIZE_NOTE = ""                # what sizes it handles, for --help
    # The solver's own status names -> shared statuses.  A limit maps to TIME_LIMIT; with a
    # solution in hand it becomes FEASIBLE (``status``).  Anything not listed is an ERROR.
    STATUS_MAP: dict[str, Status] = {}

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(mip=self.MIP_CAPABLE, native_relu=self.NATIVE_RELU,
                            native_max=self.NATIVE_MAX)

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        """(available, reason when not)."""
        return True, ""

    def status(self, native: str, has_solution: bool) -> Status:
        """The shared status of a native one (see ``STATUS_MAP``)."""
        status = self.STATUS_MAP.get(native, Status.ERROR)
        if status in (Status.TIME_LIMIT, Status.ERROR) and has_solution:
            return Status.FEASIBLE
        return status

    def solve(self, problem, time_limit: float | None = None, mip_start=None) -> Result:
        raise NotImplementedError

    def write(self, problem, path, comment: str | None = None) -> Path:
        """Write ``problem`` as a model file; its suffix must be one of ``FILE_FORMATS``.
        ``comment`` (lines of text: what the problem is, what its names mean) goes on top
        of the file as the format's comment lines (``COMMENT_PREFIX``)."""
        path = Path(path)
        if path.suffix.lower() not in self.FILE_FORMATS:
            writes = ", ".join(self.FILE_FORMATS) or "no model files"
            raise NetpatchError(f"backend {self.name} writes {writes}, not {path.name!r}")
        self._write(problem, path)
        if comment:
            prefix = COMMENT_PREFIX[path.suffix.lower()]
            block = "".join(f"{prefix} {line}".rstrip() + "\n" for line in comment.splitlines())
            path.write_text(block + path.read_text())
        return path

    def _write(self, problem, path: Path) -> None:
        raise NotImplementedError
