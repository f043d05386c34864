"""Growing the changed pixels one at a time, re-linearized at every step, then thinning.

The closed form (``attacks.recovery``) trusts the network's linear model at one point; on deep
or convolutional networks the fewest pixels that model asks for often fail on the real network,
because every changed pixel moves ReLUs and max poolings.  ``grow`` follows the real network:

1. linearize the network at the current point; one inequality ``g . x' >= need`` remains;
2. if the pixels chosen so far, moved to their best extremes (free: they are paid for), plus
   the fewest new pixels by reach (the knapsack of ``compiler.analysis.knapsack``) satisfy the
   model within ``limit`` pixels, try that candidate on the real network;
3. otherwise add the one new pixel of largest reach, move every chosen pixel to the extreme
   its current gain asks for, and repeat.

A candidate that needs more pixels than the budget is then thinned (``thin``): chosen pixels
are put back one at a time, least contributing first (by the linear model at the candidate),
while the real network still meets the property.
"""
from __future__ import annotations

import numpy as np

from attacks.config import AttackConfig
from attacks.result import StageFailure
from attacks.work import Work
from compiler.analysis.bounds import input_box
from compiler.analysis.pullback import input_function
from ir.property import Conjunction


def _pixels(net) -> np.ndarray:
    groups = net.pixel_groups()
    return np.arange(net.n_inputs) if groups is None else groups


def grow(net, x: np.ndarray, conj: Conjunction, linf: float, limit: int,
         work: Work) -> np.ndarray | None:
    """An input within L-inf ``linf`` of ``x`` (inside the domain) with at most ``limit``
    changed pixels that meets the one-inequality property ``conj`` on the real network, or
    None."""
    (constraint,) = conj.constraints
    sign = 1.0 if constraint.sense == ">=" else -1.0
    pixel = _pixels(net)
    lo, hi = input_box(x, net.domain.lower, net.domain.upper, linf)
    chosen = np.zeros(int(pixel.max()) + 1, bool)
    point = x.copy()
    for _ in range(limit + 1):
        work.check()
        if conj.holds(net(point)):
            return point
        gains, offsets = input_function(net, conj, net.phases(point))
        gain = sign * gains[0]
        need = sign * (constraint.rhs - offsets[0]) - gain @ point
        extreme = np.where(gain > 0, hi, np.where(gain < 0, lo, point))
        reach = np.bincount(pixel, weights=np.abs(gain * (extreme - x)), minlength=len(chosen))
        have = float(gain @ (np.where(chosen[pixel], extreme, x) - point))
        order = np.argsort(-np.where(chosen, -np.inf, reach), kind="stable")
        order = order[~chosen[order]]
        count = int(chosen.sum())
        if have < need:
            more = np.cumsum(reach[order]) + have
            k = int(np.searchsorted(more, need)) + 1
        else:
            k = 0
        if k <= len(order) and count + k <= limit:
            trial = chosen.copy()
            trial[order[:k]] = True
            candidate = np.where(trial[pixel], extreme, x)
            if conj.holds(net(candidate)):
                return candidate
        if count >= limit or not len(order):
            return None
        chosen[order[0]] = True
        point = np.where(chosen[pixel], extreme, x)
    return None


def thin(net, x: np.ndarray, x_adv: np.ndarray, conj: Conjunction, work: Work) -> np.ndarray:
    """Put changed pixels back, least contributing first (one pass), while the real network
    still meets ``conj``."""
    (constraint,) = conj.constraints
    sign = 1.0 if constraint.sense == ">=" else -1.0
    pixel = _pixels(net)
    gains, _ = input_function(net, conj, net.phases(x_adv))
    contribution = np.bincount(pixel, weights=sign * gains[0] * (x_adv - x))
    changed = np.unique(pixel[x_adv != x])
    for p in changed[np.argsort(contribution[changed], kind="stable")]:
        work.check()
        trial = np.where(pixel == p, x, x_adv)
        if conj.holds(net(trial)):
            x_adv = trial
    return x_adv


def grown(net, x, conj, config: AttackConfig, work: Work):
    """The growing search thinned back (an input to validate), or the StageFailure that
    ended it."""
    try:
        candidate = grow(net, x, conj, config.linf,
                         max(config.direct.grow, 1) * config.max_pixels, work)
        if candidate is None:
            return StageFailure("grow", "failed", f"no change of at most {config.max_pixels} "
                                "pixels found by growing the changed pixels")
        return thin(net, x, candidate, conj, work)
    except StageFailure as failure:
        return failure
