"""The verification question of VNN-LIB: is there an input in a box whose outputs meet a
property?  ``verify`` answers ``sat`` (with a counterexample), ``unsat``, ``timeout`` or
``unknown``, and says only what it proved:

* ``sat`` only after a float64 re-simulation of the network on X confirms the property, with
  X inside the box exactly (no tolerance outside it);
* ``unsat`` only when, for every (input box, output conjunction) pair of the property, sound
  bounds over the box (or over every part of it: input or ReLU splitting) or the
  exact MILP (every ReLU and max-pool phase free; big-M constants from sound bounds) finished
  and bounded the best margin below ``-PROOF_TOLERANCE``: no input of the box meets the
  conjunction, up to the solver's feasibility tolerance (HiGHS: 1e-7) and float64 rounding
  of the bounds;
* ``timeout`` when the time ran out first; ``unknown`` when the search ended undecided (a
  margin within the tolerance, or only heuristics were asked for).

Strategies: ``direct`` (projected gradient ascent on the property's slack, 20 steps and at
most 1 s, then 100 steps in a quarter of the timeout and at most 10 s; samples, then the
network's linear model at the best point, re-linearized at each candidate), ``dnc`` (divide
and conquer on one-inequality conjunctions), ``exact`` (the margins bounded over the box;
branch and bound on the input box when at most 16 inputs vary, ``attacks.input_split``,
else on ReLU phases, ``attacks.relu_split``; then the MILP), ``auto`` (the short ascent, the
margin bounds, the rest of direct and dnc on the pairs they leave open, then as ``exact``).
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from attacks.config import AttackConfig
from attacks.input_split import MAX_FREE_INPUTS, spec_network, split_search
from attacks.pgd import pgd
from attacks.relu_split import relu_split_search
from attacks.result import StageFailure
from attacks.solving import solve_query
from attacks.work import Work, tell
from backends.base import Status
from compiler.analysis.bounds import layer_bounds
from compiler.analysis.input_sets import Box
from compiler.passes import PassOptions
from compiler.queries.box import box_bounds, box_query, linearized_query
from ir.network import Domain
from ir.property import Conjunction

RESULTS = ("sat", "unsat", "timeout", "unknown", "error")
STRATEGIES = ("auto", "direct", "dnc", "exact")
PROOF_TOLERANCE = 1e-6
CONFIRM_MARGIN = 1e-4     # asked of a second solve when the first answer fails in float64
MAX_FREE_PHASES = 5000    # undecided ReLUs and max-pool windows beyond which no MILP is tried
SAMPLES = 256
ROUNDS = 8
SPLIT_SHARE = 0.75          # input splitting's share of the time left (boxes of <= 16 inputs)
QUICK_STEPS, QUICK_SECONDS = 20, 1.0  # auto, direct: a short gradient ascent before the bounds
PGD_STEPS = 100
PGD_SHARE, PGD_SECONDS = 0.25, 10.0  # then the long one's share of the timeout (at most 10 s)
DNC_SHARE, DNC_SECONDS = 0.1, 0.5   # auto: dnc's share of the timeout (at most 0.5 s), all pairs
EXACT_PASSES = PassOptions(phase_fixing=None, drop_inert=False, sign_pruning=False,
                           relaxation=False)


@dataclass
class Verdict:
    result: str
    x: np.ndarray | None = None
    y: np.ndarray | None = None
    seconds: float = 0.0
    stage: str = ""
    reason: str = ""


class _Clock:
    def __init__(self, timeout: float | None):
        self.deadline = None if timeout is None else time.perf_counter() + timeout

    def left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.perf_counter()

    def out(self) -> bool:
        return self.deadline is not None and time.perf_counter() >= self.deadline


def verify(net, spec, timeout: float | None = None, strategy: str = "auto",
           backend: str = "highs", bounds: str = "symbolic", seed: int = 0) -> Verdict:
    """Decide ``spec`` (``ir.vnnlib.VnnlibSpec``) on ``net`` within ``timeout`` seconds."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; use one of {STRATEGIES}")
    t0 = time.perf_counter()
    clock = _Clock(timeout)
    pairs = [(case, conj) for case in spec.cases for conj in case.output]
    verdict = _decide(net, pairs, clock, strategy, backend, bounds, seed)
    verdict.seconds = time.perf_counter() - t0
    return verdict


