"""The IR network as a Keras model and back, for the tools that need TensorFlow: the
baseline attacks (gradients) and adversarial retraining (transferability).

TensorFlow is imported here only; the rest of netpatch never needs it.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ir.network import Linear, Network, ReLU


def import_keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    return keras


def to_keras(net: Network, input_shape: Sequence[int] | None = None, dtype: str = "float32"):
    """A Keras model computing ``net``: Flatten (when ``input_shape`` has several axes) then
    one Dense per edge-layer, ReLU on the hidden ones, logits out.  Keras stores kernels as
    (in, out): the IR's (out, in) weights are transposed here."""
    keras = import_keras()
    shape = tuple(input_shape or net.input_shape)
    inputs = keras.Input(shape, dtype=dtype)
    h = keras.layers.Flatten()(inputs) if len(shape) > 1 else inputs
    dense_layers = []
    for edge in net.edges:
        layer = keras.layers.Dense(edge.linear.n_out, activation="relu" if edge.relu else None,
                                   dtype=dtype, name=f"edge{edge.index}")
        h = layer(h)
        dense_layers.append((layer, edge.linear))
    for layer, linear in dense_layers:
        layer.set_weights([linear.weight.T.astype(dtype), linear.bias.astype(dtype)])
    return keras.Model(inputs, h, name=net.name)


def from_keras(model, like: Network) -> Network:
    """The IR network of a model made by :func:`to_keras` (e.g. after retraining), with the
    domain, input shape and layer structure of ``like``."""
    layers = []
    for edge in like.edges:
        kernel, bias = model.get_layer(f"edge{edge.index}").get_weights()
        layers.append(Linear(np.asarray(kernel, dtype=np.float64).T.copy(),
                             np.asarray(bias, dtype=np.float64)))
        if edge.relu:
            layers.append(ReLU())
    return Network(tuple(layers), like.domain, like.input_shape, name=f"{like.name}_retrained")
