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


MAX_PIECES = 1_000_000    # boxes split in one batch at most (memory); past it: handed back
MAX_ROUNDS = 30           # halvings of one box in the batch; past them: handed back
POINTS_PER_BATCH = 2_048  # centres run through the network at once


def split_many(spec_of, center: np.ndarray, coords: np.ndarray, d_lo: np.ndarray,
               d_hi: np.ndarray, deadline: float | None, tolerance: float, say=None):
    """Input splitting on many small boxes at once: box b moves the inputs ``coords[b]``
    (``-1`` pads) of ``center`` by ``d_lo[b] .. d_hi[b]``.  Each round bounds every open
    piece by forward symbolic bounds (``compiler.analysis.forward_symbolic``, batched), drops
    the pieces where every conjunction has a margin bounded below ``-tolerance``, tries the
    centres of the rest as counterexamples, and halves each along the input whose range times
    its first-layer column's size is largest.

    ``spec_of``: ``spec_network(net, conjunctions)``.  Returns ``("proved", None)``,
    ``("sat", (box, x))`` (the float64 network meets a conjunction's margins at x, which moves
    only box b's inputs, within its range), ``("timeout", None)``, or ``("left", (boxes,
    d_lo, d_hi))`` with the pieces still open after ``MAX_ROUNDS`` rounds or at
    ``MAX_PIECES`` (for a tighter search, e.g. ``split_search``)."""
    from compiler.analysis.forward_symbolic import batch_size, set_bounds
    spec, owner = spec_of
    count = int(owner.max()) + 1
    coords = np.asarray(coords, dtype=np.int64)
    first = spec.edge(1).linear.weight
    scale = np.asarray(abs(first).sum(axis=0)).ravel()          # per input: column size
    scale = np.append(scale, 0.0)                                # for the padding (-1)
    boxes = np.arange(len(coords))
    lo, hi = np.array(d_lo, dtype=np.float64), np.array(d_hi, dtype=np.float64)
    open_ = np.ones((len(coords), count), bool)
    step = batch_size(spec, coords.shape[1])
    for round_ in range(MAX_ROUNDS + 1):
        alive = np.zeros(len(boxes), bool)
        for start in range(0, len(boxes), step):
            if say is not None:
                say(lambda: f"batched input splitting, round {round_}: {start} of "
                            f"{len(boxes)} boxes bounded")
            if deadline is not None and time.perf_counter() >= deadline:
                return "timeout", None
            part = slice(start, start + step)
            upper = set_bounds(spec, center, coords[boxes[part]], lo[part], hi[part])[1]
            open_[part] &= weakest_margins(upper, owner, count) >= -tolerance
            alive[part] = open_[part].any(axis=1)
        boxes, lo, hi, open_ = boxes[alive], lo[alive], hi[alive], open_[alive]
        if not len(boxes):
            return "proved", None
        found = _centre_meets(spec, owner, center, coords[boxes], (lo + hi) / 2, open_)
        if found is not None:
            return "sat", (int(boxes[found[0]]), found[1])
        size = (hi - lo) * scale[coords[boxes]]
        varies = size.max(axis=1) > 0      # else the network is constant on the piece:
        boxes, lo, hi, open_, size = (v[varies] for v in (boxes, lo, hi, open_, size))
        if not len(boxes):                 # its centre, not a counterexample, decided it
            return "proved", None
        if round_ == MAX_ROUNDS or 2 * len(boxes) > MAX_PIECES:
            break
        dim = np.argmax(size, axis=1)
        rows = np.arange(len(boxes))
        mid = (lo[rows, dim] + hi[rows, dim]) / 2
        left_hi, right_lo = hi.copy(), lo.copy()
        left_hi[rows, dim] = right_lo[rows, dim] = mid
        boxes, open_ = np.concatenate([boxes, boxes]), np.concatenate([open_, open_])
        lo, hi = np.concatenate([lo, right_lo]), np.concatenate([left_hi, hi])
    return "left", (boxes, lo, hi)


def _centre_meets(spec, owner, center, coords, moves, open_):
    """The first piece whose centre meets an open conjunction's margins in float64, as
    ``(piece, x)``, or None."""
    real = coords >= 0
    index = np.where(real, coords, 0)
    for start in range(0, len(coords), POINTS_PER_BATCH):
        part = slice(start, start + POINTS_PER_BATCH)
        points = np.tile(center, (len(index[part]), 1))
        rows = np.arange(len(points))[:, None]
        points[rows, index[part]] = np.where(real[part], center[index[part]] + moves[part],
                                             points[rows, index[part]])
        meets = (open_[part] & (weakest_margins(spec(points), owner, open_.shape[1]) >= 0)
                 ).any(axis=1)
        if meets.any():
            piece = int(np.flatnonzero(meets)[0])
            return start + piece, points[piece]
    return None


def weakest_margins(margins: np.ndarray, owner: np.ndarray, count: int) -> np.ndarray:
    """Per row of margin values or bounds ``(B, margins)`` (``spec_network``'s order), each
    of the ``count`` conjunctions' weakest (lowest) margin: ``(B, count)``."""
    weakest = np.full((len(margins), count), np.inf)
    for conjunction in range(count):
        weakest[:, conjunction] = margins[:, owner == conjunction].min(axis=1, initial=np.inf)
    return weakest
