"""The layer kinds of the network IR, each with its shape rule and, for the affine ones, its
exact linear map on flat vectors.

Conventions (the one place they are stated):

* A tensor is a value of one input (no batch axis), stored flat in row-major (C) order of its
  shape.  The shape is the model file's: ``(H, W, C)`` for Keras (channels last, NHWC),
  ``(C, H, W)`` for ONNX graphs that declare NCHW.  So a flat index means the same value as in
  the model's own input tensor.
* ``Linear.weight`` has shape ``(n_out, n_in)``: row ``j`` holds the weights INTO target
  neuron ``j``, so ``z = weight @ a + bias``.  Keras stores kernels as ``(n_in, n_out)``;
  frontends transpose once.
* ``Conv2D.weight`` has shape ``(c_out, c_in, kh, kw)`` (ONNX's OIHW) whatever the layout;
  Keras kernels ``(kh, kw, c_in, c_out)`` are transposed once in the frontend.
* ``padding`` is ``(top, left, bottom, right)`` (ONNX's ``pads`` order), in input pixels.
* All values are float64.

Every layer but ``ReLU`` and ``MaxPool2D`` is affine; ``affine_map(layer, in_shape)`` gives
it as ``(matrix, bias)`` acting on flat vectors: a dense ``ndarray`` for ``Linear``, a
``scipy.sparse.csr_matrix`` for everything else (a 28x28x16 'same' convolution as a dense
float64 matrix would take 157 MB; sparse it takes 2 MB).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Union

import numpy as np
import scipy.sparse as sp

from common.errors import NetworkError

Shape = tuple[int, ...]
LAYOUTS = ("NHWC", "NCHW")


class Weighted:
    """Sizes of a map whose ``weight`` is stored ``(n_out, n_in)``."""

    @property
    def n_in(self) -> int:
        return self.weight.shape[1]

    @property
    def n_out(self) -> int:
        return self.weight.shape[0]


@dataclass(frozen=True, eq=False)
class Linear(Weighted):
    """A dense layer: ``z = weight @ a + bias`` with ``weight`` of shape ``(n_out, n_in)``."""

    weight: np.ndarray
    bias: np.ndarray


@dataclass(frozen=True)
class ReLU:
    """``a = max(0, z)`` elementwise."""


@dataclass(frozen=True, eq=False)
class Conv2D:
    """2-D cross-correlation (as Keras and ONNX compute it), zero padding, one group, no
    dilation: ``out[o, y, x] = bias[o] + sum_{i, dy, dx} weight[o, i, dy, dx] *
    in[i, y*sh - top + dy, x*sw - left + dx]`` (out-of-range input values are 0)."""

    weight: np.ndarray                      # (c_out, c_in, kh, kw)
    bias: np.ndarray                        # (c_out,)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    layout: str = "NHWC"


@dataclass(frozen=True)
class MaxPool2D:
    """``out[c, y, x] = max`` over the window at ``(y*sh - top, x*sw - left)``; padded
    positions never win (they are -inf).  Piecewise linear, like ReLU."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    layout: str = "NHWC"


