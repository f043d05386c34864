"""Compile a query's problem for a backend, solve it, and map the answer back.

The one place where queries, passes and backends meet.  Nothing here validates: the callers
(patching, strategies) re-simulate the network before they call anything a success.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backends import get_backend
from backends.base import Result, Status
from compiler.passes import Compiled, PassOptions, build_chain, compile_problem


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


def solve_query(problem, backend_name: str, options: PassOptions, time_limit: float | None = None,
                query_s: float = 0.0, dump_dir: str | Path | None = None,
                dump_stem: str = "query", observe=None, dump_comment: str | None = None) -> Solved:
    """Run the pass chain for the backend, solve, and invert the passes.  ``dump_dir``: write
    the compiled problem in every format the backend writes, with ``dump_comment`` on top;
    ``observe(name, problem)`` sees the problem after each pass."""
    backend = get_backend(backend_name)
    t0 = time.perf_counter()
    compiled = compile_problem(problem, build_chain(options), backend.capabilities, observe)
    compile_s = query_s + time.perf_counter() - t0
    if dump_dir is not None:
        dump(compiled.problem, dump_dir, dump_stem, backend, dump_comment)
    result = backend.solve(compiled.problem, time_limit=time_limit)
    x = compiled.invert(result.x) if result.x is not None else None
    return Solved(problem, compiled, result, x, compile_s)


def solve_for(work, problem, backend_name: str, options: PassOptions,
              query_s: float = 0.0) -> Solved:
    """``solve_query`` within an attack's time (``attacks.work.Work``), its seconds and its
    status counted there."""
    solved = solve_query(problem, backend_name, options, work.time_limit(), query_s=query_s)
    work.compile_s += solved.compile_s + solved.result.build_s
    work.solve_s += solved.result.solve_s
    work.saw(solved.status)
    return solved


def dump(problem, directory: str | Path, stem: str, backend,
         comment: str | None = None) -> list[Path]:
    """``DIR/STEM.BACKEND.SUFFIX`` for every format the backend writes (HiGHS and Pyomo:
    ``.lp`` and ``.mps``; z3: ``.smt2``), so files of compared backends sit side by side;
    ``comment`` (what the problem is and what its names mean) opens each file."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return [backend.write(problem, directory / f"{stem}.{backend.name}{suffix}", comment)
            for suffix in backend.FILE_FORMATS]
