"""Interval bounds on pre-activations, for big-M constants and for tighter models.

``z_lo <= z <= z_hi`` elementwise; propagated with interval arithmetic through affine layers
and ReLUs.  The tightness of every big-M depends on these (MIPVerify's first concern).
"""
from __future__ import annotations

import numpy as np


def affine_interval(weight: np.ndarray, bias: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Bounds of ``weight @ a + bias`` for ``lo <= a <= hi``."""
    w_pos, w_neg = np.maximum(weight, 0.0), np.minimum(weight, 0.0)
    return w_pos @ lo + w_neg @ hi + bias, w_pos @ hi + w_neg @ lo + bias


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


def propagate(net, start: int, z_lo: np.ndarray, z_hi: np.ndarray):
    """Bounds of every pre-activation ``z_m``, m = start..L, from bounds on ``z_start``."""
    lows, highs = [z_lo], [z_hi]
    for m in range(start + 1, net.depth + 1):
        prev = net.edge(m - 1)
        a_lo, a_hi = lows[-1], highs[-1]
        if prev.relu:
            a_lo, a_hi = np.maximum(a_lo, 0.0), np.maximum(a_hi, 0.0)
        edge = net.edge(m)
        lo, hi = affine_interval(edge.linear.weight, edge.linear.bias, a_lo, a_hi)
        lows.append(lo)
        highs.append(hi)
    return lows, highs
