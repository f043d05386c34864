"""The network above a perturbed neuron layer, encoded the same way for every query.

For every hidden layer m a block ``a{m}`` with ``a = max(0, z)`` as a ReluBlock carrying the
phase observed on the unperturbed input (a max pooling: a block ``p{m}`` of MaxBlock rows with
the observed winners), and rows ``z{m+1} = W a + b`` (``W`` dense or sparse).  Phase fixing,
big-M lowering and the rest are passes.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from compiler.analysis.bounds import activation_interval
from compiler.problem import ProblemBuilder


def encode_tail(b: ProblemBuilder, net, k: int, z: np.ndarray, trace, t: int, lows, highs,
                tag: str, free_first: bool = False) -> np.ndarray:
    """Layers above neuron layer k, from its pre-activation variables ``z`` to the outputs.

    Returns the indices of the output variables.  ``lows``/``highs`` bound ``z_k..z_L``;
    ``trace`` (input ``t``) gives the phases recorded on the ReluBlocks, except on neuron
    layer k when ``free_first``.
    """
    for m in range(k, net.depth + 1):
        edge = net.edge(m)
        phase = None if (free_first and m == k) else edge.phase(trace.pre[m][t])
        if edge.activation is None:
            z_or_a = z
        else:
            lo, hi = activation_interval(edge, lows[m - k], highs[m - k])
            name = "a" if edge.relu else "p"
            z_or_a = b.add_vars(f"{name}{m}{tag}", len(lo), lo, hi, implied=True)
            if edge.relu:
                b.add_relus(f"relu{m}{tag}", z_or_a, z, phase=phase)
            else:
                b.add_maxes(f"maxpool{m}{tag}", z_or_a, np.where(edge.groups >= 0, z[edge.groups], -1),
                            phase=phase)
        if m == net.depth:
            return z_or_a
        nxt = net.edge(m + 1).linear
        z = b.add_vars(f"z{m + 1}{tag}", nxt.n_out, lows[m + 1 - k], highs[m + 1 - k],
                       implied=True)
        affine_rows(b, f"layer{m + 1}{tag}", z, z_or_a, nxt.weight, nxt.bias)
    raise AssertionError("unreachable")


def tail_bounds(net, k: int, z_lo: np.ndarray, z_hi: np.ndarray, method: str = "interval",
                time_budget: float | None = None):
    """Bounds of ``z_k .. z_L`` from bounds on ``z_k``: interval arithmetic, or (``symbolic``,
    ``lp``) ``layer_bounds`` over the box of neuron layer k's activations, intersected with
    the interval bounds (each method is sound; the tighter, the smaller the big-M)."""
    from compiler.analysis.bounds import intersect, layer_bounds, propagate
    from compiler.analysis.input_sets import Box
    lows, highs = propagate(net, k, z_lo, z_hi)
    if method == "interval" or k == net.depth:
        return lows, highs
    a_lo, a_hi = activation_interval(net.edge(k), z_lo, z_hi)
    tight = layer_bounds(net, Box(a_lo, a_hi), method, start=k, time_budget=time_budget)
    for m in range(k + 1, net.depth + 1):
        lows[m - k], highs[m - k] = intersect(lows[m - k], highs[m - k], tight.lower[m],
                                              tight.upper[m])
    return lows, highs


def affine_rows(b: ProblemBuilder, name: str, z: np.ndarray, a: np.ndarray, weight, rhs,
                shift=None) -> None:
    """Rows ``z - W a = rhs`` (``W`` dense or sparse); with ``shift``, a second block entering
    with ``+W``: ``z - W a + W shift = rhs`` (an input change split as ``a - shift``)."""
    coo = weight.tocoo() if sp.issparse(weight) else None
    r, c = (coo.row, coo.col) if coo is not None else np.nonzero(weight)
    w = coo.data if coo is not None else weight[r, c]
    n = len(z)
    rows, cols, vals = [np.arange(n), r], [z, a[c]], [np.ones(n), -w]
    if shift is not None:
        rows.append(r)
        cols.append(shift[c])
        vals.append(w)
    b.add_rows(name, np.concatenate(rows), np.concatenate(cols), np.concatenate(vals),
               rhs, rhs, n)


def le_max_rows(b: ProblemBuilder, name: str, parts: list[np.ndarray], scales: list[float],
                cap: np.ndarray) -> None:
    """Rows ``part_i <= scale * cap`` for every variable of every part (``cap`` one variable):
    the L-inf objective's "every |change| <= M", written once for every query."""
    cols = np.concatenate(parts)
    count = len(cols)
    factor = np.concatenate([np.full(len(p), s) for p, s in zip(parts, scales)])
    b.add_rows(name, np.tile(np.arange(count), 2), np.concatenate([cols, np.full(count, cap[0])]),
               np.concatenate([np.ones(count), -factor]), -np.inf, 0.0, count)
