"""Keras layers -> IR layers: the layer handlers of the Keras frontend (``frontends.keras``).

``_LAYER_HANDLERS`` maps a Keras class name to a handler ``(KerasLayer, input shape, _Context)
-> (IR layers, output shape)``; a handler reads its layer's stored arrays with
``_read_weights``, which checks their count, shapes and values first.  ``frontends.keras``
walks the model's chain of layers through the handlers and adds each IR layer with
``_append``, which simplifies exactly where two layers meet (e.g. a batch normalization folded
into the Dense or Conv2D before it, a zero padding into the Conv2D after it).

Layers, and what they become (the IR conventions are stated in ``ir.layers``):

* Dense -> ``Linear``; the Keras kernel ``(n_in, n_out)`` is transposed once to ``(n_out,
  n_in)``.  Needs a flat input (Dense on a multi-axis input acts on the last axis only).
* Conv2D -> ``Conv2D``; the kernel ``(kh, kw, c_in, c_out)`` is transposed once to ``(c_out,
  c_in, kh, kw)``.  data_format channels_last -> layout NHWC, channels_first -> NCHW.
  dilation_rate and groups other than 1 are refused.
* MaxPooling2D, AveragePooling2D -> ``MaxPool2D``, ``AvgPool2D`` (strides default to the pool
  size).  Average pooling never counts padding in its divisor (``count_include_pad=False``).
* padding 'same' (convolution and pooling) pads as TensorFlow does, per spatial axis of size
  ``n``, kernel ``k``, stride ``s``: ``total = max((ceil(n / s) - 1) * s + k - n, 0)``, then
  ``top = total // 2`` and ``bottom = total - top`` (likewise left and right).
* ZeroPadding2D -> ``Pad2D``, folded into the padding of a Conv2D right after it.
* BatchNormalization, at inference ``gamma * (x - moving_mean) / sqrt(moving_variance +
  epsilon) + beta`` over the channel axis (``center``/``scale`` say whether beta/gamma are
  stored) -> folded exactly into the Dense or Conv2D it directly follows (output channels of
  the kernel scaled, bias adjusted), else a ``Scale`` broadcast over the channel axis.
* Flatten -> ``Reshape((n,))`` (row-major; with data_format channels_first, Keras moves the
  channels last first: a ``Transpose`` before it); reshapes right before a Dense are dropped,
  as a ``Linear`` reads its input flat.  Reshape -> ``Reshape``.
* ReLU (plain), Activation(relu|linear), and activation relu|linear on Dense and Conv2D.  A
  softmax as the activation of the model's last layer (or a last Activation('softmax')) is
  dropped, with a note in ``Network.notes``: properties are stated over the logits and the
  argmax is unchanged.  A softmax anywhere else is refused.
* InputLayer, and Dropout (active only in training): nothing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable

import h5py
import numpy as np

from common.errors import FrontendError, NetworkError
from common.limits import check_values
from ir.layers import (AvgPool2D, Conv2D, Layer, Linear, MaxPool2D, Pad2D, ReLU, Reshape, Scale,
                       Transpose, output_shape)

SUPPORTED_LAYERS = ("Dense, Conv2D, MaxPooling2D, AveragePooling2D, ZeroPadding2D, "
                    "BatchNormalization, Flatten, Reshape, ReLU, Activation(relu|linear), "
                    "InputLayer, Dropout")
LINEAR_ACTIVATIONS = (None, "linear")
DATA_FORMATS = {"channels_last": "NHWC", "channels_first": "NCHW"}


@dataclass(frozen=True)
class KerasLayer:
    """One entry of a Keras model config: its name, class name and ``config`` dict."""

    name: str
    class_name: str
    config: dict

    def describe(self) -> str:
        return f"layer {self.name!r} ({self.class_name})"


@dataclass
class _Context:
    """What the layer handlers share while lowering one model.

    ``stored_arrays`` gives a layer's HDF5 datasets in Keras order (not read yet);
    ``model_source``/``weights_source`` name the files in messages; ``last_layer`` is the name
    of the chain's last layer (the only place a softmax may be dropped); ``data_format`` is the
    image data format of the layers so far (it decides the channel axis of a batch
    normalization); ``notes`` collects what the lowering changed, for ``Network.notes``.
    """

    stored_arrays: Callable[[KerasLayer], list[h5py.Dataset]]
    model_source: str
    weights_source: str
    last_layer: str
    data_format: str
    notes: list[str] = field(default_factory=list)


Shape = tuple[int, ...]


# ---- a layer's arrays ----------------------------------------------------------------------

def _read_weights(layer: KerasLayer, expected: list[tuple[str, Shape]], context: _Context,
                  hint: str = "") -> list[np.ndarray]:
    """The layer's stored arrays as float64, given ``(what, shape)`` for each in Keras order.

    The count and every shape are checked against the architecture before any array is read
    (a wrong file fails fast, without reading a huge array), then every value is checked
    finite.  ``hint`` ends a shape mismatch message."""
    stored = context.stored_arrays(layer)
    if len(stored) != len(expected):
        names = ", ".join(what for what, _ in expected)
        raise FrontendError(f"{layer.describe()} has {len(stored)} weight arrays, expected "
                            f"{len(expected)} ({names})", context.weights_source)
    arrays = []
    for dataset, (what, shape) in zip(stored, expected):
        check_values(shape, f"{layer.describe()}: {what}",
                     lambda m: FrontendError(m, context.weights_source))
        _check_shape(layer, what, dataset.shape, shape, context, hint)
        _check_stored(layer, what, dataset, context)
        try:
            array = np.asarray(dataset, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise FrontendError(f"{layer.describe()}: {what} is not numeric ({err})",
                                context.weights_source) from None
        bad = np.argwhere(~np.isfinite(array))
        if len(bad):
            at = tuple(int(i) for i in bad[0])
            raise FrontendError(f"{layer.describe()}: {what} holds a non-finite value "
                                f"{array[at]} at {at}", context.weights_source)
        arrays.append(array)
    return arrays


def _check_stored(layer: KerasLayer, what: str, dataset: h5py.Dataset, context: _Context) -> None:
    """An uncompressed dataset must hold its bytes (an unwritten one reads as zeros: a
    declared 64 GiB kernel in a 1 kB file)."""
    if dataset.compression is None and dataset.chunks is None:
        stored = dataset.id.get_storage_size()
        if stored < dataset.size * dataset.dtype.itemsize:
            raise FrontendError(f"{layer.describe()}: {what} declares shape {dataset.shape} but "
                                f"the file stores only {stored:,} bytes of it (not written, or "
                                "truncated)", context.weights_source)


def _check_shape(layer: KerasLayer, what: str, found: Shape, expected: Shape,
                 context: _Context, hint: str = "") -> None:
    if tuple(found) != tuple(expected):
        raise FrontendError(f"{layer.describe()}: {what} has shape {tuple(found)} in the weights, "
                            f"but the architecture needs {tuple(expected)}{hint}",
                            context.weights_source)


# ---- joining layers ------------------------------------------------------------------------

def _append(lowered: list[tuple[Layer, KerasLayer]], layer: Layer, origin: KerasLayer) -> None:
    """Add ``layer`` (made from Keras layer ``origin``), simplifying exactly where it meets the
    layer before it:

    * ReLU(ReLU(z)) is ReLU(z);
    * a ``Linear`` reads its input flat, so reshapes right before it go;
    * a zero padding right before a convolution of the same layout joins its padding;
    * a per-channel ``Scale`` (a batch normalization) right after a ``Linear`` or a
      ``Conv2D`` goes into its weight and bias.
    """
    if isinstance(layer, Linear):
        while lowered and isinstance(lowered[-1][0], Reshape):
            lowered.pop()
    previous = lowered[-1][0] if lowered else None
    if isinstance(layer, ReLU) and isinstance(previous, ReLU):
        return
    if (isinstance(layer, Conv2D) and isinstance(previous, Pad2D)
            and previous.layout == layer.layout):
        padding = tuple(a + b for a, b in zip(previous.padding, layer.padding))
        lowered[-1] = (replace(layer, padding=padding), origin)
        return
    if isinstance(layer, Scale):
        folded = _fold_scale(previous, layer)
        if folded is not None:
            lowered[-1] = (folded, lowered[-1][1])
            return
    lowered.append((layer, origin))


def _fold_scale(previous: Layer | None, scale: Scale) -> Layer | None:
    """``scale(previous(a))`` as one layer when ``previous`` is a ``Linear``, or a ``Conv2D``
    and the scale is the same at every position of a channel; else None.

    ``mul * (W a + b) + add == (mul W) a + (mul b + add)``, ``mul`` scaling output rows
    (output channels of a convolution)."""
    if isinstance(previous, Linear) and scale.mul.shape == (previous.n_out,):
        return Linear(scale.mul[:, None] * previous.weight, scale.mul * previous.bias + scale.add)
    if isinstance(previous, Conv2D):
        channels = previous.weight.shape[0]
        mul = _per_channel(scale.mul, channels, previous.layout)
        add = _per_channel(scale.add, channels, previous.layout)
        if mul is not None and add is not None:
            return replace(previous, weight=mul[:, None, None, None] * previous.weight,
                           bias=mul * previous.bias + add)
    return None


def _per_channel(values: np.ndarray, channels: int, layout: str) -> np.ndarray | None:
    """The one value per channel of a flat image tensor in ``layout``, or None when the values
    vary within a channel."""
    if values.size % channels:
        return None
    grid = values.reshape(-1, channels) if layout == "NHWC" else values.reshape(channels, -1).T
    return grid[0] if np.all(grid == grid[0]) else None


def _ir_shape(layer: KerasLayer, ir_layer: Layer, shape: Shape, context: _Context) -> Shape:
    """The shape ``ir_layer`` makes of ``shape``, as the IR computes it; its complaint names
    the Keras layer."""
    try:
        return output_shape(ir_layer, shape)
    except NetworkError as err:
        raise FrontendError(f"{layer.describe()} on an input of shape {shape}: {err}",
                            context.model_source) from None


# ---- layer handlers: (Keras layer, input shape, context) -> (IR layers, output shape) -------

def _dense(layer: KerasLayer, shape: Shape, context: _Context) -> tuple[list[Layer], Shape]:
    """``z = kernel.T @ a + bias``, then the activation; needs a flat input."""
    units = int(layer.config["units"])
    if len(shape) != 1:
        raise FrontendError(f"{layer.describe()} gets an input of shape {shape}; Dense on a "
                            "multi-axis input acts on the last axis only: add a Flatten before it",
                            context.model_source)
    activation = _activation_layers(layer, layer.config.get("activation"), (units,), context)
    use_bias = layer.config.get("use_bias", True)
    expected = [("kernel", (shape[0], units))] + ([("bias", (units,))] if use_bias else [])
    arrays = _read_weights(layer, expected, context)
    bias = arrays[1] if use_bias else np.zeros(units)
    return [Linear(arrays[0].T, bias)] + activation, (units,)


def _conv2d(layer: KerasLayer, shape: Shape, context: _Context) -> tuple[list[Layer], Shape]:
    """Cross-correlation with ``filters`` kernels, then the activation."""
    config = layer.config
    for option in ("dilation_rate", "groups"):
        value = config.get(option, 1)
        if any(v != 1 for v in (value if isinstance(value, list) else [value])):
            raise FrontendError(f"{layer.describe()} has {option}={value}; only {option}=1 is "
                                "supported", context.model_source)
    layout, (height, width, channels) = _image(layer, shape, context)
    kernel_size = _pair(layer, "kernel_size", config["kernel_size"], context)
    stride = _pair(layer, "strides", config.get("strides", 1), context)
    padding = _padding(layer, (height, width), kernel_size, stride, context)
    filters = int(config["filters"])
    use_bias = config.get("use_bias", True)
    expected = [("kernel", (*kernel_size, channels, filters))]
    expected += [("bias", (filters,))] if use_bias else []
    arrays = _read_weights(layer, expected, context,
                           hint=f" (kh, kw, c_in, c_out) for an input of shape {shape}, "
                                f"{channels} channels in layout {layout}")
    bias = arrays[1] if use_bias else np.zeros(filters)
    conv = Conv2D(np.ascontiguousarray(arrays[0].transpose(3, 2, 0, 1)), bias, stride, padding,
                  layout)
    out = _ir_shape(layer, conv, shape, context)
    return [conv] + _activation_layers(layer, config.get("activation"), out, context), out


def _max_pooling(layer: KerasLayer, shape: Shape, context: _Context) -> tuple[list[Layer], Shape]:
    """The maximum over each window; padded positions never win."""
    pool = MaxPool2D(*_pool_geometry(layer, shape, context))
    return [pool], _ir_shape(layer, pool, shape, context)


def _average_pooling(layer: KerasLayer, shape: Shape,
                     context: _Context) -> tuple[list[Layer], Shape]:
    """The mean over each window; 'same' padding is left out of the divisor, as in Keras."""
    pool = AvgPool2D(*_pool_geometry(layer, shape, context), count_include_pad=False)
    return [pool], _ir_shape(layer, pool, shape, context)


def _pool_geometry(layer: KerasLayer, shape: Shape, context: _Context):
    """``(kernel, stride, padding, layout)`` of a pooling layer; strides default to the pool
    size."""
    layout, (height, width, _) = _image(layer, shape, context)
    kernel = _pair(layer, "pool_size", layer.config.get("pool_size", 2), context)
    stride = _pair(layer, "strides", layer.config.get("strides") or kernel, context)
    return kernel, stride, _padding(layer, (height, width), kernel, stride, context), layout


def _zero_padding(layer: KerasLayer, shape: Shape, context: _Context) -> tuple[list[Layer], Shape]:
    """Zeros around the image; ``padding`` is ``p``, ``(ph, pw)`` or ``((top, bottom), (left,
    right))``."""
    layout, _ = _image(layer, shape, context)
    value = layer.config.get("padding", 1)
    pairs = [_pair(layer, "padding", v, context)
             for v in (value if isinstance(value, list) else [value, value])]
    if len(pairs) != 2 or any(p < 0 for pair in pairs for p in pair):
        raise FrontendError(f"{layer.describe()} has padding={value}; expected p, (ph, pw) or "
                            "((top, bottom), (left, right)) of whole numbers >= 0",
                            context.model_source)
    (top, bottom), (left, right) = pairs
    pad = Pad2D((top, left, bottom, right), layout)
    return [pad], _ir_shape(layer, pad, shape, context)


def _batch_normalization(layer: KerasLayer, shape: Shape,
                         context: _Context) -> tuple[list[Layer], Shape]:
    """``mul * x + add`` per channel with ``mul = gamma / sqrt(moving_variance + epsilon)`` and
    ``add = beta - moving_mean * mul``, as a ``Scale`` over the whole tensor (``_append`` folds
    it into a Dense or Conv2D right before it)."""
    config = layer.config
    axis = _channel_axis(layer, shape, context)
    channels = shape[axis]
    names = (["gamma"] if config.get("scale", True) else []) + \
            (["beta"] if config.get("center", True) else []) + ["moving_mean", "moving_variance"]
    arrays = dict(zip(names, _read_weights(layer, [(name, (channels,)) for name in names],
                                           context)))
    variance = arrays["moving_variance"] + float(config.get("epsilon", 1e-3))
    if np.any(variance <= 0):
        channel = int(np.argmax(variance <= 0))
        raise FrontendError(f"{layer.describe()}: moving_variance + epsilon is {variance[channel]} "
                            f"<= 0 for channel {channel}", context.weights_source)
    mul = arrays.get("gamma", 1.0) / np.sqrt(variance)
    add = arrays.get("beta", 0.0) - arrays["moving_mean"] * mul
    along = [1] * len(shape)
    along[axis] = channels
    flat = [np.broadcast_to(v.reshape(along), shape).ravel() for v in (mul, add)]
    return [Scale(*flat)], shape


def _channel_axis(layer: KerasLayer, shape: Shape, context: _Context) -> int:
    """The axis (0-based, no batch axis) a batch normalization normalizes: its ``axis`` must be
    the channel axis, the last one, or the first of an image in channels_first format."""
    axis = layer.config.get("axis", -1)
    if isinstance(axis, list) and len(axis) == 1:
        axis = axis[0]
    rank = len(shape) + 1                                   # Keras counts the batch axis
    channel = 1 if len(shape) == 3 and context.data_format == "channels_first" else len(shape)
    if not isinstance(axis, int) or not -rank <= axis < rank or axis % rank != channel:
        raise FrontendError(f"{layer.describe()} normalizes axis {axis} of an input of shape "
                            f"(batch, {', '.join(map(str, shape))}); only the channel axis is "
                            f"supported ({channel} here, data_format {context.data_format})",
                            context.model_source)
    return channel - 1


def _flatten(layer: KerasLayer, shape: Shape, context: _Context) -> tuple[list[Layer], Shape]:
    """Row-major flattening; with data_format channels_first Keras moves the channels last
    first."""
    if len(shape) == 1:
        return [], shape
    n = int(np.prod(shape))
    layers: list[Layer] = [Reshape((n,))]
    if layer.config.get("data_format") == "channels_first":
        layers.insert(0, Transpose((*range(1, len(shape)), 0)))
    return layers, (n,)


def _reshape(layer: KerasLayer, shape: Shape, context: _Context) -> tuple[list[Layer], Shape]:
    """The same values in ``target_shape`` (one axis may be -1: whatever is left)."""
    target = [int(d) for d in layer.config["target_shape"]]
    n = int(np.prod(shape))
    known = int(np.prod([d for d in target if d != -1]))
    if target.count(-1) == 1 and known > 0 and n % known == 0:
        target[target.index(-1)] = n // known
    reshape = Reshape(tuple(target))
    return [reshape], _ir_shape(layer, reshape, shape, context)


def _activation_layers(layer: KerasLayer, activation, out_shape: Shape,
                       context: _Context) -> list[Layer]:
    """``[ReLU()]`` for relu, ``[]`` for linear and for a final softmax over a flat output
    (dropped with a note); any other softmax and the rest are refused."""
    if activation == "relu":
        return [ReLU()]
    if activation in LINEAR_ACTIVATIONS:
        return []
    if activation == "softmax":
        if layer.name == context.last_layer and len(out_shape) == 1:
            context.notes.append(f"final softmax of layer {layer.name!r} dropped: properties are "
                                 "stated over the logits (the argmax is unchanged)")
            return []
        where = ("the model's last layer but over the last axis of an output of shape "
                 f"{out_shape}" if layer.name == context.last_layer else "not the last layer")
        raise FrontendError(f"{layer.describe()} has a softmax activation and is {where}; the IR "
                            "has no softmax, and only a final softmax over a flat output can be "
                            "dropped (it keeps the argmax)", context.model_source)
    raise FrontendError(f"{layer.describe()} has activation {activation!r}; supported: relu, "
                        "linear (and softmax as the last layer)", context.model_source)


def _activation(layer: KerasLayer, shape: Shape, context: _Context) -> tuple[list[Layer], Shape]:
    return _activation_layers(layer, layer.config.get("activation"), shape, context), shape


def _relu(layer: KerasLayer, shape: Shape, context: _Context) -> tuple[list[Layer], Shape]:
    """A plain ReLU layer; a capped, leaky or thresholded one is not a ReLU."""
    config = layer.config
    if (config.get("max_value") is not None or config.get("negative_slope", 0.0)
            or config.get("threshold", 0.0)):
        raise FrontendError(f"{layer.describe()} has max_value={config.get('max_value')}, "
                            f"negative_slope={config.get('negative_slope')}, "
                            f"threshold={config.get('threshold')}; only a plain ReLU "
                            "(None, 0, 0) is supported", context.model_source)
    return [ReLU()], shape


def _identity(layer: KerasLayer, shape: Shape, context: _Context) -> tuple[list[Layer], Shape]:
    """InputLayer, and Dropout (active only in training)."""
    return [], shape


# ---- image geometry ------------------------------------------------------------------------

def _image(layer: KerasLayer, shape: Shape, context: _Context) -> tuple[str, tuple[int, int, int]]:
    """The IR layout of an image layer and ``(height, width, channels)`` of its input; records
    the layer's data format as the current one."""
    data_format = layer.config.get("data_format") or "channels_last"
    if data_format not in DATA_FORMATS:
        raise FrontendError(f"{layer.describe()} has data_format={data_format!r}; supported: "
                            f"{', '.join(DATA_FORMATS)}", context.model_source)
    if len(shape) != 3:
        axes = "(height, width, channels)" if data_format == "channels_last" else \
            "(channels, height, width)"
        raise FrontendError(f"{layer.describe()} needs an image input {axes}, got shape {shape}",
                            context.model_source)
    context.data_format = data_format
    if data_format == "channels_last":
        return "NHWC", shape
    return "NCHW", (shape[1], shape[2], shape[0])


