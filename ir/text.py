"""The ``.nnir`` text form of a network: printer, parser and the file pair ``.nnir`` + ``.npz``.

The grammar is ``network.lark`` (beside this file); a sample::

    netpatch-ir 1
    network "paper_2222"
    input shape (2) domain box [0.0, 1.0]
    arrays "paper_2222.npz"
    linear 1: 2 -> 2
      weight [[1.0, 1.0],
              [-1.0, 2.0]]
      bias [0.0, 0.0]
    relu
    linear 2: 2 -> 2
      weight @W2
      bias @b2

and the statements of the other layer kinds (``ir.layers``), which need version 2::

    conv2d 1: (28, 28, 1) -> (28, 28, 16) stride (1, 1) pad (1, 1, 1, 1) layout NHWC
      weight @W1
      bias @b1
    maxpool2d kernel (2, 2) stride (2, 2) pad (0, 0, 0, 0) layout NHWC
    avgpool2d kernel (3, 3) stride (2, 2) pad (0, 0, 1, 1) count_include_pad false layout NCHW
    pad2d (1, 0, 2, 1) layout NHWC
    reshape (784)
    transpose (2, 0, 1)
    scale
      mul @mul3
      add @add3

Contract:

* One statement per layer of ``Network.layers``, in order.  The version line is
  ``netpatch-ir 1`` when every layer is linear or relu (the text is then exactly the version 1
  form), else ``netpatch-ir 2``; the reader takes both and refuses the other statements in a
  version 1 file.
* ``linear k: n_in -> n_out`` and ``conv2d k: in_shape -> out_shape`` carry the number ``k``
  of the edge-layer they belong to (``Network.edges``, numbered from 1), checked on reading,
  as are the declared sizes and shapes.  A linear weight has shape ``(n_out, n_in)`` (row
  ``j`` holds the weights into target neuron ``j``), its bias ``(n_out,)``.  A conv2d weight
  has shape ``(c_out, c_in, kh, kw)``, its bias ``(c_out,)``; ``pad`` is ``(top, left,
  bottom, right)``; ``layout`` is ``NHWC`` or ``NCHW`` (``ir.layers`` states the conventions).
  ``scale`` holds one ``mul`` and one ``add`` value per tensor value.
* ``domain box [lo, hi]`` when every input has the same bounds, otherwise per input
  ``domain lower [...] upper [...]``; no domain at all when the network holds none (a Keras
  or ONNX file states none).
* Numbers are printed with ``repr(float(v))`` (the shortest text that reads back to the same
  float64) and read with ``float()``, so arrays round-trip bit for bit.  A 4-D weight is
  printed inline as nested lists, one innermost row per line.
* An array with more than ``inline_limit`` values is printed as a reference ``@name``
  (``W<k>``, ``b<k>`` for linear and conv2d, ``mul<k>``, ``add<k>`` for scale, ``k`` the
  edge-layer; ``_2``, ``_3``, ... when an edge-layer holds several such layers; ``lower``,
  ``upper``) and handed over in a dict; a file written by ``dump_nnir`` keeps those arrays
  in an ``.npz`` beside it, named by its ``arrays "..."`` line.
* ``Network.notes`` are not part of the text.
* The printer is deterministic and ``format_network(parse_network(t)) == t`` for its output.
* Every error is an ``common.errors.ParseError`` with line, column and a caret, at the
  statement (or the value in it) at fault.

The code: this module only names the public functions.  ``ir.text_print`` holds the printer
(``format_network``, ``dump_nnir``), ``ir.text_parse`` the parser (``parse_network``,
``load_nnir``, and ``syntax_error``, which ``ir.property_parser`` and ``ir.vnnlib`` share).
"""
from __future__ import annotations

from ir.text_parse import load_nnir, parse_network, syntax_error
from ir.text_print import (DENSE_KINDS, DENSE_VERSION, FULL_VERSION, MAGIC, VERSIONS,
                           dump_nnir, edge_indices, format_network)

__all__ = ["format_network", "dump_nnir", "edge_indices", "parse_network", "load_nnir",
           "syntax_error", "MAGIC", "DENSE_VERSION", "FULL_VERSION", "VERSIONS", "DENSE_KINDS"]
