"""The per-op lowerings of the ONNX reader: ``_LOWERINGS`` maps an ONNX op type to a function
``(node, data position, constants, chain) -> None`` that appends the node's IR layers to the
chain (``frontends.onnx_chain``) and sets the data tensor's new ONNX shape.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from frontends.onnx_chain import _Chain
from frontends.onnx_graph import _Constants, _Node
from ir.network import (AvgPool2D, Conv2D, Linear, MaxPool2D, Pad2D, ReLU, Shape,
                        Transpose)

MAX_KRON_VALUES = 50_000_000     # a MatMul over several rows becomes kron(I, W): keep it sane


# ---- lowerings: shape-only ops ----------------------------------------------------------------

def _identity(node, data, constants, chain):
    """Identity, and Dropout at inference."""
    if node.op == "Dropout" and len(node.inputs) > 2 and node.inputs[2]:
        training = constants.get(node.inputs[2])
        if training is None or bool(np.asarray(training).ravel()[0]):
            raise chain.fail(node, "training_mode must be a constant false (inference)")


def _new_shape(node: _Node, chain: _Chain, shape) -> None:
    shape = tuple(int(d) for d in shape)
    if int(np.prod(shape)) != chain.size or any(d < 1 for d in shape):
        raise chain.fail(node, f"cannot reshape {chain.shape} ({chain.size} values) to {shape}")
    chain.shape = shape


def _flatten(node, data, constants, chain):
    rank = len(chain.shape)
    axis = node.attr("axis", 1)
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis <= rank:
        raise chain.fail(node, f"axis {node.attr('axis')} is out of range for shape {chain.shape}")
    _new_shape(node, chain, (int(np.prod(chain.shape[:axis])), int(np.prod(chain.shape[axis:]))))


def _reshape(node, data, constants, chain):
    if data != 0:
        raise chain.fail(node, "the data must be the tensor reshaped, not the shape")
    target = constants.ints(node, node.inputs[1], "target shape")
    if node.attr("allowzero", 0) and 0 in target:
        raise chain.fail(node, f"allowzero with a 0 in the target {target} makes an empty tensor")
    dims = [chain.shape[i] if d == 0 else d for i, d in enumerate(target)]
    if dims.count(-1) > 1 or any(d < -1 for d in dims):
        raise chain.fail(node, f"target shape {target} is invalid")
    if -1 in dims:
        known = int(np.prod([d for d in dims if d != -1]))
        if known == 0 or chain.size % known:
            raise chain.fail(node, f"cannot reshape {chain.shape} to {target}")
        dims[dims.index(-1)] = chain.size // known
    _new_shape(node, chain, dims)


def _axes(node: _Node, constants: _Constants, chain: _Chain) -> list[int] | None:
    if chain.opset < 13 or node.op not in ("Squeeze", "Unsqueeze"):
        axes = node.attr("axes")
        return None if axes is None else list(axes)
    if len(node.inputs) > 1 and node.inputs[1]:
        return constants.ints(node, node.inputs[1], "axes")
    return None


def _squeeze(node, data, constants, chain):
    rank = len(chain.shape)
    axes = _axes(node, constants, chain)
    axes = [i for i, d in enumerate(chain.shape) if d == 1] if axes is None else \
        [a + rank if a < 0 else a for a in axes]
    if any(not 0 <= a < rank or chain.shape[a] != 1 for a in axes):
        raise chain.fail(node, f"cannot squeeze axes {axes} of shape {chain.shape}")
    chain.shape = tuple(d for i, d in enumerate(chain.shape) if i not in axes)


def _unsqueeze(node, data, constants, chain):
    axes = _axes(node, constants, chain)
    if axes is None:
        raise chain.fail(node, "no axes given")
    rank = len(chain.shape) + len(axes)
    axes = sorted(a + rank if a < 0 else a for a in axes)
    shape = list(chain.shape)
    for a in axes:
        shape.insert(a, 1)
    chain.shape = tuple(shape)


def _transpose(node, data, constants, chain):
    rank = len(chain.shape)
    perm = list(node.attr("perm", list(range(rank))[::-1]))
    if sorted(perm) != list(range(rank)):
        raise chain.fail(node, f"perm {perm} is not a permutation of {rank} axes")
    new_shape = tuple(chain.shape[p] for p in perm)
    if perm != list(range(rank)):
        if rank >= 2 and perm[0] == 0 and chain.shape[0] == 1:     # keeps the batch axis first
            chain.conform(chain.shape[1:])
            chain.emit(Transpose(tuple(p - 1 for p in perm[1:])), node)
        else:                                                     # moves an axis of size 1
            chain.conform(chain.shape)
            chain.emit(Transpose(tuple(perm)), node)
    chain.shape = new_shape


# ---- lowerings: affine ops -------------------------------------------------------------------

def _dense(node: _Node, chain: _Chain, right: np.ndarray, rows: int, bias: np.ndarray) -> None:
    """``data (rows, K) @ right (K, N) + bias`` as one ``Linear`` on the flat data."""
    weight = right.T
    if rows > 1:
        if rows * rows * right.size > MAX_KRON_VALUES:
            raise chain.fail(node, f"a product over {rows} rows would need a dense weight of "
                                   f"{rows * rows * right.size} values")
        weight = np.kron(np.eye(rows), weight)
    chain.emit(Linear(np.ascontiguousarray(weight), bias), node)


def _gemm(node, data, constants, chain):
    if data != 0:
        raise chain.fail(node, "the data must be the first operand A (a constant A @ data is "
                               "not supported)")
    if node.attr("transA", 0):
        raise chain.fail(node, "transA = 1 on the data is not supported")
    if len(chain.shape) != 2:
        raise chain.fail(node, f"A must be 2-D, got shape {chain.shape}")
    b = constants.floats(node, node.inputs[1], "operand B")
    if b.ndim != 2:
        raise chain.fail(node, f"B must be 2-D, got shape {b.shape}")
    right = b.T if node.attr("transB", 0) else b               # (K, N)
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    rows, k = chain.shape
    if right.shape[0] != k:
        raise chain.fail(node, f"B {b.shape} does not fit A {chain.shape}")
    if alpha != 1.0:
        right = right * alpha
    n = right.shape[1]
    bias = np.zeros((rows, n))
    if len(node.inputs) > 2 and node.inputs[2]:
        c = constants.floats(node, node.inputs[2], "operand C")
        try:
            bias = np.broadcast_to(c * beta if beta != 1.0 else c, (rows, n)).astype(np.float64)
        except ValueError:
            raise chain.fail(node, f"C {c.shape} does not broadcast to ({rows}, {n})") from None
    _dense(node, chain, right, rows, bias.ravel())
    chain.shape = (rows, n)


def _matmul(node, data, constants, chain):
    other = constants.floats(node, node.inputs[1 - data], "other operand")
    shape = chain.shape
    if other.ndim > 2 and any(d != 1 for d in other.shape[:-2]):
        raise chain.fail(node, f"a batched constant of shape {other.shape} is not supported")
    lead = other.shape[:-2]
    if data == 0:                                    # data (..., K) @ other (K, N) or (K,)
        right = other.reshape(other.shape[-2:]) if other.ndim >= 2 else other[:, None]
        if shape[-1] != right.shape[0]:
            raise chain.fail(node, f"shapes {shape} and {other.shape} do not multiply")
        rows = int(np.prod(shape[:-1]))
        _dense(node, chain, right, rows, np.zeros(rows * right.shape[1]))
        if other.ndim == 1:
            out = shape[:-1]
        else:
            out = (_broadcast(shape[:-2], lead) + (shape[-2], right.shape[1])
                   if len(shape) >= 2 else lead + (right.shape[1],))
    else:                                            # other (M, K) or (K,) @ data (..., K, N)
        left = other.reshape(other.shape[-2:]) if other.ndim >= 2 else other[None, :]
        if len(shape) == 1:
            if shape[0] != left.shape[1]:
                raise chain.fail(node, f"shapes {other.shape} and {shape} do not multiply")
            chain.emit(Linear(left.copy(), np.zeros(left.shape[0])), node)
            out = lead + (left.shape[0],) if other.ndim >= 2 else ()
        else:
            k, cols = shape[-2], shape[-1]
            if k != left.shape[1]:
                raise chain.fail(node, f"shapes {other.shape} and {shape} do not multiply")
            blocks = int(np.prod(shape[:-2]))
            weight = np.kron(left, np.eye(cols))
            if blocks * blocks * weight.size > MAX_KRON_VALUES:
                raise chain.fail(node, f"this product would need a dense weight of "
                                       f"{blocks * blocks * weight.size} values")
            weight = np.kron(np.eye(blocks), weight) if blocks > 1 else weight
            chain.emit(Linear(weight, np.zeros(weight.shape[0])), node)
            middle = (left.shape[0],) if other.ndim >= 2 else ()
            out = _broadcast(shape[:-2], lead) + middle + (cols,)
    chain.shape = tuple(int(d) for d in out)


def _broadcast(a: Shape, b: Shape) -> Shape:
    return tuple(np.broadcast_shapes(tuple(a), tuple(b)))


def _elementwise(node, data, constants, chain):
    """Add, Sub, Mul, Div with one constant operand, as ``mul * x + add``."""
    c = constants.floats(node, node.inputs[1 - data], "other operand")
    try:
        shape = _broadcast(chain.shape, c.shape)
    except ValueError:
        raise chain.fail(node, f"constant of shape {c.shape} does not broadcast with the data "
                               f"{chain.shape}") from None
    if int(np.prod(shape)) != chain.size:
        raise chain.fail(node, f"the constant of shape {c.shape} would broadcast the data "
                               f"{chain.shape} to {shape}")
    flat = np.broadcast_to(c, shape).ravel()
    ones, zeros = np.ones(chain.size), np.zeros(chain.size)
    if node.op == "Add":
        mul, add = ones, flat
    elif node.op == "Sub":
        mul, add = (ones, -flat) if data == 0 else (-ones, flat)
    elif node.op == "Mul":
        mul, add = flat, zeros
    else:
        if data == 1:
            raise chain.fail(node, "dividing a constant by the data is not supported (not affine)")
        if np.any(flat == 0):
            raise chain.fail(node, "divides by zero")
        mul, add = 1.0 / flat, zeros
    chain.shape = shape
    chain.affine(mul, add, node)


def _batchnorm(node, data, constants, chain):
    if node.attr("training_mode", 0):
        raise chain.fail(node, "training_mode = 1 is not supported (inference only)")
    if len(chain.shape) < 2:
        raise chain.fail(node, f"needs an input with a channel axis 1, got shape {chain.shape}")
    scale, bias, mean, var = (constants.floats(node, node.inputs[i], what) for i, what in
                              enumerate(("scale", "bias", "mean", "variance"), start=1))
    eps = float(node.attr("epsilon", 1e-5))
    mul = scale / np.sqrt(var + eps)
    add = bias - mean * mul

    def spread(values: np.ndarray) -> np.ndarray:
        if values.ndim == 1:      # per channel (axis 1)
            values = values.reshape((1, -1) + (1,) * (len(chain.shape) - 2))
        else:                     # opset < 9 with spatial = 0: one value per (C, H, W)
            values = values.reshape((1,) + values.shape)
        try:
            return np.broadcast_to(values, chain.shape).ravel()
        except ValueError:
            raise chain.fail(node, f"parameters of shape {values.shape} do not fit the data "
                                   f"{chain.shape}") from None

    chain.affine(spread(mul), spread(add), node)


# ---- lowerings: convolution, pooling, padding -------------------------------------------------

def _spatial_pads(node: _Node, chain: _Chain, kernel, strides) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` from ``auto_pad`` / ``pads`` for an NCHW input."""
    auto_pad = node.attr("auto_pad", "NOTSET")
    if auto_pad == "VALID":
        return (0, 0, 0, 0)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for size, k, s in zip(chain.shape[2:], kernel, strides):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            small, large = total // 2, total - total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else large)
            end.append(large if auto_pad == "SAME_UPPER" else small)
        return (begin[0], begin[1], end[0], end[1])
    if auto_pad != "NOTSET":
        raise chain.fail(node, f"auto_pad {auto_pad!r} is not supported")
    pads = list(node.attr("pads", [0, 0, 0, 0]))
    if len(pads) != 4 or min(pads) < 0:
        raise chain.fail(node, f"pads {pads} must be 4 values >= 0 (2-D)")
    return tuple(int(p) for p in pads)


