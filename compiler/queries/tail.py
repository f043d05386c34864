"""The network above a perturbed neuron layer, encoded the same way for every query.

For every hidden layer m a block ``a{m}`` with ``a = max(0, z)`` as a ReluBlock carrying the
phase observed on the unperturbed input, and rows ``z{m+1} = W a + b``.  Phase fixing, big-M
lowering and the rest are passes.
"""
from __future__ import annotations

import numpy as np

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
        if edge.relu:
            a = b.add_vars(f"a{m}{tag}", len(z), 0.0, np.maximum(highs[m - k], 0.0), implied=True)
            phase = None if (free_first and m == k) else edge.phase(trace.pre[m][t])
            b.add_relus(f"relu{m}{tag}", a, z, phase=phase)
            z_or_a = a
        else:
            z_or_a = z
        if m == net.depth:
            return z_or_a
        nxt = net.edge(m + 1).linear
        z = b.add_vars(f"z{m + 1}{tag}", nxt.n_out, lows[m + 1 - k], highs[m + 1 - k],
                       implied=True)
        r, c = np.nonzero(nxt.weight)
        b.add_rows(f"layer{m + 1}{tag}", np.concatenate([np.arange(nxt.n_out), r]),
                   np.concatenate([z, z_or_a[c]]),
                   np.concatenate([np.ones(nxt.n_out), -nxt.weight[r, c]]),
                   nxt.bias, nxt.bias, nxt.n_out)
    raise AssertionError("unreachable")


def le_max_rows(b: ProblemBuilder, name: str, parts: list[np.ndarray], scales: list[float],
                cap: np.ndarray) -> None:
    """Rows ``part_i <= scale * cap`` for every variable of every part (``cap`` one variable):
    the L-inf objective's "every |change| <= M", written once for every query."""
    cols = np.concatenate(parts)
    count = len(cols)
    factor = np.concatenate([np.full(len(p), s) for p, s in zip(parts, scales)])
    b.add_rows(name, np.tile(np.arange(count), 2), np.concatenate([cols, np.full(count, cap[0])]),
               np.concatenate([np.ones(count), -factor]), -np.inf, 0.0, count)
