"""Adversarial inputs for one image: the paper's divide and conquer, and two alternatives.

* ``dnc`` (Algorithm 1): findFirstLayerMod patches the middle edge-layer, cuts the network
  there and recurses on the lower half with the relaxed neuron targets, until edge-layer 1 is
  patched; mod2adv then finds an input change that makes the ORIGINAL first edge-layer reach
  the patched first layer's values.
* ``direct``: one MILP from the input through the phase-fixed (linearized) network,
  re-linearized at each rejected candidate for a few rounds.
* ``exact``: one MILP with free ReLU phases (big-M with budget-aware interval bounds): the
  true minimum number of changed inputs, or a proof that none exists within the budget.

Every candidate counts only after the ORIGINAL network, re-simulated in float64 on the final
input (clipped to the domain), misclassifies it within the L-inf and pixel budgets.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np

from backends.base import Status
from compiler.passes import PassOptions
from compiler.analysis import bounds
from compiler.queries import input_query, marks_for
from compiler.analysis.knapsack import stronger_changes
from compiler.analysis.pullback import pull_back
from compiler.targets import NeuronTargets, Target
from ir.property import DEFAULT_MARGIN, ArgmaxIsNot, Conjunction, targeted_candidates
from netpatch.patching import patch_layer
from netpatch.solving import solve_query

STRATEGIES = ("dnc", "direct", "exact")


@dataclass(frozen=True)
class AttackConfig:
    linf: float = 1.0
    max_pixels: int | None = None
    strategy: str = "dnc"
    backend: str = "highs"
    time_limit: float | None = None      # per solver call
    margin: float = DEFAULT_MARGIN
    max_targets: int | None = None       # candidate classes tried (None: all)
    relinearize: int = 3                 # extra rounds for `direct`
    patch_objective: str = "linf"        # dnc patches (with point targets l1 moves fewer neurons)
    free_patched_phases: bool = False    # dnc patches may switch the patched layer's ReLUs
    inner_targets: str = "pullback"      # dnc: "pullback" or "points" (the paper's reading)
    cuts: str = "all"                    # dnc: "halving" (the paper) or "all" (see cut_schedules)
    recovery: str = "sort"               # one linear inequality: "sort" (closed form) or "milp"
    push: bool = True                    # sort: also try stronger changes along the direction
    escalate: bool = True                # dnc: then L1 patches, then free patched phases
    shrink: bool = True                  # dnc/direct: reset changed inputs that are not needed
    passes: PassOptions = PassOptions()


@dataclass
class AttackResult:
    success: bool
    label: int
    adv_label: int | None = None
    target_class: int | None = None
    x_adv: np.ndarray | None = None
    status: str = ""
    reason: str = ""
    stage: str = ""
    times: dict = field(default_factory=lambda: {"compile_s": 0.0, "solve_s": 0.0})
    tried: int = 0
    tier: str = ""          # dnc: the patch mode that succeeded (see ``escalation``)

    def metrics(self, x: np.ndarray) -> dict:
        if self.x_adv is None:
            return {"pixels": None, "l2": None, "linf": None}
        delta = self.x_adv - x
        return {"pixels": int(np.count_nonzero(delta)), "l2": float(np.linalg.norm(delta)),
                "linf": float(np.max(np.abs(delta), initial=0.0))}


class StageFailure(Exception):
    def __init__(self, stage: str, status: str, reason: str):
        self.stage, self.status, self.reason = stage, status, reason
        super().__init__(f"{stage}: {status}: {reason}")


def attack(net, x: np.ndarray, label: int, config: AttackConfig) -> AttackResult:
    """Try target classes in order of logit gap until one yields a validated input."""
    if config.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {config.strategy!r}; use one of {STRATEGIES}")
    x = np.asarray(x, dtype=np.float64)
    y = net(x)
    result = AttackResult(False, int(label))
    candidates = targeted_candidates(ArgmaxIsNot(int(label), config.margin), y)
    if config.max_targets is not None:
        candidates = candidates[:config.max_targets]
    if config.strategy == "exact":
        return _exact_attack(net, x, label, candidates, config, result)
    solve = {"dnc": _dnc, "direct": _direct}[config.strategy]
    tiers = escalation(config) if config.strategy == "dnc" else [("", config)]
    for tier, tier_config in tiers:
        for target_class, conj in candidates:
            result.tried += 1
            try:
                x_adv = solve(net, x, conj, tier_config, result.times)
            except StageFailure as failure:
                result.stage, result.status, result.reason = (failure.stage, failure.status,
                                                              failure.reason)
                continue
            problem = validate(net, x, x_adv, label, config)
            if problem:
                result.stage, result.status, result.reason = "validation", "rejected", problem
                continue
            if config.shrink:
                x_adv = shrink(net, x, x_adv, conj)
            _accept(net, result, x_adv, target_class)
            result.tier = tier
            return result
    if not candidates:
        result.reason = "no candidate target class"
    return result


def shrink(net, x: np.ndarray, x_adv: np.ndarray, conj: Conjunction) -> np.ndarray:
    """Fewer changed inputs at no risk: put changed inputs back to their original values, one
    at a time, while the ORIGINAL network still meets ``conj``.  Each round re-simulates
    every single reset in one float64 batch and keeps the one that leaves the largest slack.
    """
    x_adv = np.array(x_adv, dtype=np.float64)
    while True:
        changed = np.flatnonzero(x_adv != x)
        if len(changed) == 0:
            return x_adv
        trials = np.repeat(x_adv[None, :], len(changed), axis=0)
        trials[np.arange(len(changed)), changed] = x[changed]
        outputs = np.atleast_2d(net(trials))
        slack = np.array([conj.slack(y) for y in outputs])
        best = int(np.argmax(slack))
        if slack[best] < 0:
            return x_adv
        x_adv = trials[best]


def escalation(config: AttackConfig) -> list[tuple[str, AttackConfig]]:
    """dnc's patch modes, cheapest first: the configured one, then (``escalate``) L1 patches,
    which concentrate the change on fewer neurons, then patches that may switch the patched
    layer's ReLUs (a MILP per patch: slower, and it reaches phases the others cannot)."""
    def name(c: AttackConfig) -> str:
        return c.patch_objective + ("-free" if c.free_patched_phases else "")
    tiers = [config]
    if config.escalate:
        tiers += [replace(config, patch_objective="l1"),
                  replace(config, patch_objective="linf", free_patched_phases=True)]
    out, seen = [], set()
    for tier in tiers:
        if name(tier) not in seen:
            seen.add(name(tier))
            out.append((name(tier), tier))
    return out