@dataclass(frozen=True)
class AvgPool2D:
    """The mean over each window; padded positions count in the divisor only when
    ``count_include_pad`` (ONNX's attribute; Keras 'same' pooling excludes them)."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    layout: str = "NHWC"
    count_include_pad: bool = False


@dataclass(frozen=True)
class Pad2D:
    """Zero padding of the two spatial axes by ``(top, left, bottom, right)`` (Keras's
    ZeroPadding2D, ONNX's constant Pad); frontends fold it into a following convolution
    when they can."""

    padding: tuple[int, int, int, int]
    layout: str = "NHWC"


@dataclass(frozen=True)
class Reshape:
    """A new shape for the same flat values (flatten is ``Reshape((n,))``)."""

    shape: Shape


@dataclass(frozen=True)
class Transpose:
    """``out = in.transpose(perm)`` (axes without the batch axis)."""

    perm: Shape


@dataclass(frozen=True, eq=False)
class Scale:
    """Elementwise affine ``out = mul * in + add`` with ``mul`` and ``add`` flat, one value per
    tensor value: a normalization or a batch normalization that no neighbouring affine layer
    could absorb."""

    mul: np.ndarray
    add: np.ndarray


Layer = Union[Linear, ReLU, Conv2D, MaxPool2D, AvgPool2D, Pad2D, Reshape, Transpose, Scale]
ACTIVATIONS = (ReLU, MaxPool2D)
ARRAY_FIELDS = {Linear: ("weight", "bias"), Conv2D: ("weight", "bias"), Scale: ("mul", "add")}


def is_activation(layer: Layer) -> bool:
    return isinstance(layer, ACTIVATIONS)


def kind(layer: Layer) -> str:
    """The layer's name in messages and in the text form."""
    return type(layer).__name__.lower()


# ---- shapes ---------------------------------------------------------------------------------

def _spatial(shape: Shape, layout: str, what: str) -> tuple[int, int, int]:
    """``(height, width, channels)`` of a 3-axis tensor in ``layout``."""
    if layout not in LAYOUTS:
        raise NetworkError(f"{what}: unknown layout {layout!r}; use NHWC or NCHW")
    if len(shape) != 3:
        raise NetworkError(f"{what} needs a 3-axis input ({'H, W, C' if layout == 'NHWC' else 'C, H, W'}), "
                           f"got shape {shape}")
    return (shape[0], shape[1], shape[2]) if layout == "NHWC" else (shape[1], shape[2], shape[0])


def _with_spatial(height: int, width: int, channels: int, layout: str) -> Shape:
    return (height, width, channels) if layout == "NHWC" else (channels, height, width)


def _window_count(size: int, kernel: int, stride: int, before: int, after: int, what: str) -> int:
    span = size + before + after - kernel
    if kernel < 1 or stride < 1 or min(before, after) < 0:
        raise NetworkError(f"{what}: kernel {kernel}, stride {stride} and padding "
                           f"({before}, {after}) must be positive (padding >= 0)")
    if span < 0:
        raise NetworkError(f"{what}: a kernel of {kernel} does not fit an input of {size} "
                           f"with padding ({before}, {after})")
    return span // stride + 1


def output_shape(layer: Layer, in_shape: Shape) -> Shape:
    """The shape a layer produces from ``in_shape``; a NetworkError when it cannot take it."""
    n = int(np.prod(in_shape))
    if isinstance(layer, Linear):
        if layer.n_in != n:
            raise NetworkError(f"linear: weight takes {layer.n_in} inputs, but the layer below "
                               f"gives {n} values (shape {in_shape})")
        return (layer.n_out,)
    if isinstance(layer, (ReLU, Scale)):
        if isinstance(layer, Scale) and (layer.mul.shape != (n,) or layer.add.shape != (n,)):
            raise NetworkError(f"scale: mul and add need shape ({n},) for an input of shape "
                               f"{in_shape}, got {layer.mul.shape} and {layer.add.shape}")
        return in_shape
    if isinstance(layer, Reshape):
        if int(np.prod(layer.shape)) != n or any(d < 1 for d in layer.shape):
            raise NetworkError(f"reshape: {in_shape} ({n} values) cannot become {layer.shape}")
        return tuple(layer.shape)
    if isinstance(layer, Transpose):
        if sorted(layer.perm) != list(range(len(in_shape))):
            raise NetworkError(f"transpose: perm {layer.perm} is not a permutation of the "
                               f"{len(in_shape)} axes of shape {in_shape}")
        return tuple(in_shape[p] for p in layer.perm)
    what = kind(layer)
    height, width, channels = _spatial(in_shape, layer.layout, what)
    top, left, bottom, right = layer.padding
    if isinstance(layer, Pad2D):
        if min(layer.padding) < 0:
            raise NetworkError(f"pad2d: padding {layer.padding} must be >= 0")
        return _with_spatial(height + top + bottom, width + left + right, channels, layer.layout)
    if isinstance(layer, Conv2D):
        c_out, c_in, kh, kw = layer.weight.shape
        if c_in != channels:
            raise NetworkError(f"conv2d: kernel takes {c_in} channels, the input has {channels} "
                               f"(shape {in_shape}, layout {layer.layout})")
    else:
        (kh, kw), c_out = layer.kernel, channels
    out_h = _window_count(height, kh, layer.stride[0], top, bottom, what)
    out_w = _window_count(width, kw, layer.stride[1], left, right, what)
    return _with_spatial(out_h, out_w, c_out, layer.layout)


# ---- linear maps ----------------------------------------------------------------------------

def _windows(layer, in_shape: Shape, kh: int, kw: int):
    """For every output position and kernel offset, the flat input index (-1 for padding).

    Returns ``(index, out_h, out_w)`` with ``index`` of shape ``(out_h, out_w, c, kh, kw)``:
    the input value channel ``c`` of the window at output ``(y, x)`` sees at offset
    ``(dy, dx)``.
    """
    height, width, channels = _spatial(in_shape, layer.layout, kind(layer))
    top, left, bottom, right = layer.padding
    sh, sw = layer.stride
    out_h = _window_count(height, kh, sh, top, bottom, kind(layer))
    out_w = _window_count(width, kw, sw, left, right, kind(layer))
    rows = (np.arange(out_h) * sh - top)[:, None] + np.arange(kh)[None, :]     # (out_h, kh)
    cols = (np.arange(out_w) * sw - left)[:, None] + np.arange(kw)[None, :]    # (out_w, kw)
    r = rows[:, None, None, :, None]
    c = cols[None, :, None, None, :]
    ch = np.arange(channels)[None, None, :, None, None]
    inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
    if layer.layout == "NHWC":
        flat = (r * width + c) * channels + ch
    else:
        flat = (ch * height + r) * width + c
    return np.where(inside, flat, -1), out_h, out_w


def _out_index(out_h: int, out_w: int, channels: int, layout: str) -> np.ndarray:
    """Flat output index of ``(y, x, c)`` as an array of shape ``(out_h, out_w, channels)``."""
    y = np.arange(out_h)[:, None, None]
    x = np.arange(out_w)[None, :, None]
    c = np.arange(channels)[None, None, :]
    if layout == "NHWC":
        return (y * out_w + x) * channels + c
    return (c * out_h + y) * out_w + x


def pool_groups(layer: MaxPool2D, in_shape: Shape) -> np.ndarray:
    """Max pooling as index groups: row ``r`` lists the flat input indices whose maximum is
    output ``r`` (``-1`` pads windows cut by padding)."""
    kh, kw = layer.kernel
    index, out_h, out_w = _windows(layer, in_shape, kh, kw)      # (oh, ow, c, kh, kw)
    channels = index.shape[2]
    groups = np.empty((out_h * out_w * channels, kh * kw), dtype=np.int64)
    groups[_out_index(out_h, out_w, channels, layer.layout).ravel()] = \
        index.reshape(out_h * out_w * channels, kh * kw)
    if np.any(np.all(groups < 0, axis=1)):
        raise NetworkError(f"maxpool2d: a window lies entirely in the padding {layer.padding}")
    return groups


def _conv_matrix(layer: Conv2D, in_shape: Shape) -> tuple[sp.csr_matrix, np.ndarray]:
    c_out, c_in, kh, kw = layer.weight.shape
    index, out_h, out_w = _windows(layer, in_shape, kh, kw)       # (oh, ow, c_in, kh, kw)
    out = _out_index(out_h, out_w, c_out, layer.layout)             # (oh, ow, c_out)
    rows = np.broadcast_to(out[:, :, :, None, None, None], (out_h, out_w, c_out, c_in, kh, kw))
    cols = np.broadcast_to(index[:, :, None, :, :, :], rows.shape)
    vals = np.broadcast_to(layer.weight[None, None], rows.shape)
    keep = (cols >= 0) & (vals != 0)
    n_out, n_in = out_h * out_w * c_out, int(np.prod(in_shape))
    matrix = sp.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(n_out, n_in))
    bias = np.empty(n_out)
    bias[out.ravel()] = np.broadcast_to(layer.bias, out.shape).ravel()
    return matrix, bias


