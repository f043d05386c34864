r"""LP bounds: progressive tightening, MIPVerify style (Tjeng et al., ICLR 2019), with HiGHS.

Start from the symbolic bounds (``compiler.analysis.symbolic``).  Then for each edge-layer
k = start+2..L in order: redo the back-substitution of layer k with the bounds tightened
below (when any were), and for every neuron of layer k still undecided solve

    min z_kj  and  max z_kj  =  W_kj a_{k-1} + b_kj

over the LP relaxation of edge-layers start+1..k-1 with the current bounds:

* the input set as variables: ``Box`` as ``lower <= x <= upper``; ``SparseBox`` as
  ``x = c + p - q`` with ``0 <= p_i <= upper_i - c_i``, ``0 <= q_i <= c_i - lower_i`` and the
  relaxed budget ``sum_i p_i / (upper_i - c_i) + q_i / (c_i - lower_i) <= k`` (no column for
  a direction with a zero range; fixed coordinates of a ``Box`` are constants too), and its
  ``free`` coordinates as ``lower_i <= x_i <= upper_i``.  This is
  the relaxation ``|x_i - c_i| <= range_i s_i``, ``0 <= s_i <= 1``, ``sum s_i <= k`` split
  into up and down parts with ``s`` eliminated; its projection on ``x`` is the convex hull of
  the set, so an LP over it attains the set's exact range for a linear function;
* ``z_m = W_m a_{m-1} + b_m`` exactly, with ``l_m <= z_m <= u_m``;
* ReLU: ``a = z`` when ``l >= 0``, ``a = 0`` when ``u <= 0``, otherwise the triangle
  ``a >= 0``, ``a >= z``, ``a <= u (z - l) / (u - l)``;
* max pooling: ``m = z_{i*}`` for a decided window (``bounds.pool_decisions``), otherwise
  ``m >= z_i`` for every input i of the window and ``max_i l_i <= m <= max_i u_i``.

Undecided neurons: ReLUs with ``l < 0 < u``; every input of an undecided max-pool window; all
neurons of a last layer without activation.  Layer start+1 is not solved: the set's
concretization is already exact there.

One ``highspy.Highs`` model grows with the layers (a stage adds its layer once its bounds are
final) and is reused across neurons and stages: only the objective changes
(``changeColsCost``), so every solve starts from the previous basis.

Soundness: a bound is taken only from an LP that HiGHS proves optimal, loosened by
``1e-7 * (1 + |value|)`` to cover the solver's feasibility and optimality tolerances, and
intersected with the bound it replaces.  An LP that stops for any other reason (time limit,
numerical trouble) leaves the neuron's previous bound.  ``time_budget`` (seconds) caps the
whole LP stage: once spent, the remaining neurons keep their symbolic bounds.  Facts used:
the relaxations above contain every point of the network on the set (so the LP optimum bounds
the true range); assumed: HiGHS's tolerances (1e-7 by default, on primal and dual
feasibility) move a proved optimum by less than the margin.
"""
from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from common.highs import new_highs
from compiler.analysis.bounds import activation_interval, intersect, pool_decisions, relu_chord
from compiler.analysis.input_sets import Box, SparseBox
from compiler.analysis.symbolic import layer_symbolic, symbolic_bounds

SAFETY = 1e-7


def lp_bounds(net, input_set, start: int = 0, time_budget: float | None = None,
              relu_lower: str = "area", known: tuple[dict, dict] | None = None):
    """``(lower, upper, solved)``: dicts keyed by edge-layer k = start+1..L; ``solved[k]``
    counts the LPs proved optimal for layer k (layers the budget never reached have no entry).
    ``known``: sound bounds of the first layers to start from instead of their symbolic
    bounds (``symbolic_bounds``).
    """
    lower, upper = symbolic_bounds(net, input_set, start, relu_lower, known)
    deadline = None if time_budget is None else time.perf_counter() + time_budget
    model = TriangleLP(input_set, deadline)
    solved: dict[int, int] = {}
    tightened = False
    for k in range(start + 1, net.depth + 1):
        edge = net.edge(k)
        if k > start + 1:
            if model.out_of_time():
                break
            if tightened:
                lo, hi = layer_symbolic(net, input_set, start, k, lower, upper, relu_lower)
                lower[k], upper[k] = intersect(lower[k], upper[k], lo, hi)
            before = (lower[k].copy(), upper[k].copy())
            solved[k] = model.tighten(edge, _undecided(edge, lower[k], upper[k]),
                                      lower[k], upper[k])
            tightened = tightened or not (np.array_equal(before[0], lower[k])
                                          and np.array_equal(before[1], upper[k]))
        if k < net.depth:
            model.add_layer(edge, lower[k], upper[k])
    return lower, upper, solved