def _accept(net, result: AttackResult, x_adv: np.ndarray, target_class) -> None:
    result.success, result.x_adv = True, x_adv
    result.target_class = target_class
    result.adv_label = int(np.argmax(net(x_adv)))
    result.stage, result.status, result.reason = "done", "validated", ""


def _exact_attack(net, x, label, candidates, config: AttackConfig, result: AttackResult):
    """The fewest changed inputs over all target classes, by iterative deepening.

    ``direct`` (cheap) gives an upper bound P; then for K = 1, 2, ... P-1 every target class
    gets one MILP with free ReLU phases and at most K changed inputs (budget-aware bounds make
    small K tight and fast).  The first K with a validated solution is the minimum when every
    target was proved infeasible for K-1.  ``status`` says what was proved:

    * ``optimal``: the count is the minimum;
    * ``infeasible``: no adversarial input exists within the budget (a proof);
    * ``feasible`` / ``time_limit``: some sub-problem hit the limit, so no claim is made.
    """
    limit = config.max_pixels if config.max_pixels is not None else net.n_inputs
    best = _direct_upper_bound(net, x, label, candidates, config, result)
    if best is not None:
        _accept(net, result, best[1], best[0])
        limit = int(np.count_nonzero(best[1] - x)) - 1
    proved = True
    for budget in range(1, limit + 1):
        sub = replace(config, max_pixels=budget)
        for target_class, conj in candidates:
            result.tried += 1
            try:
                x_adv, status = _exact(net, x, conj, sub, result.times)
            except StageFailure as failure:
                if failure.status != Status.INFEASIBLE.value:
                    proved = False
                    result.reason = f"target {target_class}, {budget} inputs: {failure.status}"
                continue
            problem = validate(net, x, x_adv, label, sub)
            if problem:
                proved = False
                result.reason = f"target {target_class}: rejected by validation: {problem}"
                continue
            _accept(net, result, x_adv, target_class)
            return _exact_verdict(result, proved, config)
    return _exact_verdict(result, proved, config)