def _window_attrs(node: _Node, chain: _Chain, kernel) -> tuple[tuple[int, int], tuple]:
    """Strides and padding of a Conv or pool, after checking the attributes shared by both."""
    if len(chain.shape) != 4:
        raise chain.fail(node, f"only 2-D windows (4-D NCHW input) are supported, got shape "
                               f"{chain.shape}")
    if any(d != 1 for d in node.attr("dilations", [1, 1])):
        raise chain.fail(node, f"dilations {list(node.attr('dilations'))} are not supported "
                               f"(only 1)")
    strides = tuple(int(s) for s in node.attr("strides", [1, 1]))
    if len(strides) != 2:
        raise chain.fail(node, f"strides {list(strides)} must be 2 values")
    return strides, _spatial_pads(node, chain, kernel, strides)


def _conv(node, data, constants, chain):
    if data != 0:
        raise chain.fail(node, "the data must be the input X, not the weight")
    weight = constants.floats(node, node.inputs[1], "weight")
    if weight.ndim != 4:
        raise chain.fail(node, f"weight of shape {weight.shape}: only 2-D convolutions are "
                               f"supported")
    if node.attr("group", 1) != 1:
        raise chain.fail(node, f"group = {node.attr('group')} is not supported (only 1)")
    kernel = tuple(weight.shape[2:])
    if tuple(node.attr("kernel_shape", kernel)) != kernel:
        raise chain.fail(node, f"kernel_shape {list(node.attr('kernel_shape'))} does not match "
                               f"the weight {weight.shape}")
    strides, pads = _window_attrs(node, chain, kernel)
    bias = np.zeros(weight.shape[0])
    if len(node.inputs) > 2 and node.inputs[2]:
        bias = constants.floats(node, node.inputs[2], "bias")
    last = chain.layers[-1] if chain.layers else None
    if chain.previous_op == "Pad" and isinstance(last, Pad2D) and last.layout == "NCHW":
        chain.layers.pop()          # the zero padding becomes part of the convolution's
        top, left, bottom, right = last.padding
        _, channels, height, width = chain.shape
        chain.ir_shape = (channels, height - top - bottom, width - left - right)
        chain.shape = (1,) + chain.ir_shape
        pads = tuple(a + b for a, b in zip(pads, last.padding))
    chain.emit_spatial(Conv2D(weight, bias, strides, pads, "NCHW"), node)


