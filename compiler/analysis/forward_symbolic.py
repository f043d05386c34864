r"""Forward symbolic bounds over many small input sets at once (ReluVal's and Neurify's
"symbolic intervals"), for searches that bound thousands of sets of a few inputs each.

Set b moves the inputs ``coords[b]`` (a few, e.g. the values of two pixels) by
``d`` with ``d_lo[b] <= d <= d_hi[b]`` and keeps every other input at ``center``.  Every
neuron carries two linear functions of ``d``, ``L(d) <= z <= U(d)``, computed from the
bottom up:

* edge-layer 1 is exact: ``L = U = W_1 center + b_1 + W_1[:, coords] d``;
* the bounds ``[l, u]`` of a layer are ``L``'s minimum and ``U``'s maximum over the box of
  ``d`` (exact for a box), intersected with interval arithmetic from the layer below;
* a ReLU maps ``U`` to ``s (U - l)`` with the chord's slope ``s = u / (u - l)`` (the ReLU is
  monotone and below its chord on ``[l, u]``) and ``L`` to ``alpha L`` with ``alpha = 1``
  when ``u > -l``, else 0 (DeepPoly's choice; any ``alpha`` in [0, 1] is sound); decided
  ReLUs pass both (``l >= 0``) or give 0 (``u <= 0``);
* a max-pool window takes ``L`` of its input with the largest ``l``; ``U`` of that input
  when it is the maximum over the whole box (its ``l`` at least every other ``u``), else the
  constant ``max u``;
* an affine map sends ``L`` to ``W^+ L + W^- U + b`` and ``U`` to ``W^+ U + W^- L + b``.

Looser than back-substitution (``compiler.analysis.symbolic``: each layer's functions are
not re-derived from the input), but one batched matrix product per layer serves every set:
on the 6x50 MNIST network, sets of two pixels cost about 0.05 ms each against 2.8 ms for
back-substitution, and they rule out 97% of the random pairs that back-substitution rules
out (all of them, on that image).
Sound in real arithmetic; float64 rounding is not accounted for, as in ``interval``.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from compiler.analysis.bounds import affine_interval, intersect

VALUES_PER_BATCH = 4_000_000    # entries of one layer's functions (32 MB), per batch


def batch_size(net, moved: int) -> int:
    """Sets per call that keep one layer's functions within ``VALUES_PER_BATCH`` values."""
    widest = max(net.edge(k).linear.n_out for k in range(1, net.depth + 1))
    return max(1, VALUES_PER_BATCH // (widest * (moved + 1)))


def set_bounds(net, center, coords, d_lo, d_hi, every_layer: bool = False):
    """Bounds ``(lo, hi)`` of the network's last pre-activations ``z_L``, each of shape
    ``(B, n_out)``, over the sets of the module docstring: set b moves the inputs
    ``coords[b]`` (``-1`` pads a shorter set) by ``d_lo[b] .. d_hi[b]``, all ``(B, m)``.
    ``every_layer``: dicts of such bounds keyed by edge-layer 1..L instead."""
    center = np.asarray(center, dtype=np.float64)
    coords = np.asarray(coords, dtype=np.int64).reshape(len(coords), -1)
    real = coords >= 0
    index = np.where(real, coords, 0)
    d_lo = np.where(real, np.asarray(d_lo, dtype=np.float64).reshape(coords.shape), 0.0)
    d_hi = np.where(real, np.asarray(d_hi, dtype=np.float64).reshape(coords.shape), 0.0)
    if np.any(d_lo > d_hi):
        raise ValueError("forward symbolic bounds: a set's d_lo exceeds its d_hi")
    low, up = _first_layer(net.edge(1), center, index, real)
    lows, highs = {}, {}
    below = None
    for k in range(1, net.depth + 1):
        edge = net.edge(k)
        if k > 1:
            low, up = _through_affine(edge.linear, low, up)
        l, u = _concretize(low, d_lo, d_hi)[0], _concretize(up, d_lo, d_hi)[1]
        if below is not None:
            l, u = intersect(l, u, *_interval_step(net.edge(k - 1), edge, *below))
        lows[k], highs[k] = l.T, u.T
        below = (l, u)
        if k < net.depth:
            low, up = _RELAXATIONS[edge.activation](edge, low, up, l, u)
    if every_layer:
        return lows, highs
    return lows[net.depth], highs[net.depth]


def _first_layer(edge, center, index, real):
    """``L = U``: ``(n_1, B, m + 1)``, the coefficients of the moved inputs then the
    constant."""
    weight, bias = edge.linear.weight, edge.linear.bias
    count, moved = index.shape
    if sp.issparse(weight):
        columns = sp.csc_matrix(weight)[:, index.ravel()].toarray()
    else:
        columns = np.asarray(weight)[:, index.ravel()]
    columns = columns.reshape(-1, count, moved) * real[None]
    base = weight @ center + bias
    low = np.empty((columns.shape[0], count, moved + 1))
    low[..., :moved] = columns
    low[..., moved] = base[:, None]
    return low, low.copy()


def _concretize(functions, d_lo, d_hi):
    """Minimum and maximum of each function over the box of ``d``: ``(n, B)`` each."""
    coeff, const = functions[..., :-1], functions[..., -1]
    at_lo, at_hi = coeff * d_lo[None], coeff * d_hi[None]
    return (const + np.minimum(at_lo, at_hi).sum(axis=2),
            const + np.maximum(at_lo, at_hi).sum(axis=2))


def _through_affine(linear, low, up):
    weight = linear.weight
    if sp.issparse(weight):
        w_pos, w_neg = weight.maximum(0.0), weight.minimum(0.0)
    else:
        w_pos, w_neg = np.maximum(weight, 0.0), np.minimum(weight, 0.0)
    n, count, width = low.shape
    flat_lo, flat_up = low.reshape(n, -1), up.reshape(n, -1)
    new_lo = np.asarray(w_pos @ flat_lo + w_neg @ flat_up).reshape(-1, count, width)
    new_up = np.asarray(w_pos @ flat_up + w_neg @ flat_lo).reshape(-1, count, width)
    new_lo[..., -1] += linear.bias[:, None]
    new_up[..., -1] += linear.bias[:, None]
    return new_lo, new_up


def _interval_step(edge_below, edge, l, u):
    """Interval bounds of ``z`` from ``[l, u]`` of the layer below, per set: ``(n, B)``."""
    if edge_below.activation == "relu":
        a_lo, a_hi = np.maximum(l, 0.0), np.maximum(u, 0.0)
    else:   # maxpool (the last edge has no activation and nothing above it)
        a_lo, a_hi = _window(l, edge_below.groups).max(axis=1), \
            _window(u, edge_below.groups).max(axis=1)
    lo, hi = affine_interval(edge.linear.weight, edge.linear.bias[:, None], a_lo, a_hi)
    return np.asarray(lo), np.asarray(hi)


def _window(values, groups):
    """``(windows, size, B)``: each window's inputs, ``-inf`` for the padding."""
    padded = np.concatenate([values, np.full((1, values.shape[1]), -np.inf)])
    return padded[groups]


def _relu(edge, low, up, l, u):
    unstable = (l < 0) & (u > 0)
    active = l >= 0
    slope = np.where(unstable, u / np.where(unstable, u - l, 1.0), active.astype(np.float64))
    alpha = np.where(unstable, (u > -l).astype(np.float64), active.astype(np.float64))
    new_up = up * slope[..., None]
    new_up[..., -1] -= np.where(unstable, slope * l, 0.0)
    return low * alpha[..., None], new_up


def _maxpool(edge, low, up, l, u):
    groups = edge.groups
    lows, highs = _window(l, groups), _window(u, groups)
    winner = np.argmax(lows, axis=1)                                  # (windows, B)
    count = l.shape[1]
    sets = np.arange(count)[None, :]
    source = groups[np.arange(len(groups))[:, None], winner]         # (windows, B)
    best_lo = np.take_along_axis(lows, winner[:, None, :], axis=1)[:, 0]
    np.put_along_axis(highs, winner[:, None, :], -np.inf, axis=1)
    decided = best_lo >= highs.max(axis=1)
    new_low = low[source, sets]
    new_up = up[source, sets]
    window_hi = _window(u, groups).max(axis=1)
    new_up = np.where(decided[..., None], new_up, 0.0)
    new_up[..., -1] = np.where(decided, new_up[..., -1], window_hi)
    return new_low, new_up


_RELAXATIONS = {"relu": _relu, "maxpool": _maxpool}
