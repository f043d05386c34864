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
is the last node is dropped with a note in ``Network.notes``.  A normalization in front of a
dense layer folds into it (``frontends.folding``).  ONNX files hold no input domain: the
network has none (commands take it from ``--domain``).

Writing (``save_onnx``)
-----------------------
Every IR layer kind has an ONNX form (opset 13); see ``save_onnx``.

The code
--------
This module only names the public functions.  ``frontends.onnx_read`` holds ``load_onnx`` and
the walk along the data path; ``frontends.onnx_graph`` the indexed graph and its folded
constants; ``frontends.onnx_chain`` the IR layers emitted so far (and the folding of affine
ops into them); ``frontends.onnx_ops`` the lowering of each op (``SUPPORTED_OPS``);
``frontends.onnx_write`` ``save_onnx``.
"""
from __future__ import annotations

from frontends.onnx_graph import SHAPE_FACT_OPS
from frontends.onnx_ops import MAX_KRON_VALUES, SUPPORTED_OPS
from frontends.onnx_read import load_onnx
from frontends.onnx_write import EXPORT_IR_VERSION, EXPORT_OPSET, save_onnx

__all__ = ["load_onnx", "save_onnx", "SUPPORTED_OPS", "EXPORT_OPSET", "EXPORT_IR_VERSION",
           "SHAPE_FACT_OPS", "MAX_KRON_VALUES"]