def _pool(node, data, constants, chain):
    kernel = tuple(int(k) for k in node.attr("kernel_shape", []))
    if len(kernel) != 2:
        raise chain.fail(node, f"kernel_shape {list(kernel)}: only 2-D pooling is supported")
    if node.attr("storage_order", 0):
        raise chain.fail(node, "storage_order = 1 is not supported")
    strides, pads = _window_attrs(node, chain, kernel)
    if node.attr("ceil_mode", 0):
        for size, k, s, before, after in zip(chain.shape[2:], kernel, strides, pads[:2], pads[2:]):
            if (size + before + after - k) % s:
                raise chain.fail(node, "ceil_mode = 1 changes the output size here; only "
                                       "ceil_mode = 0 is supported")
    if node.op == "MaxPool":
        layer = MaxPool2D(kernel, strides, pads, "NCHW")
    else:
        layer = AvgPool2D(kernel, strides, pads, "NCHW", bool(node.attr("count_include_pad", 0)))
    chain.emit_spatial(layer, node)


def _global_pool(node, data, constants, chain):
    if len(chain.shape) != 4:
        raise chain.fail(node, f"only 2-D pooling (4-D NCHW input) is supported, got shape "
                               f"{chain.shape}")
    kernel = tuple(chain.shape[2:])
    make = MaxPool2D if node.op == "GlobalMaxPool" else AvgPool2D
    chain.emit_spatial(make(kernel, (1, 1), (0, 0, 0, 0), "NCHW"), node)


