"""``attack(net, x, label, config)``: an adversarial input for one input, by any strategy.

The candidate target classes come from the property "argmax != label", smallest logit gap
first.  ``dnc`` and ``direct`` yield one answer per (patch mode,) target class in their own
order (``attacks.dnc``, ``attacks.direct``); each answer counts only after float64
validation on the ORIGINAL network (inside the domain, the L-inf and pixel budgets,
misclassified), and is then shrunk (``attacks.shrink``).  ``exact`` runs its own iterative
deepening (``attacks.exact``).

A failure says what stopped the search: ``time_limit`` when any solver call hit its limit or
the attack's budget (``AttackConfig.budget``) ran out, ``error`` when a solver failed, else
the status of the last stage that found nothing (a heuristic's failure proves nothing; only
``exact`` says ``infeasible``, and only with every sub-problem proved).
"""
from __future__ import annotations

import numpy as np

from attacks.config import AttackConfig
from attacks.direct import direct_search
from attacks.dnc import dnc_search
from attacks.exact import exact_attack
from attacks.result import AttackResult, StageFailure
from attacks.shrink import shrink
from attacks.validate import validate
from attacks.work import Work
from common.errors import NetpatchError
from ir.property import ArgmaxIsNot, targeted_candidates

SEARCHES = {"dnc": dnc_search, "direct": direct_search}


def attack(net, x: np.ndarray, label: int, config: AttackConfig = AttackConfig()) -> AttackResult:
    if net.domain is None:
        raise NetpatchError(f"{net.name} has no input domain, and an attack must stay inside "
                            "one: set it (Network.with_domain; on the command line --domain "
                            "LO,HI)")
    x = np.asarray(x, dtype=np.float64)
    if not net.domain.contains(x):
        i = int(np.argmax((x < net.domain.lower) | (x > net.domain.upper)))
        lo, hi = float(net.domain.lower[i]), float(net.domain.upper[i])
        raise NetpatchError(f"input value {i} is {float(x[i])!r}, outside the domain "
                            f"[{lo!r}, {hi!r}]")
    result = AttackResult(False, int(label))
    work = Work(config.time_limit, config.budget)
    try:
        return _search(net, x, int(label), config, result, work)
    finally:
        result.times = work.times


def _search(net, x, label, config, result, work) -> AttackResult:
    candidates = targeted_candidates(ArgmaxIsNot(label, config.margin), net(x))
    if config.max_targets is not None:
        candidates = candidates[:config.max_targets]
    if config.strategy == "exact":
        return exact_attack(net, x, label, candidates, config, result, work, _accepter(net))
    for tier, target_class, conj, answer in SEARCHES[config.strategy](net, x, candidates, config,
                                                                       work):
        result.tried += 1
        if isinstance(answer, StageFailure):
            result.failed(answer.stage, answer.status, answer.reason)
            if answer.stage == "budget":
                break
            continue
        problem = validate(net, x, answer, label, config.linf, config.max_pixels)
        if problem:
            result.failed("validation", "rejected", problem)
            continue
        if config.shrink:
            answer = shrink(net, x, answer, conj)
        _accepter(net)(result, answer, target_class)
        result.tier = tier
        return result
    if not candidates:
        result.reason = "no candidate target class"
    elif work.limits_hit:
        result.status = "time_limit"
        result.reason = (f"{result.stage}: {result.reason} ({work.limits_hit} solver call(s) "
                         "stopped by a time limit)").lstrip(": ")
    elif work.errors:
        result.status = "error"
    return result


def _accepter(net):
    def accept(result: AttackResult, x_adv: np.ndarray, target_class) -> None:
        result.success, result.x_adv = True, x_adv
        result.target_class = target_class
        result.adv_label = int(np.argmax(net(x_adv)))
        result.failed("done", "validated", "")
    return accept
