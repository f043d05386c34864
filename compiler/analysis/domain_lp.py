r"""The LP relaxation of a network over a box, asked again for sub-domains of the box.

Branch and bound on ReLU phases (``attacks.relu_split``) bounds the network's last layer over
many domains: the box with some ReLUs' phases fixed and the bounds of every layer tightened
to match.  ``DomainLP`` builds the LP of ``compiler.analysis.lp_bounds`` once, from the
bounds of the whole box (inputs, ``z = W a + b`` per layer, triangles at the unstable ReLUs,
max-pool rows), and ``restrict`` moves it to a domain by changing numbers only:

* every pre-activation column gets the domain's bounds ``l <= z <= u``;
* a ReLU unstable over the box keeps its column ``a`` and its two rows ``a >= z`` and the
  chord ``a - s z <= -s l``, now with the domain's ``l, u``: ``s = u / (u - l)`` while it is
  still unstable, ``s = 1, -s l = 0`` (so ``a = z``) when ``l >= 0``, ``s = 0`` and
  ``a <= 0`` (so ``a = 0``) when ``u <= 0``.

The relaxation of a domain holds every point of the network on it, given bounds that hold
there; a phase fixed on the domain enters as its bound (``z >= 0`` or ``z <= 0``), so the LP
is tighter than any linear cut drawn from it.  With every ReLU decided the LP is the network
itself on the domain (max-pool windows aside, which keep the box's rows), and its optimum is
the network's.

Each solve starts from the last basis (only bounds, chord coefficients and the objective
change), or from a basis given to ``restrict``: a child domain's LP differs from its
parent's in a few bounds, so the parent's optimal basis is a few dual simplex steps from the
child's optimum (on the 6x50 MNIST network: 38 iterations per solve at the median instead of
116, and twice the domains per second).  Soundness as in ``lp_bounds``: a value only from an LP HiGHS proves optimal,
loosened by ``1e-7 * (1 + |value|)``; emptiness only when HiGHS proves the LP infeasible
(assumed: its feasibility tolerance, 1e-7 by default, hides no point).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from compiler.analysis.bounds import relu_chord
from compiler.analysis.input_sets import Box
from compiler.analysis.lp_bounds import SAFETY, TriangleLP


class DomainLP:
    """The LP of ``net`` over ``box`` with the box's bounds ``lower[k], upper[k]`` (edge-layers
    1..L-1 are relaxed; edge-layer L is the objective)."""

    def __init__(self, net, box: Box, lower: dict, upper: dict):
        import highspy
        self.status = highspy.HighsModelStatus
        self.model = model = TriangleLP(box, None)
        for k in range(1, net.depth):
            model.add_layer(net.edge(k), lower[k], upper[k])
        E, e = model.entering
        last = net.edge(net.depth)
        weight = sp.csr_matrix(last.linear.weight)
        self.objective = sp.csr_matrix(weight @ E)
        self.constant = weight @ e + last.linear.bias
        self.box = box
        model.h.changeObjectiveSense(highspy.ObjSense.kMaximize)

    def restrict(self, lower: dict, upper: dict, basis=None) -> None:
        """Move the LP to the domain whose bounds are ``lower[k], upper[k]`` (each inside the
        box's); the next solve starts from ``basis`` (from ``basis()``) when one is given."""
        h = self.model.h
        for position, z in enumerate(self.model.z_cols):
            lo, hi = lower[position + 1], upper[position + 1]
            h.changeColsBounds(len(z), z.astype(np.int32), np.asarray(lo, float),
                               np.asarray(hi, float))
            if position not in self.model.relus:
                continue
            unstable, a, chords = self.model.relus[position]
            if not len(unstable):
                continue
            slope, intercept = relu_chord(lo[unstable], hi[unstable])
            h.changeColsBounds(len(a), a.astype(np.int32), np.zeros(len(a)),
                               np.maximum(hi[unstable], 0.0))
            h.changeRowsBounds(len(chords), chords.astype(np.int32),
                               np.full(len(chords), -np.inf), intercept)
            for row, col, value in zip(chords.tolist(), z[unstable].tolist(), (-slope).tolist()):
                h.changeCoeff(row, col, value)
        if basis is not None:
            h.setBasis(basis)

    def basis(self):
        """The basis of the last solve, to start a later one from (``restrict``)."""
        return self.model.h.getBasis()

    def maximize(self, j: int):
        """``(bound, x)``: ``bound >= max y_j`` over the current domain (``y`` the last
        edge-layer) and the input reaching the LP's optimum; ``(inf, None)`` when HiGHS does
        not prove an optimum; None when it proves the domain empty."""
        model, h = self.model, self.model.h
        span = slice(self.objective.indptr[j], self.objective.indptr[j + 1])
        model.set_costs(self.objective.indices[span], self.objective.data[span])
        status = model.run()
        if status == self.status.kInfeasible:
            return None
        if status != self.status.kOptimal:
            return np.inf, None
        value = h.getInfo().objective_function_value + self.constant[j]
        E, e = model.inputs
        inputs = np.asarray(h.getSolution().col_value)[:E.shape[1]]   # the first columns
        x = np.clip(E @ inputs + e, self.box.lower, self.box.upper)
        return value + SAFETY * (1 + abs(value)), x

    def chord_costs(self, lower: dict, upper: dict) -> dict:
        """Per ReLU layer k, per neuron: what its chord's intercept adds to the last
        solve's optimum (the chord row's dual times ``-s l``; 0 for decided neurons), the
        score of BaBSR with the LP's multipliers."""
        duals = np.asarray(self.model.h.getSolution().row_dual)
        costs = {}
        for position, (unstable, _, chords) in self.model.relus.items():
            k = position + 1
            _, intercept = relu_chord(lower[k][unstable], upper[k][unstable])
            score = np.zeros(len(lower[k]))
            score[unstable] = np.abs(duals[chords]) * intercept
            costs[k] = score
        return costs