def _decide(net, pairs, clock: _Clock, strategy, backend, bounds, seed) -> Verdict:
    if not pairs:
        return Verdict("unsat", stage="property", reason="no input box is non-empty")
    rng = np.random.default_rng(seed)
    hidden = {}      # per input box: its hidden layers' bounds, computed once (the margin bounds)
    everything = [(i, case, conj) for i, (case, conj) in enumerate(pairs)]
    if strategy in ("auto", "direct"):           # a short ascent first: most sat ends here
        tell("falsification (gradient ascent)")
        found = _ascend(net, everything, clock, rng, QUICK_STEPS, QUICK_SECONDS)
        if found is not None:
            return _sat(net, found, "falsification (gradient ascent)")
    if strategy in ("auto", "exact"):
        open_pairs = []       # per box, in one pass: the margin bounds of its conjunctions
        tell(f"margin bounds ({bounds})")
        for case, mine in _by_box(everything):
            margins, hidden[id(case)] = margin_upper_bounds(
                net, case.lower, case.upper, [conj for _, _, conj in mine], bounds, clock)
            open_pairs += [pair for pair, margin in zip(mine, margins)
                           if not np.any(margin < -PROOF_TOLERANCE)]
        if not open_pairs:
            return Verdict("unsat", stage="margin bounds",
                           reason=f"{len(pairs)} box/conjunction pair(s) proved by {bounds} "
                                  f"bounds")
    else:
        open_pairs = everything
    if strategy in ("auto", "direct"):
        left = clock.left()
        budget = PGD_SECONDS if left is None else min(PGD_SECONDS, PGD_SHARE * left)
        tell("falsification (gradient ascent)")
        found = _ascend(net, open_pairs, clock, rng, PGD_STEPS, budget)
        if found is not None:
            return _sat(net, found, "falsification (gradient ascent)")
        tell("falsification (samples, the linearized network)")
        for _, case, conj in open_pairs:
            found = falsify(net, case.lower, case.upper, conj, clock, backend, rng)
            if found is not None:
                return _sat(net, found, "falsification")
            if clock.out():
                return Verdict("timeout", stage="falsification")
    if strategy in ("auto", "dnc"):
        single = [(case, conj) for _, case, conj in open_pairs if len(conj.constraints) == 1]
        left = clock.left()
        total = left if strategy == "dnc" else min(DNC_SECONDS, DNC_SHARE * (left or 1e9))
        tell("falsification (divide and conquer)")
        for case, conj in single:
            budget = None if total is None else total / len(single)
            found = _dnc(net, case.lower, case.upper, conj, clock, backend, budget)
            if found is not None:
                return _sat(net, found, "divide and conquer")
            if clock.out():
                return Verdict("timeout", stage="falsification")
    if strategy not in ("auto", "exact"):
        return Verdict("unknown", stage="falsification",
                       reason=f"{strategy} found no counterexample (a heuristic proves nothing)")
    split_notes = []
    for stage, search, unit, source in _splitters(bounds, hidden):
        found, open_pairs, count, notes = _split(net, open_pairs, clock, stage, search, unit)
        split_notes += notes
        if found is not None:
            return _sat(net, found, stage)
        if not open_pairs:
            return Verdict("unsat", stage=stage, reason=f"{len(pairs)} box/conjunction pair(s) "
                                                        f"proved ({count} {unit} {source})")
    undecided, cache = [], {}
    for n, (_, case, conj) in enumerate(open_pairs):
        tell(f"exact MILP, box/conjunction pair {n + 1} of {len(open_pairs)}")
        outcome = exact(net, case.lower, case.upper, conj, clock, backend, bounds, cache,
                        hidden.get(id(case)))
        if isinstance(outcome, np.ndarray):
            return _sat(net, outcome, "exact MILP")
        if outcome != "proved":
            undecided.append(outcome)
    if not undecided:
        return Verdict("unsat", stage="exact MILP",
                       reason=f"{len(pairs)} box/conjunction pair(s) proved")
    reason = "; ".join(filter(None, (_undecided(split_notes, len(pairs)),
                                     "exact MILP: " + _undecided(undecided, len(pairs)))))
    if clock.out() or "timeout" in undecided:
        return Verdict("timeout", stage="exact MILP", reason=reason)
    return Verdict("unknown", stage="exact MILP", reason=reason)


def _undecided(reasons: list[str], total: int) -> str:
    """Why pairs stayed open, each reason once with how many pairs it covers."""
    counts = Counter(reasons)
    return "; ".join(f"{why} ({n} of {total} box/conjunction pairs)" for why, n in counts.items())


def _by_box(open_pairs) -> list[tuple]:
    """``(case, its pairs)`` per input box, in the order the boxes first appear."""
    groups: dict[int, tuple] = {}
    for pair in open_pairs:
        groups.setdefault(id(pair[1]), (pair[1], []))[1].append(pair)
    return list(groups.values())


