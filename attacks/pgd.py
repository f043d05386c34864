"""Projected gradient ascent on a property's slack over an input box: the cheap falsifier
verifiers run first (Madry et al.'s PGD, on the margin of a conjunction instead of a loss).

The slack of a conjunction is its weakest constraint's margin (``>= 0`` when it holds); its
gradient at a point is that constraint's row pulled back through the network with the
point's own ReLU and max-pool phases (a batched vector-Jacobian product, sparse for
convolutions).  Starting points are the box centre and uniform samples, split over the
conjunctions; each step moves every input by a fraction of its half-width in the direction
of the gradient's sign and projects onto the box.  Nothing is claimed here: a point is
returned only when the float64 network meets the conjunction on it, inside the box exactly.
"""
from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from ir.property import Conjunction

STARTS = 32          # starting points per conjunction
STEPS = 100
FIRST_STEP = 0.5     # of the box's half-width, shrinking geometrically to ~1/50 of it


def slack_rows(conj: Conjunction, n_outputs: int) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, offsets)`` with ``slack_c(y) = rows[c] @ y + offsets[c]`` per constraint
    (an equality gives two rows, one per side)."""
    rows, offsets = [], []
    for constraint in conj.constraints:
        coeffs = np.zeros(n_outputs)
        for i, c in constraint.coeffs:
            coeffs[i] = c
        signs = {">=": (1.0,), "<=": (-1.0,), "==": (1.0, -1.0)}[constraint.sense]
        for sign in signs:
            rows.append(sign * coeffs)
            offsets.append(-sign * constraint.rhs)
    return np.array(rows).reshape(-1, n_outputs), np.array(offsets)


def input_gradients(net, trace, rows: np.ndarray) -> np.ndarray:
    """``d (rows[b] @ y) / d x`` at every point b of ``trace`` (``Network.simulate``), each
    through its own phases."""
    g = np.asarray(rows, dtype=np.float64)
    for edge in reversed(net.edges):
        z = trace.pre[edge.index]
        if edge.activation == "relu":
            g = g * (z > 0)
        elif edge.activation == "maxpool":
            padded = np.concatenate([z, np.full((len(z), 1), -np.inf)], axis=1)
            winners = edge.groups[np.arange(len(edge.groups)), np.argmax(padded[:, edge.groups],
                                                                         axis=2)]
            spread = np.zeros((len(z), z.shape[1] + 1))
            np.add.at(spread, (np.arange(len(z))[:, None], winners), g)
            g = spread[:, :-1]
        weight = edge.linear.weight
        g = np.asarray((weight.T @ g.T).T) if sp.issparse(weight) else g @ weight
    return g


def pgd(net, lower: np.ndarray, upper: np.ndarray, conjunctions: list[Conjunction],
        rng: np.random.Generator, deadline: float | None = None, starts: int = STARTS,
        steps: int = STEPS) -> tuple[np.ndarray, int] | None:
    """A point of the box meeting one of the conjunctions, with that conjunction's index,
    or None (after ``steps`` steps, or at ``deadline``, a ``time.perf_counter`` value)."""
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    half = (upper - lower) / 2
    tables = [slack_rows(conj, net.n_outputs) for conj in conjunctions]
    owner = np.repeat(np.arange(len(conjunctions)), starts)
    x = lower + rng.uniform(size=(len(owner), len(lower))) * (upper - lower)
    x[::starts] = lower + half                       # every conjunction starts once at the centre
    decay = (1 / 25) ** (1 / max(steps - 1, 1))
    for step in range(steps + 1):
        trace = net.simulate(x)
        y = trace.output
        slack = np.full(len(x), -np.inf)
        weakest = np.zeros((len(x), net.n_outputs))
        for j, (rows, offsets) in enumerate(tables):
            mine = owner == j
            margins = y[mine] @ rows.T + offsets
            slack[mine] = margins.min(axis=1)
            weakest[mine] = rows[np.argmin(margins, axis=1)]
        for b in np.flatnonzero(slack >= 0):
            if conjunctions[owner[b]].holds(net(x[b])):
                return x[b].copy(), int(owner[b])
        if step == steps or (deadline is not None and time.perf_counter() >= deadline):
            return None
        direction = np.sign(input_gradients(net, trace, weakest))
        x = np.clip(x + FIRST_STEP * decay ** step * half * direction, lower, upper)
    return None