def _direct_upper_bound(net, x, label, candidates, config, result):
    """The first validated ``direct`` answer over the candidates, as (target, x_adv)."""
    for target_class, conj in candidates:
        try:
            x_adv = _direct(net, x, conj, config, result.times)
        except StageFailure:
            continue
        if not validate(net, x, x_adv, label, config):
            return target_class, x_adv
    return None


def _exact_verdict(result: AttackResult, proved: bool, config: AttackConfig) -> AttackResult:
    result.stage = "done" if result.success else "exact MILP"
    if result.success:
        result.status, result.reason = ("optimal" if proved else "feasible"), ""
    elif proved:
        result.status = "infeasible"
        result.reason = (f"no adversarial input with at most {config.max_pixels} changed "
                         f"inputs within L-inf {config.linf}")
    else:
        result.status = "time_limit"
    return result


def validate(net, x, x_adv, label: int, config: AttackConfig) -> str:
    """Empty when ``x_adv`` is a valid adversarial input, else the reason it is not."""
    if not net.domain.contains(x_adv):
        return "outside the input domain"
    delta = x_adv - x
    if np.max(np.abs(delta), initial=0.0) > config.linf + 1e-12:
        return f"L-inf {np.max(np.abs(delta)):.6g} exceeds {config.linf}"
    pixels = int(np.count_nonzero(delta))
    if config.max_pixels is not None and pixels > config.max_pixels:
        return f"{pixels} pixels changed, budget {config.max_pixels}"
    y = net(x_adv)
    if int(np.argmax(y)) == int(label):
        return "the original network still predicts the label"
    return ""


# ---- strategies ---------------------------------------------------------------------------

INNER_TARGETS = ("points", "pullback")
CUTS = ("halving", "all")
RECOVERY = ("sort", "milp")


def cut_schedules(depth: int, cuts: str = "all") -> list[list[int]]:
    """The edge-layers divide and conquer patches, in order, one list per attempt.

    ``halving`` is the paper's single schedule: ``p = ceil(l / 2)`` down to 1 (``[4, 2, 1]``
    for 7 edge-layers).  ``all`` tries it first, then every other first cut k from
    ``depth - 1`` down to 1, halving below k (``[6, 3, 2, 1]``, ``[5, 3, 2, 1]``, ``[3, 2, 1]``,
    ``[2, 1]``, ``[1]``), and last ``[]``: no patch, the network linearized at the input
    itself.  Each patch linearizes the network at other phases, and the first edge-layer
    target that one schedule cannot reach with the pixel budget another often can.
    """
    if cuts not in CUTS:
        raise ValueError(f"unknown cuts {cuts!r}; use one of {CUTS}")

    def halving_from(k: int) -> list[int]:
        schedule = [k]
        while schedule[-1] > 1:
            schedule.append(math.ceil(schedule[-1] / 2))
        return schedule

    first = halving_from(math.ceil(depth / 2)) if depth > 1 else [1]
    if cuts == "halving":
        return [first]
    others = [halving_from(k) for k in range(depth - 1, 0, -1) if k != first[0]]
    return [first] + others + [[]]


