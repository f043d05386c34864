"""Branch and bound on ReLU phases: the proof for input boxes with many inputs (images).

A domain is the input box with some ReLUs' phases fixed (``z >= 0`` or ``z <= 0``).  Its bounds
are the symbolic bounds of the property's margins (``spec_network``) recomputed with those
phases fixed: a fixed ReLU is linear in the relaxations of the layers above it, which
tightens everything it feeds.  Each fixed phase also cuts the box: a linear upper bound
``a x + c`` of ``s z`` (``s = +1`` active, ``-1`` inactive), valid on the domain, must stay
``>= 0`` there; the weakest margins are bounded again over the box so cut, by an LP
(``compiler.analysis.cut_box``).  A domain is done when, for every conjunction, some margin is
bounded below ``-tolerance`` over it, or when the fixed phases leave no input.  Otherwise the
input reaching the hardest open margin's bound is tried as a counterexample, and the domain is
cut in two on the unstable ReLU whose relaxation costs that bound most (its coefficient times
the chord's height ``-u l / (u - l)``, BaBSR's intercept score).  Every input of the box lies
on one of the two sides, so when every domain is done, no input of the box meets any
conjunction.  Domains are taken weakest bound first.

When every ReLU of a domain is fixed the network is linear on it, and cuts drawn again from
its own bounds describe it exactly: the LP's best point is the network's, so such a domain
ends as proved or as a counterexample, unless its margin lies within the tolerance of 0, a
max-pool window is undecided (max pools are not split) or the LP fails: then the search
ends undecided, never proved.

Sound because each side's bounds are computed with relaxations that hold on that side (a
fixed ReLU's bounds are clamped to its side before they are used, and every bound is
intersected with its parent's, which holds on a superset), and a cut only removes inputs of
the other side.  Assumed: float64 rounding of the bounds (as in
``compiler.analysis.symbolic``) and HiGHS's tolerances on the LPs (``cut_box``).

The starting bounds are the box's own (``lp`` by default: they cost seconds once, hold in every
domain, and on the 6x50 MNIST network prove in 89 domains a box that from symbolic bounds
stayed open after 4,790).
"""
from __future__ import annotations

import heapq
import time

import numpy as np

from attacks.input_split import spec_network
from compiler.analysis.bounds import intersect, layer_bounds
from compiler.analysis.cut_box import CutBox
from compiler.analysis.input_sets import Box
from compiler.analysis.symbolic import layer_symbolic, upper_coefficients
from ir.property import Conjunction

MAX_DOMAINS = 200_000      # open domains kept at most; past it: undecided
DOMAIN_MEMORY = 2 << 30    # bytes the open domains may take, as estimated by _domain_bytes
EMPTY = 1e-9               # a fixed phase this far on the wrong side: the domain is empty


