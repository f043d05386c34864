"""The fewest changed inputs that push one linear function past a threshold, exactly.

When the network below the target is affine (the first edge-layer, or the whole network
linearized at fixed phases) and the target is a single inequality, mod2adv's MILP

    minimize  #{i : delta_i != 0}, then sum |delta_i|
    s.t.      gain . delta >= need,   -down_i <= delta_i <= up_i,   #changed <= budget

is a cardinality knapsack with a closed-form answer: input i can contribute at most
``h_i = max(gain_i * up_i, -gain_i * down_i)``, so the fewest inputs are the largest h_i, as
many as it takes for their sum to reach ``need``.  On those inputs the smallest L1 change
spends the largest |gain_i| first (a fractional knapsack).  The count is the MILP's optimum
(tests compare with HiGHS); the L1 part is optimal for the chosen inputs.
"""
from __future__ import annotations

import numpy as np


def fewest_inputs(gain: np.ndarray, need: float, up: np.ndarray, down: np.ndarray,
                  budget: int | None = None) -> np.ndarray | None:
    """``delta`` with the fewest nonzeros such that ``gain . delta >= need`` inside
    ``[-down, up]``, or None when no such change exists within ``budget`` inputs."""
    gain = np.asarray(gain, dtype=np.float64)
    up, down = np.asarray(up, dtype=np.float64), np.asarray(down, dtype=np.float64)
    delta = np.zeros(len(gain))
    if need <= 0:
        return delta
    room = np.where(gain > 0, up, down)
    reach = np.abs(gain) * room
    order = np.argsort(-reach, kind="stable")
    enough = np.flatnonzero(np.cumsum(reach[order]) >= need)
    if len(enough) == 0:
        return None
    k = int(enough[0]) + 1
    if budget is not None and k > budget:
        return None
    chosen = order[:k]
    # Smallest L1 on the chosen inputs: the steepest gains first, each up to its room.
    left = float(need)
    for i in chosen[np.argsort(-np.abs(gain[chosen]), kind="stable")]:
        step = min(room[i], left / abs(gain[i]))
        delta[i] = step if gain[i] > 0 else -step
        left -= step * abs(gain[i])
        if left <= 0:
            break
    return delta


def stronger_changes(gain: np.ndarray, need: float, up: np.ndarray, down: np.ndarray,
                     budget: int | None = None):
    """Changes that push ``gain . delta`` past ``need`` ever harder, fewest inputs first:
    the smallest change (``fewest_inputs``), then its inputs moved as far as they go, then
    one more input at a time (the next largest reach, moved fully) up to ``budget``.

    The linear model is only a guide: when the real network disagrees with the smallest
    change, a larger push along the same direction often crosses the boundary.  Callers
    judge each candidate on the real network."""
    delta = fewest_inputs(gain, need, up, down, budget)
    if delta is None:
        return
    yield delta
    gain = np.asarray(gain, dtype=np.float64)
    full = np.where(gain > 0, up, -np.asarray(down, dtype=np.float64))
    reach = np.abs(gain) * np.abs(full)
    order = np.argsort(-reach, kind="stable")
    order = order[reach[order] > 0]
    k = int(np.count_nonzero(delta))
    limit = len(order) if budget is None else min(budget, len(order))
    for count in range(max(k, 1), limit + 1):
        pushed = np.zeros(len(gain))
        pushed[order[:count]] = full[order[:count]]
        yield pushed
