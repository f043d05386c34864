"""Passes: named reductions ``Problem -> (Problem, inverse)`` (``compiler.passes.base``),
kept in a registry by name and chained for a backend's capabilities.

``build_chain`` turns options into the passes to run: by default every pass the options leave
on, in ``ORDER``; with ``PassOptions.explicit`` exactly the named passes, in the given order.
``compile_problem`` runs a chain (each pass only where it ``accepts`` the problem), records
the sizes after each pass, composes the inverses, and checks that the backend can take what
is left (ReLUs, integers).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from common.errors import NetpatchError
from compiler.passes.base import Pass
from compiler.passes.compact import Compact
from compiler.passes.phase_fixing import MODES as PHASE_MODES, PhaseFixing
from compiler.passes.pruning import DropInert, SignPruning
from compiler.passes.relaxation import Relaxation
from compiler.passes.max_lowering import MaxLowering
from compiler.passes.relu_lowering import ReluLowering
from compiler.problem import Capabilities, Problem

__all__ = ["Capabilities", "Compiled", "ORDER", "PASSES", "PHASE_MODES", "Pass", "PassOptions",
           "build_chain", "compile_problem", "describe_passes"]


@dataclass(frozen=True)
class PassOptions:
    """Which passes run, and their parameters.  ``phase_fixing`` is "linearized", "region"
    or None (free phases); ``explicit`` (names) overrides the on/off flags."""

    phase_fixing: str | None = "linearized"
    drop_inert: bool = True
    sign_pruning: bool = True
    relaxation: bool = True
    neutral_tolerance: float = 0.0
    compact: bool = True
    explicit: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.phase_fixing is not None and self.phase_fixing not in PHASE_MODES:
            raise NetpatchError(f"unknown phase-fixing mode {self.phase_fixing!r}; use one of "
                                f"{', '.join(PHASE_MODES)}")
        for name in self.explicit or ():
            if name not in PASSES:
                raise NetpatchError(f"unknown pass {name!r}; passes: {', '.join(ORDER)}")


# name -> (the pass built from the options, whether the options leave it on)
PASSES: dict[str, tuple[Callable[[PassOptions], Pass], Callable[[PassOptions], bool]]] = {
    "phase-fixing": (lambda o: PhaseFixing(o.phase_fixing or "linearized"),
                     lambda o: o.phase_fixing is not None),
    "drop-inert": (lambda o: DropInert(), lambda o: o.drop_inert),
    "sign-pruning": (lambda o: SignPruning(), lambda o: o.sign_pruning),
    "relaxation": (lambda o: Relaxation(o.neutral_tolerance), lambda o: o.relaxation),
    "relu-lowering": (lambda o: ReluLowering(), lambda o: True),
    "max-lowering": (lambda o: MaxLowering(), lambda o: True),
    "compact": (lambda o: Compact(), lambda o: o.compact),
}
ORDER = tuple(PASSES)


def build_chain(options: PassOptions = PassOptions()) -> list[Pass]:
    """The passes to run, in order."""
    if options.explicit is not None:
        return [PASSES[name][0](options) for name in options.explicit]
    return [make(options) for make, enabled in PASSES.values() if enabled(options)]


def describe_passes() -> str:
    """One line per pass for ``--help``: name, what it does, how to switch it off."""
    lines = []
    for name in ORDER:
        p = PASSES[name][0](PassOptions())
        off = f" (off: {p.switch})" if p.switch else ""
        lines.append(f"  {name:14s} {p.help}{off}")
    return "\n".join(lines)


@dataclass
class PassRecord:
    name: str
    sizes: dict
    seconds: float
    applied: bool = True


@dataclass
class Compiled:
    problem: Problem
    records: list[PassRecord] = field(default_factory=list)
    inverses: list = field(default_factory=list)

    def invert(self, x):
        """A solution of the compiled problem as values of the query's variables."""
        for inverse in reversed(self.inverses):
            x = inverse(x)
        return x

    def sizes_table(self) -> list[dict]:
        return [{"pass": r.name + ("" if r.applied else " (skipped)"), **r.sizes,
                 "ms": round(1000 * r.seconds, 3)} for r in self.records]


Observer = Callable[[str, Problem], None]


def compile_problem(problem: Problem, chain: list[Pass],
                    capabilities: Capabilities = Capabilities(),
                    observe: Observer | None = None) -> Compiled:
    """Run ``chain`` on ``problem``; ``observe(name, problem)`` sees the problem after the
    query ("query") and after each pass (e.g. to print it)."""
    compiled = Compiled(problem, [PassRecord("query", problem.sizes(), 0.0)])
    if observe:
        observe("query", problem)
    for step in chain:
        t0 = time.perf_counter()
        applied = step.accepts(problem, capabilities)
        if applied:
            problem, inverse = step.apply(problem)
            if inverse is not None:
                compiled.inverses.append(inverse)
        compiled.records.append(PassRecord(step.name, problem.sizes(),
                                           time.perf_counter() - t0, applied))
        if observe:
            observe(step.name, problem)
    problem.check()
    if problem.relus and not capabilities.native_relu:
        raise NetpatchError("the pass chain leaves ReLUs, which this backend cannot take: "
                            "add relu-lowering (or phase-fixing) to the chain")
    if problem.maxes and not capabilities.native_max:
        raise NetpatchError("the pass chain leaves max poolings, which this backend cannot "
                            "take: add max-lowering (or phase-fixing) to the chain")
    if problem.is_mip and not capabilities.mip:
        raise NetpatchError("the problem has integer variables, which this backend cannot take")
    compiled.problem = problem
    return compiled
