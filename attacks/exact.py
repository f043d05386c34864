"""``exact``: the true minimum number of changed inputs over all target classes, by MILPs
with free ReLU phases (big-M with budget-aware bounds), or a proof that none exists."""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from attacks.config import AttackConfig
from attacks.direct import direct
from attacks.dnc import dnc_search
from attacks.input_split import spec_network, split_many, split_search, weakest_margins
from attacks.recovery import adversarial_input
from attacks.result import AttackResult, StageFailure
from attacks.shrink import shrink
from attacks.solving import solve_for
from attacks.validate import count_pixels, validate
from attacks.work import Work, paced
from attacks.verify import PROOF_TOLERANCE
from backends.base import Status
from compiler.analysis.bounds import input_box, layer_bounds
from compiler.analysis.forward_symbolic import batch_size, set_bounds
from compiler.analysis.input_sets import SparseBox
from compiler.passes import PassOptions
from compiler.queries import input_query


MAX_PIXEL_SETS = 5_000    # pixel sets of one level searched in full (6x50: 6 ms per set)
MILP_SHARE = 0.25         # of the time left, at most, for one pixel budget's MILPs
PARTIAL_PIXEL_SETS = 1_000  # past MAX, the best ones searched for a counterexample only
MAX_BOXED_SETS = 500_000  # sets of the last level, bounded in batches (6x50: 0.05 ms per set)
MAX_LEFT_PIECES = 20_000  # pieces left by batched splitting that one-box splitting may take
                          # (6x50: about 3 ms each); past it the MILPs take over
SIBLING_RUN = 8           # siblings ruled out in a row, after which the rest are bounded as one


def exact_attack(net, x, label, candidates, config: AttackConfig, result: AttackResult,
                 work: Work, accept) -> AttackResult:
    """Iterative deepening: the fewest pixels of ``direct``'s and ``dnc``'s answers (cheap)
    give an upper bound P; then for K = 1, 2, ...
    P-1, bounds over every change of at most K inputs rule out the target classes they can
    (a proof, with no MILP); then the search over sets of K pixels (``_pixel_sets``) decides
    K when few sets survive their bounds; every target class still open gets one MILP with
    free ReLU phases and at most K changed inputs (budget-aware bounds make small K tight
    and fast), all of them within ``MILP_SHARE`` of the attack's time left, so that a
    network whose MILPs do not finish still gets the searches of larger K.  The first K with
    a validated solution is the minimum when every target was proved infeasible for K-1.
    ``status`` says what was proved:

    * ``optimal``: the count is the minimum;
    * ``infeasible``: no adversarial input exists within the budget (a proof);
    * ``feasible`` / ``time_limit``: some sub-problem hit the limit, so no claim is made.

    ``accept(result, x_adv, target_class)`` records a validated answer.
    """
    limit = config.max_pixels if config.max_pixels is not None else net.n_inputs
    best = _upper_bound(net, x, label, candidates, config, work)
    if best is not None:
        accept(result, best[1], best[0])
        limit = count_pixels(net, best[1] - x) - 1
    free = _free_phases(net, x, config, limit)
    if free > config.exact.max_free:
        reason = (f"too large for the exact MILP: with {limit} changed pixels, {free} ReLU or "
                  f"max-pool phases stay undecided by {config.exact.bounds} bounds (the limit "
                  f"is {config.exact.max_free}); use dnc or direct")
        # direct's answer (if any) stands, but nothing is proved about it
        result.failed("exact MILP", "feasible" if result.success else "error", reason)
        return result
    proved, cache = True, {}       # bounds per pixel budget, shared by the target classes
    for budget in range(1, limit + 1):
        work.stage(f"exact: margin bounds, {budget} inputs")
        try:
            refuted = _refuted_by_bounds(net, x, candidates, config, budget, work)
            if not refuted.all():
                work.stage(f"exact: sets of {budget} pixels")
                refuted, found = _pixel_sets(net, x, candidates, refuted, budget, config, work)
                if found is not None and not validate(net, x, found[1], label, config.linf,
                                                      budget):
                    accept(result, found[1], found[0])
                    return _verdict(result, proved, config)
        except StageFailure:       # the attack's budget is spent
            return _verdict(result, False, config)
        with work.share(MILP_SHARE):
            for (target_class, conj), ruled_out in zip(candidates, refuted):
                if ruled_out:      # no input of the budget meets it: proved without a MILP
                    continue
                result.tried += 1
                work.stage(f"exact MILP, {budget} inputs, target class {target_class}")
                try:
                    x_adv = _exact_milp(net, x, conj, replace(config, max_pixels=budget),
                                        work, cache)
                except StageFailure as failure:
                    if failure.status != Status.INFEASIBLE.value:
                        proved = False
                        result.reason = (f"target {target_class}, {budget} inputs: "
                                         f"{failure.status}")
                        if failure.stage == "budget":
                            return _verdict(result, False, config)
                    continue
                problem = validate(net, x, x_adv, label, config.linf, budget)
                if problem:
                    proved = False
                    result.reason = f"target {target_class}: rejected by validation: {problem}"
                    continue
                accept(result, x_adv, target_class)
                return _verdict(result, proved, config)
    return _verdict(result, proved, config)


