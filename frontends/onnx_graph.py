"""The ONNX graph as the reader (``frontends.onnx_read``) sees it: its nodes in topological
order with their attributes decoded, who produces and who consumes each tensor, which tensors
are *data* (computed from the input's values), the input's shape, and the value of every
constant tensor, folded on demand with the op's reference implementation (``onnx.reference``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from common.errors import FrontendError
from common.limits import check_values
from ir.network import Shape

SHAPE_FACT_OPS = ("Shape", "Size")
_FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


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
