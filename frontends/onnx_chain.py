"""The IR layers the ONNX reader has emitted so far, and the data tensor's shapes: a ``_Chain``
the op lowerings (``frontends.onnx_ops``) append to.  An elementwise affine op folds into the
layer just emitted when that layer can take it (``_Chain.affine``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from common.errors import FrontendError, NetworkError
from frontends.onnx_graph import _Node
from ir.layers import output_shape
from ir.network import Conv2D, Layer, Linear, Reshape, Scale, Shape


@dataclass
class _Chain:
    """The IR layers emitted so far and the data tensor's shapes.

    ``shape`` is the current data tensor's ONNX shape (batch 1); ``ir_shape`` the shape the IR
    layers emitted so far produce (same flat values, possibly another shape until a layer needs
    the ONNX one: see ``conform``)."""

    source: str
    opset: int
    input_shape: Shape
    notes: list[str]
    layers: list[Layer] = field(default_factory=list)
    shape: Shape = ()
    ir_shape: Shape = ()
    previous_op: str | None = None

    def __post_init__(self):
        self.shape = tuple(self.input_shape)
        self.ir_shape = self.input_ir_shape

    @property
    def input_ir_shape(self) -> Shape:
        return _strip_batch(self.input_shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def fail(self, node: _Node, message: str) -> FrontendError:
        return FrontendError(f"{node.describe()}: {message}", self.source)

    def conform(self, shape: Shape) -> None:
        """Make the IR shape ``shape`` (an IR ``Reshape`` when it differs)."""
        if tuple(shape) != tuple(self.ir_shape):
            if self.layers and isinstance(self.layers[-1], Reshape):
                self.layers.pop()
            self.layers.append(Reshape(tuple(shape)))
            self.ir_shape = tuple(shape)

    def emit(self, layer: Layer, node: _Node) -> None:
        try:
            self.ir_shape = output_shape(layer, self.ir_shape)
        except NetworkError as err:
            raise self.fail(node, str(err)) from None
        self.layers.append(layer)

    def emit_spatial(self, layer: Layer, node: _Node) -> None:
        """A Conv/pool layer on the 4-D NCHW tensor: IR shape ``(C, H, W)``."""
        if len(self.shape) != 4 or self.shape[0] != 1:
            raise self.fail(node, f"needs a 4-D NCHW tensor with a batch of 1 (2-D spatial "
                                  f"data), got shape {self.shape}")
        self.conform(self.shape[1:])
        self.emit(layer, node)
        self.shape = (1,) + tuple(self.ir_shape)

    def affine(self, mul: np.ndarray, add: np.ndarray, node: _Node) -> None:
        """``x -> mul * x + add`` elementwise on the flat data (``mul``/``add`` flat, one value
        per data value), folded into the layer just emitted when it can take it."""
        if np.all(mul == 1.0) and np.all(add == 0.0):
            return
        last = self.layers[-1] if self.layers else None
        if isinstance(last, Linear):
            self.layers[-1] = Linear(_scaled_rows(last.weight, mul),
                                     _affine_on(last.bias, mul, add))
        elif isinstance(last, Conv2D) and _per_channel(mul, self.ir_shape, last.layout) \
                and _per_channel(add, self.ir_shape, last.layout):
            mul_c = _channel_values(mul, self.ir_shape, last.layout)
            add_c = _channel_values(add, self.ir_shape, last.layout)
            weight = (last.weight if np.all(mul_c == 1.0)
                      else last.weight * mul_c[:, None, None, None])
            self.layers[-1] = Conv2D(weight, _affine_on(last.bias, mul_c, add_c), last.stride,
                                     last.padding, last.layout)
        elif isinstance(last, Scale):
            self.layers[-1] = Scale(last.mul * mul, _affine_on(last.add, mul, add))
        else:
            self.emit(Scale(np.array(mul, dtype=np.float64), np.array(add, dtype=np.float64)), node)


def _strip_batch(shape: Shape) -> Shape:
    """The IR shape of an ONNX shape: without a leading batch axis of size 1."""
    shape = tuple(shape)
    return shape[1:] if len(shape) >= 2 and shape[0] == 1 else shape


def _scaled_rows(weight: np.ndarray, mul: np.ndarray) -> np.ndarray:
    return weight if np.all(mul == 1.0) else weight * mul[:, None]


def _affine_on(values: np.ndarray, mul: np.ndarray, add: np.ndarray) -> np.ndarray:
    """``mul * values + add`` without touching the bits where ``mul`` is 1 or ``add`` is 0."""
    out = values if np.all(mul == 1.0) else values * mul
    return out if np.all(add == 0.0) else out + add


def _channel_grid(values: np.ndarray, shape: Shape, layout: str) -> np.ndarray:
    """Flat values of a 3-axis tensor as ``(channels, positions)``."""
    grid = values.reshape(shape)
    return grid.reshape(shape[0], -1) if layout == "NCHW" else grid.reshape(-1, shape[2]).T


def _per_channel(values: np.ndarray, shape: Shape, layout: str) -> bool:
    if len(shape) != 3:
        return False
    grid = _channel_grid(values, shape, layout)
    return bool(np.all(grid == grid[:, :1]))


def _channel_values(values: np.ndarray, shape: Shape, layout: str) -> np.ndarray:
    return _channel_grid(values, shape, layout)[:, 0].copy()