def _pad(node, data, constants, chain):
    if data != 0:
        raise chain.fail(node, "the data must be the tensor padded")
    mode = node.attr("mode", "constant")
    if mode != "constant":
        raise chain.fail(node, f"mode {mode!r} is not supported (only 'constant' zero padding)")
    rank = len(chain.shape)
    if chain.opset < 11:
        pads, value = list(node.attr("pads", [])), float(node.attr("value", 0.0))
        axes = list(range(rank))
    else:
        pads = constants.ints(node, node.inputs[1], "pads")
        value = 0.0
        if len(node.inputs) > 2 and node.inputs[2]:
            value = float(constants.floats(node, node.inputs[2], "constant value").ravel()[0])
        axes = list(range(rank))
        if len(node.inputs) > 3 and node.inputs[3]:
            axes = [a + rank if a < 0 else a for a in constants.ints(node, node.inputs[3], "axes")]
    if value != 0.0:
        raise chain.fail(node, f"constant value {value} is not supported (only 0)")
    if len(pads) != 2 * len(axes) or min(pads, default=0) < 0:
        raise chain.fail(node, f"pads {pads} must be 2 x {len(axes)} values >= 0")
    begin, end = [0] * rank, [0] * rank
    for i, axis in enumerate(axes):
        begin[axis], end[axis] = pads[i], pads[i + len(axes)]
    padded = {axis for axis in range(rank) if begin[axis] or end[axis]}
    if not padded:
        return
    if rank != 4 or chain.shape[0] != 1:
        raise chain.fail(node, f"only padding of a 4-D tensor with a batch of 1 is supported, "
                               f"got shape {chain.shape}")
    if padded <= {2, 3}:
        layout, (h, w) = "NCHW", (2, 3)
    elif padded <= {1, 2}:
        layout, (h, w) = "NHWC", (1, 2)
    else:
        raise chain.fail(node, f"pads {pads} pad axes {sorted(padded)}; only the two spatial "
                               f"axes (2, 3 for NCHW, or 1, 2 for NHWC) may be padded")
    chain.conform(chain.shape[1:])
    chain.emit(Pad2D((begin[h], begin[w], end[h], end[w]), layout), node)
    chain.shape = (1,) + tuple(chain.ir_shape)


def _relu(node, data, constants, chain):
    if not (chain.layers and isinstance(chain.layers[-1], ReLU)):     # relu(relu(x)) = relu(x)
        chain.emit(ReLU(), node)


_LOWERINGS: dict[str, Callable] = {
    "Gemm": _gemm, "MatMul": _matmul,
    "Add": _elementwise, "Sub": _elementwise, "Mul": _elementwise, "Div": _elementwise,
    "BatchNormalization": _batchnorm,
    "Conv": _conv, "MaxPool": _pool, "AveragePool": _pool,
    "GlobalAveragePool": _global_pool, "GlobalMaxPool": _global_pool, "Pad": _pad,
    "Relu": _relu,
    "Identity": _identity, "Dropout": _identity, "Flatten": _flatten, "Reshape": _reshape,
    "Squeeze": _squeeze, "Unsqueeze": _unsqueeze, "Transpose": _transpose,
}
SUPPORTED_OPS = ", ".join(sorted(_LOWERINGS)) + ", Softmax (as the last node only)"
