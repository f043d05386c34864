"""Passes: small functions ``problem -> (problem, invert)`` that can be switched off.

``invert`` maps a solution of the new problem back to the old one's variables (None when the
variables did not change).  ``compile_problem`` chooses the passes from the options and the
backend's capabilities, runs them in order, records the problem sizes after each, and
composes the inverses.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from compiler.passes.compact import compact
from compiler.passes.phase_fixing import MODES as PHASE_MODES, fix_phases
from compiler.passes.pruning import drop_inert, sign_pruning
from compiler.passes.relaxation import relax_targets
from compiler.passes.relu_lowering import lower_relus

PASS_HELP = {
    "phase-fixing": "ReLUs keep the phase of the unperturbed input (linearized | region): an LP",
    "drop-inert": "weight changes whose source neuron is 0 are fixed to 0 (exact)",
    "sign-pruning": "the increment/decrement marking fixes each weight change's sign (heuristic)",
    "relaxation": "target equalities become inequalities by mark; inactive targets z <= 0",
    "relu-lowering": "remaining ReLUs become big-M rows with binaries (for solvers without them)",
    "compact": "fixed variables and empty rows removed, single-variable rows become bounds",
}


@dataclass(frozen=True)
class PassOptions:
    phase_fixing: str | None = "linearized"   # "linearized", "region" or None (free phases)
    drop_inert: bool = True
    sign_pruning: bool = True
    relaxation: bool = True
    neutral_tolerance: float = 0.0
    compact: bool = True


@dataclass
class PassRecord:
    name: str
    sizes: dict
    seconds: float


@dataclass
class Compiled:
    problem: object
    records: list[PassRecord] = field(default_factory=list)
    inverses: list = field(default_factory=list)

    def invert(self, x):
        """A solution of the compiled problem as values of the query's variables."""
        for inverse in reversed(self.inverses):
            x = inverse(x)
        return x

    def sizes_table(self) -> list[dict]:
        return [{"pass": r.name, **r.sizes, "ms": round(1000 * r.seconds, 3)} for r in self.records]


def chain(options: PassOptions, native_relu: bool = False) -> list[tuple[str, object]]:
    """The passes to run, in order."""
    steps = []
    if options.phase_fixing:
        if options.phase_fixing not in PHASE_MODES:
            raise ValueError(f"unknown phase-fixing mode {options.phase_fixing!r}")
        steps.append(("phase-fixing", lambda p: fix_phases(p, options.phase_fixing)))
    if options.drop_inert:
        steps.append(("drop-inert", drop_inert))
    if options.sign_pruning:
        steps.append(("sign-pruning", sign_pruning))
    if options.relaxation:
        steps.append(("relaxation", lambda p: relax_targets(p, options.neutral_tolerance)))
    if not native_relu:
        steps.append(("relu-lowering", lower_relus))
    if options.compact:
        steps.append(("compact", compact))
    return steps


def compile_problem(problem, options: PassOptions = PassOptions(), native_relu: bool = False) -> Compiled:
    compiled = Compiled(problem, [PassRecord("query", problem.sizes(), 0.0)])
    for name, apply in chain(options, native_relu):
        t0 = time.perf_counter()
        problem, inverse = apply(problem)
        seconds = time.perf_counter() - t0
        if inverse is not None:
            compiled.inverses.append(inverse)
        compiled.records.append(PassRecord(name, problem.sizes(), seconds))
    problem.check()
    compiled.problem = problem
    return compiled