def _avgpool_matrix(layer: AvgPool2D, in_shape: Shape) -> tuple[sp.csr_matrix, np.ndarray]:
    kh, kw = layer.kernel
    index, out_h, out_w = _windows(layer, in_shape, kh, kw)       # (oh, ow, c, kh, kw)
    channels = index.shape[2]
    out = _out_index(out_h, out_w, channels, layer.layout)
    inside = index >= 0
    count = np.full(out.shape, kh * kw) if layer.count_include_pad else inside.sum(axis=(3, 4))
    rows = np.broadcast_to(out[..., None, None], index.shape)
    vals = np.broadcast_to((1.0 / count)[..., None, None], index.shape)
    n_out, n_in = out.size, int(np.prod(in_shape))
    matrix = sp.csr_matrix((vals[inside], (rows[inside], index[inside])), shape=(n_out, n_in))
    return matrix, np.zeros(n_out)


def _pad_matrix(layer: Pad2D, in_shape: Shape) -> sp.csr_matrix:
    """The 0/1 map that embeds the input into the padded tensor."""
    height, width, channels = _spatial(in_shape, layer.layout, "pad2d")
    top, left, bottom, right = layer.padding
    out_h, out_w = height + top + bottom, width + left + right
    source = np.arange(height * width * channels).reshape(
        _with_spatial(height, width, channels, layer.layout))
    target = _out_index(out_h, out_w, channels, layer.layout)[top:top + height, left:left + width]
    if layer.layout == "NCHW":
        source = source.transpose(1, 2, 0)
    n = source.size
    return sp.csr_matrix((np.ones(n), (target.ravel(), source.ravel())),
                         shape=(out_h * out_w * channels, n))