def _free_phases(net, x, config: AttackConfig, pixels: int) -> int:
    """ReLUs and max-pool windows the bounds leave undecided over the changes of at most
    ``pixels`` pixels: the binaries of the largest MILP of the deepening."""
    lo, hi = input_box(x, net.domain.lower, net.domain.upper, config.linf)
    per_pixel = _pixels(net)[1]
    analysis = layer_bounds(net, SparseBox(x, lo, hi, min(pixels * per_pixel, net.n_inputs)),
                            "interval" if config.exact.bounds == "lp" else config.exact.bounds)
    return sum(analysis.unstable.values()) + sum(analysis.undecided.values())


def _pixels(net) -> tuple[np.ndarray, int]:
    """Each input value's pixel (``Network.pixel_groups``, or the value itself) and the
    most values one pixel holds."""
    groups = net.pixel_groups()
    if groups is None:
        return np.arange(net.n_inputs), 1
    return groups, int(np.bincount(groups).max())


def _refuted_by_bounds(net, x, candidates, config: AttackConfig, budget: int,
                       work: Work) -> np.ndarray:
    """Per candidate, whether sound bounds over every change of at most ``budget`` pixels
    keep one of its margins below ``-PROOF_TOLERANCE`` (no such change meets it): symbolic
    bounds of all the margins at once, then, when some candidate stays open and the MILPs'
    bounds are ``lp``, LP bounds (at most ``bounds_seconds``).  On the 6x50 MNIST network
    symbolic bounds rule out every target for 1 and 2 pixels on most images in 0.01 s, where
    one budget-1 MILP took 25 to 47 s."""
    spec, owner = spec_network(net, [conj for _, conj in candidates])
    lo, hi = input_box(x, net.domain.lower, net.domain.upper, config.linf)
    per_pixel = _pixels(net)[1]
    changes = SparseBox(x, lo, hi, min(budget * per_pixel, net.n_inputs))
    refuted = np.zeros(len(candidates), bool)
    for method in [m for m in dict.fromkeys(("symbolic", config.exact.bounds))
                   if m != "interval"]:
        if refuted.all():
            break
        left = work.time_limit()
        seconds = config.exact.bounds_seconds
        if left is not None:
            seconds = left if seconds is None else min(seconds, left)
        margins = layer_bounds(spec, changes, method, time_budget=seconds).upper[spec.depth]
        np.logical_or.at(refuted, owner, margins < -PROOF_TOLERANCE)
    return refuted


