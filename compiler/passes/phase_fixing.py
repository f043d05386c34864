"""Phase fixing: each ReLU keeps the phase it had on the unperturbed input.

Two readings (METHOD.md):

* ``region`` (sound): active means ``z >= 0, a = z``; inactive means ``z <= 0, a = 0``.  A
  solution is exact for the network, but the region rarely holds the decision boundary.
* ``linearized`` (the paper's artifact): the network's linear model at the input; active
  means ``a = z`` with no sign constraint, inactive means ``a = 0``.  Solutions are candidates
  that float64 validation accepts or rejects.  The bounds a query derived for the real network
  (``VarBlock.implied``) do not hold for the linear model (an active neuron may go negative and
  pass that on), so they are dropped.

Max pooling (MaxBlocks) likewise keeps the input that won on the unperturbed input:
``m = v_phase`` (linearized), plus ``v_phase >= v_j`` for the others (region).

Either way the blocks with a recorded phase disappear and the problem becomes an LP (plus
any other integers).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from common.errors import NetpatchError
from compiler.passes.base import Pass

MODES = ("linearized", "region")


@dataclass(frozen=True)
class PhaseFixing(Pass):
    mode: str = "linearized"
    name = "phase-fixing"
    help = ("ReLUs keep the phase of the unperturbed input (linearized | region): "
            "an LP instead of a MILP")
    switch = "--no-phase-fixing"

    def __post_init__(self):
        if self.mode not in MODES:
            raise NetpatchError(f"unknown phase-fixing mode {self.mode!r}; use one of "
                                f"{', '.join(MODES)}")

    def accepts(self, problem, capabilities) -> bool:
        return any(block.phase is not None for block in problem.relus + problem.maxes)

    def apply(self, problem):
        return fix_phases(problem, self.mode)


def fix_phases(problem, mode: str = "linearized"):
    lower, upper = problem.lower.copy(), problem.upper.copy()
    if mode == "linearized":
        for block in problem.blocks:
            if block.implied:
                lower[block.indices], upper[block.indices] = -np.inf, np.inf
    a_active, z_active, kept = [], [], []
    for block in problem.relus:
        if block.phase is None:
            kept.append(block)
            continue
        on, off = block.phase, ~block.phase
        lower[block.a[off]] = 0.0
        upper[block.a[off]] = 0.0
        if mode == "region":
            lower[block.z[on]] = np.maximum(lower[block.z[on]], 0.0)
            upper[block.z[off]] = np.minimum(upper[block.z[off]], 0.0)
        else:
            lower[block.a[on]] = -np.inf
            upper[block.a[on]] = np.inf
        a_active.append(block.a[on])
        z_active.append(block.z[on])
    a_active = np.concatenate(a_active) if a_active else np.zeros(0, int)
    z_active = np.concatenate(z_active) if z_active else np.zeros(0, int)
    count = len(a_active)
    # a - z = 0 for every active neuron
    rows = sp.csr_matrix((np.concatenate([np.ones(count), -np.ones(count)]),
                          (np.tile(np.arange(count), 2), np.concatenate([a_active, z_active]))),
                         shape=(count, problem.n_vars))
    fixed = problem.with_(lower=lower, upper=upper, relus=tuple(kept))
    fixed = fixed.with_rows("active", rows, 0.0, 0.0)
    return _fix_maxes(fixed, mode), None


def _fix_maxes(problem, mode: str):
    """``m - v_phase = 0`` per fixed max row; region also ``v_phase - v_j >= 0``."""
    kept, winners, outs, region_rows = [], [], [], []
    for block in problem.maxes:
        if block.phase is None:
            kept.append(block)
            continue
        rows = np.arange(len(block.out))
        winner = block.inputs[rows, block.phase]
        winners.append(winner)
        outs.append(block.out)
        if mode == "region":
            others = block.inputs.copy()
            others[rows, block.phase] = -1
            r, j = np.nonzero(others >= 0)
            region_rows.append((winner[r], others[r, j]))
    if not outs:
        return problem
    winner, out = np.concatenate(winners), np.concatenate(outs)
    count = len(out)
    pick = sp.csr_matrix((np.concatenate([np.ones(count), -np.ones(count)]),
                          (np.tile(np.arange(count), 2), np.concatenate([out, winner]))),
                         shape=(count, problem.n_vars))
    problem = problem.with_(maxes=tuple(kept)).with_rows("max_winner", pick, 0.0, 0.0)
    if region_rows:
        win = np.concatenate([w for w, _ in region_rows])
        lose = np.concatenate([v for _, v in region_rows])
        n = len(win)
        beats = sp.csr_matrix((np.concatenate([np.ones(n), -np.ones(n)]),
                               (np.tile(np.arange(n), 2), np.concatenate([win, lose]))),
                              shape=(n, problem.n_vars))
        problem = problem.with_rows("max_region", beats, 0.0, np.inf)
    return problem
