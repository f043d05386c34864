"""The IR network as a Keras model and back, for the tools that need TensorFlow: the
baseline attacks (gradients) and adversarial retraining (transferability).

TensorFlow is imported here only (and lazily); the rest of netpatch never needs it.

:func:`to_keras` lowers the IR layer by layer through ``_LOWER``, a dictionary keyed by layer
type (a missing kind is a named ``NetworkError``).  Keras layers are named ``p{position}_{what}``
after the IR layer they come from, so :func:`from_keras` finds the weights of ``Linear`` and
``Conv2D`` layers by position.  Conventions (see ``ir.layers``):

* ``Linear``: Keras ``Dense`` with kernel ``weight.T`` (Keras stores ``(in, out)``), on the
  row-major flattening of its input.
* ``Conv2D``: explicit ``ZeroPadding2D`` (asymmetric pads allowed), then a 'valid' Keras
  ``Conv2D`` with kernel ``weight.transpose(2, 3, 1, 0)``, i.e. ``(c_out, c_in, kh, kw) ->
  (kh, kw, c_in, c_out)``.
* ``MaxPool2D``: padding with the most negative finite value of ``dtype`` (a padded value
  never wins; every window holds a real value, ``ir.layers.pool_groups`` checks it), then
  'valid' max pooling.
* ``AvgPool2D``: zero padding and 'valid' average pooling, which divides by ``kh * kw``;
  without ``count_include_pad`` each output is then multiplied by ``kh * kw / count``, with
  ``count`` the real (unpadded) values of its window.
* NCHW layers: TensorFlow's CPU kernels convolve and pool NHWC only, so a ``(C, H, W)``
  tensor is permuted to ``(H, W, C)`` before the first NCHW layer of a run and back after
  it (a ReLU in between keeps the permuted view); the model still takes the IR's flat layout.
* ``Scale``, ``Reshape``, ``Transpose``, ``Pad2D``, ``ReLU``: elementwise constants,
  ``Reshape``, ``Permute``, ``ZeroPadding2D``, ``ReLU``.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Sequence

import numpy as np

from common.errors import NetworkError
from ir.layers import (AvgPool2D, Conv2D, Linear, MaxPool2D, Pad2D, ReLU, Reshape, Scale,
                       Transpose, kind)
from ir.network import Network

CHANNELS_LAST = "channels_last"
TO_NHWC = (2, 3, 1)      # Keras Permute axes (1-based, batch excluded): (C, H, W) -> (H, W, C)
TO_NCHW = (3, 1, 2)      # (H, W, C) -> (C, H, W)


def import_keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    return keras


@functools.cache
def _custom_layers():
    """Two small Keras layers without built-in equivalents (made once, on first use)."""
    keras = import_keras()
    ops = keras.ops

    class ConstantPad2D(keras.layers.Layer):
        """Pads the spatial axes of an NHWC tensor by ``(top, left, bottom, right)`` with
        ``value``."""

        def __init__(self, padding, value: float, **kwargs):
            super().__init__(**kwargs)
            self.padding, self.value = tuple(int(p) for p in padding), float(value)

        def call(self, x):
            top, left, bottom, right = self.padding
            return ops.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]],
                           constant_values=self.value)

    class Elementwise(keras.layers.Layer):
        """``mul * x + add`` with constant arrays broadcast against one input (no batch axis)."""

        def __init__(self, mul: np.ndarray, add: np.ndarray, **kwargs):
            super().__init__(**kwargs)
            self.mul, self.add = np.asarray(mul), np.asarray(add)

        def call(self, x):
            mul = ops.convert_to_tensor(self.mul, dtype=self.compute_dtype)
            add = ops.convert_to_tensor(self.add, dtype=self.compute_dtype)
            return x * mul + add

    return ConstantPad2D, Elementwise


@dataclasses.dataclass
class _Lowering:
    """What the per-kind lowerings share: the Keras module, the dtype and the IR position
    (for layer names)."""

    keras: object
    dtype: str
    position: int = 0

    def make(self, cls, what: str, *args, **kwargs):
        """A Keras layer of class ``cls`` named after the IR position, in ``dtype`` (every
        layer gets it: Keras casts inputs to a layer's own dtype)."""
        return cls(*args, name=f"p{self.position}_{what}", dtype=self.dtype, **kwargs)

    def zero_pad(self, h, padding):
        top, left, bottom, right = padding
        if not any(padding):
            return h
        return self.make(self.keras.layers.ZeroPadding2D, "pad", ((top, bottom), (left, right)),
                         data_format=CHANNELS_LAST)(h)


def _nhwc(shape, layout: str) -> tuple[int, int, int]:
    return tuple(shape) if layout == "NHWC" else (shape[1], shape[2], shape[0])


def _linear(low: _Lowering, layer: Linear, h, in_shape):
    if len(in_shape) != 1:
        h = low.make(low.keras.layers.Reshape, "flatten", (layer.n_in,))(h)
    dense = low.make(low.keras.layers.Dense, "linear", layer.n_out)
    h = dense(h)
    dense.set_weights([layer.weight.T.astype(low.dtype), layer.bias.astype(low.dtype)])
    return h


def _conv2d(low: _Lowering, layer: Conv2D, h, in_shape):
    c_out, _, kh, kw = layer.weight.shape
    h = low.zero_pad(h, layer.padding)
    conv = low.make(low.keras.layers.Conv2D, "conv2d", c_out, (kh, kw), strides=layer.stride,
                    padding="valid", data_format=CHANNELS_LAST)
    h = conv(h)
    conv.set_weights([layer.weight.transpose(2, 3, 1, 0).astype(low.dtype),
                      layer.bias.astype(low.dtype)])
    return h


def _maxpool(low: _Lowering, layer: MaxPool2D, h, in_shape):
    if any(layer.padding):
        ConstantPad2D, _ = _custom_layers()
        h = low.make(ConstantPad2D, "pad", layer.padding, float(np.finfo(low.dtype).min))(h)
    return low.make(low.keras.layers.MaxPooling2D, "maxpool", layer.kernel, strides=layer.stride,
                    padding="valid", data_format=CHANNELS_LAST)(h)


def _avgpool(low: _Lowering, layer: AvgPool2D, h, in_shape):
    h = low.zero_pad(h, layer.padding)
    h = low.make(low.keras.layers.AveragePooling2D, "avgpool", layer.kernel, strides=layer.stride,
                 padding="valid", data_format=CHANNELS_LAST)(h)
    if layer.count_include_pad or not any(layer.padding):
        return h
    height, width, _ = _nhwc(in_shape, layer.layout)
    (kh, kw), (sh, sw) = layer.kernel, layer.stride
    top, left, _, _ = layer.padding
    rows = _real_counts(height, kh, sh, top, h.shape[1])
    cols = _real_counts(width, kw, sw, left, h.shape[2])
    factor = (kh * kw) / (rows[:, None] * cols[None, :])
    _, Elementwise = _custom_layers()
    return low.make(Elementwise, "count", factor[:, :, None], np.zeros(1))(h)


def _real_counts(size: int, kernel: int, stride: int, before: int, n_out: int) -> np.ndarray:
    """Per output position along one axis: how many of its window's values are real."""
    start = np.arange(n_out) * stride - before
    return (np.minimum(start + kernel, size) - np.maximum(start, 0)).astype(np.float64)


def _pad2d(low: _Lowering, layer: Pad2D, h, in_shape):
    return low.zero_pad(h, layer.padding)


def _relu(low: _Lowering, layer: ReLU, h, in_shape):
    return low.make(low.keras.layers.ReLU, "relu")(h)


def _reshape(low: _Lowering, layer: Reshape, h, in_shape):
    return low.make(low.keras.layers.Reshape, "reshape", tuple(layer.shape))(h)


def _transpose(low: _Lowering, layer: Transpose, h, in_shape):
    return low.make(low.keras.layers.Permute, "transpose", tuple(p + 1 for p in layer.perm))(h)


def _scale(low: _Lowering, layer: Scale, h, in_shape):
    _, Elementwise = _custom_layers()
    return low.make(Elementwise, "scale", layer.mul.reshape(in_shape),
                    layer.add.reshape(in_shape))(h)


# ``lower(low, layer, h, in_shape) -> h``: ``h`` the Keras tensor (NCHW layers get its NHWC
# view), ``in_shape`` the IR shape the layer receives.
_LOWER = {Linear: _linear, Conv2D: _conv2d, MaxPool2D: _maxpool, AvgPool2D: _avgpool,
          Pad2D: _pad2d, ReLU: _relu, Reshape: _reshape, Transpose: _transpose, Scale: _scale}
SPATIAL = (Conv2D, MaxPool2D, AvgPool2D, Pad2D)


def to_keras(net: Network, input_shape: Sequence[int] | None = None, dtype: str = "float32"):
    """A Keras model computing ``net`` on inputs of ``input_shape`` (default the network's;
    any shape holding ``net.n_inputs`` values, read in row-major order, e.g. flat ``(n,)`` or
    the image ``(H, W, C)`` of a dense network).  The output is the IR network's output
    (logits), shape ``net.output_shape``.  Lowering per layer kind: see the module docstring."""
    keras = import_keras()
    shape = tuple(int(d) for d in (input_shape or net.input_shape))
    if int(np.prod(shape)) != net.n_inputs:
        raise NetworkError(f"to_keras: input shape {shape} holds {int(np.prod(shape))} values; "
                           f"{net.name} takes {net.n_inputs}")
    inputs = keras.Input(shape, dtype=dtype)
    low = _Lowering(keras, dtype, position=-1)
    h = inputs
    if shape != net.input_shape:
        h = low.make(keras.layers.Reshape, "input", net.input_shape)(h)
    permuted = False        # h holds the IR's (C, H, W) tensor as (H, W, C)
    for position, layer in enumerate(net.layers):
        low.position = position
        lower = _LOWER.get(type(layer))
        if lower is None:
            raise NetworkError(f"to_keras: no Keras lowering for layer kind {kind(layer)!r}",
                               position=position)
        nchw = isinstance(layer, SPATIAL) and layer.layout == "NCHW"
        if nchw and not permuted:
            h, permuted = low.make(keras.layers.Permute, "to_nhwc", TO_NHWC)(h), True
        elif permuted and not nchw and not isinstance(layer, ReLU):
            h, permuted = low.make(keras.layers.Permute, "to_nchw", TO_NCHW)(h), False
        h = lower(low, layer, h, net.shapes[position])
    if permuted:
        low.position = len(net.layers)
        h = low.make(keras.layers.Permute, "to_nchw", TO_NCHW)(h)
    return keras.Model(inputs, h, name=net.name)


def from_keras(model, like: Network) -> Network:
    """The IR network of a model made by :func:`to_keras` from a network with the structure
    of ``like`` (e.g. after retraining): ``like`` with the weights of every ``Linear`` and
    ``Conv2D`` layer read back from the model (float64 copies of the model's values); domain,
    input shape and every other layer are ``like``'s."""
    layers = []
    for position, layer in enumerate(like.layers):
        if isinstance(layer, Linear):
            kernel, bias = model.get_layer(f"p{position}_linear").get_weights()
            layer = Linear(np.asarray(kernel, dtype=np.float64).T.copy(),
                           np.asarray(bias, dtype=np.float64))
        elif isinstance(layer, Conv2D):
            kernel, bias = model.get_layer(f"p{position}_conv2d").get_weights()
            layer = dataclasses.replace(
                layer, weight=np.asarray(kernel, dtype=np.float64).transpose(3, 2, 0, 1).copy(),
                bias=np.asarray(bias, dtype=np.float64))
        layers.append(layer)
    return dataclasses.replace(like, layers=tuple(layers), name=f"{like.name}_retrained")
