"""Branch and bound on ReLU phases: the proof for input boxes with many inputs (images).

A domain is the input box with some ReLUs' phases fixed (``z >= 0`` or ``z <= 0``).  Its
bounds of every layer are the symbolic bounds recomputed with those phases fixed (a fixed
ReLU is linear in the relaxations of the layers above it, which tightens everything it
feeds), intersected with its parent's.  The property's margins (``spec_network``) are then
bounded by the LP of the domain (``compiler.analysis.domain_lp``: the network's triangle
relaxation with the domain's bounds, where a fixed phase is a bound on ``z``), one model
for the whole search, moved from domain to domain.  A domain is done when, for every
conjunction, some margin is bounded below ``-tolerance`` over it, or when the LP proves that
no input reaches it.  Otherwise the input at the LP's optimum for the hardest open margin is
tried as a counterexample, and the domain is cut in two on the unstable ReLU whose chord
costs that optimum most (the chord row's multiplier times its intercept ``-u l / (u - l)``:
BaBSR's score with the LP's multipliers; the symbolic coefficients stand in when the LP
failed).  Every input of the box lies on one of the two sides, so when every domain is
done, no input of the box meets any conjunction.  Domains are taken weakest bound first.

When every ReLU of a domain is fixed the LP is the network on it: its best point is the
network's, so such a domain ends as proved or as a counterexample, unless its margin lies
within the tolerance of 0, a max-pool window is undecided (max pools are not split) or the
LP fails: then the search ends undecided, never proved.

Sound because each side's bounds are computed with relaxations that hold on that side (a
fixed ReLU's bounds are clamped to its side before they are used, and every bound is
intersected with its parent's, which holds on a superset), and the LP of a domain contains
every point of the network on it.  Assumed: float64 rounding of the bounds (as in
``compiler.analysis.symbolic``) and HiGHS's tolerances on the LPs (``domain_lp``).

The starting bounds are the box's own (``lp`` by default: they cost seconds once and hold in
every domain).  On the 6x50 MNIST network, L-inf 0.02 around the 9th correctly classified
image: 4,790 domains from symbolic bounds and symbolic cuts (still open), 89 from LP bounds
with those cuts, 7 with the LP per domain and its multipliers for branching.
"""
from __future__ import annotations

import heapq
import time

import numpy as np

from attacks.input_split import spec_network
from attacks.work import paced, tell
from compiler.analysis.bounds import intersect, layer_bounds, relu_chord
from compiler.analysis.domain_lp import DomainLP
from compiler.analysis.input_sets import Box
from compiler.analysis.symbolic import layer_symbolic, upper_coefficients
from ir.property import Conjunction

MAX_DOMAINS = 200_000      # open domains kept at most; past it: undecided
DOMAIN_MEMORY = 2 << 30    # bytes the open domains may take, as estimated by _domain_bytes
EMPTY = 1e-9               # a fixed phase this far on the wrong side: the domain is empty


