"""Folding an elementwise ``Scale`` into the dense layer that reads it, so that a network whose
inputs are normalized (``(x - mean) / std``, as VNN-COMP's ONNX files often are) keeps a
plain dense first edge-layer, which divide and conquer can patch.

``Linear(W, b)(mul * a + add) = Linear(W * mul, b + W @ add)(a)``: exact up to float64
rounding.  Reshapes between the two are kept (they do not move values).
"""
from __future__ import annotations


from ir.layers import Linear, Reshape, Scale


def fold_scales(layers: list) -> list:
    """``layers`` with every Scale followed (through reshapes only) by a Linear folded in."""
    out: list = []
    pending = None          # a Scale waiting for the next layer
    between: list = []      # reshapes met since
    for layer in layers:
        if isinstance(layer, Scale) and pending is None:
            pending = layer
            continue
        if pending is not None and isinstance(layer, Reshape):
            between.append(layer)
            continue
        if pending is not None and isinstance(layer, Linear):
            weight = layer.weight * pending.mul[None, :]
            layer = Linear(weight, layer.bias + layer.weight @ pending.add)
            out += between
        elif pending is not None:
            out += [pending] + between
        pending, between = None, []
        if isinstance(layer, Scale):
            pending = layer
            continue
        out.append(layer)
    if pending is not None:
        out += [pending] + between
    return out
