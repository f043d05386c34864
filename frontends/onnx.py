"""ONNX models <-> ``ir.network.Network``, with the ``onnx`` package only (no onnxruntime, no
TensorFlow).

Reading (``load_onnx``)
-----------------------
The graph must reduce to a chain from its one non-initializer input to its one output.  A
*data* tensor is one computed from the input's values; every other tensor is a constant:
initializers, ``Constant`` nodes, and any node whose inputs are all constants or static shape
facts (``Shape``/``Size`` of a data tensor).  Constants are folded on demand with the op's
reference implementation (``onnx.reference``), which covers the
``Shape -> Gather -> Unsqueeze -> Concat -> Reshape`` pattern PyTorch exports compute reshape
targets with.  Each data tensor must feed exactly one node (``Shape``/``Size`` do not count) and
each node may take only one data tensor: residual and branching graphs are refused.

Shapes and the batch axis.  Every data tensor keeps the graph's own shape with a symbolic batch
dimension set to 1, so one input is one batch of one.  The IR shape of a tensor is that shape
without a leading axis of size 1 (the batch axis), or the whole shape when there is none (an
input ``(784,)`` feeding a MatMul).  Ops that only reshape (Flatten, Reshape, Squeeze,
Unsqueeze, Identity, Dropout) emit no IR layer: they keep the row-major flat order, which is all
the IR sees; an IR ``Reshape`` is emitted only in front of a layer that needs a spatial shape.
Conv and pooling are NCHW (IR layout ``"NCHW"``, IR shape ``(C, H, W)``); a graph whose input is
NHWC keeps that layout, its Transpose becoming an IR ``Transpose``.

Folding.  An elementwise affine op (Add, Sub, Mul, Div with one constant operand,
BatchNormalization) folds into the layer just emitted when that is a ``Linear`` (any constant),
a ``Conv2D`` (per-channel constants) or a ``Scale``; otherwise it becomes a ``Scale``.  A ``Pad``
directly followed by a ``Conv`` becomes part of the convolution's padding.  A ``Softmax`` that
is the last node is dropped with a note in ``Network.notes``.  The input domain is the box
``[0, 1]`` per input value (ONNX files hold none).

Writing (``save_onnx``)
-----------------------
Every IR layer kind has an ONNX form (opset 13); see ``save_onnx``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from common.errors import FrontendError, NetworkError
from common.limits import check_values
from frontends.folding import fold_scales
from ir.layers import output_shape
from ir.network import (AvgPool2D, Conv2D, Layer, Linear, MaxPool2D, Network, Pad2D,
                        ReLU, Reshape, Scale, Shape, Transpose)

EXPORT_OPSET = 13
EXPORT_IR_VERSION = 8            # opset 13 needs IR >= 7; 8 is read by every onnxruntime >= 1.10
SHAPE_FACT_OPS = ("Shape", "Size")
MAX_KRON_VALUES = 50_000_000     # a MatMul over several rows becomes kron(I, W): keep it sane
_FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16)


# ==== reading ================================================================================

def load_onnx(path: str | Path) -> Network:
    """Read an ONNX model into a ``Network`` named after the file's stem.

    Raises ``FrontendError`` (one line, naming the file and, where one is at fault, the node as
    ``node 'NAME' (OpType)`` or ``node #INDEX (OpType)`` when unnamed) for an unreadable file,
    an op or attribute outside the supported set (``SUPPORTED_OPS``), a dynamic shape, or a
    graph that is not a chain.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise FrontendError("no such file", source)
    try:
        model = onnx.load(str(path))
    except Exception as err:   # protobuf's DecodeError, OSError, external data errors
        raise FrontendError(f"cannot read as ONNX: {_one_line(err)}", source) from None
    notes = []
    try:
        onnx.checker.check_model(model)
    except Exception as err:   # readable anyway: every op we take is checked by its lowering
        notes.append(f"onnx.checker: {_one_line(err)} (loaded anyway)")
    model = _inline_functions(model, source)
    graph = _Graph(model, source)
    chain = _Chain(source, graph.opset, graph.input_shape, notes)
    constants = _Constants(graph)
    _walk(graph, constants, chain)
    try:
        return Network(tuple(fold_scales(chain.layers)), None, chain.input_ir_shape, path.stem,
                       tuple(chain.notes))
    except NetworkError as err:
        raise FrontendError(f"the lowered network is invalid: {err}", source) from None


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _inline_functions(model: onnx.ModelProto, source: str) -> onnx.ModelProto:
    """Model-local functions (newer PyTorch exporters) inlined into the main graph."""
    if not model.functions:
        return model
    try:
        from onnx import inliner
        return inliner.inline_local_functions(model)
    except Exception as err:
        raise FrontendError(f"cannot inline the model's local functions: {_one_line(err)}",
                            source) from None


@dataclass(frozen=True, eq=False)
class _Node:
    """A graph node with its attributes decoded, and how messages name it."""

    proto: onnx.NodeProto
    index: int
    attrs: dict

    @property
    def op(self) -> str:
        return self.proto.op_type

    @property
    def inputs(self) -> list[str]:
        return list(self.proto.input)

    @property
    def outputs(self) -> list[str]:
        return list(self.proto.output)

    def describe(self) -> str:
        name = f"'{self.proto.name}'" if self.proto.name else f"#{self.index}"
        return f"node {name} ({self.op})"

    def attr(self, name: str, default=None):
        value = self.attrs.get(name, default)
        return value.decode() if isinstance(value, bytes) else value


class _Graph:
    """The graph indexed for the walk: its nodes in topological order, who produces and who
    consumes each tensor, the data tensors, the input's shape and the opset."""

    def __init__(self, model: onnx.ModelProto, source: str):
        self.source = source
        graph = model.graph
        self.opset = next((imp.version for imp in model.opset_import
                           if imp.domain in ("", "ai.onnx")), None)
        if self.opset is None:
            raise FrontendError("the model imports no version of the default ONNX opset", source)
        self.initializers = {t.name: t for t in graph.initializer}
        inputs = [v for v in graph.input if v.name not in self.initializers]
        if len(inputs) != 1:
            raise FrontendError(f"the graph must have exactly one input besides its initializers, "
                                f"found {len(inputs)}: {[v.name for v in inputs]}", source)
        if len(graph.output) != 1:
            raise FrontendError(f"the graph must have exactly one output, found "
                                f"{len(graph.output)}: {[v.name for v in graph.output]}", source)
        self.input = inputs[0].name
        self.output = graph.output[0].name
        self.input_shape = _input_shape(inputs[0], source)
        self.nodes = _sorted_nodes(graph, set(self.initializers) | {self.input}, source)
        self.producer = {out: node for node in self.nodes for out in node.outputs if out}
        self.consumers: dict[str, list[_Node]] = {}
        for node in self.nodes:
            for name in node.inputs:
                if name:
                    self.consumers.setdefault(name, []).append(node)
        self.data = self._data_tensors()
        self.inferred = _inferred_shapes(model)

    def _data_tensors(self) -> set[str]:
        data = {self.input}
        for node in self.nodes:
            if node.op not in SHAPE_FACT_OPS and any(name in data for name in node.inputs):
                data.update(name for name in node.outputs if name)
        return data

    def data_consumers(self, tensor: str) -> list[_Node]:
        return [node for node in self.consumers.get(tensor, []) if node.op not in SHAPE_FACT_OPS]

    def data_inputs(self, node: _Node) -> list[str]:
        return [name for name in node.inputs if name in self.data]


def _input_shape(value: onnx.ValueInfoProto, source: str) -> Shape:
    """The input's shape with a symbolic (or unknown) batch dimension set to 1."""
    tensor_type = value.type.tensor_type
    if not value.type.HasField("tensor_type") or not tensor_type.HasField("shape"):
        raise FrontendError(f"input '{value.name}' declares no tensor shape", source)
    if tensor_type.elem_type not in _FLOAT_TYPES:
        raise FrontendError(f"input '{value.name}' has element type "
                            f"{TensorProto.DataType.Name(tensor_type.elem_type)}; a float "
                            f"tensor is needed", source)
    dims = []
    for axis, dim in enumerate(tensor_type.shape.dim):
        if dim.HasField("dim_value") and dim.dim_value > 0:
            dims.append(int(dim.dim_value))
        elif axis == 0 and len(tensor_type.shape.dim) >= 2:
            dims.append(1)       # the batch axis: one input at a time
        else:
            label = dim.dim_param or "unknown"
            raise FrontendError(f"input '{value.name}' has a dynamic dimension {label!r} at axis "
                                f"{axis}; only the batch axis (axis 0) may be dynamic", source)
    return tuple(dims)


def _sorted_nodes(graph: onnx.GraphProto, known: set[str], source: str) -> list[_Node]:
    """The nodes in topological order (ONNX requires it; some exporters do not comply)."""
    nodes = [_Node(proto, i, {a.name: helper.get_attribute_value(a) for a in proto.attribute})
             for i, proto in enumerate(graph.node)]
    known = set(known) | {""}
    ordered, pending = [], nodes
    while pending:
        ready, waiting = [], []
        for node in pending:
            if all(name in known for name in node.inputs):
                ready.append(node)
                known.update(node.outputs)       # in file order: one pass when already sorted
            else:
                waiting.append(node)
        if not ready:
            node = waiting[0]
            missing = [name for name in node.inputs if name not in known]
            raise FrontendError(f"{node.describe()}: input tensor '{missing[0]}' is never "
                                f"produced (or the graph has a cycle)", source)
        ordered += ready
        pending = waiting
    return ordered


def _inferred_shapes(model: onnx.ModelProto) -> dict[str, tuple]:
    """Static shapes from ``onnx.shape_inference`` (ints, or None for a symbolic dimension),
    for cross-checking the lowering; empty when inference fails."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    del copy.graph.value_info[:]            # stale annotations must not pass for inference
    try:
        inferred = onnx.shape_inference.infer_shapes(copy, strict_mode=False, data_prop=True)
    except Exception:
        return {}
    shapes = {}     # graph outputs left out: their declared shapes are often loose
    for value in inferred.graph.value_info:
        tensor_type = value.type.tensor_type
        if value.type.HasField("tensor_type") and tensor_type.HasField("shape"):
            shapes[value.name] = tuple(d.dim_value if d.HasField("dim_value") else None
                                       for d in tensor_type.shape.dim)
    return shapes


# ---- constants ------------------------------------------------------------------------------

class _Constants:
    """The value of every constant tensor, folded on demand and remembered."""

    def __init__(self, graph: _Graph):
        self.graph = graph
        self.values: dict[str, np.ndarray] = {}
        self.data_shapes: dict[str, Shape] = {graph.input: graph.input_shape}

    def get(self, name: str) -> np.ndarray | None:
        """The constant's value, or None when ``name`` is data (or empty)."""
        if not name or name in self.graph.data:
            return None
        if name not in self.values:
            self._compute(name)
        return self.values[name]

    def _compute(self, name: str) -> None:
        if name in self.graph.initializers:
            tensor = self.graph.initializers[name]
            check_values(tensor.dims, f"initializer '{name}'",
                         lambda m: FrontendError(m, self.graph.source))
            self.values[name] = numpy_helper.to_array(tensor)
            return
        node = self.graph.producer.get(name)
        if node is None:
            raise FrontendError(f"tensor '{name}' is neither produced nor an initializer",
                                self.graph.source)
        if node.op in SHAPE_FACT_OPS and node.inputs[0] in self.graph.data:
            self.values[name] = self._shape_fact(node)
            return
        if any(attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
               for attr in node.proto.attribute):
            raise FrontendError(f"{node.describe()}: ops with subgraphs are not supported",
                                self.graph.source)
        args = [self.get(i) for i in node.inputs]
        try:
            from onnx.reference import ReferenceEvaluator
            renamed = helper.make_node(
                node.op, [f"i{k}" if i else "" for k, i in enumerate(node.inputs)],
                [f"o{k}" if o else "" for k, o in enumerate(node.outputs)],
                domain=node.proto.domain)
            renamed.attribute.extend(node.proto.attribute)
            feeds = {f"i{k}": v for k, (i, v) in enumerate(zip(node.inputs, args)) if i}
            results = ReferenceEvaluator(renamed, opsets={"": self.graph.opset}).run(None, feeds)
        except FrontendError:
            raise
        except Exception as err:
            raise FrontendError(f"{node.describe()}: cannot fold this constant: {_one_line(err)}",
                                self.graph.source) from None
        for out, value in zip([o for o in node.outputs if o], results):
            self.values[out] = np.asarray(value)

    def _shape_fact(self, node: _Node) -> np.ndarray:
        shape = self.data_shapes.get(node.inputs[0])
        if shape is None:
            raise FrontendError(f"{node.describe()}: the shape of '{node.inputs[0]}' is not known "
                                f"here (it is not on the chain from the input)", self.graph.source)
        if node.op == "Size":
            return np.array(int(np.prod(shape)), dtype=np.int64)
        start, end = node.attr("start", 0), node.attr("end", None)
        return np.array(shape[start:end], dtype=np.int64)

    def floats(self, node: _Node, name: str, what: str) -> np.ndarray:
        """A constant operand as float64; an error naming the node when it is data."""
        value = self.get(name)
        if value is None:
            raise FrontendError(f"{node.describe()}: the {what} must be a constant, but "
                                f"'{name}' is computed from the input", self.graph.source)
        return np.asarray(value, dtype=np.float64)

    def ints(self, node: _Node, name: str, what: str) -> list[int]:
        value = self.get(name)
        if value is None:
            raise FrontendError(f"{node.describe()}: the {what} is computed from the input's "
                                f"values (a dynamic shape); only static shapes are supported",
                                self.graph.source)
        return [int(v) for v in np.asarray(value).ravel()]


# ---- the chain being built -------------------------------------------------------------------

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


# ---- the walk --------------------------------------------------------------------------------

def _walk(graph: _Graph, constants: _Constants, chain: _Chain) -> None:
    """Follow the data from the input to the output, lowering each node on the way."""
    _refuse_merges(graph)
    current = graph.input
    while True:
        consumers = graph.data_consumers(current)
        if current == graph.output:
            if consumers:
                raise FrontendError(f"residual / branching graphs are not supported: the output "
                                    f"'{current}' also feeds {_list_nodes(consumers)}",
                                    graph.source)
            return
        if not consumers:
            raise FrontendError(f"the data path ends at tensor '{current}', which never reaches "
                                f"the graph output '{graph.output}'", graph.source)
        if len(consumers) > 1:
            raise FrontendError(f"residual / branching graphs are not supported: tensor "
                                f"'{current}' feeds {len(consumers)} nodes: "
                                f"{_list_nodes(consumers)}", graph.source)
        node = consumers[0]
        _refuse_extra_outputs(graph, node)
        _lower(node, graph, constants, chain)
        chain.previous_op = node.op
        current = node.outputs[0]
        constants.data_shapes[current] = chain.shape
        _check_inferred(graph, node, current, chain.shape)


def _list_nodes(nodes: list[_Node]) -> str:
    return ", ".join(node.describe() for node in nodes)


_MERGE_VERBS = {"Add": "adds", "Sub": "subtracts", "Mul": "multiplies", "Div": "divides",
                "Concat": "concatenates", "MatMul": "multiplies", "Gemm": "multiplies"}
_SHAPE_OPERANDS = {"Reshape": (1, "target shape"), "Expand": (1, "target shape"),
                   "Tile": (1, "repeats"), "Pad": (1, "pads"), "Slice": (1, "bounds"),
                   "Resize": (2, "scales")}


def _refuse_merges(graph: _Graph) -> None:
    """A node taking two data tensors (a residual connection, a concatenation of branches), or
    a shape operand computed from the input's values."""
    for node in graph.nodes:
        data = graph.data_inputs(node)
        if not data or node.op in SHAPE_FACT_OPS:
            continue
        position, what = _SHAPE_OPERANDS.get(node.op, (len(node.inputs), ""))
        if position < len(node.inputs) and node.inputs[position] in graph.data:
            raise FrontendError(f"{node.describe()}: the {what} is computed from the input's "
                                f"values (a dynamic shape); only static shapes are supported",
                                graph.source)
        if len(data) < 2:
            continue
        verb = _MERGE_VERBS.get(node.op, "combines")
        raise FrontendError(f"residual / branching graphs are not supported: {node.describe()} "
                            f"{verb} two computed tensors ({', '.join(repr(d) for d in data)})",
                            graph.source)


def _refuse_extra_outputs(graph: _Graph, node: _Node) -> None:
    """Only the first output of a node may be used (MaxPool's indices, Dropout's mask and
    BatchNormalization's training statistics are not)."""
    for position, name in enumerate(node.outputs[1:], start=2):
        if name and (graph.consumers.get(name) or name == graph.output):
            raise FrontendError(f"{node.describe()}: output {position} ('{name}') is used; only "
                                f"the first output of this op is supported", graph.source)


def _check_inferred(graph: _Graph, node: _Node, tensor: str, shape: Shape) -> None:
    """The lowering's shape against ONNX shape inference (symbolic dimensions match any)."""
    inferred = graph.inferred.get(tensor)
    if inferred is None or not inferred:
        return
    if len(inferred) != len(shape) or any(d is not None and d != 0 and d != s
                                          for d, s in zip(inferred, shape)):
        raise FrontendError(f"{node.describe()}: the lowering gives output shape {shape}, ONNX "
                            f"shape inference {tuple(inferred)}; this model needs a fix in "
                            f"frontends/onnx.py", graph.source)


def _lower(node: _Node, graph: _Graph, constants: _Constants, chain: _Chain) -> None:
    if node.proto.domain not in ("", "ai.onnx"):
        raise FrontendError(f"{node.describe()} from domain '{node.proto.domain}' is not "
                            f"supported; supported ops: {SUPPORTED_OPS}", graph.source)
    if node.op == "Softmax":
        _final_softmax(node, graph, chain)
        return
    lower = _LOWERINGS.get(node.op)
    if lower is None:
        raise FrontendError(f"{node.describe()} is not supported; supported ops: "
                            f"{SUPPORTED_OPS}", graph.source)
    data_position = next(i for i, name in enumerate(node.inputs) if name in graph.data)
    lower(node, data_position, constants, chain)


def _final_softmax(node: _Node, graph: _Graph, chain: _Chain) -> None:
    if node.outputs[0] != graph.output:
        raise FrontendError(f"{node.describe()} is not supported inside the graph (only as the "
                            f"last node, where it is dropped); supported ops: {SUPPORTED_OPS}",
                            graph.source)
    shape = chain.shape
    rank = len(shape)
    axis = node.attr("axis", 1 if chain.opset < 13 else -1)
    axis = axis + rank if axis < 0 else axis
    # opset < 13 normalizes over all axes from `axis` on, opset >= 13 over `axis` alone
    rest = shape[:axis] if chain.opset < 13 else shape[:axis] + shape[axis + 1:]
    if int(np.prod(rest)) != 1:
        raise FrontendError(f"{node.describe()}: a final softmax over axis {axis} of shape "
                            f"{shape} does not normalize all outputs together, so dropping it "
                            f"would not keep their order", graph.source)
    chain.notes.append(f"final softmax dropped ({node.describe()}): the outputs are its logits; "
                       f"their order and argmax are unchanged")


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


# ==== writing ================================================================================

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
