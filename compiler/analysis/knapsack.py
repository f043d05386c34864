"""The fewest changed inputs (or pixels) that push one linear function past a threshold, exactly.

When the network below the target is affine (the first edge-layer, or the whole network
linearized at fixed phases) and the target is a single inequality, mod2adv's MILP

    minimize  #{g : delta_i != 0 for some i in group g}, then sum |delta_i|
    s.t.      gain . delta >= need,   -down_i <= delta_i <= up_i,   #changed groups <= budget

is a cardinality knapsack with a closed-form answer.  A group is one input value, or one
pixel position of a colour image (its channels: changing one channel or all three costs the
same).  Input i can contribute at most ``h_i = max(gain_i * up_i, -gain_i * down_i)`` and
group g at most the sum of its members' ``h_i``, so the fewest groups are those with the
largest contributions, as many as it takes for their sum to reach ``need``.  On their members
the smallest L1 change spends the largest |gain_i| first (a fractional knapsack).  The count
is the MILP's optimum (tests compare with HiGHS); the L1 part is optimal for the chosen groups.
"""
from __future__ import annotations

import numpy as np


def _group_order(reach: np.ndarray, groups: np.ndarray | None):
    """Groups by decreasing reach (ties by index), their reaches, and each input's group."""
    if groups is None:
        groups = np.arange(len(reach))
    group_reach = np.bincount(groups, weights=reach)
    order = np.argsort(-group_reach, kind="stable")
    return order, group_reach, groups


def fewest_inputs(gain: np.ndarray, need: float, up: np.ndarray, down: np.ndarray,
                  budget: int | None = None, groups: np.ndarray | None = None) -> np.ndarray | None:
    """``delta`` with the fewest changed groups (``groups[i]`` is input i's group; None: every
    input its own) such that ``gain . delta >= need`` inside ``[-down, up]``, or None when no
    such change exists within ``budget`` groups."""
    gain = np.asarray(gain, dtype=np.float64)
    up, down = np.asarray(up, dtype=np.float64), np.asarray(down, dtype=np.float64)
    delta = np.zeros(len(gain))
    if need <= 0:
        return delta
    room = np.where(gain > 0, up, down)
    order, group_reach, groups = _group_order(np.abs(gain) * room, groups)
    enough = np.flatnonzero(np.cumsum(group_reach[order]) >= need)
    if len(enough) == 0:
        return None
    k = int(enough[0]) + 1
    if budget is not None and k > budget:
        return None
    chosen = np.concatenate([np.flatnonzero(groups == g) for g in order[:k]])
    # Smallest L1 on the chosen inputs: the steepest gains first, each up to its room.
    left = float(need)
    for i in chosen[np.argsort(-np.abs(gain[chosen]), kind="stable")]:
        if gain[i] == 0:
            continue
        step = min(room[i], left / abs(gain[i]))
        delta[i] = step if gain[i] > 0 else -step
        left -= step * abs(gain[i])
        if left <= 0:
            break
    return delta


def stronger_changes(gain: np.ndarray, need: float, up: np.ndarray, down: np.ndarray,
                     budget: int | None = None, groups: np.ndarray | None = None):
    """Changes that push ``gain . delta`` past ``need`` ever harder, fewest groups first:
    the smallest change (``fewest_inputs``), then its groups moved as far as they go, then
    one more group at a time (the next largest reach, moved fully) up to ``budget``.

    The linear model is only a guide: when the real network disagrees with the smallest
    change, a larger push along the same direction often crosses the boundary.  Callers
    judge each candidate on the real network."""
    delta = fewest_inputs(gain, need, up, down, budget, groups)
    if delta is None:
        return
    yield delta
    gain = np.asarray(gain, dtype=np.float64)
    full = np.where(gain > 0, up, -np.asarray(down, dtype=np.float64))
    order, group_reach, groups = _group_order(np.abs(gain) * np.abs(full), groups)
    order = order[group_reach[order] > 0]
    k = len(np.unique(groups[delta != 0]))
    limit = len(order) if budget is None else min(budget, len(order))
    for count in range(max(k, 1), limit + 1):
        pushed = np.where(np.isin(groups, order[:count]), full, 0.0)
        yield pushed
