r"""Symbolic bounds: DeepPoly / CROWN back-substitution.

For each edge-layer k above ``start``, the bounds of ``z_k`` come from two linear functions of
the values ``x`` entering edge-layer start+1 (the input set's variables),

    Lam^L_k x + c^L_k  <=  z_k  <=  Lam^U_k x + c^U_k      for every x in the set,

built from ``z_k = W_k a_{k-1} + b_k`` by substituting, layer by layer down to ``start``, each
activation's linear relaxation between the bounds ``l_m <= z_m <= u_m`` already computed for
the layers below, then ``z_m = W_m a_{m-1} + b_m`` (exact).  Where a coefficient of ``Lam^U``
is positive the upper relaxation is substituted, where it is negative the lower one (and
conversely for ``Lam^L``).  The relaxations, for ``l <= z <= u``:

* ReLU ``a = max(z, 0)``: ``a = z`` when ``l >= 0``; ``a = 0`` when ``u <= 0``; otherwise
  ``a <= u (z - l) / (u - l)`` (the chord) and ``a >= alpha z`` with ``relu_lower``:
  ``"area"`` (DeepPoly: ``alpha = 1`` when ``u > -l``, else 0) or ``"parallel"``
  (``alpha = u / (u - l)``, the chord's slope).  Every ``alpha`` in [0, 1] is sound.
* Max pooling ``m_r = max_{i in G_r} z_i``: ``m_r >= z_{i*}`` with ``i* = argmax_i l_i``;
  ``m_r <= z_{i*}`` when ``l_{i*} >= u_j`` for every other ``j`` (then ``m_r = z_{i*}``),
  otherwise ``m_r <= max_i u_i``.

The two linear functions are concretized with the set's exact range (so ``SparseBox``'s L0
budget counts at every layer, not only the first), then intersected with interval arithmetic
from the (already intersected) bounds of layer k-1: never looser than ``interval``.

Facts used: the relaxations hold on the boxes ``[l_m, u_m]`` (sound bounds of the layers
below), an inequality multiplied by a nonnegative coefficient keeps its direction, and the
set's concretization is exact.  Sound in real arithmetic; float64 rounding (about 1e-16
relative per operation) is not accounted for, as in ``interval``.

Storage: ``Lam`` starts as ``W_k`` and stays ``scipy.sparse`` while it passes sparse maps
(convolutions, pooling); relaxations scale its entries (and max pooling moves each column to
its window's input), which keeps it sparse.  It becomes a dense ``ndarray`` after a dense
layer, or when more than half its entries are nonzero.  On the shared MNIST CNN (edge-layers
of 12544 neurons) one input set takes about 2.5 s and 350 MB.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from common.errors import NetworkError
from compiler.analysis.bounds import (activation_interval, interval_step, intersect,
                                      pool_decisions, relu_chord)

RELU_LOWER = ("area", "parallel")


def symbolic_bounds(net, input_set, start: int = 0, relu_lower: str = "area",
                    known: tuple[dict, dict] | None = None):
    """``(lower, upper)``, dicts keyed by edge-layer k = start+1..L (module docstring).
    ``known``: bounds that hold over the set for edge-layers start+1..m (any method); they are
    kept, and only the layers above m are computed."""
    if relu_lower not in RELU_LOWER:
        raise NetworkError(f"unknown ReLU lower relaxation {relu_lower!r}; use one of "
                           f"{RELU_LOWER}")
    lower, upper = _known_prefix(net, start, known)
    for k in range(start + 1 + len(lower), net.depth + 1):
        lower[k], upper[k] = layer_symbolic(net, input_set, start, k, lower, upper, relu_lower)
    return lower, upper


def _known_prefix(net, start: int, known: tuple[dict, dict] | None) -> tuple[dict, dict]:
    """Copies of the known bounds of edge-layers start+1, start+2, ... as far as they go
    without a gap."""
    lower: dict[int, np.ndarray] = {}
    upper: dict[int, np.ndarray] = {}
    if known is None:
        return lower, upper
    k = start + 1
    while k <= net.depth and k in known[0] and len(known[0][k]) == net.edge(k).linear.n_out:
        lower[k], upper[k] = known[0][k].copy(), known[1][k].copy()
        k += 1
    return lower, upper


def layer_symbolic(net, input_set, start: int, k: int, lower: dict, upper: dict,
                   relu_lower: str = "area"):
    """Bounds of ``z_k`` by back-substitution through edge-layers k-1..start+1, whose bounds
    ``lower[m]``, ``upper[m]`` the relaxations use, intersected with the interval step from
    layer k-1."""
    lo, hi = _back_substitute(net, input_set, start, k, lower, upper, relu_lower)
    if k > start + 1:
        step_lo, step_hi = interval_step(net, k, lower[k - 1], upper[k - 1])
        lo, hi = intersect(lo, hi, step_lo, step_hi)
    return lo, hi


def _back_substitute(net, input_set, start, k, lower, upper, relu_lower):
    edge = net.edge(k)
    ends = []
    for above in (False, True):
        lam, c = edge.linear.weight, edge.linear.bias
        for _, lam, c in _substituted(net, lam, c, start, k, lower, upper, relu_lower, above):
            pass
        ends.append(input_set.concretize(lam, c)[int(above)])
    return tuple(ends)


def _substituted(net, lam, c, start, k, lower, upper, relu_lower, above: bool):
    """``lam a_{k-1} + c`` (a bound of ``z_k``, from above when ``above``) with the edge-layers
    k-1..start+1 substituted one at a time: after each, ``(m, lam, c)`` with the bound now
    ``lam a_m + c``."""
    for m in range(k - 1, start, -1):
        below = net.edge(m)
        relax = _RELAXATIONS[below.activation](below, lower[m], upper[m], relu_lower)
        lam, c = _through_affine(*_substitute(lam, c, relax, above), below.linear)
        yield m - 1, lam, c


@dataclass(frozen=True)
class _Relaxation:
    """``lo_slope_r z_{s_r} + lo_offset_r <= a_r <= up_slope_r z_{s_r} + up_offset_r`` on the
    bounds, with ``s_r = source[r]`` (``s_r = r`` when ``source`` is None): every
    relaxation here bounds an activation output by one pre-activation."""

    lo_slope: np.ndarray
    lo_offset: np.ndarray
    up_slope: np.ndarray
    up_offset: np.ndarray
    source: np.ndarray | None
    n_in: int


def _substitute(lam, c, relax: _Relaxation, above: bool):
    """``lam a + c`` with each ``a_r`` replaced by its relaxation: the upper one where the
    coefficient is positive and ``above`` (a bound from above), or negative and not ``above``;
    the lower one otherwise."""
    (s_pos, b_pos), (s_neg, b_neg) = (
        ((relax.up_slope, relax.up_offset), (relax.lo_slope, relax.lo_offset)) if above else
        ((relax.lo_slope, relax.lo_offset), (relax.up_slope, relax.up_offset)))
    if sp.issparse(lam):
        lam = sp.csr_matrix(lam)
        cols, positive = lam.indices, lam.data > 0
        rows = np.repeat(np.arange(lam.shape[0]), np.diff(lam.indptr))
        offsets = lam.data * np.where(positive, b_pos[cols], b_neg[cols])
        c = c + np.bincount(rows, weights=offsets, minlength=lam.shape[0])
        # a copy: ``lam`` may share its index arrays with a layer's weight, and dropping the
        # zeros below edits them in place
        lam = sp.csr_matrix((lam.data * np.where(positive, s_pos[cols], s_neg[cols]),
                             lam.indices.copy(), lam.indptr.copy()), shape=lam.shape)
        lam.eliminate_zeros()
    else:
        positive = lam > 0
        c = c + np.sum(lam * np.where(positive, b_pos, b_neg), axis=1)
        lam = lam * np.where(positive, s_pos, s_neg)
    if relax.source is not None:
        width = len(relax.source)
        lam = lam @ sp.csr_matrix((np.ones(width), (np.arange(width), relax.source)),
                                  shape=(width, relax.n_in))
    return lam, c


def _through_affine(lam, c, linear):
    """``lam z + c`` with ``z = W a + b`` substituted."""
    weight = linear.weight
    if sp.issparse(lam) or sp.issparse(weight):
        product = lam @ weight
    else:
        # ``@`` takes a slow path (50x slower) for the frontends' read-only Fortran-ordered
        # weights; ``np.dot`` calls BLAS
        product = np.dot(lam, weight)
    return _compact(product), c + lam @ linear.bias


def _compact(lam):
    # Above half full, a dense array is no larger than CSR (12 bytes per stored entry
    # against 8 per entry) and its products are faster.
    if sp.issparse(lam) and lam.nnz > 0.5 * lam.shape[0] * lam.shape[1]:
        return lam.toarray()
    return sp.csr_matrix(lam) if sp.issparse(lam) else np.asarray(lam)


def _relu_relaxation(edge, l, u, relu_lower) -> _Relaxation:
    unstable = (l < 0) & (u > 0)
    slope, intercept = relu_chord(l, u)
    alpha = (u > -l).astype(np.float64) if relu_lower == "area" else slope
    return _Relaxation(np.where(unstable, alpha, slope), np.zeros(len(l)), slope, intercept,
                       None, len(l))


def _maxpool_relaxation(edge, l, u, relu_lower) -> _Relaxation:
    """Both sides read each window's input with the largest lower bound; the upper side
    only for decided windows, the others get the constant ``max_i u_i``."""
    winner, decided = pool_decisions(edge.groups, l, u)
    width = len(edge.groups)
    window_hi = activation_interval(edge, l, u)[1]
    return _Relaxation(np.ones(width), np.zeros(width), decided.astype(np.float64),
                       np.where(decided, 0.0, window_hi),
                       edge.groups[np.arange(width), winner], len(l))


_RELAXATIONS = {"relu": _relu_relaxation, "maxpool": _maxpool_relaxation}


def upper_coefficients(net, row: np.ndarray, k: int, lower: dict, upper: dict,
                       start: int = 0, relu_lower: str = "area"):
    """The back-substitution of the upper bound of ``row @ z_k``: ``(coefficients, constant)``
    with ``row @ z_k <= coefficients[start] @ x + constant`` on the set, and for m = k-1..start
    the coefficients of the values leaving neuron layer m (``a_m``, before edge-layer m's
    relaxation is substituted; ``m == start``: the input set's variables).  Their sizes say
    how much each neuron's relaxation costs that bound (branching heuristics), and the last
    one points to the input that maximizes it (``x_i`` at its upper end where positive)."""
    edge = net.edge(k)
    lam, c = row[None, :] @ edge.linear.weight, row @ edge.linear.bias
    coefficients = {k - 1: _flat(lam)}
    for m, lam, c in _substituted(net, lam, c, start, k, lower, upper, relu_lower, True):
        coefficients[m] = _flat(lam)
    return coefficients, float(np.ravel(c)[0])


def _flat(lam) -> np.ndarray:
    return np.ravel(lam.toarray() if sp.issparse(lam) else lam)
