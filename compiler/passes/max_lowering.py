r"""Big-M lowering of ``m = max(v_1, ..., v_k)`` (a MaxBlock row) with the bounds
``l_j <= v_j <= u_j`` of the problem, ``U = max_j u_j``:

.. math::  m \ge v_j,\quad m \le v_j + (U - l_j)(1 - s_j),\quad \sum_j s_j = 1,\quad
           s_j \in \{0, 1\}

A row whose bounds decide the winner (``l_j >= u_i`` for every other i) needs no binary:
``m = v_j``.  Inputs that can never win (``u_j < max_i l_i``) get no binary either.  The
constants are only as good as the bounds (``compiler.analysis.bounds``).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from common.errors import NetpatchError
from compiler.passes.base import Pass


class MaxLowering(Pass):
    name = "max-lowering"
    help = "remaining max poolings become big-M rows with binaries (for solvers without them)"

    def accepts(self, problem, capabilities) -> bool:
        return bool(problem.maxes) and not capabilities.native_max

    def apply(self, problem):
        return lower_maxes(problem)


def lower_maxes(problem):
    n_old = problem.n_vars
    ge_rows, eq_rows, le_rows, sums = [], [], [], []   # (m, v[, M]) triples / binary groups
    lower, upper = problem.lower.copy(), problem.upper.copy()
    next_binary = n_old
    for block in problem.maxes:
        for m, inputs in zip(block.out, block.inputs):
            v = inputs[inputs >= 0]
            lo, hi = problem.lower[v], problem.upper[v]
            if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
                raise NetpatchError(f"max pooling on {problem.variable_names()[m]} has inputs "
                                    "without finite bounds: big-M lowering needs them")
            lower[m] = max(lower[m], lo.max())
            upper[m] = min(upper[m], hi.max())
            best = int(np.argmax(lo))
            if lo[best] >= np.delete(hi, best).max(initial=-np.inf):
                eq_rows.append((m, v[best]))
                continue
            ge_rows += [(m, j) for j in v]
            candidates = np.flatnonzero(hi >= lo.max())
            binaries = next_binary + np.arange(len(candidates))
            next_binary += len(candidates)
            le_rows += [(m, v[c], hi.max() - lo[c], s) for c, s in zip(candidates, binaries)]
            sums.append(binaries)
    out = problem.with_(lower=lower, upper=upper, maxes=())
    if next_binary > n_old:
        out = out.with_vars("max_on", next_binary - n_old, 0.0, 1.0, integer=True)
    n = out.n_vars

    def pairs(rows, name, lo, hi):
        if not rows:
            return
        m, v = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
        count = len(rows)
        matrix = sp.csr_matrix((np.concatenate([np.ones(count), -np.ones(count)]),
                                (np.tile(np.arange(count), 2), np.concatenate([m, v]))),
                               shape=(count, n))
        nonlocal out
        out = out.with_rows(name, matrix, lo, hi)

    pairs(eq_rows, "max_decided", 0.0, 0.0)
    pairs(ge_rows, "max_ge", 0.0, np.inf)
    if le_rows:
        count = len(le_rows)
        m, v, big, s = (np.array([r[i] for r in le_rows]) for i in range(4))
        # m - v + M s <= M
        matrix = sp.csr_matrix((np.concatenate([np.ones(count), -np.ones(count), big]),
                                (np.tile(np.arange(count), 3), np.concatenate([m, v, s]))),
                               shape=(count, n))
        out = out.with_rows("max_le", matrix, -np.inf, big)
        rows = np.concatenate([np.full(len(g), r) for r, g in enumerate(sums)])
        one = sp.csr_matrix((np.ones(len(rows)), (rows, np.concatenate(sums))),
                            shape=(len(sums), n))
        out = out.with_rows("max_one", one, 1.0, 1.0)
    return out, lambda x: x[:n_old]