def _undecided(edge, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    if edge.activation == "relu":
        return np.flatnonzero((lo < 0) & (hi > 0))
    if edge.activation == "maxpool":
        members = edge.groups[~pool_decisions(edge.groups, lo, hi)[1]]
        return np.unique(members[members >= 0])
    return np.arange(len(lo))


class TriangleLP:
    """The growing LP (also moved from domain to domain by ``domain_lp.DomainLP``).
    ``entering`` = ``(E, e)``: the values entering the next edge-layer are ``E y + e`` for
    the LP columns ``y`` (``E`` CSR over the columns so far); ``inputs`` the same for the
    input."""

    def __init__(self, input_set, deadline: float | None):
        import highspy
        self.optimal = highspy.HighsModelStatus.kOptimal
        self.unknown = highspy.HighsModelStatus.kUnknown
        self.h = new_highs()
        self.deadline = deadline
        self.n_cols = self.n_rows = 0
        self.z_cols: list[np.ndarray] = []     # per layer added: its pre-activation columns
        self.relus: dict[int, tuple] = {}      # position there -> (unstable, a, chord rows)
        self.costed = np.empty(0, dtype=np.int32)
        encode, strategy = _ENCODERS[type(input_set)]
        self.h.setOptionValue("simplex_strategy", strategy)
        self.entering = self.inputs = encode(self, input_set)

    # ---- building ----------------------------------------------------------------------
    def add_cols(self, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
        n = len(lower)
        self.h.addVars(n, np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64))
        cols = np.arange(self.n_cols, self.n_cols + n)
        self.n_cols += n
        return cols

    def add_rows(self, rows, cols, vals, lower, upper, n_rows: int) -> np.ndarray:
        """Rows ``lower <= A y <= upper`` with ``A`` given as triplets; their indices."""
        a = sp.csr_matrix((vals, (rows, cols)), shape=(n_rows, self.n_cols))
        self.h.addRows(n_rows, np.broadcast_to(np.asarray(lower, float), n_rows).copy(),
                       np.broadcast_to(np.asarray(upper, float), n_rows).copy(), a.nnz,
                       a.indptr[:-1].astype(np.int32), a.indices.astype(np.int32), a.data)
        self.n_rows += n_rows
        return np.arange(self.n_rows - n_rows, self.n_rows)

    def columns(self, n_rows: int, rows, cols) -> sp.csr_matrix:
        """A 0/1 selection ``E`` (``n_rows`` x columns so far): row ``rows[i]`` is column
        ``cols[i]``."""
        return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_rows, self.n_cols))

    def add_layer(self, edge, lo: np.ndarray, hi: np.ndarray) -> None:
        """Edge-layer ``edge`` with ``lo <= z <= hi``: ``z = W (E y + e) + b`` and the
        relaxation of its activation, which becomes the new ``entering``."""
        E, e = self.entering
        weight = sp.csr_matrix(edge.linear.weight)
        coeffs = sp.coo_matrix(weight @ E)
        const = weight @ e + edge.linear.bias
        z = self.add_cols(lo, hi)
        self.z_cols.append(z)
        n = len(z)
        # z - W E y = W e + b
        self.add_rows(np.concatenate([np.arange(n), coeffs.row]),
                      np.concatenate([z, coeffs.col]),
                      np.concatenate([np.ones(n), -coeffs.data]), const, const, n)
        self.entering = _ACTIVATIONS[edge.activation](self, edge, z, lo, hi), np.zeros(edge.width)

    # ---- solving -----------------------------------------------------------------------
    def out_of_time(self) -> bool:
        return self.deadline is not None and time.perf_counter() >= self.deadline

    def tighten(self, edge, targets: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> int:
        """Min and max LPs of ``z_j`` for ``j`` in ``targets``, tightening ``lo`` and ``hi``
        in place; returns the number of LPs proved optimal.  Stops at the deadline."""
        E, e = self.entering
        weight = sp.csr_matrix(edge.linear.weight)[targets]
        objective = sp.csr_matrix(weight @ E)
        const = weight @ e + edge.linear.bias[targets]
        proved = 0
        for row, j in enumerate(targets):
            span = slice(objective.indptr[row], objective.indptr[row + 1])
            cols, vals = objective.indices[span], objective.data[span]
            new = [lo[j], hi[j]]
            for side, sign in enumerate((1.0, -1.0)):
                value = self._minimize(cols, sign * vals)
                if value is None:
                    if self.out_of_time():
                        return proved
                    continue
                proved += 1
                bound = sign * value + const[row]
                margin = SAFETY * (1 + abs(bound))
                new[side] = max(lo[j], bound - margin) if side == 0 else min(hi[j], bound + margin)
            # Proved optima that cross by more than the margin mean solver trouble: keep the
            # previous interval.
            if new[0] <= new[1]:
                lo[j], hi[j] = new
        return proved

    def set_costs(self, cols: np.ndarray, costs: np.ndarray) -> None:
        """The objective ``costs . y[cols]`` (the columns costed before go back to 0)."""
        h = self.h
        if len(self.costed):
            h.changeColsCost(len(self.costed), self.costed, np.zeros(len(self.costed)))
        cols = cols.astype(np.int32)
        h.changeColsCost(len(cols), cols, np.asarray(costs, dtype=np.float64))
        self.costed = cols

    def _minimize(self, cols: np.ndarray, costs: np.ndarray) -> float | None:
        """The proved optimum of ``min costs . y[cols]``, or None."""
        h = self.h
        self.set_costs(cols, costs)
        if self.deadline is not None:
            left = self.deadline - time.perf_counter()
            if left <= 0:
                return None
            # HiGHS compares its time limit with the run time summed over all runs.
            h.setOptionValue("time_limit", h.getRunTime() + left)
        if self.run() != self.optimal:
            return None
        return float(h.getInfo().objective_function_value)

    def run(self):
        """Solve from the last basis; the model status."""
        h = self.h
        h.run()
        if h.getModelStatus() == self.unknown:
            # HiGHS 1.15 sometimes gives up on a warm start (seen under the budget row, primal
            # simplex); the same LP from scratch solves.
            h.clearSolver()
            h.run()
        return h.getModelStatus()


def _encode_box(model: TriangleLP, box: Box):
    free = np.flatnonzero(box.upper > box.lower)       # fixed coordinates are constants
    x = model.add_cols(box.lower[free], box.upper[free])
    return model.columns(box.n, free, x), np.where(box.upper > box.lower, 0.0, box.lower)


def _encode_sparse_box(model: TriangleLP, s: SparseBox):
    up, down = s.upper - s.center, s.center - s.lower
    up[s.free] = down[s.free] = 0.0       # the free coordinates: a box, outside the budget
    moves_up, moves_down = np.flatnonzero(up > 0), np.flatnonzero(down > 0)
    p, q = model.add_cols(np.zeros(len(moves_up)), up[moves_up]), \
        model.add_cols(np.zeros(len(moves_down)), down[moves_down])
    model.add_rows(np.zeros(len(p) + len(q), dtype=int), np.concatenate([p, q]),
                   np.concatenate([1.0 / up[moves_up], 1.0 / down[moves_down]]), -np.inf,
                   float(s.k), 1)
    boxed = s.free[s.upper[s.free] > s.lower[s.free]]
    r = model.add_cols(s.lower[boxed], s.upper[boxed])
    entering = (model.columns(s.n, moves_up, p) - model.columns(s.n, moves_down, q)
                + model.columns(s.n, boxed, r))
    constant = s.center.copy()
    constant[boxed] = 0.0
    return sp.csr_matrix(entering), constant


def _relu_rows(model: TriangleLP, edge, z: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Triangle rows for the unstable ReLUs; the selection of ``a`` as columns."""
    unstable = np.flatnonzero((lo < 0) & (hi > 0))
    active = np.flatnonzero(lo >= 0)
    a = model.add_cols(np.zeros(len(unstable)), hi[unstable])
    n = len(unstable)
    slope, intercept = relu_chord(lo[unstable], hi[unstable])
    rows = np.tile(np.arange(n), 2)
    cols = np.concatenate([a, z[unstable]])
    # a - z >= 0
    model.add_rows(rows, cols, np.concatenate([np.ones(n), -np.ones(n)]), 0.0, np.inf, n)
    # a - s z <= -s l
    chords = model.add_rows(rows, cols, np.concatenate([np.ones(n), -slope]), -np.inf,
                            intercept, n)
    model.relus[len(model.z_cols) - 1] = (unstable, a, chords)
    return model.columns(len(z), np.concatenate([active, unstable]), np.concatenate([z[active], a]))


def _maxpool_rows(model: TriangleLP, edge, z: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """``m >= z_i`` rows for the undecided windows; decided ones select their winner."""
    groups = edge.groups
    winner, decided = pool_decisions(groups, lo, hi)
    window_lo, window_hi = activation_interval(edge, lo, hi)
    open_ = np.flatnonzero(~decided)
    m = model.add_cols(window_lo[open_], window_hi[open_])
    members = groups[open_]
    window, slot = np.nonzero(members >= 0)
    n = len(window)
    # m_r - z_i >= 0
    model.add_rows(np.tile(np.arange(n), 2), np.concatenate([m[window], z[members[window, slot]]]),
                   np.concatenate([np.ones(n), -np.ones(n)]), 0.0, np.inf, n)
    closed = np.flatnonzero(decided)
    return model.columns(len(groups), np.concatenate([closed, open_]),
                         np.concatenate([z[groups[closed, winner[closed]]], m]))


# Only the costs change between solves.  Over a box, dual simplex restores dual feasibility
# by flipping the boxed inputs to their other bound for free, where primal simplex pays an
# iteration per flip; under the budget row those flips make it infeasible and primal simplex
# from the last (still feasible) basis wins.  Simplex iterations for the whole LP stage on the
# 6x50 MNIST network: L-inf 0.02 box 211k dual / 846k primal; 15 pixels at L-inf 1 1.72M
# dual / 355k primal.
_DUAL, _PRIMAL = 1, 4
_ENCODERS = {Box: (_encode_box, _DUAL), SparseBox: (_encode_sparse_box, _PRIMAL)}
_ACTIVATIONS = {"relu": _relu_rows, "maxpool": _maxpool_rows}
