"""Compile a query's problem, solve it with a backend, and map the answer back.

The one place where queries, passes and backends meet.  Nothing here validates: the callers
(patching, attacks) re-simulate the network before they call anything a success.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backends import get_backend
from backends.base import Result, Status
from compiler.passes import Compiled, PassOptions, compile_problem

# A property re-simulated in float64 counts as holding when it fails by no more than this.
VALIDATION_TOL = 1e-9


@dataclass
class Solved:
    problem: object           # the query's problem (before passes)
    compiled: Compiled
    result: Result
    x: np.ndarray | None      # solution in the query's variables
    compile_s: float          # query + passes

    @property
    def status(self) -> Status:
        return self.result.status

    def values(self, name: str) -> np.ndarray:
        return self.problem.values(self.x, name)

    def signed(self, name: str) -> np.ndarray:
        """``name_pos - name_neg`` (the split variables of a weight or input change)."""
        return self.values(f"{name}_pos") - self.values(f"{name}_neg")


def solve_query(problem, backend_name: str, options: PassOptions, time_limit: float | None = None,
                query_s: float = 0.0, dump_dir: str | Path | None = None, dump_stem: str = "query") -> Solved:
    """Run the pass chain for the backend, solve, and invert the passes."""
    backend = get_backend(backend_name)
    t0 = time.perf_counter()
    compiled = compile_problem(problem, options, native_relu=backend.NATIVE_RELU)
    compile_s = query_s + time.perf_counter() - t0
    if dump_dir is not None:
        dump(compiled.problem, dump_dir, dump_stem, backend_name)
    result = backend.solve(compiled.problem, time_limit=time_limit)
    x = compiled.invert(result.x) if result.x is not None else None
    return Solved(problem, compiled, result, x, compile_s)


def dump(problem, directory: str | Path, stem: str, backend_name: str) -> list[Path]:
    """Write the problem as ``.lp`` and ``.mps`` (Pyomo's writers), and ``.smt2`` for z3.

    A problem that still holds ReLUs (z3 takes them natively) has no LP form: only ``.smt2``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    writer = get_backend("pyomo-highs")
    for suffix in ((".lp", ".mps") if not problem.relus else ()):
        path = directory / f"{stem}{suffix}"
        writer.write(problem, path)
        written.append(path)
    if backend_name == "z3":
        path = directory / f"{stem}.smt2"
        get_backend("z3").write(problem, path)
        written.append(path)
    return written