def _pixel_sets(net, x, candidates, refuted: np.ndarray, budget: int, config: AttackConfig,
                work: Work):
    """Changes of at most ``budget`` pixels decided without a MILP, when few sets of pixels
    survive their bounds: a set-enumeration tree over the pixels ranked strongest first
    (``_strongest_first``).  Level j = 1 .. budget-1 bounds sets T of j pixels: symbolic
    bounds over the changes of T's pixels (a box) and of at most budget-j pixels ranked
    after T's last one (``_RankedPixels.node``: the pixels ranked before it held at x); T
    survives while one open target's margins are not all kept below 0, and its children add
    one pixel ranked after its last.  A change of a set A of at most ``budget`` pixels lies
    in the set of every prefix of A (A in rank order), so A is reached through its prefixes:
    at level ``budget``, or, when nothing is ranked after A's last pixel, as a leaf of its
    own size; there each set's box is decided by ``_boxed_sets``.  Holding the earlier
    pixels at x is what prunes: on the 6x50 MNIST network, 2 pixels, 84 of 784 one-pixel
    sets survive on one image where every one did with any others.  After ``SIBLING_RUN``
    children of one prefix are ruled out in a row, the ones still to come are bounded as one
    set (``_RankedPixels.later_siblings``) and skipped when it is ruled out.

    When a level below the last would hold more than ``MAX_PIXEL_SETS`` sets (the last: more
    than ``MAX_BOXED_SETS``), the search starts again from one pixel, for a counterexample
    only (no proof then): each set bounded with its others anywhere
    (``_RankedPixels.anywhere``), each level the sets all of whose subsets survived
    (``_joins``), the best-bounded ``PARTIAL_PIXEL_SETS`` of them (at the last level
    ``MAX_BOXED_SETS``).

    ``(refuted, (target, x) or None)``: every target ruled out when every set was decided
    without a counterexample; ``refuted`` as it was when the search was cut or the time ran
    out (the MILPs take over)."""
    lo, hi = input_box(x, net.domain.lower, net.domain.upper, config.linf)
    pixel, per_pixel = _pixels(net)
    open_ = [c for c, out in zip(candidates, refuted) if not out]
    if not open_:
        return refuted, None
    spec, owner = spec_network(net, [conj for _, conj in open_])
    left = work.time_limit()
    deadline = None if left is None else time.perf_counter() + left
    say = paced()
    coordinates = [np.flatnonzero(pixel == p) for p in np.unique(pixel[hi > lo])]
    order = _strongest_first((spec, owner), x, lo, hi, coordinates)
    ranked = _RankedPixels(x, lo, hi, [coordinates[p] for p in order], per_pixel)
    level, leaves, whole = [(r,) for r in range(ranked.count)], [], True

    def weakest(changes) -> float:
        """The highest weakest open margin's bound over ``changes`` (a ``SparseBox``)."""
        margins = layer_bounds(spec, changes, "symbolic").upper[spec.depth]
        return float(weakest_margins(margins[None], owner, len(open_))[0].max())

    last = min(budget, ranked.count)      # with fewer pixels than that: all of them
    size = 1
    while size < last:
        if not whole and len(level) > MAX_PIXEL_SETS:
            level = level[:PARTIAL_PIXEL_SETS]
        survivors = {}          # pixel set -> its weakest open margin's bound
        closed, runs = set(), {}   # closed: prefixes whose later children are ruled out
        for done, chosen in enumerate(level):
            say(lambda: f"exact: sets of {size} of {budget} pixels, {done} of {len(level)} "
                        f"bounded, {len(survivors)} left")
            if deadline is not None and time.perf_counter() >= deadline:
                return refuted, None
            prefix = chosen[:-1]
            if prefix in closed:
                continue
            bound = weakest(ranked.node(chosen, budget - size) if whole else
                            ranked.anywhere(chosen, budget - size))
            if bound >= -PROOF_TOLERANCE:
                survivors[chosen], runs[prefix] = bound, 0
                continue
            runs[prefix] = runs.get(prefix, 0) + 1
            # a prefix's children come in rank order: those still to come, bounded as one
            if whole and runs[prefix] % SIBLING_RUN == 0 and \
                    weakest(ranked.later_siblings(chosen, budget - size)) < -PROOF_TOLERANCE:
                closed.add(prefix)
        size += 1
        if not whole:
            level = _joins(survivors)
            continue
        level, childless = _children(survivors, ranked.count)
        leaves += childless
        if len(level) + len(leaves) > (MAX_PIXEL_SETS if size < last else MAX_BOXED_SETS):
            # too many for a proof: start again, for a counterexample only
            level, leaves, whole, size = [(r,) for r in range(ranked.count)], [], False, 1
    if not whole:
        level = level[:MAX_BOXED_SETS]
    outcome = _boxed_sets(net, x, lo, hi, [ranked.inputs(chosen) for chosen in leaves + level],
                          open_, (spec, owner), deadline, say)
    if outcome is None:
        return refuted, None
    if outcome is True:
        return (np.ones_like(refuted) if whole else refuted), None
    return refuted, outcome


