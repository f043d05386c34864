"""Is there an input in a box whose outputs meet a property?  The verification question
(VNN-LIB: an input box and a conjunction of output constraints), as a problem:

    maximize t   subject to   lhs_i(y(x)) - rhs_i >= t   (>= constraints; <= negated)
                              lower <= x <= upper,   y = the network (ReLUs, max pools)
                              -T <= t <= T

A solution with ``t >= 0`` is a counterexample (for a re-simulation to confirm); a proved
bound ``t* < 0`` is a proof that none exists.  With ``floor`` the question becomes a pure
feasibility problem, ``t >= floor`` and no objective, which a MILP solver settles far sooner:
infeasible is then the proof that no input reaches the margin ``floor``.  Two forms:

* ``box_query``: the whole network, every phase recorded (at the box centre) but left free
  unless a phase-fixing pass runs; bounds on every pre-activation from
  ``compiler.analysis.bounds.layer_bounds`` (they are the big-M constants);
* ``linearized_query``: the network's linear model at a point (``input_function``), an LP in
  the inputs alone, for a cheap search of counterexamples.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.analysis.bounds import layer_bounds
from compiler.analysis.input_sets import Box
from compiler.analysis.pullback import input_function
from compiler.problem import Problem, ProblemBuilder
from compiler.queries.tail import affine_rows, encode_tail
from ir.property import Conjunction


@dataclass(frozen=True, eq=False)
class BoxDecoder:
    """The input ``x`` and the margin ``t`` of a solution."""

    x: np.ndarray
    t: int

    def decode(self, solution: np.ndarray) -> np.ndarray:
        return solution[self.x]

    def margin(self, solution: np.ndarray) -> float:
        return float(solution[self.t])


def _margin_rows(b: ProblemBuilder, name: str, target: Conjunction, lhs_rows, var_cols,
                 rhs_shift, t: np.ndarray) -> None:
    """``sign_i (lhs_i - rhs_i) - t >= 0`` per constraint, ``lhs_i = lhs_rows[i] @ x[var_cols]
    + rhs_shift[i]``."""
    rows, cols, vals, lows = [], [], [], []
    for r, (constraint, row) in enumerate(zip(target.constraints, lhs_rows)):
        if constraint.sense == "==":
            raise ValueError("an equality is not a margin: write it as two inequalities")
        sign = 1.0 if constraint.sense == ">=" else -1.0
        nz = np.flatnonzero(row)
        rows += [r] * (len(nz) + 1)
        cols += list(var_cols[nz]) + [t[0]]
        vals += list(sign * row[nz]) + [-1.0]
        lows.append(sign * (constraint.rhs - rhs_shift[r]))
    b.add_rows(name, rows, cols, vals, np.array(lows), np.inf, len(target.constraints))


def box_bounds(net, lower: np.ndarray, upper: np.ndarray, bounds: str = "symbolic",
               time_budget: float | None = None, cache: dict | None = None,
               known: tuple[dict, dict] | None = None):
    """``layer_bounds`` over the box (starting from the ``known`` bounds of its first layers,
    when given), computed once per box and method when given a ``cache`` (a dict the caller
    keeps)."""
    key = (bounds, np.asarray(lower, float).tobytes(), np.asarray(upper, float).tobytes())
    analysis = None if cache is None else cache.get(key)
    if analysis is None:
        analysis = layer_bounds(net, Box(lower, upper), bounds, time_budget=time_budget,
                                known=known)
        if cache is not None:
            cache[key] = analysis
    return analysis


def box_query(net, lower: np.ndarray, upper: np.ndarray, target: Conjunction,
              bounds: str = "symbolic", time_budget: float | None = None,
              floor: float | None = None, bounds_cache: dict | None = None
              ) -> tuple[Problem, BoxDecoder]:
    """Blocks ``x``, ``z1``, ``a{m}``/``p{m}``, ``z{m}`` and ``t``; minimizes ``-t``, or with
    ``floor`` asks only for ``t >= floor``.  ``t`` is bounded by what the output bounds
    allow.  ``bounds_cache`` (a dict the caller keeps) reuses the bounds of one box."""
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    analysis = box_bounds(net, lower, upper, bounds, time_budget, bounds_cache)
    lows = [analysis.lower[k] for k in range(1, net.depth + 1)]
    highs = [analysis.upper[k] for k in range(1, net.depth + 1)]
    trace = net.simulate((lower + upper) / 2)
    b = ProblemBuilder(f"box_{net.name}")
    x = b.add_vars("x", net.n_inputs, lower, upper)
    edge = net.edge(1)
    z = b.add_vars("z1", edge.linear.n_out, lows[0], highs[0], implied=True)
    affine_rows(b, "layer1", z, x, edge.linear.weight, edge.linear.bias)
    y = encode_tail(b, net, 1, z, trace, 0, lows, highs, "")
    coeffs = np.zeros((len(target.constraints), len(y)))
    for r, constraint in enumerate(target.constraints):
        for i, c in constraint.coeffs:
            coeffs[r, i] = c
    out_lo, out_hi = _output_bounds(net, lows[-1], highs[-1])
    reach = np.abs(coeffs) @ np.maximum(np.abs(out_lo), np.abs(out_hi))
    cap = float(np.max(reach + np.abs([c.rhs for c in target.constraints]))) + 1.0
    t = b.add_vars("t", 1, -cap if floor is None else floor, cap)
    _margin_rows(b, "margin", target, coeffs, np.asarray(y), np.zeros(len(coeffs)), t)
    if floor is None:
        b.minimize(t, -1.0)
    return b.build(), BoxDecoder(x, int(t[0]))


def _output_bounds(net, lo: np.ndarray, hi: np.ndarray):
    from compiler.analysis.bounds import activation_interval
    return activation_interval(net.edge(net.depth), lo, hi)


def linearized_query(net, point: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                     target: Conjunction, cap: float = 1e6) -> tuple[Problem, BoxDecoder]:
    """The same question for the network's linear model at ``point`` (an LP over ``x``)."""
    gains, offsets = input_function(net, target, net.phases(point))
    b = ProblemBuilder(f"linearized_{net.name}")
    x = b.add_vars("x", net.n_inputs, lower, upper)
    t = b.add_vars("t", 1, -cap, cap)
    _margin_rows(b, "margin", target, gains, x, offsets, t)
    b.minimize(t, -1.0)
    return b.build(), BoxDecoder(x, int(t[0]))
