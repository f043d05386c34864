"""Branch and bound on the input box: the proof for networks with few inputs (ACAS Xu: 5).

A box is done when, for every conjunction of the property, some constraint margin is
bounded below ``-tolerance`` over it (symbolic bounds of the margins, as one more linear
layer on the network: ``spec_network``).  Otherwise its centre is tried as a counterexample
and it is cut in two along the input that moves the weakest margin most (gradient times
width, ReluVal's "smear"); the two halves cover it exactly (one shared midpoint), so when
every box is done, no input of the box meets any conjunction.  Boxes are taken highest
margin bound first, so a counterexample, when there is one, tends to come early.

Worthwhile when the box has few inputs that vary: each cut halves one input's range, and
symbolic bounds tighten quickly as the ranges shrink.  With hundreds of inputs (images) it
seldom ends; the MILP is the proof there.
"""
from __future__ import annotations

import heapq
import time

import numpy as np

from attacks.pgd import input_gradients, slack_rows
from attacks.work import paced
from compiler.analysis.bounds import layer_bounds
from compiler.analysis.input_sets import Box
from ir.layers import Linear
from ir.network import Network
from ir.property import Conjunction

MAX_FREE_INPUTS = 16      # above this many varying inputs, splitting is not tried
MAX_BOXES = 200_000       # open boxes kept at most (memory); past it: undecided


def spec_network(net, conjunctions: list[Conjunction]) -> tuple[Network, np.ndarray]:
    """The network followed by every constraint margin of the conjunctions (``>= 0`` when
    the constraint holds), and for each margin the index of its conjunction."""
    rows, offsets, owner = [], [], []
    for position, conj in enumerate(conjunctions):
        r, o = slack_rows(conj, net.n_outputs)
        rows.append(r)
        offsets.append(o)
        owner += [position] * len(o)
    spec = Network(net.layers + (Linear(np.vstack(rows), np.concatenate(offsets)),), None,
                   net.input_shape, net.name)
    return spec, np.array(owner)


def split_search(net, lower: np.ndarray, upper: np.ndarray, conjunctions: list[Conjunction],
                 deadline: float | None, tolerance: float, bounds: str = "symbolic",
                 spec: tuple[Network, np.ndarray] | None = None):
    """``("proved", boxes)``, ``("sat", x)`` (the float64 network meets a conjunction at x,
    inside the box), or ``(why undecided, boxes)``.  ``spec``: ``spec_network(net,
    conjunctions)``, when the caller searches many boxes for the same conjunctions."""
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    spec, owner = spec_network(net, conjunctions) if spec is None else spec
    everything = np.ones(len(conjunctions), bool)
    heap, count, boxes = [(-np.inf, 0, lower, upper, everything)], 1, 0
    say = paced()
    while heap:
        say(lambda: f"input splitting: {boxes} boxes, {len(heap)} open")
        if deadline is not None and time.perf_counter() >= deadline:
            return "timeout", boxes
        if len(heap) > MAX_BOXES:
            return f"more than {MAX_BOXES} open boxes", boxes
        _, _, lo, hi, open_ = heapq.heappop(heap)
        boxes += 1
        margin_upper = layer_bounds(spec, Box(lo, hi), bounds).upper[spec.depth]
        blocked = np.zeros(len(conjunctions), bool)
        np.logical_or.at(blocked, owner, margin_upper < -tolerance)
        open_ = open_ & ~blocked
        if not open_.any():
            continue
        centre = (lo + hi) / 2
        found = _meets(net, centre, conjunctions, open_)
        if found is not None:
            return "sat", found
        best = max(float(np.min(margin_upper[owner == j])) for j in np.flatnonzero(open_))
        dim = _split_input(spec, owner, open_, centre, lo, hi)
        if dim is None:           # a point that is not a counterexample: nothing left to cut
            continue
        mid = centre[dim]
        left_hi, right_lo = hi.copy(), lo.copy()
        left_hi[dim] = right_lo[dim] = mid
        for box in ((lo, left_hi), (right_lo, hi)):
            heapq.heappush(heap, (-best, count, box[0], box[1], open_))
            count += 1
    return "proved", boxes


def _meets(net, x: np.ndarray, conjunctions, open_) -> np.ndarray | None:
    y = net(x)
    return x if any(conjunctions[j].holds(y) for j in np.flatnonzero(open_)) else None


def _split_input(spec, owner, open_, centre, lo, hi) -> int | None:
    """The input whose range, times the weakest open margin's gradient at the centre, is
    largest; the widest input when the gradient is zero there."""
    width = hi - lo
    if not np.any(width > 0):
        return None
    trace = spec.simulate(centre)
    margins = trace.output[0]
    candidates = np.flatnonzero(open_[owner])
    weakest = candidates[np.argmin(margins[candidates])]
    row = np.zeros((1, spec.n_outputs))
    row[0, weakest] = 1.0
    smear = np.abs(input_gradients(spec, trace, row)[0]) * width
    return int(np.argmax(smear)) if np.any(smear > 0) else int(np.argmax(width))