def _ascend(net, open_pairs, clock: _Clock, rng, steps: int, seconds: float):
    """Gradient ascent (``attacks.pgd``) on every box's open conjunctions, ``seconds`` shared
    by the boxes: a confirmed counterexample, or None."""
    groups = _by_box(open_pairs)
    for case, mine in groups:
        conjunctions = [conj for _, _, conj in mine]
        left = clock.left()
        share = seconds / len(groups) if left is None else min(seconds / len(groups), left)
        found = pgd(net, case.lower, case.upper, conjunctions, rng,
                    time.perf_counter() + share, steps=steps)
        if found is not None and confirms(net, case.lower, case.upper,
                                          conjunctions[found[1]], found[0]):
            return found[0]
    return None


def _splitters(bounds: str, hidden: dict):
    """The branch and bound stages, in order: ``(stage, search, what its count counts, where
    their bounds come from)``.
    Each search takes ``(net, case, conjunctions, deadline)`` and returns
    ``("proved" | "sat" | why undecided, count or counterexample)``, or None when the box is
    not its kind (input splitting: more than ``MAX_FREE_INPUTS`` inputs vary).  ReLU splitting
    starts from the box's ``hidden`` bounds when they were computed."""
    def inputs(net, case, conjunctions, deadline):
        if int(np.sum(case.upper > case.lower)) > MAX_FREE_INPUTS:
            return None
        return split_search(net, case.lower, case.upper, conjunctions, deadline,
                            PROOF_TOLERANCE, bounds)

    def relus(net, case, conjunctions, deadline):
        return relu_split_search(net, case.lower, case.upper, conjunctions, deadline,
                                 PROOF_TOLERANCE, "lp", MAX_FREE_PHASES, hidden.get(id(case)))

    return (("input splitting", inputs, "boxes", f"bounded by {bounds} bounds"),
            ("ReLU splitting", relus, "domains", "bounded from LP bounds"))


def _split(net, open_pairs, clock: _Clock, stage: str, search, unit: str):
    """One branch and bound stage on every open box it applies to, each in ``SPLIT_SHARE`` of
    the time left (the MILP gets the rest): ``(confirmed counterexample or None, the pairs
    still open, boxes or domains bounded, why each pair it tried stayed open)``."""
    still_open, total, notes = [], 0, []
    tell(stage)
    for case, mine in _by_box(open_pairs):
        left = clock.left()
        deadline = None if left is None else time.perf_counter() + SPLIT_SHARE * left
        answer = search(net, case, [conj for _, _, conj in mine], deadline)
        if answer is None:
            still_open += mine
            continue
        outcome, found = answer
        if outcome == "sat":
            if confirms(net, case.lower, case.upper, _met(net, found, mine), found):
                return found, [], total, []
            still_open += mine
            notes += [f"{stage}: a counterexample float64 does not confirm"] * len(mine)
            continue
        total += found
        if outcome != "proved":
            still_open += mine
            after = f" after {found} {unit}" if found else ""
            notes += [f"{stage}: {outcome}{after}"] * len(mine)
    return None, still_open, total, notes


def _met(net, x, pairs) -> Conjunction:
    """The first conjunction of ``pairs`` the network meets at x (the last if none)."""
    y = net(x)
    return next((conj for _, _, conj in pairs if conj.holds(y)), pairs[-1][2])


def _sat(net, x: np.ndarray, stage: str) -> Verdict:
    return Verdict("sat", x=x, y=net(x), stage=stage)


def confirms(net, lower, upper, conj: Conjunction, x: np.ndarray) -> bool:
    """X inside the box exactly, and the property on float64 outputs (non-strict, as
    VNN-LIB's <= and >=)."""
    return bool(np.all(x >= lower) and np.all(x <= upper) and conj.holds(net(x)))


def falsify(net, lower, upper, conj: Conjunction, clock: _Clock, backend: str,
            rng: np.random.Generator) -> np.ndarray | None:
    """A confirmed counterexample in the box from samples and the linearized ascent, or
    None."""
    points = _samples(lower, upper, rng)
    outputs = np.atleast_2d(net(points))
    slack = np.array([conj.slack(y) for y in outputs])
    best = int(np.argmax(slack))
    if slack[best] >= 0 and confirms(net, lower, upper, conj, points[best]):
        return points[best]
    return _linearized_ascent(net, lower, upper, conj, points[best], clock, backend)


def _samples(lower, upper, rng) -> np.ndarray:
    """The centre, the corners (up to 10 inputs), and uniform samples of the box."""
    n = len(lower)
    points = [(lower + upper) / 2]
    if n <= 10:
        corners = np.array(np.meshgrid(*[[0, 1]] * n)).reshape(n, -1).T
        points += list(lower + corners * (upper - lower))
    points += list(lower + rng.uniform(size=(SAMPLES, n)) * (upper - lower))
    return np.array(points)


