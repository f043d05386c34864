r"""Bounds on pre-activations, for big-M constants and for tighter models.

``lower[k] <= z_k <= upper[k]`` elementwise for every edge-layer k above a starting layer, for
all values entering that layer in an input set (``compiler.analysis.input_sets``).  The
tightness of every big-M depends on these (MIPVerify's first concern).  One entry point,
``layer_bounds``, with three methods, each sound and each at least as tight as the one before:

* ``interval``: the set's exact range for the first layer above ``start``, then interval
  arithmetic through affine maps (``affine_interval``) and activations
  (``activation_interval``: ReLU ``[max(l, 0), max(u, 0)]``, max pooling the max of the
  bounds per window);
* ``symbolic``: DeepPoly/CROWN back-substitution (``compiler.analysis.symbolic``);
* ``lp``: progressive LP tightening of the undecided neurons, MIPVerify style
  (``compiler.analysis.lp_bounds``).

The older helpers (``input_box``, ``budget_first_layer``, ``propagate``) work on bounds of
``z_start`` directly; ``budget_first_layer`` is ``SparseBox.concretize`` on edge-layer 1.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from common.errors import NetworkError

METHODS = ("interval", "symbolic", "lp")


def affine_interval(weight, bias: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Bounds of ``weight @ a + bias`` for ``lo <= a <= hi`` (``weight`` dense or sparse):
    ``W^+ lo + W^- hi + b`` and ``W^+ hi + W^- lo + b``."""
    if sp.issparse(weight):
        w_pos, w_neg = weight.maximum(0.0), weight.minimum(0.0)
    else:
        w_pos, w_neg = np.maximum(weight, 0.0), np.minimum(weight, 0.0)
    return w_pos @ lo + w_neg @ hi + bias, w_pos @ hi + w_neg @ lo + bias


def activation_interval(edge, lo: np.ndarray, hi: np.ndarray):
    """Bounds of edge-layer ``edge``'s activation output for ``lo <= z <= hi``."""
    if edge.activation == "relu":
        return np.maximum(lo, 0.0), np.maximum(hi, 0.0)
    if edge.activation == "maxpool":
        return _window_max(lo, edge.groups), _window_max(hi, edge.groups)
    return lo, hi