def relu_split_search(net, lower: np.ndarray, upper: np.ndarray,
                      conjunctions: list[Conjunction], deadline: float | None,
                      tolerance: float, bounds: str = "lp", max_free: int | None = None):
    """``("proved", domains)``, ``("sat", x)`` (the float64 network meets a conjunction at x,
    inside the box), or ``(why undecided, domains)``; undecided at once when the box's
    ``bounds`` leave more than ``max_free`` ReLUs and max-pool windows undecided."""
    spec, owner = spec_network(net, conjunctions)
    box = Box(lower, upper)
    for method in dict.fromkeys(("symbolic", bounds)):    # the cheap count first
        left = None if deadline is None else max(deadline - time.perf_counter(), 0.0)
        root = layer_bounds(spec, box, method, time_budget=None if left is None else left / 4)
        free = sum(root.unstable.values()) + sum(root.undecided.values())
        if max_free is not None and free > max_free:
            return (f"too large for ReLU splitting: {free} phases undecided by {method} "
                    f"bounds (the limit is {max_free})"), 0
    everything = np.ones(len(conjunctions), bool)
    heap = [(-np.inf, 0, root.lower, root.upper, {}, (), everything)]
    count, domains, stuck = 1, 0, False
    most = min(MAX_DOMAINS, DOMAIN_MEMORY // _domain_bytes(spec))
    while heap:
        if deadline is not None and time.perf_counter() >= deadline:
            return "timeout", domains
        if len(heap) > most:
            return f"more than {most} open domains (the memory limit)", domains
        _, _, lo, hi, fixed, cuts, open_ = heapq.heappop(heap)
        domains += 1
        blocked = np.zeros(len(conjunctions), bool)
        np.logical_or.at(blocked, owner, hi[spec.depth] < -tolerance)
        open_ = open_ & ~blocked
        if not open_.any():
            continue
        outcome = _refute(spec, owner, box, lo, hi, cuts, open_, tolerance)
        if outcome is None:        # every open conjunction refuted, or no input reaches here
            continue
        hardest_bound, coefficients, x = outcome
        y = net(x)
        if any(conjunctions[j].holds(y) for j in np.flatnonzero(open_)):
            return "sat", x
        neuron = _branch(spec, coefficients, lo, hi)
        if neuron is None:
            # Every ReLU fixed: the network is linear on the domain (unless a max-pool window
            # is undecided), and the cuts drawn again from its bounds describe the domain
            # exactly, so the LP's best point is the network's (up to rounding).
            exact_cuts = tuple(_cut(spec, lo, hi, (k, j), on)
                               for k, sides in fixed.items() for j, on in sides.items())
            outcome = _refute(spec, owner, box, lo, hi, exact_cuts, open_, tolerance)
            if outcome is None:
                continue
            if any(conjunctions[j].holds(net(outcome[2])) for j in np.flatnonzero(open_)):
                return "sat", outcome[2]
            stuck = True           # a margin near 0, an undecided max pool, or an LP failed
            continue
        for active in (True, False):
            child = _fix(spec, box, lo, hi, fixed, neuron, active)
            if child is not None:
                heapq.heappush(heap, (-hardest_bound, count, *child,
                                      cuts + (_cut(spec, lo, hi, neuron, active),), open_))
                count += 1
    if stuck:
        return "a domain with every ReLU phase fixed stayed open", domains
    return "proved", domains


def _refute(spec, owner, box, lo, hi, cuts, open_, tolerance):
    """Bound the open conjunctions' weakest margins again, hardest first, over the box cut by
    the domain's fixed phases (``CutBox``; the plain box when none is fixed).  None when
    every one is refuted or the cuts leave no input; else, for the first that is not,
    ``(its bound, the coefficients of its back-substitution, the input reaching the bound)``.
    ``open_`` is updated in place."""
    margin_upper = hi[spec.depth]
    order = sorted(np.flatnonzero(open_), key=lambda j: -np.min(margin_upper[owner == j]))
    region = CutBox(box.lower, box.upper, *_stack(cuts)) if cuts else None
    for j in order:
        rows = np.flatnonzero(owner == j)
        weakest = rows[np.argmin(margin_upper[rows])]
        coefficients, constant = upper_coefficients(spec, _unit(spec.edge(spec.depth).width,
                                                                weakest), spec.depth, lo, hi)
        if region is None:
            bound = float(margin_upper[weakest])
            x = np.where(coefficients[0] > 0, box.upper, box.lower)
        else:
            reached = region.maximize(coefficients[0], constant)
            if reached is None:
                return None
            bound, x = reached
            bound = min(bound, float(margin_upper[weakest]))
        if bound >= -tolerance:
            return bound, coefficients, x
        open_[j] = False
    return None


def _cut(spec, lo, hi, neuron, active: bool) -> tuple[np.ndarray, float]:
    """``(a, c)`` with ``a x + c >= 0`` for every input of the domain on ``neuron``'s fixed
    side: ``a x + c`` bounds ``s z`` from above (``s = +1`` active, ``-1`` inactive) and
    ``s z >= 0`` there."""
    k, j = neuron
    row = _unit(spec.edge(k).width, j) * (1.0 if active else -1.0)
    coefficients, constant = upper_coefficients(spec, row, k, lo, hi)
    return coefficients[0], constant


def _stack(cuts) -> tuple[np.ndarray, np.ndarray]:
    return np.array([a for a, _ in cuts]), np.array([c for _, c in cuts])


def _domain_bytes(spec) -> int:
    """An open domain's own arrays, at most: its bounds of every layer above the input (a
    child copies those above its split) and one cut over the inputs."""
    return 16 * sum(spec.widths()[1:]) + 8 * spec.n_inputs + 1024


def _unit(width: int, index: int) -> np.ndarray:
    e = np.zeros(width)
    e[index] = 1.0
    return e


def _branch(spec, coefficients, lo, hi) -> tuple[int, int] | None:
    """The unstable ReLU ``(layer, index)`` with the largest coefficient x chord height."""
    best, choice = 0.0, None
    for m in range(1, spec.depth):
        if not spec.edge(m).relu:
            continue
        l, u = lo[m], hi[m]
        unstable = (l < 0) & (u > 0)
        if not unstable.any():
            continue
        height = np.where(unstable, -u * l / np.where(unstable, u - l, 1.0), 0.0)
        score = np.abs(coefficients[m]) * height
        j = int(np.argmax(score))
        if score[j] > best:
            best, choice = float(score[j]), (m, j)
        elif choice is None:       # no coefficient reaches it: still a ReLU to fix
            choice = (m, int(np.argmax(height)))
    return choice


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