@dataclass(frozen=True, eq=False)
class _RankedPixels:
    """The pixels that can change, in rank order (``coordinates[r]``: the inputs of the
    pixel of rank r), and the sets of the tree over them."""

    x: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    coordinates: list
    per_pixel: int

    @property
    def count(self) -> int:
        return len(self.coordinates)

    @cached_property
    def _ends(self) -> tuple[np.ndarray, np.ndarray]:
        """Every pixel's inputs in rank order, and where each pixel's end there."""
        return (np.concatenate(self.coordinates),
                np.cumsum([len(c) for c in self.coordinates]))

    def inputs(self, chosen: tuple, first: int | None = None) -> np.ndarray:
        """The inputs of the pixels ``chosen`` (ranks), and of every pixel of rank ``first``
        or more."""
        inside = [self.coordinates[r] for r in chosen]
        if first is not None:
            flat, ends = self._ends
            inside.append(flat[ends[first - 1] if first > 0 else 0:])
        return np.concatenate(inside) if inside else np.zeros(0, np.int64)

    def _changes(self, chosen: tuple, first: int, others: int):
        inside = self.inputs(chosen)
        moved = self.inputs(chosen, first)
        low, high = self.x.copy(), self.x.copy()
        low[moved], high[moved] = self.lo[moved], self.hi[moved]
        return SparseBox(self.x, low, high, min(others * self.per_pixel, self.x.size),
                         free=inside)

    def node(self, chosen: tuple, others: int):
        """The changes of the tree's node ``chosen``: its pixels (a box) and at most
        ``others`` pixels ranked after its last (``SparseBox``)."""
        return self._changes(chosen, chosen[-1] + 1, others)

    def anywhere(self, chosen: tuple, others: int):
        """The changes of ``chosen``'s pixels (a box) and of at most ``others`` pixels of
        any rank (the partial search's sets: not a tree)."""
        return self._changes(chosen, 0, others)

    def later_siblings(self, chosen: tuple, others: int):
        """One set holding ``node(prefix + (r,), others)`` for every rank r after
        ``chosen``'s last (prefix: ``chosen`` without its last): prefix's pixels and at
        most ``others + 1`` pixels ranked after ``chosen``'s last."""
        return self._changes(chosen[:-1], chosen[-1] + 1, others + 1)


def _strongest_first(margins_of, x, lo, hi, coordinates: list[np.ndarray]) -> np.ndarray:
    """Pixel indices by the upper bound of their weakest open margin over the changes of
    that pixel alone (forward symbolic bounds, one batch), highest first: the pixels most
    able to move the margins come first, so the sets of later pixels are bounded with them
    held at x."""
    spec, owner = margins_of
    coords = _padded(coordinates)
    index = np.maximum(coords, 0)
    step = batch_size(spec, coords.shape[1])
    score = np.concatenate([
        weakest_margins(set_bounds(spec, x, coords[s:s + step], (lo - x)[index[s:s + step]],
                                   (hi - x)[index[s:s + step]])[1],
                        owner, int(owner.max()) + 1).max(axis=1)
        for s in range(0, len(coords), step)])
    return np.argsort(-score, kind="stable")


def _padded(sets: list[np.ndarray]) -> np.ndarray:
    """The input indices of each set as a row, ``-1`` padding the shorter ones (the form of
    ``forward_symbolic.set_bounds`` and ``split_many``)."""
    coords = np.full((len(sets), max((len(c) for c in sets), default=0)), -1)
    for row, c in enumerate(sets):
        coords[row, :len(c)] = c
    return coords


def _boxed_sets(net, x, lo, hi, boxes: list[np.ndarray], open_, margins_of, deadline, say):
    """Each box moves the inputs it lists between ``lo`` and ``hi`` (the rest stay at x):
    batched input splitting on all of them (``attacks.input_split.split_many``), then
    ``split_search`` (back-substitution bounds) on the pieces it leaves open, unless more
    than ``MAX_LEFT_PIECES`` are left.  ``True`` when no box holds a counterexample,
    ``(target, x_adv)`` for the first one found, None when the time ran out or a piece
    stayed undecided."""
    coords = _padded(boxes)
    index = np.maximum(coords, 0)
    outcome, detail = split_many(margins_of, x, coords, lo[index] - x[index],
                                 hi[index] - x[index], deadline, PROOF_TOLERANCE, say)
    if outcome == "proved":
        return True
    if outcome == "sat":
        return _target_met(net, detail[1], open_)
    if outcome != "left" or len(detail[0]) > MAX_LEFT_PIECES:
        return None
    conjunctions = [conj for _, conj in open_]
    for done, (row, d_lo, d_hi) in enumerate(zip(*detail)):
        say(lambda: f"exact: input splitting, {done} of {len(detail[0])} boxes")
        moved = coords[row][coords[row] >= 0]
        low, high = x.copy(), x.copy()
        low[moved] += d_lo[:len(moved)]
        high[moved] += d_hi[:len(moved)]
        outcome, found = split_search(net, np.maximum(low, lo), np.minimum(high, hi),
                                      conjunctions, deadline, PROOF_TOLERANCE, spec=margins_of)
        if outcome == "sat":
            return _target_met(net, found, open_)
        if outcome != "proved":
            return None
    return True