def _dnc(net, x, conj, config: AttackConfig, times: dict) -> np.ndarray:
    """The first schedule whose input meets ``conj`` on the real network (else the last
    candidate, for validation to judge, or the last stage failure)."""
    candidate, failure = None, None
    for schedule in cut_schedules(net.depth, config.cuts):
        try:
            targets = find_first_layer_targets(net, x, conj, config, times, schedule)
            candidate = mod2adv(net, x, targets, config, times,
                                accept=lambda x_adv: conj.holds(net(x_adv)))
        except StageFailure as stage_failure:
            failure = stage_failure
            continue
        if conj.holds(net(candidate)):
            return candidate
    if candidate is None:
        raise failure
    return candidate


def find_first_layer_targets(net, x, conj: Target, config: AttackConfig, times: dict,
                             schedule: list[int] | None = None) -> Target:
    """findFirstLayerMod: patch the middle edge-layer, cut, recurse; return what the first
    neuron layer must reach, for mod2adv.  ``schedule`` (default: halving) names the
    edge-layers to patch, in order (see ``cut_schedules``).

    ``inner_targets="points"`` (the paper): the values the patched run gives neuron layer p,
    relaxed by mark.  ``"pullback"``: the property itself, pulled back to neuron layer p
    through the layers above, linearized at the patched run's phases (a linear condition
    rather than a point; it keeps every neuron free that the property does not need).
    """
    if schedule is None:
        schedule = cut_schedules(net.depth, "halving")[0]
    if not schedule:
        # no patch: the property pulled back through the network linearized at x itself
        return pull_back(net, 1, conj, _phases(net, x))
    current, target = net, conj
    for p in schedule:
        outcome = patch_layer(current, p, x, target, config.backend, config.passes,
                              objective=config.patch_objective, time_limit=config.time_limit,
                              free_patched_phases=config.free_patched_phases, relinearize=0)
        times["compile_s"] += outcome.build_s
        times["solve_s"] += outcome.solve_s
        if outcome.eps is None:
            raise StageFailure(f"patch edge-layer {p}", outcome.status.value, outcome.message)
        # A patch the real tail rejects (outcome.validated False) is still followed: only
        # the final input is judged.
        patched = current.with_patch(p, outcome.eps)
        if config.inner_targets == "pullback":
            inner = pull_back(current, p, target, _phases(patched, x))
        else:
            values = patched.simulate(x).pre[p][0]
            marks = marks_for(current, p, target, x)
            inactive = values <= 0 if current.edge(p).relu else np.zeros(len(values), bool)
            inner = NeuronTargets(values, marks, inactive)
        if p == 1:
            return inner
        current, target = net.prefix(p), inner
    raise ValueError(f"cut schedule {schedule} does not end at edge-layer 1")


def mod2adv(net, x, targets: Target, config: AttackConfig, times: dict,
            accept=None) -> np.ndarray:
    """An input change that makes the original first edge-layer reach ``targets``.

    ``accept`` (closed-form recovery only) judges candidates on the real network: the
    smallest change comes first, then stronger pushes (``compiler.analysis.knapsack.stronger_changes``);
    the first accepted one is returned, else the smallest."""
    first = net.prefix(1)
    if _sortable(targets, config):
        return _sorted_recovery(net, first, x, x, targets, config, times, "input recovery",
                                accept)
    t0 = time.perf_counter()
    problem = input_query(first, x, targets, config.linf, config.max_pixels)
    solved = solve_query(problem, config.backend, config.passes, config.time_limit,
                         query_s=time.perf_counter() - t0)
    times["compile_s"] += solved.compile_s + solved.result.build_s
    times["solve_s"] += solved.result.solve_s
    if solved.x is None:
        raise StageFailure("input recovery", solved.status.value, solved.result.message)
    return _adversarial_input(net, x, solved)


def _sortable(target: Target, config: AttackConfig) -> bool:
    return (config.recovery == "sort" and isinstance(target, Conjunction)
            and len(target.constraints) == 1 and target.constraints[0].sense != "==")


