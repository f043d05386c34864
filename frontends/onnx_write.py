"""``ir.network.Network`` -> ONNX model: ``save_onnx``, which writes every IR layer kind as
ONNX (opset 13) nodes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from common.errors import FrontendError
from frontends.onnx_graph import _one_line
from ir.layers import output_shape
from ir.network import (AvgPool2D, Conv2D, Layer, Linear, MaxPool2D, Network, Pad2D,
                        ReLU, Reshape, Scale, Shape, Transpose)

EXPORT_OPSET = 13
EXPORT_IR_VERSION = 8            # opset 13 needs IR >= 7; 8 is read by every onnxruntime >= 1.10


def save_onnx(net: Network, path: str | Path) -> None:
    """Write ``net`` as an ONNX model (opset 13) that computes the same function.

    The graph's input is ``input`` of shape ``[1, *net.input_shape]`` (the IR's flat layout, so
    an NHWC network takes NHWC input) and its output ``output`` of shape ``[1, n_outputs]``.
    Layers: ``Linear`` -> Gemm (``transB = 1``, the weight stored as ``(n_out, n_in)``, after a
    Flatten when the input is not flat); ``ReLU`` -> Relu; ``Conv2D`` -> Conv with ``pads``;
    ``MaxPool2D`` / ``AvgPool2D`` -> MaxPool / AveragePool (``count_include_pad``); ``Pad2D`` ->
    Pad on the two spatial axes; ``Reshape`` -> Reshape; ``Transpose`` -> Transpose; ``Scale``
    -> Mul and Add.  An NHWC convolution or pooling is computed in NCHW between Transpose nodes
    (consecutive NHWC layers share one pair).

    Every array is stored as float32 when all values of all arrays are exactly representable
    in float32 (true for networks read from Keras or float32 ONNX files), else the whole graph
    is float64 (DOUBLE): either way the stored values are the IR's bit for bit.  The model is
    checked with ``onnx.checker`` before it is written.
    """
    arrays = [getattr(layer, name) for layer in net.layers
              for name in _ARRAY_NAMES.get(type(layer), ())]
    dtype = np.float32 if all(_exact_in_float32(a) for a in arrays) else np.float64
    writer = _Writer(dtype, tuple(net.input_shape))
    for layer in net.layers:
        writer.add(layer)
    model = writer.model(net.name, net.n_outputs)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as err:
        raise FrontendError(f"the exported model fails onnx.checker: {_one_line(err)}",
                            str(path)) from None
    try:
        onnx.save(model, str(path))
    except OSError as err:
        raise FrontendError(f"cannot write: {err}", str(path)) from None


_ARRAY_NAMES = {Linear: ("weight", "bias"), Conv2D: ("weight", "bias"), Scale: ("mul", "add")}
_TO_NCHW, _TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)


def _exact_in_float32(values: np.ndarray) -> bool:
    with np.errstate(over="ignore"):
        return bool(np.array_equal(values.astype(np.float32).astype(np.float64), values))


class _Writer:
    """Builds the node list.  ``shape`` is the IR shape of the current tensor; when
    ``nchw_pending`` the tensor is held transposed to NCHW (an NHWC IR shape ``(H, W, C)``
    stored as ``(1, C, H, W)``) so that consecutive NHWC windows share one Transpose pair."""

    def __init__(self, dtype, input_shape: Shape):
        self.dtype = dtype
        self.elem_type = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
        self.input_shape = input_shape
        self.shape = input_shape
        self.current = "input"
        self.nchw_pending = False
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    # -- plumbing
    def _name(self, prefix: str) -> str:
        return f"{prefix}_{len(self.nodes) + len(self.initializers)}"

    def const(self, values: np.ndarray, prefix: str, dtype=None) -> str:
        name = self._name(prefix)
        self.initializers.append(numpy_helper.from_array(
            np.ascontiguousarray(values, dtype=dtype or self.dtype), name))
        return name

    def node(self, op: str, *inputs: str, **attrs) -> None:
        output = f"t{len(self.nodes)}"
        self.nodes.append(helper.make_node(op, [self.current, *inputs], [output],
                                           name=f"{op}_{len(self.nodes)}", **attrs))
        self.current = output

    def to_nchw(self) -> None:
        if not self.nchw_pending:
            self.node("Transpose", perm=list(_TO_NCHW))
            self.nchw_pending = True

    def materialize(self) -> None:
        if self.nchw_pending:
            self.node("Transpose", perm=list(_TO_NHWC))
            self.nchw_pending = False

    # -- layers
    def add(self, layer: Layer) -> None:
        new_shape = output_shape(layer, self.shape)
        if isinstance(layer, ReLU):
            self.node("Relu")                # elementwise: either layout will do
        elif isinstance(layer, (Conv2D, MaxPool2D, AvgPool2D)):
            if layer.layout == "NHWC":
                self.to_nchw()
            else:
                self.materialize()
            self._window(layer)
        elif isinstance(layer, Pad2D):
            self._pad(layer)
        elif isinstance(layer, Transpose) and self.nchw_pending and layer.perm == (2, 0, 1):
            self.nchw_pending = False        # NHWC -> NCHW: the tensor is held that way already
        else:
            self.materialize()
            if isinstance(layer, Linear):
                if len(self.shape) != 1:
                    self.node("Flatten", axis=1)
                self.node("Gemm", self.const(layer.weight, "W"), self.const(layer.bias, "B"),
                          transB=1)
            elif isinstance(layer, Reshape):
                self.node("Reshape", self.const(np.array((1,) + tuple(layer.shape)), "shape",
                                                np.int64))
            elif isinstance(layer, Transpose):
                self.node("Transpose", perm=[0] + [p + 1 for p in layer.perm])
            elif isinstance(layer, Scale):
                full = (1,) + tuple(self.shape)
                if not np.all(layer.mul == 1.0):
                    self.node("Mul", self.const(layer.mul.reshape(full), "mul"))
                if not np.all(layer.add == 0.0):
                    self.node("Add", self.const(layer.add.reshape(full), "add"))
            else:
                raise FrontendError(f"cannot export a {type(layer).__name__} layer to ONNX")
        self.shape = new_shape

    def _window(self, layer) -> None:
        attrs = dict(strides=list(layer.stride), pads=list(layer.padding))
        if isinstance(layer, Conv2D):
            self.node("Conv", self.const(layer.weight, "W"), self.const(layer.bias, "B"),
                      kernel_shape=list(layer.weight.shape[2:]), **attrs)
        elif isinstance(layer, MaxPool2D):
            self.node("MaxPool", kernel_shape=list(layer.kernel), **attrs)
        else:
            self.node("AveragePool", kernel_shape=list(layer.kernel),
                      count_include_pad=int(layer.count_include_pad), **attrs)

    def _pad(self, layer: Pad2D) -> None:
        top, left, bottom, right = layer.padding
        if layer.layout == "NHWC" and not self.nchw_pending:
            pads = [0, top, left, 0, 0, bottom, right, 0]
        else:
            if layer.layout == "NCHW":
                self.materialize()
            pads = [0, 0, top, left, 0, 0, bottom, right]
        self.node("Pad", self.const(np.array(pads), "pads", np.int64), mode="constant")

    def model(self, name: str, n_outputs: int) -> onnx.ModelProto:
        self.materialize()
        if len(self.shape) != 1 or not self.nodes:
            self.node("Flatten", axis=1)
        self.nodes[-1].output[0] = "output"
        graph = helper.make_graph(
            self.nodes, name,
            [helper.make_tensor_value_info("input", self.elem_type, [1, *self.input_shape])],
            [helper.make_tensor_value_info("output", self.elem_type, [1, n_outputs])],
            self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", EXPORT_OPSET)],
                                  producer_name="netpatch")
        model.ir_version = EXPORT_IR_VERSION
        return model