def relu_split_search(net, lower: np.ndarray, upper: np.ndarray,
                      conjunctions: list[Conjunction], deadline: float | None,
                      tolerance: float, bounds: str = "lp", max_free: int | None = None,
                      hidden: tuple[dict, dict] | None = None):
    """``("proved", domains)``, ``("sat", x)`` (the float64 network meets a conjunction at x,
    inside the box), or ``(why undecided, domains)``; undecided at once when the box's
    ``bounds`` leave more than ``max_free`` ReLUs and max-pool windows undecided.
    ``hidden``: bounds of the network's hidden layers over the box, already computed (any
    method), to start the box's bounds from."""
    spec, owner = spec_network(net, conjunctions)
    box = Box(lower, upper)
    known = hidden
    for method in dict.fromkeys(("symbolic", bounds)):    # the cheap count first
        tell(f"ReLU splitting: {method} bounds of the box")
        left = None if deadline is None else max(deadline - time.perf_counter(), 0.0)
        root = layer_bounds(spec, box, method, time_budget=None if left is None else left / 4,
                            known=known)
        known = root.lower, root.upper
        free = sum(root.unstable.values()) + sum(root.undecided.values())
        if max_free is not None and free > max_free:
            return (f"too large for ReLU splitting: {free} phases undecided by {method} "
                    f"bounds (the limit is {max_free})"), 0
    everything = np.ones(len(conjunctions), bool)
    relaxation = DomainLP(spec, box, root.lower, root.upper)

    def assess(lo, hi, open_, basis):
        """A domain's fate, as soon as it is made (its LP starts from its parent's optimal
        basis): None when done; a counterexample; or ``(its bound, its conjunctions still
        open, the ReLU to split there or None when every one is fixed, its LP's basis)``."""
        blocked = np.zeros(len(conjunctions), bool)
        np.logical_or.at(blocked, owner, hi[spec.depth] < -tolerance)
        open_ = open_ & ~blocked
        if not open_.any():
            return None
        outcome = _refute(spec, owner, relaxation, lo, hi, open_, tolerance, basis)
        if outcome is None:        # every open conjunction refuted, or no input reaches here
            return None
        bound, weakest, x = outcome
        costs = None if x is None else relaxation.chord_costs(lo, hi)
        solved = None if x is None else relaxation.basis()

        def coefficients():        # the weakest margin's back-substitution, when needed
            return upper_coefficients(spec, _unit(spec.edge(spec.depth).width, weakest),
                                      spec.depth, lo, hi)[0]
        if x is None:              # the LP failed: the corner the symbolic bound points to
            x = np.where(coefficients()[0] > 0, box.upper, box.lower)
        if any(conjunctions[j].holds(net(x)) for j in np.flatnonzero(open_)):
            return x
        return bound, open_, _branch(spec, lo, hi, costs, coefficients), solved

    heap, count, domains, stuck = [], 0, 0, False
    most = min(MAX_DOMAINS, DOMAIN_MEMORY // _domain_bytes(spec, relaxation))
    made = [(root.lower, root.upper, {}, everything, None)]
    say = paced()
    while True:
        for lo, hi, fixed, open_, basis in made:
            if deadline is not None and time.perf_counter() >= deadline:
                return "timeout", domains
            domains += 1
            assessed = assess(lo, hi, open_, basis)
            if assessed is None:
                continue
            if isinstance(assessed, np.ndarray):
                return "sat", assessed
            bound, still_open, neuron, solved = assessed
            if neuron is None:
                # Every ReLU fixed: the LP is the network on the domain (unless a max-pool
                # window is undecided), so its best point, judged in assess, is the
                # network's (up to rounding).
                stuck = True       # a margin near 0, an undecided max pool, or an LP failed
                continue
            heapq.heappush(heap, (-bound, count, lo, hi, fixed, still_open, neuron, solved))
            count += 1
        if not heap:
            break
        say(lambda: f"ReLU splitting: {domains} domains, {len(heap)} open, worst bound "
                    f"{-heap[0][0]:.3g} (proved below 0)")
        if len(heap) > most:
            return f"more than {most} open domains (the memory limit)", domains
        _, _, lo, hi, fixed, open_, neuron, basis = heapq.heappop(heap)
        made = [child + (open_, basis) for child in (_fix(spec, box, lo, hi, fixed, neuron, active)
                                               for active in (True, False))
                if child is not None]
    if stuck:
        return "a domain with every ReLU phase fixed stayed open", domains
    return "proved", domains


def _refute(spec, owner, relaxation: DomainLP, lo, hi, open_, tolerance, basis=None):
    """Bound the open conjunctions' weakest margins again, hardest first, by the LP of the
    domain (starting from ``basis`` when given).  None when every one is refuted or the LP
    proves the domain empty; else, for the first that is not, ``(its bound, its margin's
    index, the input reaching the LP's optimum or None)``.  ``open_`` is updated in place."""
    margin_upper = hi[spec.depth]
    order = sorted(np.flatnonzero(open_), key=lambda j: -np.min(margin_upper[owner == j]))
    relaxation.restrict(lo, hi, basis)
    for j in order:
        rows = np.flatnonzero(owner == j)
        weakest = int(rows[np.argmin(margin_upper[rows])])
        reached = relaxation.maximize(weakest)
        if reached is None:
            return None
        bound, x = reached
        bound = min(bound, float(margin_upper[weakest]))
        if bound >= -tolerance:
            return bound, weakest, x
        open_[j] = False
    return None


def _domain_bytes(spec, relaxation: DomainLP) -> int:
    """An open domain's own arrays, at most: its bounds of every layer above the input (a
    child copies those above its split) and its LP's basis (a byte per column and row)."""
    return 16 * sum(spec.widths()[1:]) + relaxation.model.n_cols + relaxation.model.n_rows \
        + 1024


def _unit(width: int, index: int) -> np.ndarray:
    e = np.zeros(width)
    e[index] = 1.0
    return e


def _branch(spec, lo, hi, lp_costs: dict | None, coefficients):
    """The unstable ReLU ``(layer, index)`` whose relaxation costs the bound most: by the
    domain LP's chord costs when it was solved (``DomainLP.chord_costs``), else, or when no
    chord costs anything there, by the symbolic coefficient (``coefficients()``, per layer)
    x chord height; when no score is positive, the highest chord; None when every ReLU is
    decided."""
    heights = {m: relu_chord(lo[m], hi[m])[1] for m in range(1, spec.depth)
               if spec.edge(m).relu}
    if not any(h.any() for h in heights.values()):
        return None
    choice = _highest(lp_costs) if lp_costs else None
    if choice is None:
        back = coefficients()
        choice = _highest({m: np.abs(back[m]) * h for m, h in heights.items()}) \
            or _highest(heights)
    return choice


def _highest(scores: dict) -> tuple[int, int] | None:
    """``(layer, index)`` of the largest score, or None when no score is positive."""
    m = max(scores, key=lambda m: scores[m].max())
    return (m, int(np.argmax(scores[m]))) if scores[m].max() > 0 else None


def _fix(spec, box, lo, hi, fixed, neuron, active):
    """The child domain with ``neuron``'s phase fixed: ``(lower, upper, fixed)`` with the
    bounds above it recomputed, or None when no input reaches it."""
    k, j = neuron
    fixed = {**fixed, k: {**fixed.get(k, {}), j: active}}
    lower, upper = dict(lo), dict(hi)
    for m in range(k, spec.depth + 1):
        if m == k:
            l, u = lo[m].copy(), hi[m].copy()
        else:
            l, u = layer_symbolic(spec, box, 0, m, lower, upper)
            l, u = intersect(l, u, lo[m], hi[m])
        for index, on in fixed.get(m, {}).items():
            if on:
                if u[index] < -EMPTY:
                    return None
                l[index], u[index] = max(l[index], 0.0), max(u[index], 0.0)
            else:
                if l[index] > EMPTY:
                    return None
                l[index], u[index] = min(l[index], 0.0), min(u[index], 0.0)
        lower[m], upper[m] = l, u
    return lower, upper, fixed
