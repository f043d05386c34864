"""``direct``: one query from the input through the whole network linearized at the input
(one inequality: the closed-form knapsack; otherwise the backend's MILP), re-linearized at
each candidate the real network rejects, for ``direct.relinearize`` more rounds; then, when
all of them fail and there is a pixel budget, the growing search of ``attacks.grow``."""
from __future__ import annotations

import time
from typing import Iterator

import numpy as np

from attacks.config import AttackConfig
from attacks.dnc import Candidate
from attacks.grow import grown
from attacks.recovery import adversarial_input, closed_form_changes, first_holding, sortable
from attacks.result import StageFailure
from attacks.solving import solve_for
from attacks.work import Work
from compiler.queries import input_query


def direct_search(net, x, candidates, config: AttackConfig, work: Work) -> Iterator[Candidate]:
    """Yield ``("", target_class, property, answer)`` per target class, in order."""
    for target_class, conj in candidates:
        work.stage(f"direct, target class {target_class}")
        try:
            answer = direct(net, x, conj, config, work)
        except StageFailure as failure:
            answer = failure
        yield "", target_class, conj, answer


def direct(net, x, conj, config: AttackConfig, work: Work) -> np.ndarray:
    can_grow = bool(config.direct.grow and config.max_pixels and sortable(conj, config))
    try:
        last = relinearized(net, x, conj, config, work)
    except StageFailure:
        if not can_grow:
            raise
        last = None
    if not can_grow or (last is not None and conj.holds(net(last))):
        return last
    answer = grown(net, x, conj, config, work)
    if isinstance(answer, StageFailure):
        if last is None:
            raise answer
        return last
    return answer


def relinearized(net, x, conj, config: AttackConfig, work: Work) -> np.ndarray:
    holds = lambda x_adv: conj.holds(net(x_adv))   # noqa: E731
    point, last = x, None
    for _ in range(1 + config.direct.relinearize):
        if sortable(conj, config) and config.passes.phase_fixing == "linearized":
            try:
                last = first_holding(closed_form_changes(net, net, x, point, conj, config, work,
                                                         "direct"), holds)
            except StageFailure:
                if last is not None:
                    return last
                raise
        else:
            t0 = time.perf_counter()
            problem, decoder = input_query(net, x, conj, config.linf, config.max_pixels,
                                           phase_point=point)
            solved = solve_for(work, problem, config.backend, config.passes,
                               query_s=time.perf_counter() - t0)
            if solved.x is None:
                if last is not None:
                    return last
                raise StageFailure("direct MILP", solved.status.value, solved.result.message)
            last = adversarial_input(net, x, decoder.decode(solved.x))
        if holds(last):
            return last
        point = last
    return last
