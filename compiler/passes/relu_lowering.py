r"""Big-M lowering of ``a = max(0, z)`` with the bounds ``l <= z <= u`` of the problem:

.. math::  a \ge z,\; a \ge 0,\; a \le z - l (1 - r),\; a \le u\, r,\; r \in \{0, 1\}

A ReLU whose bounds fix its phase needs no binary (``u <= 0``: ``a = 0``; ``l >= 0``:
``a = z``).  The constants are only as good as the bounds: the queries compute them by
interval arithmetic (``compiler.analysis.bounds``).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from common.errors import NetpatchError
from compiler.passes.base import Pass


class ReluLowering(Pass):
    name = "relu-lowering"
    help = "remaining ReLUs become big-M rows with binaries (for solvers without them)"

    def accepts(self, problem, capabilities) -> bool:
        return bool(problem.relus) and not capabilities.native_relu

    def apply(self, problem):
        return lower_relus(problem)


def lower_relus(problem):
    if not problem.relus:
        return problem, None
    a = np.concatenate([blk.a for blk in problem.relus])
    z = np.concatenate([blk.z for blk in problem.relus])
    lo, hi = problem.lower[z], problem.upper[z]
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        i = int(np.argmax(~(np.isfinite(lo) & np.isfinite(hi))))
        raise NetpatchError(f"ReLU on variable {problem.variable_names()[z[i]]} has no finite "
                            "bounds: big-M lowering needs them")
    lower, upper = problem.lower.copy(), problem.upper.copy()
    dead, alive, free = hi <= 0, lo >= 0, (lo < 0) & (hi > 0)
    lower[a[dead]], upper[a[dead]] = 0.0, 0.0
    lower[a] = np.where(dead, 0.0, np.maximum(lower[a], 0.0))
    upper[a[~dead]] = np.maximum(upper[a[~dead]], np.maximum(hi[~dead], 0.0))
    n_old = problem.n_vars
    out = problem.with_(lower=lower, upper=upper, relus=())

    # a - z = 0 where the phase is known to be active
    ids = np.flatnonzero(alive)
    eq = sp.csr_matrix((np.concatenate([np.ones(len(ids)), -np.ones(len(ids))]),
                        (np.tile(np.arange(len(ids)), 2), np.concatenate([a[ids], z[ids]]))),
                       shape=(len(ids), n_old))
    out = out.with_rows("relu_active", eq, 0.0, 0.0)

    ids = np.flatnonzero(free)
    count = len(ids)
    if count:
        out = out.with_vars("relu_on", count, 0.0, 1.0, integer=True)
        r = n_old + np.arange(count)
        rr = np.arange(count)
        n = out.n_vars
        ones = np.ones(count)
        above_z = sp.csr_matrix((np.concatenate([ones, -ones]),
                                 (np.tile(rr, 2), np.concatenate([a[ids], z[ids]]))), shape=(count, n))
        below_z = sp.csr_matrix((np.concatenate([ones, -ones, -lo[ids]]),
                                 (np.tile(rr, 3), np.concatenate([a[ids], z[ids], r]))), shape=(count, n))
        below_u = sp.csr_matrix((np.concatenate([ones, -hi[ids]]),
                                 (np.tile(rr, 2), np.concatenate([a[ids], r]))), shape=(count, n))
        out = out.with_rows("relu_ge_z", above_z, 0.0, np.inf)
        out = out.with_rows("relu_le_z", below_z, -np.inf, -lo[ids])
        out = out.with_rows("relu_le_u", below_u, -np.inf, 0.0)
    return out, lambda x: x[:n_old]
