"""mod2adv: input changes that make the ORIGINAL first edge-layer reach what the patched
first layer reached (a ``Target`` on neuron layer 1).

A target that is one linear inequality (a pulled-back property) is a cardinality knapsack
over the inputs, solved exactly in closed form (``compiler.analysis.knapsack``): the fewest
changed inputs first, then (``push``) stronger changes along the same direction, since the
linear model is only a guide and the real network decides.  Any other target goes to the
backend's MILP (``compiler.queries.input_query``).
"""
from __future__ import annotations

import time
from typing import Iterator

import numpy as np

from attacks.config import AttackConfig
from attacks.result import StageFailure
from attacks.solving import solve_for
from attacks.work import Work
from backends.base import Status
from compiler.analysis import bounds
from compiler.analysis.knapsack import stronger_changes
from compiler.analysis.pullback import input_function
from compiler.queries import Target, input_query
from ir.property import Conjunction


def recovery_changes(net, x, target: Target, layer: int, config: AttackConfig,
                     work: Work) -> Iterator[np.ndarray]:
    """Candidate inputs, best first, whose neuron layer ``layer`` (pre-activation) meets
    ``target`` on the ORIGINAL network below it (edge-layer 1 for a dense network; the first
    dense edge-layer of a convolutional one, the layers below it linearized at ``x``); raises
    StageFailure when there is none within the budget."""
    if sortable(target, config):
        yield from closed_form_changes(net, net.prefix(layer), x, x, target, config, work,
                                       "input recovery")
        return
    t0 = time.perf_counter()
    problem, decoder = input_query(net.prefix(layer), x, target, config.linf, config.max_pixels,
                                   groups=net.pixel_groups())
    solved = solve_for(work, problem, config.backend, config.passes,
                       query_s=time.perf_counter() - t0)
    if solved.x is None:
        raise StageFailure("input recovery", solved.status.value, solved.result.message)
    yield adversarial_input(net, x, decoder.decode(solved.x))


def mod2adv(net, x, target: Target, config: AttackConfig, work: Work | None = None,
            layer: int = 1) -> np.ndarray:
    """The best input change for ``target`` (the first of ``recovery_changes``)."""
    return next(recovery_changes(net, x, target, layer, config, work or Work(config.time_limit)))


def first_holding(changes: Iterator[np.ndarray], holds) -> np.ndarray:
    """The first candidate for which ``holds`` is true, else the first one (for validation
    to judge); StageFailure propagates when there is no candidate at all."""
    first = None
    for candidate in changes:
        if first is None:
            first = candidate
        if holds(candidate):
            return candidate
    return first


def sortable(target: Target, config: AttackConfig) -> bool:
    return (config.recovery.method == "sort" and isinstance(target, Conjunction)
            and len(target.constraints) == 1 and target.constraints[0].sense != "==")


def closed_form_changes(net, affine, x, point, target: Conjunction, config: AttackConfig,
                        work: Work, stage: str) -> Iterator[np.ndarray]:
    """``affine`` is the network from the input to the target's layer, linearized at
    ``point``'s phases: one inequality on it is a cardinality knapsack over the inputs (over
    pixel positions for a colour image).  Yields the fewest changed pixels, then
    (``recovery.push``) stronger pushes."""
    t0 = time.perf_counter()
    (constraint,) = target.constraints
    gains, offsets = input_function(affine, target, affine.phases(point))
    gain = gains[0]
    need = constraint.rhs - float(gain @ x + offsets[0])
    if constraint.sense == "<=":
        gain, need = -gain, -need
    lo, hi = bounds.input_box(x, net.domain.lower, net.domain.upper, config.linf)
    up, down = np.maximum(hi - x, 0.0), np.maximum(x - lo, 0.0)
    found = False
    for delta in stronger_changes(gain, need, up, down, config.max_pixels, net.pixel_groups()):
        work.solve_s += time.perf_counter() - t0
        found = True
        yield net.domain.clip(x + delta)
        if not config.recovery.push:
            return
        work.check()
        t0 = time.perf_counter()
    work.solve_s += time.perf_counter() - t0
    if not found:
        count = "any number of" if config.max_pixels is None else f"at most {config.max_pixels}"
        raise StageFailure(stage, Status.INFEASIBLE.value,
                           f"no change of {count} inputs within L-inf {config.linf} reaches "
                           "the target (closed form)")


def adversarial_input(net, x, delta) -> np.ndarray:
    """``x + delta`` clipped to the domain (the decoders keep unchanged inputs exactly 0)."""
    return net.domain.clip(x + delta)
