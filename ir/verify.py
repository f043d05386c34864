"""Checks a network on construction: array shapes, finite values, a valid layer order, and a
domain that fits the input.  (Shapes that do not chain are caught while ``Network`` computes
each layer's output shape.)

Errors name the layer and what is wrong.
"""
from __future__ import annotations

import numpy as np

from common.errors import NetworkError
from ir.layers import Conv2D, Linear, ReLU, Scale, kind


def verify_layers(layers) -> None:
    """Array shapes and values of each layer, and the layer order."""
    if not layers:
        raise NetworkError("a network needs at least one layer")
    for prev, layer in zip(layers, layers[1:]):
        if isinstance(prev, ReLU) and isinstance(layer, ReLU):
            raise NetworkError("two ReLU layers in a row")
    dense = 0
    for position, layer in enumerate(layers, start=1):
        dense += isinstance(layer, Linear)
        where = f"layer {position} ({kind(layer)})"
        if isinstance(layer, Linear):
            w, b = layer.weight, layer.bias
            if w.ndim != 2:
                raise NetworkError(f"weight must be 2-D (n_out, n_in), got shape {w.shape}", dense)
            if b.shape != (w.shape[0],):
                raise NetworkError(f"bias has shape {b.shape}, expected ({w.shape[0]},)", dense)
            _finite(layer, ("weight", "bias"), dense_index=dense)
        elif isinstance(layer, Conv2D):
            w, b = layer.weight, layer.bias
            if w.ndim != 4:
                raise NetworkError(f"{where}: weight must be 4-D (c_out, c_in, kh, kw), got shape "
                                   f"{w.shape}")
            if b.shape != (w.shape[0],):
                raise NetworkError(f"{where}: bias has shape {b.shape}, expected ({w.shape[0]},)")
            _finite(layer, ("weight", "bias"), where=where)
        elif isinstance(layer, Scale):
            _finite(layer, ("mul", "add"), where=where)


def _finite(layer, names, dense_index=None, where=""):
    for name in names:
        values = getattr(layer, name)
        bad = np.argwhere(~np.isfinite(values))
        if len(bad):
            message = (f"{name} holds a non-finite value {values[tuple(bad[0])]} at "
                       f"{tuple(int(i) for i in bad[0])}")
            if dense_index is not None:
                raise NetworkError(message, dense_index)
            raise NetworkError(f"{where}: {message}")


def verify_network(net) -> None:
    """What needs the whole network: at least one edge-layer, and the domain."""
    if not net.edges:
        raise NetworkError("the network has no edge-layer (only reshapes)")
    if net.domain is None:
        return
    lo, hi = net.domain.lower, net.domain.upper
    n = net.n_inputs
    if lo.shape != (n,) or hi.shape != (n,):
        raise NetworkError(f"input domain has shape {lo.shape}/{hi.shape}, expected ({n},)")
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise NetworkError("input domain bounds must be finite")
    if np.any(lo > hi):
        i = int(np.argmax(lo > hi))
        raise NetworkError(f"input domain is empty at input {i}: lower {lo[i]} > upper {hi[i]}")
