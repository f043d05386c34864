"""Checks a network on construction: shapes chain, values finite, layers in a valid order.

Errors name the layer (edge-layer index, 1-based) and what is wrong.
"""
from __future__ import annotations

import numpy as np

from ir.errors import NetworkError


def verify_network(net) -> None:
    from ir.network import Linear, ReLU

    if not net.layers or not isinstance(net.layers[0], Linear):
        raise NetworkError("a network must start with a Linear layer")
    for prev, layer in zip(net.layers, net.layers[1:]):
        if isinstance(prev, ReLU) and isinstance(layer, ReLU):
            raise NetworkError("two ReLU layers in a row")
    width = net.edges[0].linear.n_in
    if int(np.prod(net.input_shape)) != width:
        raise NetworkError(f"input shape {net.input_shape} has {int(np.prod(net.input_shape))} "
                           f"values, but edge-layer 1 takes {width}")
    for edge in net.edges:
        w, b = edge.linear.weight, edge.linear.bias
        if w.ndim != 2:
            raise NetworkError(f"weight must be 2-D (n_out, n_in), got shape {w.shape}", edge.index)
        if b.shape != (w.shape[0],):
            raise NetworkError(f"bias has shape {b.shape}, expected ({w.shape[0]},)", edge.index)
        if w.shape[1] != width:
            raise NetworkError(f"weight takes {w.shape[1]} inputs, but the layer below has "
                               f"{width} neurons", edge.index)
        for what, values in (("weight", w), ("bias", b)):
            bad = np.argwhere(~np.isfinite(values))
            if len(bad):
                raise NetworkError(f"{what} holds a non-finite value {values[tuple(bad[0])]} at "
                                   f"{tuple(int(i) for i in bad[0])}", edge.index)
        width = w.shape[0]
    lo, hi = net.domain.lower, net.domain.upper
    n = net.edges[0].linear.n_in
    if lo.shape != (n,) or hi.shape != (n,):
        raise NetworkError(f"input domain has shape {lo.shape}/{hi.shape}, expected ({n},)")
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise NetworkError("input domain bounds must be finite")
    if np.any(lo > hi):
        i = int(np.argmax(lo > hi))
        raise NetworkError(f"input domain is empty at input {i}: lower {lo[i]} > upper {hi[i]}")