def _window_max(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    return np.append(values, -np.inf)[groups].max(axis=1)


def pool_decisions(groups: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """For max pooling over ``groups`` with ``lo <= z <= hi``: per window, the position (in
    its group) of the input with the largest lower bound, and whether that input is the
    maximum everywhere in the box (its lower bound at least every other input's upper
    bound)."""
    lows = np.append(lo, -np.inf)[groups]
    highs = np.append(hi, -np.inf)[groups]
    winner = np.argmax(lows, axis=1)
    rows = np.arange(len(groups))
    highs[rows, winner] = -np.inf
    return winner, lows[rows, winner] >= highs.max(axis=1)


def relu_chord(l: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per neuron, ``(s, t)`` with ``relu(z) <= s z + t`` on ``[l, u]``, the tightest line:
    the chord ``s = u / (u - l)``, ``t = -s l`` where ``l < 0 < u``; where the phase is
    decided, the ReLU itself (``s = 1`` when ``l >= 0``, ``s = 0`` when ``u <= 0``; ``t = 0``).
    ``t`` is also the chord's height over the ReLU at ``z = 0``."""
    unstable = (l < 0) & (u > 0)
    slope = np.where(unstable, u / np.where(unstable, u - l, 1.0), (l >= 0).astype(np.float64))
    return slope, np.where(unstable, -slope * l, 0.0)


def intersect(lo_a, hi_a, lo_b, hi_b):
    """The intersection of two sound bounds.  Where float rounding leaves the lower bound a
    hair above the upper one, both become the same value (each is sound up to rounding)."""
    lo, hi = np.maximum(lo_a, lo_b), np.minimum(hi_a, hi_b)
    return np.minimum(lo, hi), np.maximum(lo, hi)


def input_box(x: np.ndarray, lower: np.ndarray, upper: np.ndarray, linf: float):
    """The box of inputs within ``linf`` of ``x`` and inside the domain."""
    return np.maximum(lower, x - linf), np.minimum(upper, x + linf)


def budget_first_layer(weight, bias, x, lo_box, hi_box, max_pixels: int | None):
    """Bounds of the first pre-activation when at most ``max_pixels`` inputs change.

    Each input i may move within ``[lo_box_i - x_i, hi_box_i - x_i]``; row j gains at most the
    sum of its ``max_pixels`` largest positive contributions (and loses at most the sum of the
    ``max_pixels`` largest negative ones).  Without a budget this is the plain interval bound.
    """
    z = weight @ x + bias
    down, up = lo_box - x, hi_box - x                # down <= 0 <= up
    gain = np.maximum(weight * up, weight * down)    # best increase per (row, input)
    loss = np.minimum(weight * up, weight * down)    # worst decrease per (row, input)
    if max_pixels is None or max_pixels >= weight.shape[1]:
        return z + loss.sum(axis=1), z + gain.sum(axis=1)
    k = max(int(max_pixels), 0)
    top_gain = -np.sort(-gain, axis=1)[:, :k].sum(axis=1)
    top_loss = np.sort(loss, axis=1)[:, :k].sum(axis=1)
    return z + top_loss, z + top_gain


def interval_step(net, m: int, lo: np.ndarray, hi: np.ndarray):
    """Bounds of ``z_m`` from bounds on ``z_{m-1}``: through edge-layer m-1's activation,
    then edge-layer m's affine map."""
    a_lo, a_hi = activation_interval(net.edge(m - 1), lo, hi)
    edge = net.edge(m)
    return affine_interval(edge.linear.weight, edge.linear.bias, a_lo, a_hi)


def propagate(net, start: int, z_lo: np.ndarray, z_hi: np.ndarray):
    """Bounds of every pre-activation ``z_m``, m = start..L, from bounds on ``z_start``."""
    lows, highs = [z_lo], [z_hi]
    for m in range(start + 1, net.depth + 1):
        lo, hi = interval_step(net, m, lows[-1], highs[-1])
        lows.append(lo)
        highs.append(hi)
    return lows, highs


def interval_bounds(net, input_set, start: int = 0):
    """``(lower, upper)``, dicts keyed by edge-layer k = start+1..L: the set's exact range for
    ``z_{start+1}``, interval arithmetic above."""
    edge = net.edge(start + 1)
    lo, hi = input_set.concretize(edge.linear.weight, edge.linear.bias)
    lows, highs = propagate(net, start + 1, lo, hi)
    return (dict(enumerate(lows, start + 1)), dict(enumerate(highs, start + 1)))


@dataclass(frozen=True, eq=False)
class LayerBounds:
    """Pre-activation bounds ``lower[k] <= z_k <= upper[k]`` for edge-layers k = start+1..L,
    for every value entering edge-layer start+1 in the input set.

    ``unstable[k]``: ReLUs with ``lower < 0 < upper`` (0 for other edge-layers);
    ``undecided[k]``: max-pool windows whose maximum is not one input everywhere
    (``pool_decisions``; 0 for other edge-layers); ``lp_solved[k]``: LPs proved optimal that
    bounded a neuron of layer k (method ``lp`` only; a layer the time budget never reached
    has no entry).  ``seconds``: wall time of the analysis.
    """

    start: int
    lower: dict[int, np.ndarray]
    upper: dict[int, np.ndarray]
    method: str
    seconds: float
    unstable: dict[int, int]
    undecided: dict[int, int]
    lp_solved: dict[int, int] = field(default_factory=dict)


def layer_bounds(net, input_set, method: str = "interval", start: int = 0,
                 time_budget: float | None = None, relu_lower: str = "area",
                 known: tuple[dict, dict] | None = None) -> LayerBounds:
    """Bounds of every pre-activation above edge-layer ``start`` (see the module docstring).

    ``input_set`` (``Box``, ``SparseBox``) holds the values entering edge-layer start+1: the
    input when ``start == 0``, else the post-activation values of neuron layer ``start``
    (a caller holding bounds on ``z_start`` passes ``Box(*activation_interval(...))``).
    ``relu_lower`` picks the lower relaxation of unstable ReLUs for ``symbolic`` and ``lp``
    (``compiler.analysis.symbolic``); ``time_budget`` (seconds) caps the LP stage of ``lp``.
    ``known`` = ``(lower, upper)``: bounds of edge-layers start+1..m that hold over the set,
    from an earlier analysis of any method; ``symbolic`` and ``lp`` keep them and start from
    them (``interval`` ignores them).
    """
    if method not in METHODS:
        raise NetworkError(f"unknown bounds method {method!r}; use one of {METHODS}")
    if not 0 <= start < net.depth:
        raise NetworkError(f"bounds start at edge-layer {start}: this network has edge-layers "
                           f"1..{net.depth}, so start must lie in 0..{net.depth - 1}")
    width = net.widths()[start]
    if input_set.n != width:
        raise NetworkError(f"the input set has {input_set.n} values, but neuron layer {start} "
                           f"has {width}")
    t0 = time.perf_counter()
    solved: dict[int, int] = {}
    if method == "interval":
        lower, upper = interval_bounds(net, input_set, start)
    elif method == "symbolic":
        from compiler.analysis.symbolic import symbolic_bounds
        lower, upper = symbolic_bounds(net, input_set, start, relu_lower, known)
    else:
        from compiler.analysis.lp_bounds import lp_bounds
        lower, upper, solved = lp_bounds(net, input_set, start, time_budget, relu_lower, known)
    seconds = time.perf_counter() - t0
    unstable, undecided = {}, {}
    for k in lower:
        edge = net.edge(k)
        unstable[k] = int(np.sum((lower[k] < 0) & (upper[k] > 0))) if edge.relu else 0
        undecided[k] = (int(np.sum(~pool_decisions(edge.groups, lower[k], upper[k])[1]))
                        if edge.activation == "maxpool" else 0)
    return LayerBounds(start, lower, upper, method, seconds, unstable, undecided, solved)