def _target_met(net, x_adv, open_):
    """``(target, x_adv)`` for the first open target x_adv meets; None when rounding in the
    margins made a point on a boundary look like a counterexample (then nothing is
    claimed)."""
    y = net(x_adv)
    met = [t for t, conj in open_ if conj.holds(y)]
    return (met[0], x_adv) if met else None


def _children(survivors: dict[tuple, float], count: int) -> tuple[list[tuple], list[tuple]]:
    """The set-enumeration tree's next level: each surviving set (sorted pixel ranks) with
    one more pixel ranked after its last, sets of the strongest pixels first (by their last
    rank, then by their parent's bound, highest first), so each parent's children come in
    rank order; and the survivors with no pixel after their last (leaves, decided as they
    are)."""
    children, leaves = [], []
    for chosen, bound in survivors.items():
        if chosen[-1] + 1 < count:
            children += [(r, -bound, chosen + (r,)) for r in range(chosen[-1] + 1, count)]
        else:
            leaves.append(chosen)
    children.sort(key=lambda child: child[:2])
    return [child for _, _, child in children], leaves


def _joins(survivors: dict[tuple, float]) -> list[tuple]:
    """The sets of one more pixel whose every subset one smaller survived (``survivors``:
    sorted tuples and their bounds), highest first by the lower bound of the two survivors
    they join (two sets sharing all but their last pixel)."""
    by_prefix: dict[tuple, list[int]] = {}
    for chosen in survivors:
        by_prefix.setdefault(chosen[:-1], []).append(chosen[-1])
    joined = []
    for prefix, lasts in by_prefix.items():
        for a, b in itertools.combinations(sorted(lasts), 2):
            candidate = prefix + (a, b)
            if all(candidate[:i] + candidate[i + 1:] in survivors
                   for i in range(len(candidate) - 2)):
                joined.append((min(survivors[prefix + (a,)], survivors[prefix + (b,)]),
                               candidate))
    joined.sort(key=lambda pair: -pair[0])
    return [candidate for _, candidate in joined]


def _upper_bound(net, x, label, candidates, config, work: Work):
    """The validated answer with the fewest changed pixels, as (target, x_adv), among
    ``direct``'s for every candidate and ``dnc``'s first, each shrunk
    (``attacks.shrink``); None when neither finds one."""
    found = []
    for target_class, conj in candidates:
        work.stage(f"exact: direct upper bound, target class {target_class}")
        try:
            found.append((target_class, conj, direct(net, x, conj, config, work)))
        except StageFailure:
            continue
    for _, target_class, conj, answer in dnc_search(net, x, candidates, config, work):
        if isinstance(answer, StageFailure):
            if answer.stage == "budget":
                break
            continue
        if not validate(net, x, answer, label, config.linf, config.max_pixels):
            found.append((target_class, conj, answer))
            break
    answers = []
    for target_class, conj, x_adv in found:
        if validate(net, x, x_adv, label, config.linf, config.max_pixels):
            continue
        shrunk = shrink(net, x, x_adv, conj)
        if not validate(net, x, shrunk, label, config.linf, config.max_pixels):
            x_adv = shrunk
        answers.append((count_pixels(net, x_adv - x), target_class, x_adv))
    if not answers:
        return None
    _, target_class, x_adv = min(answers, key=lambda answer: answer[0])
    return target_class, x_adv


def _verdict(result: AttackResult, proved: bool, config: AttackConfig) -> AttackResult:
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


def _exact_milp(net, x, conj, config: AttackConfig, work: Work, cache: dict) -> np.ndarray:
    t0 = time.perf_counter()
    problem, decoder = input_query(net, x, conj, config.linf, config.max_pixels, objective="l1",
                                   groups=net.pixel_groups(), bounds_method=config.exact.bounds,
                                   time_budget=config.exact.bounds_seconds, bounds_cache=cache)
    options = PassOptions(phase_fixing=None, sign_pruning=False,
                          relaxation=config.passes.relaxation)
    solved = solve_for(work, problem, config.backend, options, query_s=time.perf_counter() - t0)
    if solved.x is None:
        raise StageFailure("exact MILP", solved.status.value, solved.result.message)
    return adversarial_input(net, x, decoder.decode(solved.x))