def _sorted_recovery(net, affine, x, point, target: Conjunction, config: AttackConfig,
                     times: dict, stage: str, accept=None) -> np.ndarray:
    """mod2adv (or direct) in closed form: ``affine`` is the network from the input to the
    target's layer, linearized at ``point``'s phases; one inequality on it is a cardinality
    knapsack over the inputs (``compiler.analysis.knapsack``): the fewest changed inputs, exactly."""
    t0 = time.perf_counter()
    (row,) = pull_back(affine, 1, target, _phases(affine, point)).constraints
    w1 = affine.edge(1).linear
    coeffs = np.zeros(w1.n_out)
    for i, c in row.coeffs:
        coeffs[i] = c
    gain = coeffs @ w1.weight
    need = row.rhs - float(coeffs @ (w1.weight @ x + w1.bias))
    if row.sense == "<=":
        gain, need = -gain, -need
    lo, hi = bounds.input_box(x, net.domain.lower, net.domain.upper, config.linf)
    up, down = np.maximum(hi - x, 0.0), np.maximum(x - lo, 0.0)
    first = None
    try:
        for delta in stronger_changes(gain, need, up, down, config.max_pixels):
            candidate = net.domain.clip(x + delta)
            if first is None:
                first = candidate
                if not config.push or accept is None:
                    break
            if accept(candidate):
                return candidate
    finally:
        times["solve_s"] += time.perf_counter() - t0
    if first is None:
        raise StageFailure(stage, Status.INFEASIBLE.value,
                           f"no change of at most {config.max_pixels} inputs within L-inf "
                           f"{config.linf} reaches the target (closed form)")
    return first


def _phases(net, point) -> list[np.ndarray]:
    trace = net.simulate(point)
    return [trace.pre[m][0] > 0 for m in range(1, net.depth + 1)]


def _direct(net, x, conj, config: AttackConfig, times: dict) -> np.ndarray:
    point, last = x, None
    for _ in range(1 + config.relinearize):
        if _sortable(conj, config) and config.passes.phase_fixing == "linearized":
            try:
                last = _sorted_recovery(net, net, x, point, conj, config, times, "direct",
                                        accept=lambda x_adv: conj.holds(net(x_adv)))
            except StageFailure:
                if last is not None:
                    return last
                raise
            if conj.holds(net(last)):
                return last
            point = last
            continue
        t0 = time.perf_counter()
        problem = input_query(net, x, conj, config.linf, config.max_pixels, phase_point=point)
        solved = solve_query(problem, config.backend, config.passes, config.time_limit,
                             query_s=time.perf_counter() - t0)
        times["compile_s"] += solved.compile_s + solved.result.build_s
        times["solve_s"] += solved.result.solve_s
        if solved.x is None:
            if last is not None:
                return last
            raise StageFailure("direct MILP", solved.status.value, solved.result.message)
        last = _adversarial_input(net, x, solved)
        if conj.holds(net(last)):
            return last
        point = last
    return last


def _exact(net, x, conj, config: AttackConfig, times: dict):
    t0 = time.perf_counter()
    problem = input_query(net, x, conj, config.linf, config.max_pixels, objective="l1")
    options = PassOptions(phase_fixing=None, sign_pruning=False,
                          relaxation=config.passes.relaxation)
    solved = solve_query(problem, config.backend, options, config.time_limit,
                         query_s=time.perf_counter() - t0)
    times["compile_s"] += solved.compile_s + solved.result.build_s
    times["solve_s"] += solved.result.solve_s
    if solved.x is None:
        raise StageFailure("exact MILP", solved.status.value, solved.result.message)
    return _adversarial_input(net, x, solved), solved.status


def _adversarial_input(net, x, solved) -> np.ndarray:
    """``x + delta`` with unchanged inputs exactly unchanged, clipped to the domain."""
    delta = solved.signed("delta")
    delta[solved.values("changed") < 0.5] = 0.0
    return net.domain.clip(x + delta)
