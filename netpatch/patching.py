"""modifyEdgeLayer end to end: query, passes, solve, map back, validate by re-simulation."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from backends.base import Status
from compiler.passes import PassOptions
from compiler.queries import patch_query
from compiler.targets import NeuronTargets, Target
from netpatch.solving import VALIDATION_TOL, Solved, solve_query


@dataclass
class PatchOutcome:
    status: Status
    layer: int
    backend: str
    target_class: int | None = None
    objective: float | None = None
    eps: np.ndarray | None = None
    validated: bool = False
    build_s: float = 0.0
    solve_s: float = 0.0
    sizes: list = field(default_factory=list)
    message: str = ""
    solver_version: str = ""

    @property
    def eps_linf(self) -> float | None:
        return None if self.eps is None else float(np.max(np.abs(self.eps), initial=0.0))

    @property
    def eps_l1(self) -> float | None:
        return None if self.eps is None else float(np.sum(np.abs(self.eps)))

    @property
    def weights_changed(self) -> int | None:
        return None if self.eps is None else int(np.sum(np.abs(self.eps) > 1e-12))

    def as_dict(self) -> dict:
        return {
            "status": self.status.value, "backend": self.backend, "layer": self.layer,
            "target_class": self.target_class, "objective": self.objective,
            "eps_linf": self.eps_linf, "eps_l1": self.eps_l1,
            "weights_changed": self.weights_changed, "validated": self.validated,
            "build_s": round(self.build_s, 6), "solve_s": round(self.solve_s, 6),
            "sizes": self.sizes, "message": self.message,
        }


def target_holds(net, inputs: np.ndarray, target: Target, relaxed: bool = True) -> bool:
    """Float64 re-simulation: does ``net`` meet ``target`` on every input?"""
    outputs = np.atleast_2d(net(np.atleast_2d(inputs)))
    if isinstance(target, NeuronTargets):
        return all(target.holds(y, relaxed=relaxed, tol=VALIDATION_TOL) for y in outputs)
    return all(target.holds(y, tol=VALIDATION_TOL) for y in outputs)


def patch_layer(net, k: int, inputs: np.ndarray, target: Target, backend: str = "highs",
                options: PassOptions = PassOptions(), objective: str = "linf",
                eps_bound: float | None = None, time_limit: float | None = None,
                dump_dir=None, dump_stem: str | None = None,
                free_patched_phases: bool = False) -> PatchOutcome:
    """Find the smallest change to edge-layer k's weights that makes ``target`` hold."""
    t0 = time.perf_counter()
    problem = patch_query(net, k, inputs, target, objective, eps_bound, free_patched_phases)
    solved: Solved = solve_query(problem, backend, options, time_limit,
                                 query_s=time.perf_counter() - t0, dump_dir=dump_dir,
                                 dump_stem=dump_stem or f"patch_layer{k}")
    result = solved.result
    outcome = PatchOutcome(result.status, k, backend, build_s=solved.compile_s + result.build_s,
                           solve_s=result.solve_s, sizes=solved.compiled.sizes_table(),
                           message=result.message, solver_version=result.version)
    if solved.x is None:
        return outcome
    outcome.eps = solved.signed("eps")
    outcome.objective = result.objective
    outcome.validated = target_holds(net.with_patch(k, outcome.eps), inputs, target,
                                     relaxed=options.relaxation)
    return outcome