def _pair(layer: KerasLayer, option: str, value, context: _Context) -> tuple[int, int]:
    """``n`` or ``[a, b]`` as ``(a, b)`` of whole numbers."""
    pair = [value, value] if isinstance(value, int) else value
    if not (isinstance(pair, (list, tuple)) and len(pair) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in pair)):
        raise FrontendError(f"{layer.describe()} has {option}={value!r}; expected a whole number "
                            "or a pair of them", context.model_source)
    return int(pair[0]), int(pair[1])


def _padding(layer: KerasLayer, sizes: tuple[int, int], kernel: tuple[int, int],
             stride: tuple[int, int], context: _Context) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` for padding 'valid' (none) or 'same' (TensorFlow's rule:
    ``total = max((ceil(n / s) - 1) * s + k - n, 0)`` per axis, the smaller half first)."""
    mode = str(layer.config.get("padding", "valid")).lower()
    if mode == "valid":
        return (0, 0, 0, 0)
    if mode != "same":
        raise FrontendError(f"{layer.describe()} has padding={mode!r}; supported: 'valid', "
                            "'same'", context.model_source)
    totals = [max((math.ceil(n / s) - 1) * s + k - n, 0)
              for n, k, s in zip(sizes, kernel, stride)]
    (top, left), (bottom, right) = [t // 2 for t in totals], [t - t // 2 for t in totals]
    return (top, left, bottom, right)


LayerHandler = Callable[[KerasLayer, Shape, _Context], tuple[list[Layer], Shape]]

_LAYER_HANDLERS: dict[str, LayerHandler] = {
    "Dense": _dense,
    "Conv2D": _conv2d,
    "MaxPooling2D": _max_pooling,
    "AveragePooling2D": _average_pooling,
    "ZeroPadding2D": _zero_padding,
    "BatchNormalization": _batch_normalization,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "ReLU": _relu,
    "Activation": _activation,
    "InputLayer": _identity,
    "Dropout": _identity,
}
