"""modifyEdgeLayer end to end: query, passes, solve, decode, validate by re-simulation."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from backends.base import Status
from compiler.passes import PassOptions
from compiler.queries import Target, default_eps_bound, patch_query
from attacks.solving import solve_query
from attacks.validate import target_holds


@dataclass(frozen=True)
class PatchRequest:
    """Patch edge-layer ``layer`` of ``net`` so that ``target`` holds on every input.

    ``reduced`` selects METHOD.md's patch reduction (one variable per target neuron; exact
    for one input only); with linearized phase fixing, up to ``relinearize`` more rounds
    linearize at the patched network's phases when the real network rejects a patch.
    ``dump_dir``/``dump_stem`` write every compiled problem; ``observe(name, problem)`` sees
    the problem after each pass.
    """

    net: object
    layer: int
    inputs: np.ndarray
    target: Target
    backend: str = "highs"
    passes: PassOptions = PassOptions()
    objective: str = "linf"
    eps_bound: float | None = None
    time_limit: float | None = None
    free_patched_phases: bool = False
    relinearize: int = 3
    reduced: bool = True
    bounds: str = "interval"          # big-M constants of free phases (compiler.analysis.bounds)
    dump_dir: Path | None = None
    dump_stem: str | None = None
    dump_comment: str | None = None   # opens every dumped model file (what it is, its names)
    observe: Callable | None = None


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
    rounds: int = 1

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
            "rounds": self.rounds, "sizes": self.sizes, "message": self.message,
        }


def patch_layer(request: PatchRequest) -> PatchOutcome:
    """The smallest change to edge-layer ``request.layer``'s weights that makes the target
    hold, validated on the patched network; the first patch that validates, else the last."""
    net, k = request.net, request.layer
    phase_net, outcome = None, None
    rounds = 1 + (request.relinearize if request.passes.phase_fixing == "linearized" else 0)
    weight = net.edge(k).linear.weight
    bound = default_eps_bound(weight) if request.eps_bound is None else float(request.eps_bound)
    request = replace(request, eps_bound=bound)
    for round_ in range(rounds):
        stem = (request.dump_stem or f"patch_layer{k}") + (f"_round{round_}" if round_ else "")
        eps, solved = _solve(request, phase_net, stem, request.reduced)
        spent_build, spent_solve = 0.0, 0.0
        if eps is not None and np.max(np.abs(eps)) > bound * (1 + 1e-9):
            spent_build = solved.compile_s + solved.result.build_s
            spent_solve = solved.result.solve_s
            # The reduced L1 problem relaxes the per-weight bound; its answer broke it, so
            # the full formulation decides.
            eps, solved = _solve(request, phase_net, stem, reduced=False)
        result = solved.result
        build_s = solved.compile_s + result.build_s + spent_build + (outcome.build_s if outcome else 0.0)
        solve_s = result.solve_s + spent_solve + (outcome.solve_s if outcome else 0.0)
        previous = outcome
        outcome = PatchOutcome(result.status, k, request.backend, build_s=build_s, solve_s=solve_s,
                               sizes=solved.compiled.sizes_table(), message=result.message,
                               solver_version=result.version, rounds=round_ + 1)
        if eps is None:
            # keep the earlier (unvalidated) candidate when a later round finds nothing
            return _merge(previous, outcome) if previous is not None else outcome
        outcome.eps = eps
        outcome.objective = result.objective
        patched = net.with_patch(k, outcome.eps)
        outcome.validated = target_holds(patched, request.inputs, request.target,
                                         relaxed=request.passes.relaxation)
        if outcome.validated:
            return outcome
        phase_net = patched
    return outcome


def _solve(request: PatchRequest, phase_net, stem: str, reduced: bool):
    t0 = time.perf_counter()
    problem, decoder = patch_query(request.net, request.layer, request.inputs, request.target,
                                   request.objective, request.eps_bound,
                                   request.free_patched_phases, phase_net=phase_net,
                                   reduced=reduced, bounds_method=request.bounds)
    solved = solve_query(problem, request.backend, request.passes, request.time_limit,
                         query_s=time.perf_counter() - t0, dump_dir=request.dump_dir,
                         dump_stem=stem, observe=request.observe,
                         dump_comment=request.dump_comment)
    eps = None if solved.x is None else decoder.decode(solved.x)
    return eps, solved


def _merge(candidate: PatchOutcome, last: PatchOutcome) -> PatchOutcome:
    candidate.build_s, candidate.solve_s, candidate.rounds = last.build_s, last.solve_s, last.rounds
    return candidate