def _permutation_matrix(perm: Shape, in_shape: Shape) -> sp.csr_matrix:
    n = int(np.prod(in_shape))
    source = np.arange(n).reshape(in_shape).transpose(perm).ravel()
    return sp.csr_matrix((np.ones(n), (np.arange(n), source)), shape=(n, n))


_MAPS: "weakref.WeakKeyDictionary[object, tuple]" = weakref.WeakKeyDictionary()


def affine_map(layer: Layer, in_shape: Shape):
    """``(matrix, bias)`` with ``layer(a) == matrix @ a + bias`` on flat vectors.

    ``Linear`` gives its own dense weight; the others a ``csr_matrix``, computed once per
    layer object and input shape (layers are immutable and shared between network copies).
    """
    if isinstance(layer, Linear):
        return layer.weight, layer.bias
    n = int(np.prod(in_shape))
    if isinstance(layer, Reshape):
        return sp.identity(n, format="csr"), np.zeros(n)
    if isinstance(layer, ACTIVATIONS):
        raise NetworkError(f"{kind(layer)} is not affine")
    cached = _MAPS.get(layer)
    if cached is not None and cached[0] == tuple(in_shape):
        return cached[1], cached[2]
    if isinstance(layer, Conv2D):
        matrix, bias = _conv_matrix(layer, in_shape)
    elif isinstance(layer, AvgPool2D):
        matrix, bias = _avgpool_matrix(layer, in_shape)
    elif isinstance(layer, Transpose):
        matrix, bias = _permutation_matrix(layer.perm, in_shape), np.zeros(n)
    elif isinstance(layer, Pad2D):
        matrix = _pad_matrix(layer, in_shape)
        bias = np.zeros(matrix.shape[0])
    elif isinstance(layer, Scale):
        matrix, bias = sp.diags(layer.mul, format="csr"), layer.add
    else:
        raise NetworkError(f"unknown layer type {type(layer).__name__}")
    _MAPS[layer] = (tuple(in_shape), matrix, bias)
    return matrix, bias


def apply_affine(matrix, bias: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``a @ matrix.T + bias`` for a batch ``(B, n_in)``, dense or sparse ``matrix``."""
    if sp.issparse(matrix):
        return np.asarray((matrix @ a.T).T) + bias
    return a @ matrix.T + bias
