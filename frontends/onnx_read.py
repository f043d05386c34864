"""ONNX model -> ``ir.network.Network``: ``load_onnx`` reads the file, indexes the graph
(``frontends.onnx_graph``), follows the data from the input to the output and lowers each node
on the way (``frontends.onnx_ops``) into the chain of IR layers (``frontends.onnx_chain``).
The contract (what is read, and what it becomes) is stated in ``frontends.onnx``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from common.errors import FrontendError, NetworkError
from frontends.folding import fold_scales
from frontends.onnx_chain import _Chain
from frontends.onnx_graph import SHAPE_FACT_OPS, _Constants, _Graph, _Node, _one_line
from frontends.onnx_ops import _LOWERINGS, SUPPORTED_OPS
from ir.network import Network, Shape


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
                            f"frontends/onnx_ops.py", graph.source)


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
