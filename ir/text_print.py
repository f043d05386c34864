"""Network -> ``.nnir`` text: ``format_network`` prints a network (arrays inline or as
``@name`` references handed over in a dict) and ``dump_nnir`` writes the ``.nnir`` file and
the ``.npz`` beside it.  The text form and its contract are described in ``ir.text``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ir.layers import (AvgPool2D, Conv2D, Linear, MaxPool2D, Pad2D, ReLU, Reshape, Scale,
                       Transpose, kind)
from ir.network import Domain, Network

MAGIC = "netpatch-ir"
DENSE_VERSION = "1"   # linear and relu layers only
FULL_VERSION = "2"    # every layer kind of ir.layers
VERSIONS = (DENSE_VERSION, FULL_VERSION)
DENSE_KINDS = (Linear, ReLU)


def format_network(net: Network, arrays: dict | None = None, inline_limit: int = 64,
                   array_file: str | None = None) -> str:
    """The text of ``net``.

    With an ``arrays`` dict, every array of more than ``inline_limit`` values is written as
    ``@name`` and stored into ``arrays`` under that name; without one, everything is inline.
    ``array_file`` names the file that will hold those arrays (the ``arrays "..."`` line,
    printed only when some array is external).
    """
    out = _ArrayPrinter(arrays, inline_limit)
    edge_of = edge_indices(net)
    body = []
    for position, layer in enumerate(net.layers):
        in_shape, out_shape = net.shapes[position], net.shapes[position + 1]
        body += _STATEMENT_PRINTERS[type(layer)](layer, edge_of.get(position), in_shape,
                                                 out_shape, out)
    version = DENSE_VERSION if all(isinstance(layer, DENSE_KINDS) for layer in net.layers) \
        else FULL_VERSION
    head = [f"{MAGIC} {version}", f"network {json.dumps(net.name)}",
            f"input shape {_ints(net.input_shape)}" + _format_domain(net.domain, out)]
    if out.external and array_file is not None:
        head.append(f"arrays {json.dumps(array_file)}")
    return "\n".join(head + body) + "\n"


def edge_indices(net: Network) -> dict[int, int]:
    """``position in net.layers -> edge-layer index`` (1-based) of every layer in an edge-layer
    (a trailing run of reshapes belongs to none)."""
    return {position: edge.index for edge in net.edges for position in range(*edge.span)}


# Statement printers, one per layer kind: (layer, its edge-layer k, input shape, output shape,
# array printer) -> the statement's lines.

def _linear_statement(layer: Linear, k, in_shape, out_shape, out: "_ArrayPrinter") -> list[str]:
    return [f"linear {k}: {layer.n_in} -> {layer.n_out}",
            "  weight " + out.nested(f"W{k}", layer.weight, indent=len("  weight ")),
            "  bias " + out.nested(f"b{k}", layer.bias)]


def _relu_statement(layer: ReLU, k, in_shape, out_shape, out) -> list[str]:
    return ["relu"]


def _conv2d_statement(layer: Conv2D, k, in_shape, out_shape, out: "_ArrayPrinter") -> list[str]:
    return [f"conv2d {k}: {_ints(in_shape)} -> {_ints(out_shape)} stride {_ints(layer.stride)} "
            f"pad {_ints(layer.padding)} layout {layer.layout}",
            "  weight " + out.nested(f"W{k}", layer.weight, indent=len("  weight ")),
            "  bias " + out.nested(f"b{k}", layer.bias)]


def _pool_statement(layer: MaxPool2D | AvgPool2D, k, in_shape, out_shape, out) -> list[str]:
    count = (f" count_include_pad {'true' if layer.count_include_pad else 'false'}"
             if isinstance(layer, AvgPool2D) else "")
    return [f"{kind(layer)} kernel {_ints(layer.kernel)} stride {_ints(layer.stride)} "
            f"pad {_ints(layer.padding)}{count} layout {layer.layout}"]


def _pad2d_statement(layer: Pad2D, k, in_shape, out_shape, out) -> list[str]:
    return [f"pad2d {_ints(layer.padding)} layout {layer.layout}"]


def _reshape_statement(layer: Reshape, k, in_shape, out_shape, out) -> list[str]:
    return [f"reshape {_ints(layer.shape)}"]


def _transpose_statement(layer: Transpose, k, in_shape, out_shape, out) -> list[str]:
    return [f"transpose {_ints(layer.perm)}"]


def _scale_statement(layer: Scale, k, in_shape, out_shape, out: "_ArrayPrinter") -> list[str]:
    return ["scale", "  mul " + out.nested(f"mul{k}", layer.mul),
            "  add " + out.nested(f"add{k}", layer.add)]


_STATEMENT_PRINTERS = {Linear: _linear_statement, ReLU: _relu_statement,
                       Conv2D: _conv2d_statement, MaxPool2D: _pool_statement,
                       AvgPool2D: _pool_statement, Pad2D: _pad2d_statement,
                       Reshape: _reshape_statement, Transpose: _transpose_statement,
                       Scale: _scale_statement}


def _ints(values) -> str:
    return "(" + ", ".join(str(int(v)) for v in values) + ")"


def _format_domain(domain: Domain | None, out: "_ArrayPrinter") -> str:
    """`` domain ...`` when the network holds a domain; nothing when it holds none."""
    if domain is None:
        return ""
    lo, hi = domain.lower, domain.upper
    if _all_same_bits(lo) and _all_same_bits(hi):
        return f" domain box [{_number(lo[0])}, {_number(hi[0])}]"
    return " domain" + f"\n  lower {out.nested('lower', lo)}\n  upper {out.nested('upper', hi)}"


def _all_same_bits(values: np.ndarray) -> bool:
    """Every value has the same float64 bit pattern (so ``-0.0`` and ``0.0`` differ)."""
    bits = values.view(np.uint64)
    return len(bits) > 0 and bool(np.all(bits == bits[0]))


def _number(value: float) -> str:
    return repr(float(value))


class _ArrayPrinter:
    """Prints arrays inline, or as ``@name`` references collected into ``arrays``; a name
    already given to an earlier array (inline or not) gets ``_2``, ``_3``, ..."""

    def __init__(self, arrays: dict | None, inline_limit: int):
        self.arrays, self.inline_limit = arrays, inline_limit
        self.external = False
        self.used: set[str] = set()

    def _reference(self, name: str, values: np.ndarray) -> str | None:
        unique, n = name, 1
        while unique in self.used:      # inline arrays claim their names too: stable names
            n += 1
            unique = f"{name}_{n}"
        self.used.add(unique)
        if self.arrays is None or values.size <= self.inline_limit:
            return None
        self.arrays[unique] = values
        self.external = True
        return "@" + unique

    def nested(self, name: str, values: np.ndarray, indent: int = 0) -> str:
        """A vector on one line; an array of more axes one innermost row per line, aligned
        under the opening brackets that start at column ``indent``."""
        return self._reference(name, values) or _nested_text(values, indent)


def _nested_text(values: np.ndarray, indent: int) -> str:
    if values.ndim == 1:
        return "[" + ", ".join(_number(v) for v in values) + "]"
    separator = ",\n" + " " * (indent + 1)
    return "[" + separator.join(_nested_text(sub, indent + 1) for sub in values) + "]"


def dump_nnir(net: Network, path: str | Path, inline_limit: int = 64) -> None:
    """Write ``path`` and, when some array has more than ``inline_limit`` values, the
    ``.npz`` beside it (``path`` with suffix ``.npz``) that holds those arrays."""
    path = Path(path)
    npz_path = path.with_suffix(".npz")
    arrays: dict[str, np.ndarray] = {}
    text = format_network(net, arrays, inline_limit, array_file=npz_path.name)
    if arrays:
        np.savez(npz_path, **arrays)
    path.write_text(text)
