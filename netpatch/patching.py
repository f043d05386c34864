"""modifyEdgeLayer end to end: query, passes, solve, map back, validate by re-simulation."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from backends.base import Status
from compiler.passes import PassOptions
from compiler.queries import default_eps_bound, expand_patch, patch_query
from compiler.targets import NeuronTargets, Target
from netpatch.solving import VALIDATION_TOL, solve_query


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
                free_patched_phases: bool = False, relinearize: int = 3,
                reduced: bool | None = None) -> PatchOutcome:
    """Find the smallest change to edge-layer k's weights that makes ``target`` hold.

    With linearized phase fixing a patch can flip ReLUs above layer k, and then the real
    network rejects it; up to ``relinearize`` more rounds linearize at the patched network's
    phases and solve again.  The first patch that validates is returned (else the last).
    """
    phase_net, outcome = None, None
    rounds = 1 + (relinearize if options.phase_fixing == "linearized" else 0)
    weight = net.edge(k).linear.weight
    bound = default_eps_bound(weight) if eps_bound is None else float(eps_bound)
    for round_ in range(rounds):
        stem = (dump_stem or f"patch_layer{k}") + (f"_round{round_}" if round_ else "")
        problem, solved = _solve_patch(net, k, inputs, target, backend, options, objective,
                                       bound, time_limit, dump_dir, stem, free_patched_phases,
                                       phase_net, reduced)
        eps = None if solved.x is None else expand_patch(problem, solved.x, weight.shape)
        spent_build, spent_solve = 0.0, 0.0
        if eps is not None and np.max(np.abs(eps)) > bound * (1 + 1e-9):
            spent_build = solved.compile_s + solved.result.build_s
            spent_solve = solved.result.solve_s
            # The reduced L1 problem relaxes the per-weight bound; its answer broke it, so
            # the full formulation decides.
            problem, solved = _solve_patch(net, k, inputs, target, backend, options, objective,
                                           bound, time_limit, dump_dir, stem,
                                           free_patched_phases, phase_net, False)
            eps = None if solved.x is None else expand_patch(problem, solved.x, weight.shape)
        result = solved.result
        build_s = solved.compile_s + result.build_s + spent_build + (outcome.build_s if outcome else 0.0)
        solve_s = result.solve_s + spent_solve + (outcome.solve_s if outcome else 0.0)
        previous = outcome
        outcome = PatchOutcome(result.status, k, backend, build_s=build_s, solve_s=solve_s,
                               sizes=solved.compiled.sizes_table(), message=result.message,
                               solver_version=result.version, rounds=round_ + 1)
        if eps is None:
            # keep the earlier (unvalidated) candidate when a later round finds nothing
            return _merge(previous, outcome) if previous is not None else outcome
        outcome.eps = eps
        outcome.objective = result.objective
        patched = net.with_patch(k, outcome.eps)
        outcome.validated = target_holds(patched, inputs, target, relaxed=options.relaxation)
        if outcome.validated:
            return outcome
        phase_net = patched
    return outcome


def _solve_patch(net, k, inputs, target, backend, options, objective, bound, time_limit,
                 dump_dir, stem, free_patched_phases, phase_net, reduced):
    t0 = time.perf_counter()
    problem = patch_query(net, k, inputs, target, objective, bound, free_patched_phases,
                          phase_net=phase_net, reduced=reduced)
    solved = solve_query(problem, backend, options, time_limit, query_s=time.perf_counter() - t0,
                         dump_dir=dump_dir, dump_stem=stem)
    return problem, solved


def _merge(candidate: PatchOutcome, last: PatchOutcome) -> PatchOutcome:
    candidate.build_s, candidate.solve_s, candidate.rounds = last.build_s, last.solve_s, last.rounds
    return candidate
