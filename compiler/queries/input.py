"""mod2adv / direct / exact as a problem: change ``delta = delta_pos - delta_neg`` to the input,
``|delta_i| <= cap_i * changed_i`` with binary ``changed``, inside the input domain and an
L-inf ball, optionally at most ``max_pixels`` changed; minimize the number of changed inputs,
then the L1 size (or only the L1 / L-inf size).  Returns the problem and the decoder of
``delta``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.errors import NetworkError
from compiler.analysis import bounds
from compiler.analysis.input_sets import Box, SparseBox
from compiler.problem import Problem, ProblemBuilder
from compiler.queries.tail import affine_rows, encode_tail, le_max_rows
from compiler.queries.targets import Target, lower_target

OBJECTIVES = ("pixels", "l1", "linf")
INPUT_BOUNDS = ("budget", "box")


@dataclass(frozen=True, eq=False)
class InputDecoder:
    """``delta`` from a solution, exactly 0 where ``changed`` is off (a solver may leave tiny
    values there)."""

    delta_pos: np.ndarray
    delta_neg: np.ndarray
    changed: np.ndarray     # one variable per pixel
    group: np.ndarray       # input i's pixel

    def decode(self, x: np.ndarray) -> np.ndarray:
        delta = x[self.delta_pos] - x[self.delta_neg]
        delta[x[self.changed][self.group] < 0.5] = 0.0
        return delta


def input_query(net, x: np.ndarray, target: Target, linf: float, max_pixels: int | None = None,
                objective: str = "pixels", input_bounds: str = "budget",
                phase_point: np.ndarray | None = None, groups: np.ndarray | None = None,
                bounds_method: str = "interval", time_budget: float | None = None,
                bounds_cache: dict | None = None) -> tuple[Problem, InputDecoder]:
    """Blocks: ``delta_pos``, ``delta_neg``, ``changed`` (binary, one per pixel), ``z1``,
    ``a{m}``/``p{m}``, ``z{m}``, and ``delta_max`` for the L-inf objective.

    ``groups[i]`` is input i's pixel (``Network.pixel_groups``: the positions of a colour
    image); None: every input value is a pixel.  ``input_bounds="budget"`` bounds ``z1`` over
    the inputs with at most ``max_pixels`` changed pixels (``SparseBox``); ``"box"`` over the
    whole L-inf box.  ``phase_point`` (default ``x``) is the input whose phases the
    ReluBlocks and MaxBlocks record, so phase fixing can re-linearize at a candidate.
    ``bounds_method`` (``compiler.analysis.bounds.METHODS``) bounds the layers above over
    that input set: the big-M constants of free phases; ``bounds_cache`` (a dict the caller
    keeps) reuses them across queries over the same set (e.g. one per target class).
    """
    if objective not in OBJECTIVES:
        raise NetworkError(f"unknown input objective {objective!r}; use one of {OBJECTIVES}")
    if input_bounds not in INPUT_BOUNDS:
        raise NetworkError(f"unknown input bounds {input_bounds!r}; use one of {INPUT_BOUNDS}")
    x = net.check_input(x).ravel()
    trace = net.simulate(x)
    phase_trace = trace if phase_point is None else net.simulate(phase_point)
    lo_box, hi_box = bounds.input_box(x, net.domain.lower, net.domain.upper, linf)
    up, down = np.maximum(hi_box - x, 0.0), np.maximum(x - lo_box, 0.0)
    n = net.n_inputs
    edge = net.edge(1)

    group = np.arange(n) if groups is None else np.asarray(groups)
    n_groups = int(group.max()) + 1 if n else 0
    b = ProblemBuilder(f"input_{net.name}")
    d_pos = b.add_vars("delta_pos", n, 0.0, up)
    d_neg = b.add_vars("delta_neg", n, 0.0, down)
    cap = np.maximum(up, down)
    movable = np.bincount(group, weights=cap, minlength=n_groups) > 0
    changed = b.add_vars("changed", n_groups, 0.0, movable.astype(float), integer=True)
    # delta_pos_i + delta_neg_i <= cap_i * changed_{pixel of i}
    b.add_rows("pixel", np.tile(np.arange(n), 3), np.concatenate([d_pos, d_neg, changed[group]]),
               np.concatenate([np.ones(n), np.ones(n), -cap]), -np.inf, 0.0, n)
    if max_pixels is not None:
        b.add_rows("pixel_budget", np.zeros(n_groups, int), changed, np.ones(n_groups), -np.inf,
                   float(max_pixels), 1)

    values_per_pixel = int(np.bincount(group).max()) if n else 1
    if input_bounds == "budget" and max_pixels is not None:
        input_set = SparseBox(x, lo_box, hi_box, int(max_pixels) * values_per_pixel)
    else:
        input_set = Box(lo_box, hi_box)
    z_lo, z_hi = input_set.concretize(edge.linear.weight, edge.linear.bias)
    z0 = trace.pre[1][0]
    z = b.add_vars("z1", len(z0), z_lo, z_hi)
    # z1 - W delta_pos + W delta_neg = W x + b
    affine_rows(b, "layer1", z, d_pos, edge.linear.weight, z0, shift=d_neg)
    lows, highs = bounds.propagate(net, 1, z_lo, z_hi)
    if bounds_method != "interval":
        key = (bounds_method, max_pixels, input_bounds, linf, x.tobytes())
        if bounds_cache is not None and key in bounds_cache:
            tight = bounds_cache[key]
        else:
            tight = bounds.layer_bounds(net, input_set, bounds_method, time_budget=time_budget)
            if bounds_cache is not None:
                bounds_cache[key] = tight
        pairs = [bounds.intersect(lo, hi, tight.lower[m], tight.upper[m])
                 for m, (lo, hi) in enumerate(zip(lows, highs), start=1)]
        lows, highs = [lo for lo, _ in pairs], [hi for _, hi in pairs]
    y = encode_tail(b, net, 1, z, phase_trace, 0, lows, highs, "")
    lower_target(b, y, target, "target")

    size_weight = 1.0
    if objective == "pixels":
        b.minimize(changed, 1.0)
        # Lexicographic: one more pixel always costs more than any L1 saving.
        size_weight = 0.5 / max(float(np.sum(cap)), 1e-12)
    if objective == "linf":
        m = b.add_vars("delta_max", (1,), 0.0, float(np.max(cap, initial=0.0)))
        le_max_rows(b, "delta_le_max", [d_pos, d_neg], [1.0, 1.0], m)
        b.minimize(m, 1.0)
    else:
        b.minimize(d_pos, size_weight)
        b.minimize(d_neg, size_weight)
    return b.build(), InputDecoder(d_pos, d_neg, changed, group)