def _linearized_ascent(net, lower, upper, conj, point, clock: _Clock, backend: str):
    """Solve the linear model at ``point`` for the largest margin, then judge points on the
    segment towards its answer on the real network; move to the best, a few rounds."""
    for _ in range(ROUNDS):
        if clock.out():
            return None
        problem, decoder = linearized_query(net, point, lower, upper, conj)
        solved = solve_query(problem, backend, PassOptions(), clock.left())
        if solved.x is None:
            return None
        target = np.clip(decoder.decode(solved.x), lower, upper)
        steps = np.array([1.0, 0.5, 0.25, 0.1, 0.02])[:, None]
        trials = point + steps * (target - point)
        slack = np.array([conj.slack(y) for y in np.atleast_2d(net(trials))])
        best = int(np.argmax(slack))
        if slack[best] >= 0 and confirms(net, lower, upper, conj, trials[best]):
            return trials[best]
        if np.allclose(trials[best], point):
            return None
        point = trials[best]
    return None


def _dnc(net, lower, upper, conj, clock: _Clock, backend: str, budget: float | None):
    """Divide and conquer from the box centre, the box as the domain, for ``budget`` s."""
    from attacks.dnc import dnc_search
    centre = (lower + upper) / 2
    boxed = net.with_domain(Domain(lower, upper))
    config = AttackConfig(linf=float(np.max(upper - lower)) or 1.0, backend=backend)
    work = Work(None, budget)
    try:
        for _, _, _, answer in dnc_search(boxed, centre, [(None, conj)], config, work):
            if isinstance(answer, np.ndarray) and confirms(net, lower, upper, conj, answer):
                return answer
            if clock.out():
                return None
    except StageFailure:
        return None
    return None


def margin_upper_bounds(net, lower, upper, conjunctions, bounds: str, clock: _Clock):
    """The cheap proof first: every constraint margin of the conjunctions as one more linear
    layer on the network (``attacks.input_split.spec_network``), bounded over the box in one
    pass (symbolic bounds back-substitute through it, so each bound is of the margin itself,
    not of the outputs one by one).  Per conjunction, the upper bounds of its margins (one
    below ``-PROOF_TOLERANCE`` can never be met); and the bounds of the hidden layers (every
    edge-layer but the last, the same for any conjunction), or None."""
    if not any(conj.constraints for conj in conjunctions):
        return [np.zeros(0) for _ in conjunctions], None
    spec, owner = spec_network(net, conjunctions)
    left = clock.left()
    analysis = layer_bounds(spec, Box(lower, upper), bounds,
                            time_budget=None if left is None else left / 4)
    upper_bounds = analysis.upper[spec.depth]
    # Interval bounds are not worth keeping: the symbolic ones later stages compute are
    # tighter, and cost little more.
    hidden = None if bounds == "interval" else tuple(
        {k: side[k] for k in range(1, spec.depth)} for side in (analysis.lower, analysis.upper))
    return [upper_bounds[owner == position] for position in range(len(conjunctions))], hidden


def exact(net, lower, upper, conj: Conjunction, clock: _Clock, backend: str, bounds: str,
          cache: dict | None = None, hidden: tuple[dict, dict] | None = None):
    """A confirmed counterexample, "proved" (none exists), or why it is undecided, for a
    pair the margin bounds left open.

    The feasibility question "margin >= -PROOF_TOLERANCE": infeasible proves that no
    input of the box meets the conjunction.  A solution that the float64 re-simulation does
    not confirm (it meets the margin only within the solver's tolerance) is asked again
    with the margin ``CONFIRM_MARGIN``; if that is infeasible the pair stays undecided.
    ``hidden``: bounds of the hidden layers over the box already computed, to start from."""
    left = clock.left()
    analysis = box_bounds(net, lower, upper, bounds, None if left is None else left / 4, cache,
                          hidden)
    free = sum(analysis.unstable.values()) + sum(analysis.undecided.values())
    if free > MAX_FREE_PHASES:
        return (f"too large for the exact MILP: {free} phases undecided by {bounds} bounds "
                f"(the limit is {MAX_FREE_PHASES})")
    for floor in (-PROOF_TOLERANCE, CONFIRM_MARGIN):
        if clock.out():
            return "timeout"
        left = clock.left()
        problem, decoder = box_query(net, lower, upper, conj, bounds,
                                     None if left is None else left / 4, floor, cache)
        solved = solve_query(problem, backend, EXACT_PASSES, clock.left())
        if solved.x is not None:
            candidate = np.clip(decoder.decode(solved.x), lower, upper)
            if confirms(net, lower, upper, conj, candidate):
                return candidate
            continue
        if solved.status == Status.INFEASIBLE:
            return "proved" if floor < 0 else \
                f"a margin within {CONFIRM_MARGIN:g} that float64 does not confirm"
        if solved.status == Status.TIME_LIMIT:
            return "timeout"
        return f"exact MILP {solved.status.value}: {solved.result.message}"
    return "the MILP's solutions do not hold in float64"
